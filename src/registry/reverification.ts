/**
 * Re-verification: checksums older than the type's minimumReverificationInterval are computed
 * again, on the primary (`_states`) and on each secondary (registry), so silent corruption and
 * changed data (a push to a repository) are found without any event from the application; and
 * GitLab's "reverify" on a secondary, asked for by a person.
 */
import type { ReplicableTypeSchemaConfig } from "./config.ts";
import { nowSql } from "./db.ts";
import type { ClockOption, Queryable } from "./db.ts";
import { SyncState, VerificationState } from "./states.ts";
import { tableRefs } from "./tables.ts";

export async function markPrimaryReverificationDue(
  primary: Queryable,
  config: ReplicableTypeSchemaConfig,
  intervalMs: number,
  options: ClockOption & { limit?: number } = {},
): Promise<number> {
  const { states, modelId } = tableRefs(config);
  const res = await primary.query(
    `UPDATE ${states} SET verification_state = ${VerificationState.pending}
     WHERE ${modelId} IN (
       SELECT ${modelId} FROM ${states}
       WHERE verification_state = ${VerificationState.succeeded} AND verified_at < ${nowSql("$2")} - make_interval(secs => $1::double precision)
       LIMIT $3::integer FOR UPDATE SKIP LOCKED)`,
    [intervalMs / 1000, options.now ?? null, options.limit ?? 10_000],
  );
  return res.rowCount ?? 0;
}

export async function markSecondaryReverificationDue(
  tracking: Queryable,
  config: ReplicableTypeSchemaConfig,
  intervalMs: number,
  options: ClockOption & { limit?: number } = {},
): Promise<number> {
  const { registry } = tableRefs(config);
  const res = await tracking.query(
    `UPDATE ${registry} SET verification_state = ${VerificationState.pending}
     WHERE id IN (
       SELECT id FROM ${registry}
       WHERE state = ${SyncState.synced} AND verification_state = ${VerificationState.succeeded} AND verified_at < ${nowSql("$2")} - make_interval(secs => $1::double precision)
       LIMIT $3::integer FOR UPDATE SKIP LOCKED)`,
    [intervalMs / 1000, options.now ?? null, options.limit ?? 10_000],
  );
  return res.rowCount ?? 0;
}

/**
 * GitLab's reverify on a secondary: synced rows go back to verification pending so the verify
 * worker checksums the copy again now. A row in verification right now is included (its worker's
 * result is then discarded, as after a resync); disabled rows and rows not yet synced (which are
 * verified once they sync) are left alone. The retry count is kept: only a successful
 * verification resets it (see markChecksumMismatch). Returns how many rows changed.
 */
export async function requestReverification(db: Queryable, config: ReplicableTypeSchemaConfig, modelIds: readonly number[]): Promise<number> {
  const { registry, modelId } = tableRefs(config);
  const result = await db.query(
    `UPDATE ${registry}
     SET verification_state = ${VerificationState.pending}, verification_retry_at = NULL, verification_started_at = NULL
     WHERE ${modelId} = ANY($1::bigint[]) AND state = ${SyncState.synced} AND verification_state IN (${VerificationState.started}, ${VerificationState.succeeded}, ${VerificationState.failed})`,
    [modelIds],
  );
  return result.rowCount ?? 0;
}
