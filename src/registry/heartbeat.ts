/**
 * The primary's identity and heartbeat, in a small table of the operator's own in the primary's
 * main database (it never touches the application's rows). The primary's operator writes it
 * regularly; secondaries read it through their read replica:
 *
 * - a row for the primary GeoSite's name proves the replica is a copy of this primary's database,
 *   not a decomposed sibling database, an empty restore or another application's database;
 * - the age of the beat, read on the replica, is the replication lag (GitLab's
 *   geo_db_replication_lag_seconds), plus at most one heartbeat interval.
 *
 * Deletions on a secondary wait while the identity is missing or the lag is above the threshold.
 */
import type { Queryable } from "./db.ts";
import { ensurePrimarySideTables, HEARTBEAT_TABLE } from "./side-tables.ts";

export { HEARTBEAT_TABLE } from "./side-tables.ts";
const UNDEFINED_TABLE = "42P01";

/** The primary's operator: "site `siteName` is alive and this is its database". Returns the identity. */
export async function writeHeartbeat(primary: Queryable, siteName: string): Promise<string> {
  const beat = () =>
    primary.query<{ identity: string }>(
      `INSERT INTO public.${HEARTBEAT_TABLE} (site_name, beat_at) VALUES ($1::text, now())
       ON CONFLICT (site_name) DO UPDATE SET beat_at = now()
       RETURNING identity::text`,
      [siteName],
    );
  try {
    return (await beat()).rows[0]!.identity;
  } catch (err) {
    // The table is created on the first beat only, not with a DDL round trip on every one.
    if ((err as { code?: string }).code !== UNDEFINED_TABLE) throw err;
    await ensurePrimarySideTables(primary);
    return (await beat()).rows[0]!.identity;
  }
}

export type ReplicaProof =
  | { state: "proven"; identity: string; databaseName: string; lagSeconds: number }
  /** No heartbeat table: not a replica of a primary this operator manages. */
  | { state: "no-heartbeat" }
  /** A heartbeat, but for other site names: someone else's primary. */
  | { state: "other-site"; siteNames: string[] };

/** What the replica says about whose database it is and how far behind it is. */
export async function readReplicaProof(replica: Queryable, primarySiteName: string): Promise<ReplicaProof> {
  const exists = await replica.query<{ present: boolean }>(`SELECT to_regclass('public.${HEARTBEAT_TABLE}') IS NOT NULL AS present`);
  if (!exists.rows[0]?.present) return { state: "no-heartbeat" };
  const { rows } = await replica.query<{ site_name: string; identity: string; database_name: string; lag: number }>(
    `SELECT site_name, identity::text, database_name, greatest(0, extract(epoch FROM now() - beat_at))::float8 AS lag
     FROM public.${HEARTBEAT_TABLE} ORDER BY site_name`,
  );
  const mine = rows.find((r) => r.site_name === primarySiteName);
  if (!mine) return { state: "other-site", siteNames: rows.map((r) => r.site_name) };
  return { state: "proven", identity: mine.identity, databaseName: mine.database_name, lagSeconds: mine.lag };
}
