import { incrementSmallintSql, jitterParam, jitterSql, retryDelaySql } from "./backoff.ts";
import type { JitterOption } from "./backoff.ts";
import type { ReplicableTypeSchemaConfig } from "./config.ts";
import { nowSql, toNumber } from "./db.ts";
import type { ClockOption, Queryable } from "./db.ts";
import { claimMatchesSql, registryColumns, toRegistryRow } from "./registry-row.ts";
import type { RegistryRow, RegistryRowRecord } from "./registry-row.ts";
import { CHECKSUM_MISMATCH_MESSAGE, DEFAULT_STARTED_TIMEOUT_SECONDS, SyncState, truncateFailure, VerificationState } from "./states.ts";
import type { ClaimOptions, StuckOptions } from "./sync-state.ts";
import { tableRefs } from "./tables.ts";

/**
 * Verification on a secondary, kept in the registry (tracking DB):
 * pending(0) → started(1) → succeeded(2) | failed(3); disabled(4) when the
 * type has verification switched off. Only synced rows are verified, and only
 * once the primary has a checksum to compare with. The primary's own state
 * machine on `<name>_states` is in checksum-state.ts.
 */

export interface VerificationCandidate {
  id: number;
  modelId: number;
}

export interface CandidateOptions extends ClaimOptions {
  /** Only rows with a registry id above this one (a keyset cursor kept by the caller). */
  afterId?: number;
}

/**
 * Synced rows waiting for verification, without locking them: pending ones
 * and failed ones whose retry time has come, in registry id order after the
 * caller's cursor. Walking by id means rows that cannot be claimed yet (no
 * primary checksum) are passed over once per run instead of filling every
 * window and stopping verification of the whole type.
 */
export async function findVerificationCandidates(
  db: Queryable,
  config: ReplicableTypeSchemaConfig,
  options: CandidateOptions,
): Promise<VerificationCandidate[]> {
  const { registry, modelId } = tableRefs(config);
  const { rows } = await db.query<{ id: string; model_id: string }>(
    `SELECT id, ${modelId} AS model_id FROM ${registry}
     WHERE state = ${SyncState.synced} AND id > $3::bigint
       AND (verification_state = ${VerificationState.pending}
            OR (verification_state = ${VerificationState.failed} AND (verification_retry_at IS NULL OR verification_retry_at <= ${nowSql("$2")})))
     ORDER BY id LIMIT $1::integer`,
    [options.limit, options.now ?? null, options.afterId ?? 0],
  );
  return rows.map((r) => ({ id: toNumber(r.id), modelId: toNumber(r.model_id) }));
}

/**
 * The primary's checksums for these model ids, read from `<name>_states` on
 * the primary (a different server, so this is its own query). Records whose
 * checksum has not succeeded yet are absent from the map.
 */
export async function readPrimaryChecksums(
  primary: Queryable,
  config: ReplicableTypeSchemaConfig,
  modelIds: readonly number[],
): Promise<Map<number, Buffer>> {
  const { states, modelId } = tableRefs(config);
  const { rows } = await primary.query<{ model_id: string; verification_checksum: Buffer }>(
    `SELECT ${modelId} AS model_id, verification_checksum FROM ${states}
     WHERE ${modelId} = ANY($1::bigint[]) AND verification_state = ${VerificationState.succeeded} AND verification_checksum IS NOT NULL`,
    [modelIds],
  );
  return new Map(rows.map((r) => [toNumber(r.model_id), r.verification_checksum]));
}

export interface ClaimedVerification extends RegistryRow {
  /** What the secondary's checksum must equal. */
  primaryChecksum: Buffer;
}

export interface ClaimVerificationOptions extends ClockOption {
  limit: number;
  /** Primary checksums by model id (readPrimaryChecksums). Rows without one are not claimed. */
  primaryChecksums: ReadonlyMap<number, Buffer>;
}

/**
 * Whether synced copies wait for their first verification (verification pending). The scheduler
 * asks after a sync run, to start verification at once; the needs_verification partial index
 * answers it without reading the table.
 */
export async function copiesAwaitVerification(db: Queryable, config: ReplicableTypeSchemaConfig): Promise<boolean> {
  const { registry } = tableRefs(config);
  const { rows } = await db.query<{ waiting: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM ${registry} WHERE state = ${SyncState.synced} AND verification_state = ${VerificationState.pending}) AS waiting`,
  );
  return rows[0]?.waiting === true;
}

/**
 * Claims synced rows needing verification whose primary checksum is known,
 * moving them to verification started. Skips rows locked by other workers.
 */
export async function claimVerificationWork(
  db: Queryable,
  config: ReplicableTypeSchemaConfig,
  options: ClaimVerificationOptions,
): Promise<ClaimedVerification[]> {
  const { registry, modelId } = tableRefs(config);
  const now = nowSql("$3");
  const { rows } = await db.query<RegistryRowRecord>(
    `WITH claimed AS (
       SELECT id FROM ${registry}
       WHERE ${modelId} = ANY($1::bigint[]) AND state = ${SyncState.synced}
         AND (verification_state = ${VerificationState.pending}
              OR (verification_state = ${VerificationState.failed} AND (verification_retry_at IS NULL OR verification_retry_at <= ${now})))
       ORDER BY id
       LIMIT $2::integer
       FOR UPDATE SKIP LOCKED
     )
     UPDATE ${registry} AS r SET verification_state = ${VerificationState.started}, verification_started_at = ${now}
     FROM claimed WHERE r.id = claimed.id
     RETURNING ${registryColumns("r", modelId)}`,
    [[...options.primaryChecksums.keys()], options.limit, options.now ?? null],
  );
  return rows.map((record) => {
    const row = toRegistryRow(record);
    return { ...row, primaryChecksum: options.primaryChecksums.get(row.modelId) as Buffer };
  });
}

export interface VerificationClaimBatch {
  rows: ClaimedVerification[];
  /** Pass back as `afterId` to continue after the candidates looked at so far. */
  afterId: number;
  /** No candidates are left after `afterId`. */
  exhausted: boolean;
}

/**
 * The whole secondary claim: candidates from the registry in id order after
 * `afterId`, their checksums from the primary, then the locked claim. Rows
 * whose primary has no checksum yet stay pending and are stepped over; pages
 * are read until `limit` rows are claimed or the candidates run out.
 */
export async function claimVerificationWorkFromPrimary(
  tracking: Queryable,
  primary: Queryable,
  config: ReplicableTypeSchemaConfig,
  options: CandidateOptions,
): Promise<VerificationClaimBatch> {
  let afterId = options.afterId ?? 0;
  const claimed: ClaimedVerification[] = [];
  const pageSize = Math.max(options.limit * 4, 100);
  for (;;) {
    const candidates = await findVerificationCandidates(tracking, config, { ...options, afterId, limit: pageSize });
    if (candidates.length === 0) return { rows: claimed, afterId, exhausted: true };
    const primaryChecksums = await readPrimaryChecksums(primary, config, candidates.map((c) => c.modelId));
    const wanted = options.limit - claimed.length;
    let rows: ClaimedVerification[] = [];
    if (primaryChecksums.size > 0) {
      rows = await claimVerificationWork(tracking, config, { limit: wanted, primaryChecksums, ...(options.now && { now: options.now }) });
      claimed.push(...rows);
    }
    // Only step past what this page settled: when the claim filled up, later candidates of the
    // page may still be unclaimed, so the cursor stops at the last row claimed.
    const full = claimed.length >= options.limit;
    afterId = full ? Math.max(afterId, ...rows.map((r) => r.id)) : candidates[candidates.length - 1]!.id;
    if (full) return { rows: claimed, afterId, exhausted: false };
    if (candidates.length < pageSize) return { rows: claimed, afterId, exhausted: true };
  }
}

/** Which verification claim a completion belongs to: RegistryRow.verificationClaim of the claimed row. */
export interface VerificationClaimOption {
  claim: string;
}

export interface VerifiedOptions extends ClockOption, VerificationClaimOption {
  /** The secondary's checksum, equal to the primary's. */
  checksum: Buffer;
}

/**
 * verification started → succeeded. The only transition that resets
 * verification_retry_count. Fenced by the claim: false when the row is no
 * longer a synced row in this verification (a resync arrived meanwhile, or
 * the row was claimed again after the stuck timeout), so a checksum of an
 * older copy can never mark a newer one verified.
 */
export async function markVerificationSucceeded(
  db: Queryable,
  config: ReplicableTypeSchemaConfig,
  id: number,
  options: VerifiedOptions,
): Promise<boolean> {
  const { registry } = tableRefs(config);
  const result = await db.query(
    `UPDATE ${registry}
     SET verification_state = ${VerificationState.succeeded}, verification_checksum = $2::bytea, verified_at = ${nowSql("$3")},
         verification_retry_count = 0, verification_retry_at = NULL, verification_failure = NULL,
         checksum_mismatch = false, verification_checksum_mismatched = NULL
     WHERE id = $1::bigint AND state = ${SyncState.synced} AND verification_state = ${VerificationState.started} AND ${claimMatchesSql("verification_started_at", "$4")}`,
    [id, options.checksum, options.now ?? null, options.claim],
  );
  return result.rowCount === 1;
}

export interface VerificationFailedOptions extends ClockOption, JitterOption, VerificationClaimOption {
  message: string;
}

/** verification started → failed (the checksum could not be computed); retried with backoff. */
export async function markVerificationFailed(
  db: Queryable,
  config: ReplicableTypeSchemaConfig,
  id: number,
  options: VerificationFailedOptions,
): Promise<RegistryRow | null> {
  const { registry, modelId } = tableRefs(config);
  const newCount = incrementSmallintSql("r.verification_retry_count");
  const { rows } = await db.query<RegistryRowRecord>(
    `UPDATE ${registry} AS r
     SET verification_state = ${VerificationState.failed}, verification_failure = $2::text, verification_retry_count = ${newCount},
         verification_retry_at = ${nowSql("$4")} + ${retryDelaySql(newCount, jitterSql("$3"), "false")}
     WHERE r.id = $1::bigint AND r.state = ${SyncState.synced} AND r.verification_state = ${VerificationState.started} AND ${claimMatchesSql("r.verification_started_at", "$5")}
     RETURNING ${registryColumns("r", modelId)}`,
    [id, truncateFailure(options.message), jitterParam(options), options.now ?? null, options.claim],
  );
  return rows[0] ? toRegistryRow(rows[0]) : null;
}

export interface MismatchOptions extends ClockOption, JitterOption, VerificationClaimOption {
  /** The secondary's checksum, which differs from the primary's. */
  checksum: Buffer;
}

/**
 * verification started → failed because the copy differs from the primary,
 * and sync → failed so the copy is fetched again.
 *
 * GitLab resets verification_retry_count whenever a row goes back to
 * verification pending, so after a resync it is 1 again and a persistent
 * mismatch resyncs forever at the shortest delay. Here the count survives
 * resyncs (only a successful verification resets it) and the sync retry uses
 * the larger of the two counts, so each repeated mismatch waits longer.
 */
export async function markChecksumMismatch(
  db: Queryable,
  config: ReplicableTypeSchemaConfig,
  id: number,
  options: MismatchOptions,
): Promise<RegistryRow | null> {
  const { registry, modelId } = tableRefs(config);
  const verificationCount = incrementSmallintSql("r.verification_retry_count");
  const syncCount = `greatest(${incrementSmallintSql("r.retry_count")}, ${verificationCount})`;
  const now = nowSql("$5");
  const delayJitter = jitterSql("$4");
  const { rows } = await db.query<RegistryRowRecord>(
    `UPDATE ${registry} AS r
     SET checksum_mismatch = true, verification_checksum_mismatched = $2::bytea,
         verification_state = ${VerificationState.failed}, verification_failure = $3::text,
         verification_retry_count = ${verificationCount},
         verification_retry_at = ${now} + ${retryDelaySql(verificationCount, delayJitter, "false")},
         state = ${SyncState.failed}, retry_count = ${syncCount}, last_sync_failure = $3::text,
         retry_at = ${now} + ${retryDelaySql(syncCount, delayJitter, "r.missing_on_primary")}
     WHERE r.id = $1::bigint AND r.state = ${SyncState.synced} AND r.verification_state = ${VerificationState.started} AND ${claimMatchesSql("r.verification_started_at", "$6")}
     RETURNING ${registryColumns("r", modelId)}`,
    [id, options.checksum, CHECKSUM_MISMATCH_MESSAGE, jitterParam(options), options.now ?? null, options.claim],
  );
  return rows[0] ? toRegistryRow(rows[0]) : null;
}

export interface CopyUnusableOptions extends ClockOption, JitterOption, VerificationClaimOption {
  /** What verification found, e.g. "no object at key ..." or "mirror is missing objects". */
  message: string;
}

/**
 * Verification found no copy, or a copy that is not whole: the row goes back
 * into sync at once (pending, with checksum_mismatch set so the sync rebuilds
 * the copy rather than updating it), and verification fails with the finding.
 * Fenced by the claim. GitLab resyncs on a mismatch; a missing copy is the
 * extreme mismatch, and leaving the row synced would hide the loss forever.
 */
export async function markCopyUnusable(
  db: Queryable,
  config: ReplicableTypeSchemaConfig,
  id: number,
  options: CopyUnusableOptions,
): Promise<RegistryRow | null> {
  const { registry, modelId } = tableRefs(config);
  const verificationCount = incrementSmallintSql("r.verification_retry_count");
  const now = nowSql("$4");
  const { rows } = await db.query<RegistryRowRecord>(
    `UPDATE ${registry} AS r
     SET checksum_mismatch = true, verification_checksum_mismatched = NULL,
         verification_state = ${VerificationState.failed}, verification_failure = $2::text,
         verification_retry_count = ${verificationCount},
         verification_retry_at = ${now} + ${retryDelaySql(verificationCount, jitterSql("$3"), "false")},
         state = ${SyncState.pending}, retry_at = NULL, last_sync_failure = $2::text
     WHERE r.id = $1::bigint AND r.state = ${SyncState.synced} AND r.verification_state = ${VerificationState.started} AND ${claimMatchesSql("r.verification_started_at", "$5")}
     RETURNING ${registryColumns("r", modelId)}`,
    [id, truncateFailure(options.message), jitterParam(options), options.now ?? null, options.claim],
  );
  return rows[0] ? toRegistryRow(rows[0]) : null;
}

/** Registry rows in verification started longer than the timeout become failed with backoff. */
export async function failStuckVerifications(db: Queryable, config: ReplicableTypeSchemaConfig, options: StuckOptions = {}): Promise<number[]> {
  const { registry } = tableRefs(config);
  const timeout = options.timeoutSeconds ?? DEFAULT_STARTED_TIMEOUT_SECONDS;
  const newCount = incrementSmallintSql("verification_retry_count");
  const now = nowSql("$3");
  const { rows } = await db.query<{ id: string }>(
    `UPDATE ${registry}
     SET verification_state = ${VerificationState.failed}, verification_retry_count = ${newCount}, verification_failure = $4::text,
         verification_retry_at = ${now} + ${retryDelaySql(newCount, jitterSql("$2"), "false")}
     WHERE verification_state = ${VerificationState.started} AND verification_started_at < ${now} - make_interval(secs => $1::double precision)
     RETURNING id`,
    [timeout, jitterParam(options), options.now ?? null, truncateFailure(`Verification timed out after ${timeout} seconds in started`)],
  );
  return rows.map((r) => toNumber(r.id));
}

/**
 * Verified rows in model id order after `afterModelId`, with the checksum they were verified
 * against: for noticing primaries whose checksum changed since (a push).
 */
export async function verifiedChecksumsAfter(
  db: Queryable,
  config: ReplicableTypeSchemaConfig,
  afterModelId: number,
  limit: number,
): Promise<{ modelId: number; checksum: Buffer }[]> {
  const { registry, modelId } = tableRefs(config);
  const { rows } = await db.query<{ model_id: string; verification_checksum: Buffer }>(
    `SELECT ${modelId} AS model_id, verification_checksum FROM ${registry}
     WHERE state = ${SyncState.synced} AND verification_state = ${VerificationState.succeeded} AND ${modelId} > $1::bigint
     ORDER BY ${modelId} LIMIT $2::integer`,
    [afterModelId, limit],
  );
  return rows.map((r) => ({ modelId: toNumber(r.model_id), checksum: r.verification_checksum }));
}
