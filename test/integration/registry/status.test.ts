import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SYNC_EVERYTHING } from "../../../src/registry/config.ts";
import { reconcileRegistry } from "../../../src/registry/consistency.ts";
import { backfillStates } from "../../../src/registry/states-backfill.ts";
import { applySchema } from "../../../src/registry/schema-manager.ts";
import {
  primaryStatus,
  registryExactVerificationCountsQuery,
  registryStateCountsQuery,
  replicableCountQuery,
  secondaryStatus,
  statesCountsQuery,
} from "../../../src/registry/status.ts";
import { createTestDatabases, withClient } from "./databases.ts";
import type { TestDatabases } from "./databases.ts";
import { insertWidgets, setUpType, widgetType } from "./fixtures.ts";

let dbs: TestDatabases;
const type = widgetType();

beforeAll(async () => {
  dbs = await createTestDatabases();
  await setUpType(dbs.primary, dbs.tracking, type);
  await dbs.primary.query(`INSERT INTO namespaces (id) VALUES (1), (2)`);
  await insertWidgets(dbs.primary, 16, { namespaceId: 1 });
  await insertWidgets(dbs.primary, 4, { namespaceId: 2 });
  await backfillStates(dbs.primary, type);
  await reconcileRegistry(dbs.primary, dbs.tracking, type, SYNC_EVERYTHING);
  // Registry: 20 rows = 10 synced (6 verified, 2 verification failed, 1 pending, 1 disabled), 3 failed, 1 started, 6 pending.
  await dbs.tracking.query(`UPDATE cool_widget_registry SET state = 2 WHERE cool_widget_id <= 10`);
  await dbs.tracking.query(`UPDATE cool_widget_registry SET verification_state = 2 WHERE cool_widget_id <= 6`);
  await dbs.tracking.query(`UPDATE cool_widget_registry SET verification_state = 3 WHERE cool_widget_id IN (7, 8)`);
  await dbs.tracking.query(`UPDATE cool_widget_registry SET verification_state = 4 WHERE cool_widget_id = 10`);
  await dbs.tracking.query(`UPDATE cool_widget_registry SET state = 3 WHERE cool_widget_id IN (11, 12, 13)`);
  await dbs.tracking.query(`UPDATE cool_widget_registry SET state = 1 WHERE cool_widget_id = 14`);
  // Primary: 12 checksummed, 3 failed, 5 pending.
  await dbs.primary.query(`UPDATE cool_widget_states SET verification_state = 2 WHERE cool_widget_id <= 12`);
  await dbs.primary.query(`UPDATE cool_widget_states SET verification_state = 3 WHERE cool_widget_id IN (13, 14, 15)`);
});
afterAll(async () => {
  await dbs?.drop();
});

const expectedSecondary = {
  count: 20,
  checksumTotalCount: null,
  checksummedCount: null,
  checksumFailedCount: null,
  syncedCount: 10,
  failedCount: 3,
  registryCount: 20,
  verificationTotalCount: 9,
  verifiedCount: 6,
  verificationFailedCount: 2,
  syncedInPercentage: 50,
  verifiedInPercentage: 30,
};

describe("status", () => {
  it("secondary, from the counters: exact (the disabled row is not verified, the pending one not either)", async () => {
    expect(await secondaryStatus(dbs.tracking, dbs.primary, type, SYNC_EVERYTHING)).toEqual(expectedSecondary);
  });

  it("secondary, counting the tables: the same numbers", async () => {
    expect(await secondaryStatus(dbs.tracking, dbs.primary, type, SYNC_EVERYTHING, { countFromTables: true })).toEqual(expectedSecondary);
  });

  it("reads the counters, not the tables: a counter row shows in the status, and the model counter gives count", async () => {
    await dbs.tracking.query(`INSERT INTO geo_operator_row_counts (type_name, counted, state, verification_state, n) VALUES ('cool_widget', 'registry', 2, 2, 1000)`);
    await dbs.primary.query(`INSERT INTO geo_operator_row_counts (type_name, counted, n) VALUES ('cool_widget', 'model', 7)`);
    try {
      expect(await secondaryStatus(dbs.tracking, dbs.primary, type, SYNC_EVERYTHING)).toMatchObject({ count: 27, syncedCount: 1010, verifiedCount: 1006, registryCount: 1020 });
      expect(await secondaryStatus(dbs.tracking, dbs.primary, type, SYNC_EVERYTHING, { countFromTables: true })).toEqual(expectedSecondary);
    } finally {
      await dbs.tracking.query(`INSERT INTO geo_operator_row_counts (type_name, counted, state, verification_state, n) VALUES ('cool_widget', 'registry', 2, 2, -1000)`);
      await dbs.primary.query(`INSERT INTO geo_operator_row_counts (type_name, counted, n) VALUES ('cool_widget', 'model', -7)`);
    }
  });

  it("secondary count honours selective sync", async () => {
    const status = await secondaryStatus(dbs.tracking, dbs.primary, type, { type: "namespaces", namespaces: [2] });
    expect(status.count).toBe(4);
  });

  it("primary: model table and _states counts, from the counters and from the tables alike", async () => {
    expect(await primaryStatus(dbs.primary, type, { countFromTables: true })).toEqual(await primaryStatus(dbs.primary, type));
    expect(await primaryStatus(dbs.primary, type)).toMatchObject({
      count: 20,
      checksumTotalCount: 20,
      checksummedCount: 12,
      checksumFailedCount: 3,
      syncedCount: null,
      registryCount: null,
    });
  });

  it("percentages are 0 for an empty registry", async () => {
    const empty = widgetType({ name: "empty_widget" });
    await withClient(dbs.tracking, (c) => applySchema(c, empty, "secondary"));
    const status = await secondaryStatus(dbs.tracking, dbs.primary, empty, SYNC_EVERYTHING);
    expect(status).toMatchObject({ registryCount: 0, syncedInPercentage: 0, verifiedInPercentage: 0 });
  });
});

/** EXPLAIN with sequential scans priced out: any Seq Scan left means no index can serve the query. */
async function plan(pool: TestDatabases["tracking"], text: string, params: unknown[] = []): Promise<string> {
  return withClient(pool, async (c) => {
    await c.query("BEGIN");
    try {
      await c.query("SET LOCAL enable_seqscan = off");
      const { rows } = await c.query<{ "QUERY PLAN": string }>(`EXPLAIN ${text}`, params);
      return rows.map((r) => r["QUERY PLAN"]).join("\n");
    } finally {
      await c.query("ROLLBACK");
    }
  });
}

describe("the tables' own counts (countFromTables, selective sync) are served by indexes", () => {
  beforeAll(async () => {
    await dbs.tracking.query("VACUUM ANALYZE cool_widget_registry");
    await dbs.primary.query("VACUUM ANALYZE cool_widgets");
    await dbs.primary.query("VACUUM ANALYZE cool_widget_states");
  });

  it("registry counts", async () => {
    expect(await plan(dbs.tracking, registryStateCountsQuery(type))).toMatch(/Index Only Scan using index_cool_widget_registry_on_state/);
    // Verification can only narrow to synced rows by index; it reads their heap tuples.
    expect(await plan(dbs.tracking, registryExactVerificationCountsQuery(type))).toMatch(/index_cool_widget_registry_on_state/);
  });

  it("primary counts", async () => {
    expect(await plan(dbs.primary, statesCountsQuery(type))).toMatch(/Index Only Scan using index_cool_widget_states_on_verification_state/);
    const count = replicableCountQuery(type, SYNC_EVERYTHING);
    expect(await plan(dbs.primary, count.text, count.params)).toMatch(/Index Only Scan using cool_widgets_pkey/);
  });

  it("claim queries use the template's indexes", async () => {
    const candidates = await plan(
      dbs.tracking,
      `SELECT id FROM cool_widget_registry WHERE state = 2 AND verification_state = 0 ORDER BY verified_at ASC NULLS FIRST LIMIT 10`,
    );
    expect(candidates).toMatch(/cool_widget_registry_pending_verification/);
    const failed = await plan(
      dbs.tracking,
      `SELECT id FROM cool_widget_registry WHERE state = 2 AND verification_state = 3 AND verification_retry_at <= now() ORDER BY verification_retry_at ASC NULLS FIRST LIMIT 10`,
    );
    expect(failed).toMatch(/cool_widget_registry_failed_verification/);
  });
});
