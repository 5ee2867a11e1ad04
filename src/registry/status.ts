import type { ReplicableTypeSchemaConfig, SelectiveSync } from "./config.ts";
import type { Queryable } from "./db.ts";
import { selectionSql } from "./consistency.ts";
import { tableRefs } from "./tables.ts";

/**
 * GitLab's twelve per-type GeoNodeStatus fields. Our reading of GitLab's
 * semantics, per side (null = GitLab leaves the field empty on that side):
 *
 * | field                   | secondary (tracking DB + primary replica)              | primary (main DB)                          |
 * |-------------------------|--------------------------------------------------------|--------------------------------------------|
 * | count                   | primary records this secondary should replicate        | records in the model table                 |
 * |                         | (selective sync applied), read from the primary        |                                            |
 * | checksumTotalCount      | null                                                   | `_states` rows (records that can be checksummed) |
 * | checksummedCount        | null                                                   | `_states` rows with verification succeeded |
 * | checksumFailedCount     | null                                                   | `_states` rows with verification failed    |
 * | syncedCount             | registry rows synced                                   | null                                       |
 * | failedCount             | registry rows failed (sync)                            | null                                       |
 * | registryCount           | registry rows                                          | null                                       |
 * | verificationTotalCount  | synced registry rows whose verification is not disabled| null                                       |
 * | verifiedCount           | synced registry rows with verification succeeded       | null                                       |
 * | verificationFailedCount | synced registry rows with verification failed          | null                                       |
 * | syncedInPercentage      | syncedCount / registryCount · 100 (0 when no rows)     | null                                       |
 * | verifiedInPercentage    | verifiedCount / registryCount · 100 (0 when no rows)   | null                                       |
 *
 * Each count is its own subquery so each can use the template's indexes
 * (index_<name>_registry_on_state, the partial *_verification indexes,
 * index_<name>_states_on_verification_state, the primary keys).
 */
export interface ReplicableStatus {
  count: number;
  checksumTotalCount: number | null;
  checksummedCount: number | null;
  checksumFailedCount: number | null;
  syncedCount: number | null;
  failedCount: number | null;
  registryCount: number | null;
  verificationTotalCount: number | null;
  verifiedCount: number | null;
  verificationFailedCount: number | null;
  syncedInPercentage: number | null;
  verifiedInPercentage: number | null;
}

function percentage(part: number, total: number): number {
  return total === 0 ? 0 : (part / total) * 100;
}

/** The registry half of the secondary status query (exported for EXPLAIN tests). */
export function registryStatusQuery(config: ReplicableTypeSchemaConfig): string {
  const { registry } = tableRefs(config);
  return `SELECT
    (SELECT count(*) FROM ${registry})::bigint AS registry_count,
    (SELECT count(*) FROM ${registry} WHERE state = 2)::bigint AS synced_count,
    (SELECT count(*) FROM ${registry} WHERE state = 3)::bigint AS failed_count,
    (SELECT count(*) FROM ${registry} WHERE state = 2 AND verification_state <> 4)::bigint AS verification_total_count,
    (SELECT count(*) FROM ${registry} WHERE state = 2 AND verification_state = 2)::bigint AS verified_count,
    (SELECT count(*) FROM ${registry} WHERE state = 2 AND verification_state = 3)::bigint AS verification_failed_count`;
}

/** Counts the records this secondary should replicate, on the primary (exported for EXPLAIN tests). */
export function replicableCountQuery(config: ReplicableTypeSchemaConfig, sync: SelectiveSync): { text: string; params: unknown[] } {
  const refs = tableRefs(config);
  const selection = selectionSql(refs, sync, 1);
  return {
    text: `${selection.withClause}SELECT count(*)::bigint AS count FROM ${refs.source.table} AS m WHERE true${selection.filter}`,
    params: selection.params,
  };
}

/** The primary status query (exported for EXPLAIN tests). */
export function statesStatusQuery(config: ReplicableTypeSchemaConfig): string {
  const { states, source } = tableRefs(config);
  return `SELECT
    (SELECT count(*) FROM ${source.table})::bigint AS count,
    (SELECT count(*) FROM ${states})::bigint AS checksum_total_count,
    (SELECT count(*) FROM ${states} WHERE verification_state = 2)::bigint AS checksummed_count,
    (SELECT count(*) FROM ${states} WHERE verification_state = 3)::bigint AS checksum_failed_count`;
}

/** Status of one type on one secondary. `primaryReplica` may be the primary or a read replica of it. */
export async function secondaryStatus(
  tracking: Queryable,
  primaryReplica: Queryable,
  config: ReplicableTypeSchemaConfig,
  sync: SelectiveSync,
): Promise<ReplicableStatus> {
  const countQuery = replicableCountQuery(config, sync);
  const [registry, primary] = await Promise.all([
    tracking.query<Record<string, string>>(registryStatusQuery(config)),
    primaryReplica.query<{ count: string }>(countQuery.text, countQuery.params),
  ]);
  const r = registry.rows[0] ?? {};
  const n = (key: string): number => Number(r[key] ?? 0);
  const registryCount = n("registry_count");
  const syncedCount = n("synced_count");
  const verifiedCount = n("verified_count");
  return {
    count: Number(primary.rows[0]?.count ?? 0),
    checksumTotalCount: null,
    checksummedCount: null,
    checksumFailedCount: null,
    syncedCount,
    failedCount: n("failed_count"),
    registryCount,
    verificationTotalCount: n("verification_total_count"),
    verifiedCount,
    verificationFailedCount: n("verification_failed_count"),
    syncedInPercentage: percentage(syncedCount, registryCount),
    verifiedInPercentage: percentage(verifiedCount, registryCount),
  };
}

/** Status of one type on the primary, from the model table and `<name>_states`. */
export async function primaryStatus(primary: Queryable, config: ReplicableTypeSchemaConfig): Promise<ReplicableStatus> {
  const { rows } = await primary.query<Record<string, string>>(statesStatusQuery(config));
  const r = rows[0] ?? {};
  const n = (key: string): number => Number(r[key] ?? 0);
  return {
    count: n("count"),
    checksumTotalCount: n("checksum_total_count"),
    checksummedCount: n("checksummed_count"),
    checksumFailedCount: n("checksum_failed_count"),
    syncedCount: null,
    failedCount: null,
    registryCount: null,
    verificationTotalCount: null,
    verifiedCount: null,
    verificationFailedCount: null,
    syncedInPercentage: null,
    verifiedInPercentage: null,
  };
}
