/**
 * Reads of the application's own model tables on the primary's main database (a read replica, for
 * secondaries): which columns a table has, and the columns a strategy needs for a batch of ids.
 * Never writes.
 */
import type { Queryable } from "./db.ts";
import { qualify, quoteIdent } from "./identifiers.ts";

/** Column names of `schema.table`; empty when the table does not exist. */
export async function modelTableColumns(primary: Queryable, schema: string, table: string): Promise<Set<string>> {
  const { rows } = await primary.query<{ column_name: string }>(
    `SELECT column_name::text FROM information_schema.columns WHERE table_schema = $1::text AND table_name = $2::text`,
    [schema, table],
  );
  return new Set(rows.map((r) => r.column_name));
}

/** Where a type's model rows live on the primary. */
export interface ModelTable {
  schema: string;
  table: string;
  idColumn: string;
}

/**
 * `columns` of the model rows with these ids, keyed by id (rows that do not exist are absent).
 * Each row carries its id under `idColumn` as a number; other values are as pg returns them.
 */
export async function readModelRows(
  primary: Queryable,
  model: ModelTable,
  ids: readonly number[],
  columns: readonly string[],
): Promise<Map<number, Record<string, unknown>>> {
  const found = new Map<number, Record<string, unknown>>();
  if (ids.length === 0) return found;
  const wanted = [...new Set(columns.filter((c) => c !== model.idColumn))];
  const select = [`${quoteIdent(model.idColumn)}::bigint AS "__id"`, ...wanted.map((c) => quoteIdent(c))].join(", ");
  const res = await primary.query<Record<string, unknown>>(
    `SELECT ${select} FROM ${qualify(model.schema, model.table)} WHERE ${quoteIdent(model.idColumn)} = ANY($1::bigint[])`,
    [ids],
  );
  for (const row of res.rows) {
    const id = Number(row.__id);
    const cols: Record<string, unknown> = { [model.idColumn]: id };
    for (const c of wanted) cols[c] = row[c];
    found.set(id, cols);
  }
  return found;
}
