/**
 * The registry and `_states` transitions the log cursor applies to the records its events name,
 * as opposed to the Jobs, which claim whatever is due. Same state machines, same claims and
 * fences as sync-state.ts, checksum-state.ts and deletions.ts: a cursor and a Job working on one
 * row at once can never both finish it.
 */
import type { ReplicableTypeSchemaConfig, SelectiveSync } from "./config.ts";
import { selectionSql } from "./consistency.ts";
import type { Queryable } from "./db.ts";
import { toNumber } from "./db.ts";
import type { GoneInBatch } from "./deletions.ts";
import { claimTokenSql } from "./registry-row.ts";
import { registryColumns, toRegistryRow, type RegistryRow, type RegistryRowRecord } from "./registry-row.ts";
import { DELETION_CANDIDATES_TABLE } from "./side-tables.ts";
import { SyncState, VerificationState } from "./states.ts";
import { tableRefs } from "./tables.ts";
import type { ChecksumStateRow } from "./checksum-state.ts";

/** Of `modelIds`, those that exist on the primary (its replica) and this site's selection includes. */
export async function selectedModelIds(primary: Queryable, config: ReplicableTypeSchemaConfig, sync: SelectiveSync, modelIds: readonly number[]): Promise<Set<number>> {
  if (modelIds.length === 0) return new Set();
  const refs = tableRefs(config);
  const selection = selectionSql(refs, sync, 2);
  const { rows } = await primary.query<{ id: string }>(
    `${selection.withClause}SELECT m.${refs.source.id}::text AS id FROM ${refs.source.table} AS m WHERE m.${refs.source.id} = ANY($1::bigint[])${selection.filter}`,
    [modelIds, ...selection.params],
  );
  return new Set(rows.map((r) => toNumber(r.id)));
}

/**
 * Claims the rows of these model ids for a sync now: pending rows, and failed rows whatever their
 * retry time (an event is news the backoff did not know). Started rows are left to whoever holds
 * them; rows locked by another claimer are skipped.
 */
export async function claimSyncFor(tracking: Queryable, config: ReplicableTypeSchemaConfig, modelIds: readonly number[]): Promise<RegistryRow[]> {
  if (modelIds.length === 0) return [];
  const { registry, modelId } = tableRefs(config);
  const { rows } = await tracking.query<RegistryRowRecord>(
    `WITH claimed AS (
       SELECT id FROM ${registry} WHERE ${modelId} = ANY($1::bigint[]) AND state IN (${SyncState.pending}, ${SyncState.failed})
       FOR UPDATE SKIP LOCKED
     )
     UPDATE ${registry} AS r SET state = ${SyncState.started}, last_synced_at = clock_timestamp()
     FROM claimed WHERE r.id = claimed.id
     RETURNING ${registryColumns("r", modelId)}`,
    [modelIds],
  );
  return rows.map(toRegistryRow);
}

/**
 * Creates the missing `_states` rows of these records (pending, or disabled with verification
 * off); a record deleted meanwhile is skipped. Primary only. Returns how many were created.
 */
export async function ensureStatesRows(primary: Queryable, config: ReplicableTypeSchemaConfig, modelIds: readonly number[]): Promise<number> {
  if (modelIds.length === 0) return 0;
  const { states, modelId, source, resolved } = tableRefs(config);
  const initial = resolved.verificationEnabled ? VerificationState.pending : VerificationState.disabled;
  const result = await primary.query(
    `INSERT INTO ${states} (${modelId}, verification_state)
     SELECT m.${source.id}, $2::smallint FROM ${source.table} AS m WHERE m.${source.id} = ANY($1::bigint[])
     ON CONFLICT (${modelId}) DO NOTHING`,
    [modelIds, initial],
  );
  return result.rowCount ?? 0;
}

/** Claims these records' `_states` rows that need a checksum (pending, or failed whatever their retry time). */
export async function claimChecksumFor(primary: Queryable, config: ReplicableTypeSchemaConfig, modelIds: readonly number[]): Promise<ChecksumStateRow[]> {
  if (modelIds.length === 0) return [];
  const { states, modelId } = tableRefs(config);
  const { rows } = await primary.query<{ model_id: string; verification_state: number; verification_retry_count: number | null; verification_retry_at: Date | null; verification_started_at: Date | null; verified_at: Date | null; verification_checksum: Buffer | null; verification_failure: string | null; claim: string | null }>(
    `WITH claimed AS (
       SELECT ${modelId} AS model_id FROM ${states}
       WHERE ${modelId} = ANY($1::bigint[]) AND verification_state IN (${VerificationState.pending}, ${VerificationState.failed})
       FOR UPDATE SKIP LOCKED
     )
     UPDATE ${states} AS s SET verification_state = ${VerificationState.started}, verification_started_at = clock_timestamp()
     FROM claimed WHERE s.${modelId} = claimed.model_id
     RETURNING s.${modelId}::text AS model_id, s.verification_state, s.verification_retry_count, s.verification_retry_at,
       s.verification_started_at, s.verified_at, s.verification_checksum, s.verification_failure,
       ${claimTokenSql("s.verification_started_at")} AS claim`,
    [modelIds],
  );
  return rows.map((r) => ({
    modelId: toNumber(r.model_id),
    verificationState: r.verification_state,
    verificationRetryCount: r.verification_retry_count ?? 0,
    verificationRetryAt: r.verification_retry_at,
    verificationStartedAt: r.verification_started_at,
    verifiedAt: r.verified_at,
    verificationChecksum: r.verification_checksum,
    verificationFailure: r.verification_failure,
    claim: r.claim,
  }));
}

/**
 * A "deleted" event is the first sighting of a record gone: its registry rows become deletion
 * candidates (an earlier sighting keeps its time). The copy goes only after a second sighting at
 * least the grace period later (dueEventCandidates), like two consistency passes.
 */
export async function noteDeletionCandidates(tracking: Queryable, config: ReplicableTypeSchemaConfig, modelIds: readonly number[]): Promise<number> {
  if (modelIds.length === 0) return 0;
  const { registry, modelId } = tableRefs(config);
  const result = await tracking.query(
    `INSERT INTO public.${DELETION_CANDIDATES_TABLE} (type_name, model_id, registry_id, first_seen_at, last_seen_at)
     SELECT $1::text, r.${modelId}, r.id, clock_timestamp(), clock_timestamp() FROM ${registry} AS r WHERE r.${modelId} = ANY($2::bigint[])
     ON CONFLICT (type_name, model_id) DO UPDATE SET last_seen_at = EXCLUDED.last_seen_at, registry_id = EXCLUDED.registry_id`,
    [config.name, modelIds],
  );
  return result.rowCount ?? 0;
}

/** Candidates first seen gone at least `graceSeconds` ago, oldest first. */
export async function dueDeletionCandidates(tracking: Queryable, config: ReplicableTypeSchemaConfig, graceSeconds: number, limit: number): Promise<GoneInBatch[]> {
  const { rows } = await tracking.query<{ registry_id: string; model_id: string }>(
    `SELECT registry_id::text, model_id::text FROM public.${DELETION_CANDIDATES_TABLE}
     WHERE type_name = $1::text AND first_seen_at <= clock_timestamp() - make_interval(secs => $2::double precision)
     ORDER BY first_seen_at, model_id LIMIT $3::integer`,
    [config.name, graceSeconds, limit],
  );
  return rows.map((r) => ({ id: toNumber(r.registry_id), modelId: toNumber(r.model_id) }));
}

/** Drops candidates whose record exists again (the second sighting found it). */
export async function clearDeletionCandidates(tracking: Queryable, config: ReplicableTypeSchemaConfig, modelIds: readonly number[]): Promise<void> {
  if (modelIds.length === 0) return;
  await tracking.query(`DELETE FROM public.${DELETION_CANDIDATES_TABLE} WHERE type_name = $1::text AND model_id = ANY($2::bigint[])`, [config.name, modelIds]);
}

/** Registry rows of the type (the share rule's denominator). */
export async function registryRowCount(tracking: Queryable, config: ReplicableTypeSchemaConfig): Promise<number> {
  const { registry } = tableRefs(config);
  const { rows } = await tracking.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${registry}`);
  return Number(rows[0]!.n);
}
