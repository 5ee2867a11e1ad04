import { SYNC_EVERYTHING } from "./config.ts";
import type { ReplicableTypeSchemaConfig, SelectiveSync } from "./config.ts";
import type { Queryable } from "./db.ts";
import { selectionSql } from "./consistency.ts";
import { Counted, readAndCompactRowCounts } from "./row-counts.ts";
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
 * Every count is exact. By default they come from the counters the database keeps in the same
 * transaction as every change (row-counts.ts): a handful of counter rows per type, so a status
 * costs the same at ten rows as at ten million. `count` comes from the model-record counter that
 * change capture keeps (changeCapture: trigger) when this secondary replicates everything; with
 * selective sync, without change capture, or on tables not yet migrated to the counters, the
 * tables themselves are counted (index-only scans, about 0.1 s per million rows).
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

function countsBy<R extends { n: string }>(rows: R[], key: (row: R) => number): Map<number, number> {
  return new Map(rows.map((row) => [key(row), Number(row.n)]));
}

function sum(counts: Map<number, number>): number {
  let total = 0;
  for (const n of counts.values()) total += n;
  return total;
}

/** Registry rows per (state, verification_state), as the registry status needs them. */
interface RegistryCounts {
  byState: Map<number, number>;
  /** Synced rows per verification state. */
  syncedByVerification: Map<number, number>;
}

function add(map: Map<number, number>, key: number, n: number): void {
  map.set(key, (map.get(key) ?? 0) + n);
}

async function registryCountsFromCounters(tracking: Queryable, config: ReplicableTypeSchemaConfig): Promise<RegistryCounts | null> {
  const read = await readAndCompactRowCounts(tracking, tableRefs(config).resolved.name, Counted.registry);
  if (read === null) return null;
  const counts: RegistryCounts = { byState: new Map(), syncedByVerification: new Map() };
  for (const g of read.groups) {
    if (g.state === null || g.verificationState === null) continue;
    add(counts.byState, g.state, g.n);
    if (g.state === SyncState.synced) add(counts.syncedByVerification, g.verificationState, g.n);
  }
  return counts;
}

async function registryCountsFromTable(tracking: Queryable, config: ReplicableTypeSchemaConfig): Promise<RegistryCounts> {
  const [byState, verification] = await Promise.all([
    tracking.query<{ state: number; n: string }>(registryStateCountsQuery(config)),
    tracking.query<Record<string, string>>(registryExactVerificationCountsQuery(config)),
  ]);
  const v = verification.rows[0] ?? {};
  const syncedByVerification = new Map<number, number>([
    [VerificationState.succeeded, Number(v.verified_count ?? 0)],
    [VerificationState.failed, Number(v.verification_failed_count ?? 0)],
  ]);
  const states = countsBy(byState.rows, (r) => r.state);
  // verification_total_count counts every synced row not disabled; the rest of them are "other".
  const other = Number(v.verification_total_count ?? 0) - Number(v.verified_count ?? 0) - Number(v.verification_failed_count ?? 0);
  syncedByVerification.set(VerificationState.pending, other);
  syncedByVerification.set(VerificationState.disabled, (states.get(SyncState.synced) ?? 0) - Number(v.verification_total_count ?? 0));
  return { byState: states, syncedByVerification };
}

/** Model records: the change-capture counter when it exists, else COUNT. */
async function modelRecordCount(primary: Queryable, config: ReplicableTypeSchemaConfig, sync: SelectiveSync, useCounters: boolean): Promise<number> {
  if (useCounters && sync.type === SYNC_EVERYTHING.type) {
    const read = await readAndCompactRowCounts(primary, tableRefs(config).resolved.name, Counted.model);
    if (read !== null) return read.groups.reduce((total, g) => total + g.n, 0);
  }
  const countQuery = replicableCountQuery(config, sync);
  const { rows } = await primary.query<{ count: string }>(countQuery.text, countQuery.params);
  return Number(rows[0]?.count ?? 0);
}

export interface StatusOptions {
  /** Count the tables themselves instead of reading the counters (a check, and what the bench compares with). */
  countFromTables?: boolean;
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
  options: StatusOptions = {},
): Promise<ReplicableStatus> {
  const useCounters = options.countFromTables !== true;
  const [counted, count] = await Promise.all([
    useCounters ? registryCountsFromCounters(tracking, config) : null,
    modelRecordCount(primaryReplica, config, sync, useCounters),
  ]);
  const { byState, syncedByVerification } = counted ?? (await registryCountsFromTable(tracking, config));
  const registryCount = sum(byState);
  const syncedCount = byState.get(SyncState.synced) ?? 0;
  const verifiedCount = syncedByVerification.get(VerificationState.succeeded) ?? 0;
  return {
    count,
    checksumTotalCount: null,
    checksummedCount: null,
    checksumFailedCount: null,
    syncedCount,
    failedCount: byState.get(SyncState.failed) ?? 0,
    registryCount,
    verificationTotalCount: syncedCount - (syncedByVerification.get(VerificationState.disabled) ?? 0),
    verifiedCount,
    verificationFailedCount: syncedByVerification.get(VerificationState.failed) ?? 0,
    syncedInPercentage: percentage(syncedCount, registryCount),
    verifiedInPercentage: percentage(verifiedCount, registryCount),
  };
}

async function statesCounts(primary: Queryable, config: ReplicableTypeSchemaConfig, useCounters: boolean): Promise<Map<number, number>> {
  if (useCounters) {
    const read = await readAndCompactRowCounts(primary, tableRefs(config).resolved.name, Counted.states);
    if (read !== null) {
      const byState = new Map<number, number>();
      for (const g of read.groups) if (g.verificationState !== null) add(byState, g.verificationState, g.n);
      return byState;
    }
  }
  const { rows } = await primary.query<{ verification_state: number; n: string }>(statesCountsQuery(config));
  return countsBy(rows, (r) => r.verification_state);
}

/** Status of one type on the primary, from the model table and `<name>_states`. */
export async function primaryStatus(primary: Queryable, config: ReplicableTypeSchemaConfig, options: StatusOptions = {}): Promise<ReplicableStatus> {
  const useCounters = options.countFromTables !== true;
  const [count, states] = await Promise.all([
    modelRecordCount(primary, config, SYNC_EVERYTHING, useCounters),
    statesCounts(primary, config, useCounters),
  ]);
  return {
    count,
    checksumTotalCount: sum(states),
    checksummedCount: states.get(VerificationState.succeeded) ?? 0,
    checksumFailedCount: states.get(VerificationState.failed) ?? 0,
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
