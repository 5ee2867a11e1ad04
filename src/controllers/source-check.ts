/** Does the ReplicableType's model table, with every column it names, exist on the primary? */
import type { TypeRuntimeConfig } from "../api/v1alpha1/runtime.ts";
import type { Queryable } from "../registry/db.ts";
import { strategyFor } from "../strategies/catalog.ts";
import { modelTableColumns } from "../registry/model-tables.ts";

/** Every (table, column) a type reads on the primary: the id, its strategy's columns, the selective-sync columns. */
export function referencedColumns(type: TypeRuntimeConfig): { table: string; columns: string[] }[] {
  const src = type.schema.source;
  const fromStrategy = strategyFor(type.strategy).modelColumns(type.settings);
  const model = [src.idColumn ?? "id", ...fromStrategy, src.namespaceColumn, src.shardColumn].filter((c): c is string => !!c);
  const tables = [{ table: src.table, columns: [...new Set(model)] }];
  if (src.namespaceTable) tables.push({ table: src.namespaceTable, columns: ["id", src.namespaceParentColumn!].filter(Boolean) });
  return tables;
}

/** Human-readable problems; empty when everything exists. */
export async function sourceProblems(primary: Queryable, type: TypeRuntimeConfig): Promise<string[]> {
  const schema = type.schema.source.schema ?? "public";
  const problems: string[] = [];
  for (const { table, columns } of referencedColumns(type)) {
    const present = await modelTableColumns(primary, schema, table);
    if (present.size === 0) {
      problems.push(`table ${schema}.${table} does not exist on the primary`);
      continue;
    }
    const missing = columns.filter((c) => !present.has(c));
    if (missing.length) problems.push(`table ${schema}.${table} has no column${missing.length > 1 ? "s" : ""} ${missing.join(", ")}`);
  }
  return problems;
}
