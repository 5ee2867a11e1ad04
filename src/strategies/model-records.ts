/**
 * Reads model rows from the primary's main database (a read replica, for secondaries), only the
 * columns a strategy needs, for a batch of ids.
 */
import type { Queryable } from "../registry/db.ts";
import { qualify, quoteIdent } from "../registry/identifiers.ts";
import type { TypeRuntimeConfig } from "../api/v1alpha1/runtime.ts";
import type { ModelRecord } from "./replicator.ts";

/** Column names used by a `{column}` template. */
export function templateColumns(template: string): string[] {
  return [...new Set([...template.matchAll(/\{([a-z_][a-z0-9_]*)\}/g)].map((m) => m[1]!))];
}

export async function loadModelRecords(
  db: Queryable,
  type: TypeRuntimeConfig,
  ids: readonly number[],
  columns: readonly string[],
): Promise<Map<number, ModelRecord>> {
  const records = new Map<number, ModelRecord>();
  if (ids.length === 0) return records;
  const src = type.schema.source;
  const idColumn = src.idColumn ?? "id";
  const wanted = [...new Set(columns.filter((c) => c !== idColumn))];
  const select = [`${quoteIdent(idColumn)}::bigint AS "__id"`, ...wanted.map((c) => quoteIdent(c))].join(", ");
  const res = await db.query<Record<string, unknown>>(
    `SELECT ${select} FROM ${qualify(src.schema ?? "public", src.table)} WHERE ${quoteIdent(idColumn)} = ANY($1::bigint[])`,
    [ids],
  );
  for (const row of res.rows) {
    const id = Number(row.__id);
    const cols: Record<string, unknown> = { [idColumn]: id };
    for (const c of wanted) cols[c] = row[c];
    records.set(id, { id, columns: cols });
  }
  return records;
}
