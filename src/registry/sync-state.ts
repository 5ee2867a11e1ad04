import { incrementSmallintSql, jitterParam, jitterSql, retryDelaySql } from "./backoff.ts";
import type { JitterOption } from "./backoff.ts";
import type { ReplicableTypeSchemaConfig } from "./config.ts";
import { nowSql, toNumber } from "./db.ts";
import type { ClockOption, Queryable } from "./db.ts";
import { registryColumns, toRegistryRow } from "./registry-row.ts";
import type { RegistryRow, RegistryRowRecord } from "./registry-row.ts";
import { DEFAULT_STARTED_TIMEOUT_SECONDS, truncateFailure } from "./states.ts";
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
       SELECT id FROM ${registry} WHERE state = 0 LIMIT $1::integer FOR UPDATE SKIP LOCKED
     ), retry_due AS (
       SELECT id FROM ${registry}
       WHERE state = 3 AND (retry_at IS NULL OR retry_at <= ${now})
       ORDER BY retry_at ASC NULLS FIRST
       LIMIT $1::integer FOR UPDATE SKIP LOCKED
     ), claimed AS (
       SELECT id FROM pending UNION ALL SELECT id FROM retry_due LIMIT $1::integer
     )
     UPDATE ${registry} AS r
     SET state = 1, last_synced_at = ${now}
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
    `UPDATE ${registry} AS r SET state = 1, last_synced_at = ${nowSql("$2")}
     WHERE r.id = $1::bigint AND r.state IN (0, 2, 3)
     RETURNING ${registryColumns("r", modelId)}`,
    [id, options.now ?? null],
  );
  return rows[0] ? toRegistryRow(rows[0]) : null;
}

export interface SyncedOptions extends ClockOption {
  /** The copy succeeded although the primary no longer has the data. */
  missingOnPrimary?: boolean;
}

/**
 * started → synced. Conditional on the row still being started: when a
 * resync was requested during the copy the row is pending again, this
 * returns false and the row stays pending so the newer data is fetched.
 * Verification goes back to pending (unless disabled) so the new copy is
 * checked; verification_retry_count is kept, see markChecksumMismatch.
 */
export async function markSynced(
  db: Queryable,
  config: ReplicableTypeSchemaConfig,
  id: number,
  options: SyncedOptions = {},
): Promise<boolean> {
  const { registry } = tableRefs(config);
  const result = await db.query(
    `UPDATE ${registry}
     SET state = 2, retry_count = 0, retry_at = NULL, last_sync_failure = NULL,
         last_synced_at = ${nowSql("$3")}, missing_on_primary = $2::boolean,
         verification_state = CASE WHEN verification_state = 4 THEN 4 ELSE 0 END,
         verification_started_at = NULL
     WHERE id = $1::bigint AND state = 1`,
    [id, options.missingOnPrimary ?? false, options.now ?? null],
  );
  return result.rowCount === 1;
}

export interface SyncFailedOptions extends ClockOption, JitterOption {
  message: string;
  missingOnPrimary?: boolean;
}

/**
 * started → failed: retry_count + 1 and retry_at by backoff on the new count
 * (capped at 4 h instead of 1 h when missing on the primary). Returns the
 * updated row, or null when the row was not started.
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
     SET state = 3, retry_count = ${newCount},
         retry_at = ${nowSql("$5")} + ${retryDelaySql(newCount, jitterSql("$4"), "$3::boolean")},
         last_sync_failure = $2::text, missing_on_primary = $3::boolean
     WHERE r.id = $1::bigint AND r.state = 1
     RETURNING ${registryColumns("r", modelId)}`,
    [id, truncateFailure(options.message), options.missingOnPrimary ?? false, jitterParam(options), options.now ?? null],
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
     SET state = 0, retry_count = 0, retry_at = NULL
     WHERE ${modelId} = ANY($1::bigint[]) AND state IN (1, 2, 3)`,
    [modelIds],
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
     SET state = 3, retry_count = ${newCount},
         retry_at = ${now} + ${retryDelaySql(newCount, jitterSql("$2"), "missing_on_primary")},
         last_sync_failure = $4::text
     WHERE state = 1 AND last_synced_at < ${now} - make_interval(secs => $1::double precision)
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
