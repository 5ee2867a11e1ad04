/**
 * Reading a registry (secondary) or `<name>_states` table (primary) by filter, for a person
 * steering replication (`kubectl geo`): listings, counts, the model ids of a selection in keyset
 * batches, and registry ids mapped to model ids. Reads only.
 */
import type { ReplicableTypeSchemaConfig } from "./config.ts";
import { toNumber } from "./db.ts";
import type { Queryable } from "./db.ts";
import { registryColumns, toRegistryRow } from "./registry-row.ts";
import type { RegistryRow, RegistryRowRecord } from "./registry-row.ts";
import { tableRefs } from "./tables.ts";

/** Which rows of a registry (secondary) or `_states` table (primary) a command means. */
export interface RowFilter {
  /** Sync state (registry only), a SyncState value. */
  state?: number;
  /** A VerificationState value. */
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

/**
 * Registry rows matching the filter, by id, at most `limit`; with `afterId`, only rows whose id is
 * greater (keyset paging: a page is stable while rows change state between requests).
 */
export async function listRegistryRows(db: Queryable, config: ReplicableTypeSchemaConfig, filter: RowFilter, limit: number, afterId = 0): Promise<RegistryRow[]> {
  const { registry, modelId } = tableRefs(config);
  const params: unknown[] = [];
  const conds = conditions(filter, params, "r");
  if (afterId > 0) {
    params.push(afterId);
    conds.push(`r.id > $${params.length}::bigint`);
  }
  params.push(limit);
  const { rows } = await db.query<RegistryRowRecord>(
    `SELECT ${registryColumns("r", modelId)} FROM ${registry} AS r ${where(conds)} ORDER BY r.id LIMIT $${params.length}::integer`,
    params,
  );
  return rows.map(toRegistryRow);
}

/** How many rows of one side match the filter. */
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
