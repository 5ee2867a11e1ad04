import type { ReplicableTypeSchemaConfig, SelectiveSync } from "./config.ts";
import type { Queryable } from "./db.ts";
import { selectionSql } from "./consistency.ts";
import { SyncState, VerificationState } from "./states.ts";
import { tableRefs } from "./tables.ts";

/**
 * GitLab's twelve per-type GeoNodeStatus fields. Our reading of GitLab's
 * semantics, per side (null = GitLab leaves the field empty on that side):
 *
 * | field                   | secondary (tracking DB + primary replica)                   | primary (main DB)                         |
 * |-------------------------|-------------------------------------------------------------|-------------------------------------------|
 * | count                   | primary records this secondary should replicate (selective  | records in the model table                |
 * |                         | sync applied), counted on the primary                       |                                           |
 * | checksumTotalCount      | null                                                        | `_states` rows (records that can be checksummed) |
 * | checksummedCount        | null                                                        | `_states` rows, verification succeeded    |
 * | checksumFailedCount     | null                                                        | `_states` rows, verification failed       |
 * | syncedCount             | registry rows synced                                        | null                                      |
 * | failedCount             | registry rows failed (sync)                                 | null                                      |
 * | registryCount           | registry rows                                               | null                                      |
 * | verificationTotalCount  | synced rows (0 when the type has verification off)          | null                                      |
 * | verifiedCount           | synced rows verification succeeded (see below)              | null                                      |
 * | verificationFailedCount | synced rows verification failed                             | null                                      |
 * | syncedInPercentage      | syncedCount / registryCount · 100 (0 when no rows)          | null                                      |
 * | verifiedInPercentage    | verifiedCount / registryCount · 100 (0 when no rows)        | null                                      |
 *
 * Fast mode (the default) is served by the template's indexes alone: one
 * index-only pass over index_<name>_registry_on_state grouped by state, and
 * the partial needs_verification / failed_verification indexes. The template
 * has no index holding verification_state for succeeded rows, so fast mode
 * derives verified = synced − (verification pending or failed); rows whose
 * verification is in flight right now (at most the site's verification
 * capacity) count as verified, and verificationTotalCount counts rows that
 * are mid-way through a verification switch. `exact: true` counts both from
 * the heap instead (a scan of every synced row: about 0.15 s per million).
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

/** Registry rows per sync state: one index-only pass over index_<name>_registry_on_state. */
export function registryStateCountsQuery(config: ReplicableTypeSchemaConfig): string {
  const { registry } = tableRefs(config);
  return `SELECT state, count(*)::bigint AS n FROM ${registry} GROUP BY state`;
}

/** Synced rows waiting for or failing verification, from the template's partial indexes. */
export function registryVerificationCountsQuery(config: ReplicableTypeSchemaConfig): string {
  const { registry } = tableRefs(config);
  return `SELECT
    (SELECT count(*) FROM ${registry} WHERE state = ${SyncState.synced} AND verification_state IN (${VerificationState.pending}, ${VerificationState.failed}))::bigint AS needs_verification_count,
    (SELECT count(*) FROM ${registry} WHERE state = ${SyncState.synced} AND verification_state = ${VerificationState.failed})::bigint AS verification_failed_count`;
}

/** Exact verification counts, reading every synced row. */
export function registryExactVerificationCountsQuery(config: ReplicableTypeSchemaConfig): string {
  const { registry } = tableRefs(config);
  return `SELECT
    count(*) FILTER (WHERE verification_state <> ${VerificationState.disabled})::bigint AS verification_total_count,
    count(*) FILTER (WHERE verification_state = ${VerificationState.succeeded})::bigint AS verified_count,
    count(*) FILTER (WHERE verification_state = ${VerificationState.failed})::bigint AS verification_failed_count
    FROM ${registry} WHERE state = ${SyncState.synced}`;
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

/** `_states` rows per verification state: one index-only pass over index_<name>_states_on_verification_state. */
export function statesCountsQuery(config: ReplicableTypeSchemaConfig): string {
  const { states } = tableRefs(config);
  return `SELECT verification_state, count(*)::bigint AS n FROM ${states} GROUP BY verification_state`;
}

/** Records in the model table (its primary key). */
export function modelCountQuery(config: ReplicableTypeSchemaConfig): string {
  return `SELECT count(*)::bigint AS count FROM ${tableRefs(config).source.table}`;
}

function countsBy<R extends { n: string }>(rows: R[], key: (row: R) => number): Map<number, number> {
  return new Map(rows.map((row) => [key(row), Number(row.n)]));
}

function sum(counts: Map<number, number>): number {
  let total = 0;
  for (const n of counts.values()) total += n;
  return total;
}

export interface SecondaryStatusOptions {
  /** Count verification from the heap instead of deriving it from the indexes. */
  exact?: boolean;
}

/**
 * Status of one type on one secondary. The queries run concurrently when the
 * Queryables are pools. `primaryReplica` may be the primary or a replica of it.
 */
export async function secondaryStatus(
  tracking: Queryable,
  primaryReplica: Queryable,
  config: ReplicableTypeSchemaConfig,
  sync: SelectiveSync,
  options: SecondaryStatusOptions = {},
): Promise<ReplicableStatus> {
  const verificationEnabled = tableRefs(config).resolved.verificationEnabled;
  const countQuery = replicableCountQuery(config, sync);
  const verificationQuery = options.exact ? registryExactVerificationCountsQuery(config) : registryVerificationCountsQuery(config);
  const [byState, verification, primary] = await Promise.all([
    tracking.query<{ state: number; n: string }>(registryStateCountsQuery(config)),
    tracking.query<Record<string, string>>(verificationQuery),
    primaryReplica.query<{ count: string }>(countQuery.text, countQuery.params),
  ]);
  const states = countsBy(byState.rows, (r) => r.state);
  const v = verification.rows[0] ?? {};
  const registryCount = sum(states);
  const syncedCount = states.get(2) ?? 0;
  let verificationTotalCount = 0;
  let verifiedCount = 0;
  let verificationFailedCount = 0;
  if (options.exact) {
    verificationTotalCount = Number(v.verification_total_count ?? 0);
    verifiedCount = Number(v.verified_count ?? 0);
    verificationFailedCount = Number(v.verification_failed_count ?? 0);
  } else if (verificationEnabled) {
    verificationTotalCount = syncedCount;
    verifiedCount = Math.max(0, syncedCount - Number(v.needs_verification_count ?? 0));
    verificationFailedCount = Number(v.verification_failed_count ?? 0);
  }
  return {
    count: Number(primary.rows[0]?.count ?? 0),
    checksumTotalCount: null,
    checksummedCount: null,
    checksumFailedCount: null,
    syncedCount,
    failedCount: states.get(3) ?? 0,
    registryCount,
    verificationTotalCount,
    verifiedCount,
    verificationFailedCount,
    syncedInPercentage: percentage(syncedCount, registryCount),
    verifiedInPercentage: percentage(verifiedCount, registryCount),
  };
}

/** Status of one type on the primary, from the model table and `<name>_states`. */
export async function primaryStatus(primary: Queryable, config: ReplicableTypeSchemaConfig): Promise<ReplicableStatus> {
  const [model, byState] = await Promise.all([
    primary.query<{ count: string }>(modelCountQuery(config)),
    primary.query<{ verification_state: number; n: string }>(statesCountsQuery(config)),
  ]);
  const states = countsBy(byState.rows, (r) => r.verification_state);
  return {
    count: Number(model.rows[0]?.count ?? 0),
    checksumTotalCount: sum(states),
    checksummedCount: states.get(2) ?? 0,
    checksumFailedCount: states.get(3) ?? 0,
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

/** Seconds since the oldest registry row that is not synced was created (0 when all are synced). */
export async function oldestUnsyncedAgeSeconds(tracking: Queryable, config: ReplicableTypeSchemaConfig): Promise<number> {
  const { registry } = tableRefs(config);
  const { rows } = await tracking.query<{ age: number | null }>(
    `SELECT extract(epoch FROM now() - min(created_at))::float8 AS age FROM ${registry} WHERE state <> ${SyncState.synced}`,
  );
  return Math.max(0, Math.round(rows[0]?.age ?? 0));
}
