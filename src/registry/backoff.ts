/**
 * GitLab's retry delay for a registry or state row that failed for the n-th
 * time: n⁴ + 15 + jitter·(n + 1) seconds, jitter a whole number in 0..29,
 * capped at one hour (four hours when the file is missing on the primary, so
 * a secondary does not hammer the primary for something that is not there).
 *
 * The same formula exists twice: here for callers and unit tests, and as SQL
 * (`retryDelaySql`) so failure transitions read the count and write the new
 * retry time in one UPDATE. The jitter is always drawn in TypeScript and sent
 * as a parameter, which lets tests inject a deterministic random source.
 */
export const RETRY_CAP_SECONDS = 60 * 60;
export const RETRY_CAP_MISSING_ON_PRIMARY_SECONDS = 4 * 60 * 60;
export const JITTER_STEPS = 30;

/** Returns a value in [0, 1), like Math.random. */
export type RandomSource = () => number;

/** Draws GitLab's `rand(30)`: an integer in 0..29. */
export function drawJitter(random: RandomSource = Math.random): number {
  const jitter = Math.floor(random() * JITTER_STEPS);
  return Math.min(Math.max(jitter, 0), JITTER_STEPS - 1);
}

export function retryCapSeconds(missingOnPrimary: boolean): number {
  return missingOnPrimary ? RETRY_CAP_MISSING_ON_PRIMARY_SECONDS : RETRY_CAP_SECONDS;
}

/** Delay in seconds before retry number `retryCount` (the count after the failure). */
export function retryDelaySeconds(retryCount: number, jitter: number, missingOnPrimary = false): number {
  const uncapped = retryCount ** 4 + 15 + jitter * (retryCount + 1);
  return Math.min(uncapped, retryCapSeconds(missingOnPrimary));
}

/** The smallest delay the formula can produce for a count (jitter 0). */
export function minimumRetryDelaySeconds(retryCount: number, missingOnPrimary = false): number {
  return retryDelaySeconds(retryCount, 0, missingOnPrimary);
}

export function nextRetryAt(now: Date, retryCount: number, jitter: number, missingOnPrimary = false): Date {
  return new Date(now.getTime() + retryDelaySeconds(retryCount, jitter, missingOnPrimary) * 1000);
}

/**
 * SQL for the same delay as an interval. `count`, `jitter` and
 * `missingOnPrimary` are SQL expressions (columns or casted parameters).
 */
export function retryDelaySql(count: string, jitter: string, missingOnPrimary: string): string {
  return (
    `make_interval(secs => least(power((${count})::double precision, 4) + 15 + (${jitter})::double precision * ((${count}) + 1), ` +
    `CASE WHEN ${missingOnPrimary} THEN ${RETRY_CAP_MISSING_ON_PRIMARY_SECONDS} ELSE ${RETRY_CAP_SECONDS} END))`
  );
}

/** smallint columns: a retry counter saturates instead of overflowing. */
export function incrementSmallintSql(column: string): string {
  return `least(coalesce(${column}, 0) + 1, 32767)::smallint`;
}

export interface JitterOption {
  /** Source for the backoff jitter; when absent each row gets SQL random(). */
  random?: RandomSource;
}

/** The jitter parameter for a query: drawn from the injected source, or null for a per-row SQL draw. */
export function jitterParam(options: JitterOption): number | null {
  return options.random ? drawJitter(options.random) : null;
}

/** SQL for the jitter: the parameter when given, else a fresh random() draw per row. */
export function jitterSql(param: string): string {
  return `coalesce(${param}::integer, floor(random() * ${JITTER_STEPS})::integer)`;
}
