import { incrementSmallintSql, jitterParam, jitterSql, retryDelaySql } from "./backoff.ts";
import type { JitterOption } from "./backoff.ts";
import type { ReplicableTypeSchemaConfig } from "./config.ts";
import { nowSql, toNumber } from "./db.ts";
import type { ClockOption, Queryable } from "./db.ts";
import { claimMatchesSql, registryColumns, toRegistryRow } from "./registry-row.ts";
import type { RegistryRow, RegistryRowRecord } from "./registry-row.ts";
import { DEFAULT_STARTED_TIMEOUT_SECONDS, SyncState, truncateFailure, VerificationState } from "./states.ts";
import { tableRefs } from "./tables.ts";

/**
 * The sync state machine of a registry row, in SQL (tracking DB):
 *
 *   pending(0) ─start─▶ started(1) ─synced─▶ synced(2)
 *        ▲  ◀─resync─ started/synced/failed     │
 *        │                 └─failed─▶ failed(3) ─start─▶ started
 *
 * Every transition is one conditional UPDATE, so a transition that is not
 * allowed from the row's current state changes nothing and reports so.
 */

export interface ClaimOptions extends ClockOption {
  /** Most rows to claim (the site's free capacity). */
  limit: number;
}

/**
 * Claims up to `limit` rows that need a sync and moves them to started.
 * Never-synced (pending) rows come first, then failed rows whose retry time
 * has come, oldest retry first. Rows locked by another worker are skipped, so
 * any number of workers can claim from one type.
 */
export async function claimSyncWork(db: Queryable, config: ReplicableTypeSchemaConfig, options: ClaimOptions): Promise<RegistryRow[]> {
  const { registry, modelId } = tableRefs(config);
  const now = nowSql("$2");
  const { rows } = await db.query<RegistryRowRecord>(
    `WITH pending AS (
       SELECT id FROM ${registry} WHERE state = ${SyncState.pending} LIMIT $1::integer FOR UPDATE SKIP LOCKED
     ), retry_due AS (
       SELECT id FROM ${registry}
       WHERE state = ${SyncState.failed} AND (retry_at IS NULL OR retry_at <= ${now})
       ORDER BY retry_at ASC NULLS FIRST
       LIMIT $1::integer FOR UPDATE SKIP LOCKED
     ), claimed AS (
       SELECT id FROM pending UNION ALL SELECT id FROM retry_due LIMIT $1::integer
     )
     UPDATE ${registry} AS r
     SET state = ${SyncState.started}, last_synced_at = ${now}
     FROM claimed
     WHERE r.id = claimed.id
     RETURNING ${registryColumns("r", modelId)}`,
    [options.limit, options.now ?? null],
  );
  return rows.map(toRegistryRow);
}

/**
 * Moves one row to started (from pending, synced or failed), e.g. when an
 * event asks for an immediate sync. Returns null if the row is already
 * started (someone else is copying it) or does not exist.
 */
export async function startSync(
  db: Queryable,
  config: ReplicableTypeSchemaConfig,
  id: number,
  options: ClockOption = {},
): Promise<RegistryRow | null> {
  const { registry, modelId } = tableRefs(config);
  const { rows } = await db.query<RegistryRowRecord>(
    `UPDATE ${registry} AS r SET state = ${SyncState.started}, last_synced_at = ${nowSql("$2")}
     WHERE r.id = $1::bigint AND r.state IN (${SyncState.pending}, ${SyncState.synced}, ${SyncState.failed})
     RETURNING ${registryColumns("r", modelId)}`,
    [id, options.now ?? null],
  );
  return rows[0] ? toRegistryRow(rows[0]) : null;
}

/** Which claim a completion belongs to: RegistryRow.syncClaim of the claimed row. */
export interface SyncClaimOption {
  claim: string;
}

export interface SyncedOptions extends ClockOption, SyncClaimOption {
  /** The copy succeeded although the primary no longer has the data. */
  missingOnPrimary?: boolean;
  /**
   * With missingOnPrimary: when to look again (seconds). Stored in retry_at, which a synced row
   * does not otherwise use, so requeueMissingOnPrimary finds due rows through the retry_at index.
   */
  recheckAfterSeconds?: number;
}

/**
 * started → synced, fenced by the claim: only while the row is still started
 * under the same claim. When a resync was requested during the copy the row
 * is pending (or claimed again by someone else), this returns false and the
 * row is left to the newer claim, so the newer data is fetched and an older
 * worker never finishes a newer claim.
 * Verification goes back to pending (unless disabled) so the new copy is
 * checked; verification_retry_count is kept, see markChecksumMismatch.
 */
export async function markSynced(
  db: Queryable,
  config: ReplicableTypeSchemaConfig,
  id: number,
  options: SyncedOptions,
): Promise<boolean> {
  const { registry } = tableRefs(config);
  const result = await db.query(
    `UPDATE ${registry}
     SET state = ${SyncState.synced}, retry_count = 0, last_sync_failure = NULL,
         retry_at = CASE WHEN $2::boolean THEN ${nowSql("$3")} + make_interval(secs => $5::double precision) END,
         last_synced_at = ${nowSql("$3")}, missing_on_primary = $2::boolean,
         verification_state = CASE WHEN verification_state = ${VerificationState.disabled} THEN ${VerificationState.disabled} ELSE ${VerificationState.pending} END,
         verification_started_at = NULL
     WHERE id = $1::bigint AND state = ${SyncState.started} AND ${claimMatchesSql("last_synced_at", "$4")}`,
    [id, options.missingOnPrimary ?? false, options.now ?? null, options.claim, options.recheckAfterSeconds ?? DEFAULT_MISSING_RECHECK_SECONDS],
  );
  return result.rowCount === 1;
}

export interface SyncFailedOptions extends ClockOption, JitterOption, SyncClaimOption {
  message: string;
  missingOnPrimary?: boolean;
}

/**
 * started → failed: retry_count + 1 and retry_at by backoff on the new count
 * (capped at 4 h instead of 1 h when missing on the primary). Fenced by the
 * claim like markSynced. Returns the updated row, or null when the row was
 * not started under this claim.
 */
export async function markSyncFailed(
  db: Queryable,
  config: ReplicableTypeSchemaConfig,
  id: number,
  options: SyncFailedOptions,
): Promise<RegistryRow | null> {
  const { registry, modelId } = tableRefs(config);
  const newCount = incrementSmallintSql("r.retry_count");
  const { rows } = await db.query<RegistryRowRecord>(
    `UPDATE ${registry} AS r
     SET state = ${SyncState.failed}, retry_count = ${newCount},
         retry_at = ${nowSql("$5")} + ${retryDelaySql(newCount, jitterSql("$4"), "$3::boolean")},
         last_sync_failure = $2::text, missing_on_primary = $3::boolean
     WHERE r.id = $1::bigint AND r.state = ${SyncState.started} AND ${claimMatchesSql("r.last_synced_at", "$6")}
     RETURNING ${registryColumns("r", modelId)}`,
    [id, truncateFailure(options.message), options.missingOnPrimary ?? false, jitterParam(options), options.now ?? null, options.claim],
  );
  return rows[0] ? toRegistryRow(rows[0]) : null;
}

/**
 * Asks for a fresh copy of these model ids: started, synced and failed rows
 * become pending with retries reset (GitLab's resync). A row being copied
 * right now thereby makes the copier's markSynced fail, so the change is not
 * lost. Returns how many rows changed.
 */
export async function requestResync(db: Queryable, config: ReplicableTypeSchemaConfig, modelIds: readonly number[]): Promise<number> {
  const { registry, modelId } = tableRefs(config);
  const result = await db.query(
    `UPDATE ${registry}
     SET state = ${SyncState.pending}, retry_count = 0, retry_at = NULL
     WHERE ${modelId} = ANY($1::bigint[]) AND state IN (${SyncState.started}, ${SyncState.synced}, ${SyncState.failed})`,
    [modelIds],
  );
  return result.rowCount ?? 0;
}

/** How long a row synced as missing on the primary waits before it is looked at again. */
export const DEFAULT_MISSING_RECHECK_SECONDS = 60 * 60;

/**
 * Rows synced with missing_on_primary whose re-check time (retry_at, see
 * markSynced) has come become pending, so the primary's data is copied as
 * soon as it exists (a record created before its upload finished, storage
 * restored from a backup). Returns how many rows were requeued.
 */
export async function requeueMissingOnPrimary(
  db: Queryable,
  config: ReplicableTypeSchemaConfig,
  options: ClockOption & { limit?: number } = {},
): Promise<number> {
  const { registry } = tableRefs(config);
  const result = await db.query(
    `UPDATE ${registry} SET state = ${SyncState.pending}, retry_count = 0, retry_at = NULL
     WHERE id IN (
       SELECT id FROM ${registry}
       WHERE retry_at <= ${nowSql("$1")} AND state = ${SyncState.synced} AND missing_on_primary
       LIMIT $2::integer FOR UPDATE SKIP LOCKED)`,
    [options.now ?? null, options.limit ?? 10_000],
  );
  return result.rowCount ?? 0;
}

/**
 * Synced rows last copied more than `ageSeconds` ago become pending, at most `limit` of them,
 * oldest first. For data that can change on the primary when nothing else says it changed
 * (verification off: no primary checksum to compare), a refresh is the only way to follow it.
 */
export async function requestResyncOfOldest(
  db: Queryable,
  config: ReplicableTypeSchemaConfig,
  ageSeconds: number,
  options: ClockOption & { limit: number },
): Promise<number> {
  const { registry } = tableRefs(config);
  const result = await db.query(
    `UPDATE ${registry} SET state = ${SyncState.pending}, retry_count = 0, retry_at = NULL
     WHERE id IN (
       SELECT id FROM ${registry}
       WHERE state = ${SyncState.synced} AND last_synced_at < ${nowSql("$2")} - make_interval(secs => $1::double precision)
       ORDER BY last_synced_at LIMIT $3::integer FOR UPDATE SKIP LOCKED)`,
    [ageSeconds, options.now ?? null, options.limit],
  );
  return result.rowCount ?? 0;
}

export interface StuckOptions extends ClockOption, JitterOption {
  /** Seconds a row may stay started; default 8 hours. */
  timeoutSeconds?: number;
}

/**
 * Rows started longer ago than the timeout (measured from last_synced_at,
 * which start sets) are presumed abandoned by a dead worker: they become
 * failed with backoff like any other failure. Returns their ids.
 */
export async function failStuckSyncs(db: Queryable, config: ReplicableTypeSchemaConfig, options: StuckOptions = {}): Promise<number[]> {
  const { registry } = tableRefs(config);
  const timeout = options.timeoutSeconds ?? DEFAULT_STARTED_TIMEOUT_SECONDS;
  const newCount = incrementSmallintSql("retry_count");
  const now = nowSql("$3");
  const { rows } = await db.query<{ id: string }>(
    `UPDATE ${registry}
     SET state = ${SyncState.failed}, retry_count = ${newCount},
         retry_at = ${now} + ${retryDelaySql(newCount, jitterSql("$2"), "missing_on_primary")},
         last_sync_failure = $4::text
     WHERE state = ${SyncState.started} AND last_synced_at < ${now} - make_interval(secs => $1::double precision)
     RETURNING id`,
    [timeout, jitterParam(options), options.now ?? null, truncateFailure(`Sync timed out after ${timeout} seconds in started`)],
  );
  return rows.map((r) => toNumber(r.id));
}

/** Reads registry rows by model id (for controllers, tests and the CLI). */
export async function findRegistryRows(db: Queryable, config: ReplicableTypeSchemaConfig, modelIds: readonly number[]): Promise<RegistryRow[]> {
  const { registry, modelId } = tableRefs(config);
  const { rows } = await db.query<RegistryRowRecord>(
    `SELECT ${registryColumns("r", modelId)} FROM ${registry} AS r WHERE r.${modelId} = ANY($1::bigint[]) ORDER BY r.${modelId}`,
    [modelIds],
  );
  return rows.map(toRegistryRow);
}
