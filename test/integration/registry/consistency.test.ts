import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { deleteRegistryRows, reconcileRegistry, registryConsistencyBatches } from "../../../src/registry/consistency.ts";
import type { SelectiveSync } from "../../../src/registry/config.ts";
import { SYNC_EVERYTHING } from "../../../src/registry/config.ts";
import type { Queryable } from "../../../src/registry/db.ts";
import { BACKFILL_WALKS_TABLE, backfillStates, backfillStatesIncrementally } from "../../../src/registry/states-backfill.ts";
import { ensurePrimarySideTables } from "../../../src/registry/side-tables.ts";
import { createTestDatabases } from "./databases.ts";
import type { TestDatabases } from "./databases.ts";
import { insertWidgets, setUpType, widgetType } from "./fixtures.ts";

let dbs: TestDatabases;
const type = widgetType();

beforeAll(async () => {
  dbs = await createTestDatabases();
  await setUpType(dbs.primary, dbs.tracking, type);
});
afterAll(async () => {
  await dbs?.drop();
});
beforeEach(async () => {
  await dbs.tracking.query("TRUNCATE cool_widget_registry");
  await dbs.primary.query("TRUNCATE cool_widgets, cool_widget_states, namespaces");
});

async function registryModelIds(): Promise<number[]> {
  const { rows } = await dbs.tracking.query<{ id: string }>("SELECT cool_widget_id AS id FROM cool_widget_registry ORDER BY 1");
  return rows.map((r) => Number(r.id));
}

async function primaryIds(where = "true"): Promise<number[]> {
  const { rows } = await dbs.primary.query<{ id: string }>(`SELECT id FROM cool_widgets WHERE ${where} ORDER BY id`);
  return rows.map((r) => Number(r.id));
}

/** Runs walks, deleting gone rows as a strategy would, until one changes nothing. */
async function converge(sync: SelectiveSync = SYNC_EVERYTHING, batchSize = 7): Promise<number> {
  for (let walks = 1; walks <= 5; walks++) {
    const summary = await reconcileRegistry(dbs.primary, dbs.tracking, type, sync, {
      batchSize,
      onGone: async (rows) => {
        await deleteRegistryRows(dbs.tracking, type, rows.map((r) => r.id));
      },
    });
    if (summary.inserted === 0 && summary.gone === 0) return walks;
  }
  throw new Error("consistency did not converge");
}

describe("registry consistency", () => {
  it("creates pending rows for every primary id, in keyset batches", async () => {
    const ids = await insertWidgets(dbs.primary, 25);
    const summary = await reconcileRegistry(dbs.primary, dbs.tracking, type, SYNC_EVERYTHING, { batchSize: 10 });
    expect(summary).toEqual({ scanned: 25, inserted: 25, gone: 0, batches: 3 });
    expect(await registryModelIds()).toEqual(ids);
    const { rows } = await dbs.tracking.query("SELECT 1 FROM cool_widget_registry WHERE state <> 0");
    expect(rows).toEqual([]);
    expect(await reconcileRegistry(dbs.primary, dbs.tracking, type, SYNC_EVERYTHING, { batchSize: 10 })).toMatchObject({ inserted: 0, gone: 0 });
  });

  it("reports rows whose record is gone, including past the last primary id and on an empty primary", async () => {
    const ids = await insertWidgets(dbs.primary, 12);
    await converge();
    await dbs.primary.query("DELETE FROM cool_widgets WHERE id = ANY($1::bigint[])", [[ids[0], ids[5], ids[11]]]);
    const gone: number[] = [];
    for await (const batch of registryConsistencyBatches(dbs.primary, dbs.tracking, type, SYNC_EVERYTHING, { batchSize: 4 })) {
      gone.push(...batch.gone.map((g) => g.modelId));
    }
    expect(gone).toEqual([ids[0], ids[5], ids[11]]);
    expect(await registryModelIds()).toHaveLength(12); // reporting deletes nothing

    await dbs.primary.query("DELETE FROM cool_widgets");
    const summary = await reconcileRegistry(dbs.primary, dbs.tracking, type, SYNC_EVERYTHING, { batchSize: 4 });
    expect(summary).toMatchObject({ scanned: 0, gone: 12, batches: 1 });
  });

  it("converges when records are inserted and deleted between batches", async () => {
    await insertWidgets(dbs.primary, 40);
    await converge();
    let round = 0;
    for await (const batch of registryConsistencyBatches(dbs.primary, dbs.tracking, type, SYNC_EVERYTHING, { batchSize: 6 })) {
      await deleteRegistryRows(dbs.tracking, type, batch.gone.map((g) => g.id));
      round += 1;
      // Churn on the primary while the walk is under way: new records, deleted records on both sides of the cursor.
      await insertWidgets(dbs.primary, 3);
      await dbs.primary.query("DELETE FROM cool_widgets WHERE id IN (SELECT id FROM cool_widgets ORDER BY random() LIMIT 2)");
      // An event handler creating a registry row for a brand-new record mid-walk must not be undone.
      if (round === 2) {
        const [fresh] = await insertWidgets(dbs.primary, 1);
        await dbs.tracking.query("INSERT INTO cool_widget_registry (cool_widget_id, created_at) VALUES ($1, now())", [fresh]);
      }
    }
    await converge();
    expect(await registryModelIds()).toEqual(await primaryIds());
  });

  it("a row an event handler creates between a batch's empty-range probe and its INSERT is kept, and the batch runs again", async () => {
    const ids = await insertWidgets(dbs.primary, 10);
    let raced = 0;
    // The tracking database as the walk sees it, except that just before the walk's plain INSERT
    // of an empty range (the backfill's path) an event handler commits a row inside that range.
    const tracking: Queryable = {
      query: async (text: string, values?: unknown[]) => {
        if (raced === 0 && /^INSERT INTO \S+ \("?cool_widget_id"?, created_at\) SELECT b\.id, now\(\) FROM unnest/.test(text)) {
          raced += 1;
          await dbs.tracking.query("INSERT INTO cool_widget_registry (cool_widget_id, created_at) VALUES ($1, now())", [ids[3]]);
        }
        return dbs.tracking.query(text, values);
      },
    } as Queryable;
    const summary = await reconcileRegistry(dbs.primary, tracking, type, SYNC_EVERYTHING, { batchSize: 100 });
    expect(raced).toBe(1);
    expect(summary).toEqual({ scanned: 10, inserted: 9, gone: 0, batches: 1 });
    expect(await registryModelIds()).toEqual(ids);
  });

  it("does not report a row created after the walk began (its primary record may not be visible yet)", async () => {
    await insertWidgets(dbs.primary, 10);
    const seen: number[] = [];
    let first = true;
    for await (const batch of registryConsistencyBatches(dbs.primary, dbs.tracking, type, SYNC_EVERYTHING, { batchSize: 4 })) {
      seen.push(...batch.gone.map((g) => g.modelId));
      if (first) {
        // An event handler saw a record whose primary transaction the walk cannot see.
        await dbs.tracking.query("INSERT INTO cool_widget_registry (cool_widget_id, created_at) VALUES (1000000, now())");
        first = false;
      }
    }
    expect(seen).toEqual([]);
    const next = await reconcileRegistry(dbs.primary, dbs.tracking, type, SYNC_EVERYTHING, { batchSize: 4 });
    expect(next.gone).toBe(1);
  });

  it("selective sync by namespace includes descendants; rows outside the selection are gone", async () => {
    await dbs.primary.query(`INSERT INTO namespaces (id, parent_id) VALUES (1, NULL), (2, 1), (3, 2), (4, NULL), (5, 4)`);
    for (const namespaceId of [1, 2, 3, 4, 5]) await insertWidgets(dbs.primary, 3, { namespaceId });
    await converge(SYNC_EVERYTHING);
    expect(await registryModelIds()).toHaveLength(15);

    const sync: SelectiveSync = { type: "namespaces", namespaces: [2] };
    const first = await reconcileRegistry(dbs.primary, dbs.tracking, type, sync, { batchSize: 4 });
    expect(first.gone).toBe(9);
    await converge(sync, 4);
    expect(await registryModelIds()).toEqual(await primaryIds("namespace_id IN (2, 3)"));
  });

  it("namespace selection without a parent column selects only the listed namespaces", async () => {
    const flat = widgetType({ source: { table: "cool_widgets", namespaceColumn: "namespace_id" } });
    await dbs.primary.query(`INSERT INTO namespaces (id, parent_id) VALUES (1, NULL), (2, 1)`);
    await insertWidgets(dbs.primary, 2, { namespaceId: 1 });
    await insertWidgets(dbs.primary, 2, { namespaceId: 2 });
    await reconcileRegistry(dbs.primary, dbs.tracking, flat, { type: "namespaces", namespaces: [1] });
    expect(await registryModelIds()).toEqual(await primaryIds("namespace_id = 1"));
  });

  it("selective sync by shard", async () => {
    await insertWidgets(dbs.primary, 4, { shard: "default" });
    await insertWidgets(dbs.primary, 4, { shard: "gitaly-2" });
    await converge({ type: "shards", shards: ["gitaly-2"] }, 3);
    expect(await registryModelIds()).toEqual(await primaryIds("repository_storage = 'gitaly-2'"));
  });

  it("a type without a namespace column ignores namespace selection", async () => {
    const unscoped = widgetType({ source: { table: "cool_widgets" } });
    await insertWidgets(dbs.primary, 5);
    await reconcileRegistry(dbs.primary, dbs.tracking, unscoped, { type: "namespaces", namespaces: [] });
    expect(await registryModelIds()).toHaveLength(5);
  });
});

describe("_states backfill on the primary", () => {
  it("creates missing state rows in batches and is idempotent", async () => {
    const ids = await insertWidgets(dbs.primary, 23);
    await dbs.primary.query("INSERT INTO cool_widget_states (cool_widget_id, verification_state) VALUES ($1, 2)", [ids[3]]);
    expect(await backfillStates(dbs.primary, type, { batchSize: 5 })).toEqual({ scanned: 23, inserted: 22, batches: 5 });
    expect(await backfillStates(dbs.primary, type, { batchSize: 5 })).toMatchObject({ inserted: 0 });
    const { rows } = await dbs.primary.query<{ state: number; n: string }>(
      "SELECT verification_state AS state, count(*) AS n FROM cool_widget_states GROUP BY 1 ORDER BY 1",
    );
    expect(rows).toEqual([
      { state: 0, n: "22" },
      { state: 2, n: "1" },
    ]);
  });

  it("incremental backfill: new ids every run, ids that committed late only on the periodic full walk", async () => {
    await ensurePrimarySideTables(dbs.primary);
    await dbs.primary.query(`DELETE FROM ${BACKFILL_WALKS_TABLE}`);
    const options = { typeName: "cool_widget", batchSize: 5, fullWalkEverySeconds: 600 };
    const first = await insertWidgets(dbs.primary, 20);
    expect(await backfillStatesIncrementally(dbs.primary, type, options)).toMatchObject({ full: true, inserted: 20 });
    const more = await insertWidgets(dbs.primary, 3);
    // A row that committed late with a low id (below the highest _states row less one batch).
    await dbs.primary.query("INSERT INTO cool_widgets (id) VALUES ($1)", [first[0]! - 1]);
    const incremental = await backfillStatesIncrementally(dbs.primary, type, options);
    expect(incremental).toMatchObject({ full: false, inserted: 3 });
    expect(incremental.scanned).toBeLessThan(10); // not the whole table
    const { rows } = await dbs.primary.query("SELECT 1 FROM cool_widget_states WHERE cool_widget_id = ANY($1::bigint[])", [more]);
    expect(rows).toHaveLength(3);
    // Stands in for the full-walk interval passing.
    await dbs.primary.query(`UPDATE ${BACKFILL_WALKS_TABLE} SET full_walk_at = now() - interval '1 hour'`);
    expect(await backfillStatesIncrementally(dbs.primary, type, options)).toMatchObject({ full: true, inserted: 1, scanned: 24 });
  });

  it("starts rows disabled when the type has verification off", async () => {
    await insertWidgets(dbs.primary, 2);
    await backfillStates(dbs.primary, { ...type, verificationEnabled: false });
    const { rows } = await dbs.primary.query("SELECT DISTINCT verification_state FROM cool_widget_states");
    expect(rows).toEqual([{ verification_state: 4 }]);
  });
});
