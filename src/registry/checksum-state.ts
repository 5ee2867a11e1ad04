import { incrementSmallintSql, jitterParam, jitterSql, retryDelaySql } from "./backoff.ts";
import type { JitterOption } from "./backoff.ts";
import type { ReplicableTypeSchemaConfig } from "./config.ts";
import { nowSql, toNumber } from "./db.ts";
import type { ClockOption, Queryable } from "./db.ts";
import { claimMatchesSql, claimTokenSql } from "./registry-row.ts";
import { DEFAULT_STARTED_TIMEOUT_SECONDS, truncateFailure, VerificationState } from "./states.ts";
import type { ClaimOptions, StuckOptions } from "./sync-state.ts";
import { tableRefs } from "./tables.ts";

/**
 * Verification on the primary, kept in `<name>_states` (main DB): the primary
 * checksums each record so secondaries have something to compare with.
 * pending(0) → started(1) → succeeded(2) | failed(3); disabled(4).
 *
 * For blob types verification_retry_count is nullable (as in GitLab's blob
 * template), hence the coalesce in the counters.
 */

export interface ChecksumStateRow {
  modelId: number;
  verificationState: number;
  verificationRetryCount: number;
  verificationRetryAt: Date | null;
  verificationStartedAt: Date | null;
  verifiedAt: Date | null;
  verificationChecksum: Buffer | null;
  verificationFailure: string | null;
  /** The claim this row is under (verification_started_at to the microsecond); completions are fenced on it. */
  claim: string | null;
}

interface ChecksumStateRecord {
  model_id: string;
  verification_state: number;
  verification_retry_count: number | null;
  verification_retry_at: Date | null;
  verification_started_at: Date | null;
  verified_at: Date | null;
  verification_checksum: Buffer | null;
  verification_failure: string | null;
  claim: string | null;
}

function columns(alias: string, modelId: string): string {
  return [
    `${alias}.${modelId} AS model_id`,
    ...[
      "verification_state",
      "verification_retry_count",
      "verification_retry_at",
      "verification_started_at",
      "verified_at",
      "verification_checksum",
      "verification_failure",
    ].map((c) => `${alias}.${c}`),
    `${claimTokenSql(`${alias}.verification_started_at`)} AS claim`,
  ].join(", ");
}

function toRow(r: ChecksumStateRecord): ChecksumStateRow {
  return {
    modelId: toNumber(r.model_id),
    verificationState: r.verification_state,
    verificationRetryCount: r.verification_retry_count ?? 0,
    verificationRetryAt: r.verification_retry_at,
    verificationStartedAt: r.verification_started_at,
    verifiedAt: r.verified_at,
    verificationChecksum: r.verification_checksum,
    verificationFailure: r.verification_failure,
    claim: r.claim,
  };
}

/**
 * Claims up to `limit` records to checksum on the primary: pending first
 * (never checksummed first), then failed ones due for a retry. Skips rows
 * locked by other workers.
 */
export async function claimChecksumWork(primary: Queryable, config: ReplicableTypeSchemaConfig, options: ClaimOptions): Promise<ChecksumStateRow[]> {
  const { states, modelId } = tableRefs(config);
  const now = nowSql("$2");
  const { rows } = await primary.query<ChecksumStateRecord>(
    `WITH pending AS (
       SELECT ${modelId} AS model_id FROM ${states} WHERE verification_state = ${VerificationState.pending}
       ORDER BY verified_at ASC NULLS FIRST LIMIT $1::integer FOR UPDATE SKIP LOCKED
     ), retry_due AS (
       SELECT ${modelId} AS model_id FROM ${states}
       WHERE verification_state = ${VerificationState.failed} AND (verification_retry_at IS NULL OR verification_retry_at <= ${now})
       ORDER BY verification_retry_at ASC NULLS FIRST LIMIT $1::integer FOR UPDATE SKIP LOCKED
     ), claimed AS (
       SELECT model_id FROM pending UNION ALL SELECT model_id FROM retry_due LIMIT $1::integer
     )
     UPDATE ${states} AS s SET verification_state = ${VerificationState.started}, verification_started_at = ${now}
     FROM claimed WHERE s.${modelId} = claimed.model_id
     RETURNING ${columns("s", modelId)}`,
    [options.limit, options.now ?? null],
  );
  return rows.map(toRow);
}

export interface ChecksumSucceededOptions extends ClockOption {
  checksum: Buffer;
  /** ChecksumStateRow.claim of the claimed row. */
  claim: string;
}

/**
 * started → succeeded with the computed checksum, fenced by the claim: false
 * when the row is no longer started under it (the data changed and
 * requestChecksum reset it, or it was claimed again after the stuck timeout),
 * so a checksum of older data is never published to secondaries.
 */
export async function markChecksumSucceeded(
  primary: Queryable,
  config: ReplicableTypeSchemaConfig,
  modelIdValue: number,
  options: ChecksumSucceededOptions,
): Promise<boolean> {
  const { states, modelId } = tableRefs(config);
  const result = await primary.query(
    `UPDATE ${states}
     SET verification_state = ${VerificationState.succeeded}, verification_checksum = $2::bytea, verified_at = ${nowSql("$3")},
         verification_retry_count = 0, verification_retry_at = NULL, verification_failure = NULL
     WHERE ${modelId} = $1::bigint AND verification_state = ${VerificationState.started} AND ${claimMatchesSql("verification_started_at", "$4")}`,
    [modelIdValue, options.checksum, options.now ?? null, options.claim],
  );
  return result.rowCount === 1;
}

export interface ChecksumFailedOptions extends ClockOption, JitterOption {
  message: string;
  /** ChecksumStateRow.claim of the claimed row. */
  claim: string;
}

/** started → failed, fenced by the claim; retried after the backoff of the new retry count. */
export async function markChecksumFailed(
  primary: Queryable,
  config: ReplicableTypeSchemaConfig,
  modelIdValue: number,
  options: ChecksumFailedOptions,
): Promise<ChecksumStateRow | null> {
  const { states, modelId } = tableRefs(config);
  const newCount = incrementSmallintSql("s.verification_retry_count");
  const { rows } = await primary.query<ChecksumStateRecord>(
    `UPDATE ${states} AS s
     SET verification_state = ${VerificationState.failed}, verification_failure = $2::text, verification_checksum = NULL,
         verification_retry_count = ${newCount},
         verification_retry_at = ${nowSql("$4")} + ${retryDelaySql(newCount, jitterSql("$3"), "false")}
     WHERE s.${modelId} = $1::bigint AND s.verification_state = ${VerificationState.started} AND ${claimMatchesSql("s.verification_started_at", "$5")}
     RETURNING ${columns("s", modelId)}`,
    [modelIdValue, truncateFailure(options.message), jitterParam(options), options.now ?? null, options.claim],
  );
  return rows[0] ? toRow(rows[0]) : null;
}

/**
 * The record's data changed: its checksum is stale. Any state but disabled
 * goes back to pending and the old checksum is dropped, so no secondary
 * compares a new copy against it. Returns how many rows changed.
 */
export async function requestChecksum(primary: Queryable, config: ReplicableTypeSchemaConfig, modelIds: readonly number[]): Promise<number> {
  const { states, modelId } = tableRefs(config);
  const result = await primary.query(
    `UPDATE ${states}
     SET verification_state = ${VerificationState.pending}, verification_checksum = NULL, verification_retry_count = 0,
         verification_retry_at = NULL, verification_failure = NULL, verification_started_at = NULL
     WHERE ${modelId} = ANY($1::bigint[]) AND verification_state <> ${VerificationState.disabled}`,
    [modelIds],
  );
  return result.rowCount ?? 0;
}

/** `_states` rows in started longer than the timeout become failed with backoff. */
export async function failStuckChecksums(primary: Queryable, config: ReplicableTypeSchemaConfig, options: StuckOptions = {}): Promise<number[]> {
  const { states, modelId } = tableRefs(config);
  const timeout = options.timeoutSeconds ?? DEFAULT_STARTED_TIMEOUT_SECONDS;
  const newCount = incrementSmallintSql("verification_retry_count");
  const now = nowSql("$3");
  const { rows } = await primary.query<{ model_id: string }>(
    `UPDATE ${states}
     SET verification_state = ${VerificationState.failed}, verification_retry_count = ${newCount}, verification_failure = $4::text,
         verification_retry_at = ${now} + ${retryDelaySql(newCount, jitterSql("$2"), "false")}
     WHERE verification_state = ${VerificationState.started} AND verification_started_at < ${now} - make_interval(secs => $1::double precision)
     RETURNING ${modelId} AS model_id`,
    [timeout, jitterParam(options), options.now ?? null, truncateFailure(`Checksum timed out after ${timeout} seconds in started`)],
  );
  return rows.map((r) => toNumber(r.model_id));
}

/** Reads `_states` rows by model id. */
export async function findChecksumStates(primary: Queryable, config: ReplicableTypeSchemaConfig, modelIds: readonly number[]): Promise<ChecksumStateRow[]> {
  const { states, modelId } = tableRefs(config);
  const { rows } = await primary.query<ChecksumStateRecord>(
    `SELECT ${columns("s", modelId)} FROM ${states} AS s WHERE s.${modelId} = ANY($1::bigint[]) ORDER BY s.${modelId}`,
    [modelIds],
  );
  return rows.map(toRow);
}

export interface VerificationSwitchOptions {
  /** Rows updated per statement, so a large table is not locked at once. Default 10,000. */
  batchSize?: number;
}

/**
 * Switches verification off (every row → disabled) or back on (disabled →
 * pending) for one side: "secondary" is the registry, "primary" is
 * `<name>_states`. Works in batches; returns how many rows changed.
 */
export async function setVerificationEnabled(
  db: Queryable,
  config: ReplicableTypeSchemaConfig,
  side: "primary" | "secondary",
  enabled: boolean,
  options: VerificationSwitchOptions = {},
): Promise<number> {
  const refs = tableRefs(config);
  const table = side === "primary" ? refs.states : refs.registry;
  const key = side === "primary" ? refs.modelId : "id";
  const from = enabled ? `verification_state = ${VerificationState.disabled}` : `verification_state <> ${VerificationState.disabled}`;
  const to = enabled ? `verification_state = ${VerificationState.pending}` : `verification_state = ${VerificationState.disabled}, verification_started_at = NULL`;
  let changed = 0;
  for (;;) {
    const result = await db.query(
      `UPDATE ${table} SET ${to}
       WHERE ${key} IN (SELECT ${key} FROM ${table} WHERE ${from} LIMIT $1::integer FOR UPDATE SKIP LOCKED)`,
      [options.batchSize ?? 10_000],
    );
    const count = result.rowCount ?? 0;
    changed += count;
    if (count === 0) return changed;
  }
}
