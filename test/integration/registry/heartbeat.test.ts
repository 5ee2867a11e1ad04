/** The primary's heartbeat, read through a replica: whose database it is and how far behind. */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { HEARTBEAT_TABLE, readReplicaProof, writeHeartbeat } from "../../../src/registry/heartbeat.ts";
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
