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
 *
 * A site name alone proves little: staging and production often share GeoSite manifests, so a
 * replica URL pointed at the wrong environment shows a heartbeat of the right name. The heartbeat's
 * identity is a random UUID made once per primary database and carried by physical replication,
 * restores and failovers of that database; a secondary pins the identity it first proves (in its
 * tracking database) and from then on a different one under the same site name proves nothing
 * until a person accepts it (the GeoSite annotation ACCEPT_PRIMARY_IDENTITY_ANNOTATION).
 */
import type { Queryable } from "./db.ts";
import { ensurePrimarySideTables, ensureTrackingSideTables, HEARTBEAT_TABLE, PRIMARY_IDENTITIES_TABLE } from "./side-tables.ts";

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
  | { state: "other-site"; siteNames: string[] }
  /** The primary's site name, but not the database this secondary has been replicating from. */
  | { state: "other-identity"; identity: string; pinnedIdentity: string; pinnedAt: Date; databaseName: string };

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

/**
 * readReplicaProof, and the identity it proves checked against the one this secondary pinned for
 * the primary's site name: pinned on first proof, "other-identity" when it differs afterwards.
 * `tracking` is this secondary's tracking database.
 */
export async function proveReplica(replica: Queryable, tracking: Queryable, primarySiteName: string): Promise<ReplicaProof> {
  const proof = await readReplicaProof(replica, primarySiteName);
  if (proof.state !== "proven") return proof;
  const pinned = await pinPrimaryIdentity(tracking, primarySiteName, proof.identity);
  if (pinned.identity === proof.identity) return proof;
  return { state: "other-identity", identity: proof.identity, pinnedIdentity: pinned.identity, pinnedAt: pinned.pinnedAt, databaseName: proof.databaseName };
}

/** The identity pinned for `primarySiteName`, pinning `identity` when there is none yet. */
export async function pinPrimaryIdentity(tracking: Queryable, primarySiteName: string, identity: string): Promise<{ identity: string; pinnedAt: Date }> {
  // Two statements, not one: a statement's snapshot would miss a row another process pinned
  // while this INSERT waited on it.
  const pin = () =>
    tracking.query(`INSERT INTO public.${PRIMARY_IDENTITIES_TABLE} (primary_site_name, identity) VALUES ($1::text, $2::uuid) ON CONFLICT (primary_site_name) DO NOTHING`, [
      primarySiteName,
      identity,
    ]);
  try {
    await pin();
  } catch (err) {
    // A tracking database migrated before the table existed (the GeoSite controller may get here
    // before any worker of the new version ran).
    if ((err as { code?: string }).code !== UNDEFINED_TABLE) throw err;
    await ensureTrackingSideTables(tracking);
    await pin();
  }
  const { rows } = await tracking.query<{ identity: string; pinned_at: Date }>(`SELECT identity::text, pinned_at FROM public.${PRIMARY_IDENTITIES_TABLE} WHERE primary_site_name = $1::text`, [
    primarySiteName,
  ]);
  return { identity: rows[0]!.identity, pinnedAt: rows[0]!.pinned_at };
}

/**
 * A person's word that the primary's database was replaced on purpose (rebuilt, not restored):
 * `identity` becomes the pinned one. Returns the identity it replaced, or undefined when it was
 * already pinned.
 */
export async function acceptPrimaryIdentity(tracking: Queryable, primarySiteName: string, identity: string): Promise<string | undefined> {
  const { rows } = await tracking.query<{ previous: string | null }>(
    `WITH previous AS (SELECT identity FROM public.${PRIMARY_IDENTITIES_TABLE} WHERE primary_site_name = $1::text)
     INSERT INTO public.${PRIMARY_IDENTITIES_TABLE} AS p (primary_site_name, identity) VALUES ($1::text, $2::uuid)
     ON CONFLICT (primary_site_name) DO UPDATE SET identity = EXCLUDED.identity, pinned_at = now(), accepted_from = p.identity
       WHERE p.identity IS DISTINCT FROM EXCLUDED.identity
     RETURNING (SELECT identity::text FROM previous) AS previous`,
    [primarySiteName, identity],
  );
  return rows[0]?.previous ?? undefined;
}
