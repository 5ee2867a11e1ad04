/**
 * The SQL `kubectl geo` needs beyond the registry layer's own functions: filtered listings,
 * selections walked in keyset batches, and GitLab's "reverify" on a secondary's registry. Writes
 * here only ever touch verification flags; nothing is deleted.
 */
import type { ReplicableTypeSchemaConfig } from "../registry/config.ts";
import { toNumber } from "../registry/db.ts";
import type { Queryable } from "../registry/db.ts";
import { quoteIdent } from "../registry/identifiers.ts";
import { REPLICAS_TABLE, mismatchesOf } from "../registry/replicas.ts";
import { registryColumns, toRegistryRow } from "../registry/registry-row.ts";
import type { RegistryRow, RegistryRowRecord } from "../registry/registry-row.ts";
import { tableRefs } from "../registry/tables.ts";

/** Which rows of a registry (secondary) or `_states` table (primary) a command means. */
export interface RowFilter {
  /** Sync state (registry only). */
  state?: number;
  verification?: number;
  /** checksum_mismatch = true (registry only). */
  mismatch?: boolean;
}

/** The table one side keeps its per-record state in: the registry or `<name>_states`. */
export interface Side {
  table: string;
  modelId: string;
}

export function registrySide(config: ReplicableTypeSchemaConfig): Side {
  const { registry, modelId } = tableRefs(config);
  return { table: registry, modelId };
}

export function statesSide(config: ReplicableTypeSchemaConfig): Side {
  const { states, modelId } = tableRefs(config);
  return { table: states, modelId };
}

function conditions(filter: RowFilter, params: unknown[], alias = ""): string[] {
  const a = alias ? `${alias}.` : "";
  const out: string[] = [];
  if (filter.state !== undefined) {
    params.push(filter.state);
    out.push(`${a}state = $${params.length}::smallint`);
  }
  if (filter.verification !== undefined) {
    params.push(filter.verification);
    out.push(`${a}verification_state = $${params.length}::smallint`);
  }
  if (filter.mismatch) out.push(`${a}checksum_mismatch`);
  return out;
}

const where = (conds: string[]): string => (conds.length ? `WHERE ${conds.join(" AND ")}` : "");

/** Whether a table exists (`quoted` as tableRefs returns it). */
export async function tableExists(db: Queryable, quoted: string): Promise<boolean> {
  const { rows } = await db.query<{ present: boolean }>(`SELECT to_regclass($1::text) IS NOT NULL AS present`, [quoted]);
  return rows[0]?.present === true;
}

/** Registry rows matching the filter, by id, at most `limit`. */
export async function listRegistryRows(db: Queryable, config: ReplicableTypeSchemaConfig, filter: RowFilter, limit: number): Promise<RegistryRow[]> {
  const { registry, modelId } = tableRefs(config);
  const params: unknown[] = [];
  const conds = conditions(filter, params, "r");
  params.push(limit);
  const { rows } = await db.query<RegistryRowRecord>(
    `SELECT ${registryColumns("r", modelId)} FROM ${registry} AS r ${where(conds)} ORDER BY r.id LIMIT $${params.length}::integer`,
    params,
  );
  return rows.map(toRegistryRow);
}

/** Mismatch details the verify worker recorded in geo_operator_replicas (empty when it never ran). */
export async function mismatchDetails(db: Queryable, config: ReplicableTypeSchemaConfig, modelIds: readonly number[]): Promise<Map<number, unknown>> {
  if (modelIds.length === 0 || !(await tableExists(db, `public.${quoteIdent(REPLICAS_TABLE)}`))) return new Map();
  return mismatchesOf(db, config.name, modelIds);
}

export async function countRows(db: Queryable, side: Side, filter: RowFilter): Promise<number> {
  const params: unknown[] = [];
  const { rows } = await db.query<{ n: string }>(`SELECT count(*)::bigint AS n FROM ${side.table} ${where(conditions(filter, params))}`, params);
  return toNumber(rows[0]!.n);
}

/**
 * Model ids of the matching rows in ascending batches (keyset on the model id), so `--all` on a
 * table of millions never holds them all. Callers may change the rows between batches.
 */
export async function* modelIdBatches(db: Queryable, side: Side, filter: RowFilter, batchSize = 10_000): AsyncGenerator<number[]> {
  let after = 0;
  for (;;) {
    const params: unknown[] = [];
    const conds = conditions(filter, params);
    params.push(after);
    conds.push(`${side.modelId} > $${params.length}::bigint`);
    params.push(batchSize);
    const { rows } = await db.query<{ model_id: string }>(
      `SELECT ${side.modelId} AS model_id FROM ${side.table} ${where(conds)} ORDER BY ${side.modelId} LIMIT $${params.length}::integer`,
      params,
    );
    if (rows.length === 0) return;
    const ids = rows.map((r) => toNumber(r.model_id));
    yield ids;
    if (rows.length < batchSize) return;
    after = ids[ids.length - 1]!;
  }
}

/** Registry id → model id for the given registry ids; ids without a row are absent. */
export async function modelIdsOfRegistryIds(db: Queryable, config: ReplicableTypeSchemaConfig, ids: readonly number[]): Promise<Map<number, number>> {
  const { registry, modelId } = tableRefs(config);
  const { rows } = await db.query<{ id: string; model_id: string }>(
    `SELECT id, ${modelId} AS model_id FROM ${registry} WHERE id = ANY($1::bigint[])`,
    [ids],
  );
  return new Map(rows.map((r) => [toNumber(r.id), toNumber(r.model_id)]));
}

/** The subset of `modelIds` that has a row on this side. */
export async function existingModelIds(db: Queryable, side: Side, modelIds: readonly number[]): Promise<Set<number>> {
  const { rows } = await db.query<{ model_id: string }>(
    `SELECT ${side.modelId} AS model_id FROM ${side.table} WHERE ${side.modelId} = ANY($1::bigint[])`,
    [modelIds],
  );
  return new Set(rows.map((r) => toNumber(r.model_id)));
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
     SET verification_state = 0, verification_retry_at = NULL, verification_started_at = NULL
     WHERE ${modelId} = ANY($1::bigint[]) AND state = 2 AND verification_state IN (1, 2, 3)`,
    [modelIds],
  );
  return result.rowCount ?? 0;
}
