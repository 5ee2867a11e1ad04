import type { ReplicableTypeSchemaConfig, ResolvedTypeConfig } from "./config.ts";
import type { Queryable } from "./db.ts";
import { TRACKING_SCHEMA } from "./ddl.ts";
import { deriveIdentifiers, qualify, quoteIdent, resolveConfig } from "./identifiers.ts";

/** Quoted SQL names for one type, as the query files use them. */
export interface TableRefs {
  resolved: ResolvedTypeConfig;
  /** `public.<name>_registry` in the tracking DB. */
  registry: string;
  /** `<schema>.<name>_states` in the primary's main DB. */
  states: string;
  /** `<name>_id`, the model id column of both tables. */
  modelId: string;
  /** The model table and its columns on the primary. */
  source: {
    table: string;
    id: string;
    namespace?: string;
    namespaceTable?: string;
    namespaceParent?: string;
    shard?: string;
  };
}

const cache = new WeakMap<ReplicableTypeSchemaConfig, TableRefs>();

/** Validates the config (once per config object) and returns its quoted names. */
export function tableRefs(config: ReplicableTypeSchemaConfig): TableRefs {
  const cached = cache.get(config);
  if (cached) return cached;
  const resolved = resolveConfig(config);
  const ids = deriveIdentifiers(resolved.name);
  const src = resolved.source;
  const refs: TableRefs = {
    resolved,
    registry: qualify(TRACKING_SCHEMA, ids.registryTable),
    states: qualify(src.schema, ids.statesTable),
    modelId: quoteIdent(ids.modelIdColumn),
    source: {
      table: qualify(src.schema, src.table),
      id: quoteIdent(src.idColumn),
      ...(src.namespaceColumn !== undefined && { namespace: quoteIdent(src.namespaceColumn) }),
      ...(src.namespaceTable !== undefined && { namespaceTable: qualify(src.schema, src.namespaceTable) }),
      ...(src.namespaceParentColumn !== undefined && { namespaceParent: quoteIdent(src.namespaceParentColumn) }),
      ...(src.shardColumn !== undefined && { shard: quoteIdent(src.shardColumn) }),
    },
  };
  cache.set(config, refs);
  return refs;
}

/** Whether a table exists; `quoted` is a name as tableRefs returns it (e.g. `"public"."x_registry"`). */
export async function tableExists(db: Queryable, quoted: string): Promise<boolean> {
  const { rows } = await db.query<{ present: boolean }>(`SELECT to_regclass($1::text) IS NOT NULL AS present`, [quoted]);
  return rows[0]?.present === true;
}
