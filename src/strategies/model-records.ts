/**
 * Reads model rows from the primary's main database (a read replica, for secondaries), only the
 * columns a strategy needs, for a batch of ids.
 */
import type { Queryable } from "../registry/db.ts";
import { readModelRows } from "../registry/model-tables.ts";
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
  const src = type.schema.source;
  const rows = await readModelRows(db, { schema: src.schema ?? "public", table: src.table, idColumn: src.idColumn ?? "id" }, ids, columns);
  return new Map([...rows].map(([id, cols]) => [id, { id, columns: cols }]));
}
