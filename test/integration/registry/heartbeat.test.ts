/** The primary's heartbeat, read through a replica: whose database it is and how far behind. */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { acceptPrimaryIdentity, HEARTBEAT_TABLE, proveReplica, readReplicaProof, writeHeartbeat } from "../../../src/registry/heartbeat.ts";
import { OPERATOR_MIGRATION_SET, PRIMARY_IDENTITIES_TABLE } from "../../../src/registry/side-tables.ts";
import { createTestDatabases, dropHeartbeat } from "./databases.ts";
import type { TestDatabases } from "./databases.ts";

let dbs: TestDatabases;

beforeAll(async () => {
  dbs = await createTestDatabases();
});
afterAll(async () => {
  await dbs?.drop();
});
beforeEach(async () => {
  await dropHeartbeat(dbs.primary);
  await dbs.tracking.query(`DROP TABLE IF EXISTS public.${PRIMARY_IDENTITIES_TABLE}`);
  await dbs.tracking.query(`DELETE FROM public.geo_operator_schema_migrations WHERE type_name = $1::text AND role = 'secondary' AND version = 4`, [OPERATOR_MIGRATION_SET]).catch(() => undefined);
});

describe("primary heartbeat", () => {
  it("a database without the heartbeat table is not proven to be a replica of any primary", async () => {
    expect(await readReplicaProof(dbs.primary, "london")).toEqual({ state: "no-heartbeat" });
  });

  it("proves the primary's identity with a lag near zero; the identity is stable across beats", async () => {
    const identity = await writeHeartbeat(dbs.primary, "london");
    const proof = await readReplicaProof(dbs.primary, "london");
    expect(proof).toMatchObject({ state: "proven", identity });
    if (proof.state !== "proven") throw new Error("not proven");
    expect(proof.lagSeconds).toBeGreaterThanOrEqual(0);
    expect(proof.lagSeconds).toBeLessThan(5);
    const { rows } = await dbs.primary.query<{ db: string }>("SELECT current_database() AS db");
    expect(proof.databaseName).toBe(rows[0]!.db);
    expect(await writeHeartbeat(dbs.primary, "london")).toBe(identity);
  });

  it("another site's heartbeat is not this primary's", async () => {
    await writeHeartbeat(dbs.primary, "paris");
    expect(await readReplicaProof(dbs.primary, "london")).toEqual({ state: "other-site", siteNames: ["paris"] });
  });

  it("an old beat reads as replication lag", async () => {
    await writeHeartbeat(dbs.primary, "london");
    await dbs.primary.query(`UPDATE ${HEARTBEAT_TABLE} SET beat_at = now() - interval '1 hour'`);
    const proof = await readReplicaProof(dbs.primary, "london");
    if (proof.state !== "proven") throw new Error("not proven");
    expect(proof.lagSeconds).toBeGreaterThanOrEqual(3600);
    expect(proof.lagSeconds).toBeLessThan(3700);
  });
});

describe("the primary's identity, pinned by a secondary", () => {
  it("pins the identity it first proves (creating its table in a tracking database migrated before it) and keeps proving it", async () => {
    const identity = await writeHeartbeat(dbs.primary, "london");
    expect(await proveReplica(dbs.primary, dbs.tracking, "london")).toMatchObject({ state: "proven", identity });
    expect(await proveReplica(dbs.primary, dbs.tracking, "london")).toMatchObject({ state: "proven", identity });
    const { rows } = await dbs.tracking.query(`SELECT primary_site_name, identity::text FROM ${PRIMARY_IDENTITIES_TABLE}`);
    expect(rows).toEqual([{ primary_site_name: "london", identity }]);
  });

  it("a heartbeat of the same site name from another database proves nothing until that identity is accepted", async () => {
    const original = await writeHeartbeat(dbs.primary, "london");
    await proveReplica(dbs.primary, dbs.tracking, "london");
    // Another environment's database, or one rebuilt from scratch: same site name, new identity.
    await dropHeartbeat(dbs.primary);
    const other = await writeHeartbeat(dbs.primary, "london");
    expect(other).not.toBe(original);

    const proof = await proveReplica(dbs.primary, dbs.tracking, "london");
    expect(proof).toMatchObject({ state: "other-identity", identity: other, pinnedIdentity: original });
    expect(await proveReplica(dbs.primary, dbs.tracking, "london")).toMatchObject({ state: "other-identity" });

    expect(await acceptPrimaryIdentity(dbs.tracking, "london", other)).toBe(original);
    expect(await acceptPrimaryIdentity(dbs.tracking, "london", other)).toBeUndefined();
    expect(await proveReplica(dbs.primary, dbs.tracking, "london")).toMatchObject({ state: "proven", identity: other });
    const { rows } = await dbs.tracking.query(`SELECT identity::text, accepted_from::text FROM ${PRIMARY_IDENTITIES_TABLE} WHERE primary_site_name = 'london'`);
    expect(rows).toEqual([{ identity: other, accepted_from: original }]);
  });

  it("pins per primary site name: after a failover the new primary's identity is pinned on first sight", async () => {
    await writeHeartbeat(dbs.primary, "london");
    await proveReplica(dbs.primary, dbs.tracking, "london");
    const tokyo = await writeHeartbeat(dbs.primary, "tokyo");
    expect(await proveReplica(dbs.primary, dbs.tracking, "tokyo")).toMatchObject({ state: "proven", identity: tokyo });
  });
});
