import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SYNC_EVERYTHING } from "../../../src/registry/config.ts";
import { deleteRegistryRows, ensureRegistryRows, reconcileRegistry } from "../../../src/registry/consistency.ts";
import { claimChecksumWork, markChecksumFailed, markChecksumSucceeded, requestChecksum } from "../../../src/registry/checksum-state.ts";
import { compactRowCounts, Counted, readRowCounts } from "../../../src/registry/row-counts.ts";
import type { CountedValue } from "../../../src/registry/row-counts.ts";
import { applySchema } from "../../../src/registry/schema-manager.ts";
import { backfillStates } from "../../../src/registry/states-backfill.ts";
import { claimSyncWork, markSynced, markSyncFailed, requestResync } from "../../../src/registry/sync-state.ts";
import { claimVerificationWork, markVerificationFailed, markVerificationSucceeded } from "../../../src/registry/verification-state.ts";
import { createTestDatabases, withClient } from "./databases.ts";
import type { TestDatabases } from "./databases.ts";
import { insertWidgets, setUpType, widgetType } from "./fixtures.ts";

let dbs: TestDatabases;
const type = widgetType({ deletionPolicy: "Delete" });
const WORKERS = 16;

beforeAll(async () => {
  dbs = await createTestDatabases();
  await setUpType(dbs.primary, dbs.tracking, type);
});
afterAll(async () => {
  await dbs?.drop();
});

/** Counter totals as "state/verification_state" → n, zero groups left out. */
async function fromCounters(db: pg.Pool, counted: CountedValue): Promise<Record<string, number>> {
  const read = await readRowCounts(db, type.name, counted);
  expect(read, `${counted} is counted`).not.toBeNull();
  const out: Record<string, number> = {};
  for (const g of read!.groups) {
    if (g.n !== 0) out[`${g.state ?? "-"}/${g.verificationState ?? "-"}`] = g.n;
  }
  return out;
}

/** The same, from a full COUNT of the table. */
async function fromTable(db: pg.Pool, sql: string): Promise<Record<string, number>> {
  const { rows } = await db.query<{ k: string; n: string }>(sql);
  return Object.fromEntries(rows.filter((r) => Number(r.n) !== 0).map((r) => [r.k, Number(r.n)]));
}

const registryCount = () => fromTable(dbs.tracking, `SELECT state || '/' || verification_state AS k, count(*) AS n FROM cool_widget_registry GROUP BY 1`);
const statesCount = () => fromTable(dbs.primary, `SELECT '-/' || verification_state AS k, count(*) AS n FROM cool_widget_states GROUP BY 1`);
const modelCount = () => fromTable(dbs.primary, `SELECT '-/-' AS k, count(*) AS n FROM cool_widgets`);

const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;

describe("exact row counters", () => {
  it("stay equal to a full COUNT through a storm of concurrent transitions, deletes, rollbacks and compactions", async () => {
    const ids = await insertWidgets(dbs.primary, 3000);
    await backfillStates(dbs.primary, type);
    await reconcileRegistry(dbs.primary, dbs.tracking, type, SYNC_EVERYTHING, { batchSize: 500 });
    // Sixteen workers on their own connections, as sixteen worker processes would be.
    const tracking = new pg.Pool({ connectionString: dbs.trackingUrl, max: WORKERS + 2 });
    const primary = new pg.Pool({ connectionString: dbs.primaryUrl, max: WORKERS + 2 });
    const checksum = Buffer.alloc(32, 7);
    const deadline = Date.now() + 6000;
    let nextId = ids[ids.length - 1]! + 1;
    const worker = async (n: number): Promise<number> => {
      let done = 0;
      // Every worker goes once through all nine kinds of action, however slow a loaded machine is,
      // then keeps going until the deadline.
      while (done < 9 || Date.now() < deadline) {
        const action = (n + done) % 9;
        if (action <= 2) {
          const claimed = await claimSyncWork(tracking, type, { limit: 20 });
          for (const row of claimed) {
            if (Math.random() < 0.7) await markSynced(tracking, type, row.id, { claim: row.syncClaim! });
            else await markSyncFailed(tracking, type, row.id, { claim: row.syncClaim!, message: "storm" });
          }
        } else if (action === 3) {
          const { rows } = await tracking.query<{ model_id: string }>(
            `SELECT cool_widget_id AS model_id FROM cool_widget_registry WHERE state = 2 AND verification_state IN (0, 3) ORDER BY random() LIMIT 20`,
          );
          const checksums = new Map(rows.map((r) => [Number(r.model_id), checksum]));
          const claimed = await claimVerificationWork(tracking, type, { limit: 20, primaryChecksums: checksums });
          for (const row of claimed) {
            if (Math.random() < 0.8) await markVerificationSucceeded(tracking, type, row.id, { claim: row.verificationClaim!, checksum });
            else await markVerificationFailed(tracking, type, row.id, { claim: row.verificationClaim!, message: "storm" });
          }
        } else if (action === 4) {
          await requestResync(tracking, type, Array.from({ length: 30 }, () => pick(ids)));
        } else if (action === 5) {
          // A multi-statement transaction, half of them rolled back: rolled-back changes are never counted.
          await withClient(tracking, async (c) => {
            await c.query("BEGIN");
            await c.query(`UPDATE cool_widget_registry SET state = 3 WHERE id IN (SELECT id FROM cool_widget_registry WHERE state = 0 LIMIT 10 FOR UPDATE SKIP LOCKED)`);
            await c.query(`DELETE FROM cool_widget_registry WHERE id IN (SELECT id FROM cool_widget_registry WHERE state = 3 LIMIT 3 FOR UPDATE SKIP LOCKED)`);
            await c.query(Math.random() < 0.5 ? "ROLLBACK" : "COMMIT");
          });
        } else if (action === 6) {
          const { rows } = await tracking.query<{ id: string }>(`SELECT id FROM cool_widget_registry ORDER BY random() LIMIT 5`);
          await deleteRegistryRows(tracking, type, rows.map((r) => Number(r.id)));
          await ensureRegistryRows(tracking, type, [pick(ids), pick(ids), nextId++]);
        } else if (action === 7) {
          // The primary: model records come and go (cascading to _states), checksums are computed and fail.
          await insertWidgets(primary, 5);
          await primary.query(`DELETE FROM cool_widgets WHERE id IN (SELECT id FROM cool_widgets ORDER BY random() LIMIT 3)`);
          await backfillStates(primary, type, { startAfter: String(ids[ids.length - 1]! - 50) });
          for (const row of await claimChecksumWork(primary, type, { limit: 10 })) {
            if (Math.random() < 0.8) await markChecksumSucceeded(primary, type, row.modelId, { checksum, claim: row.claim! });
            else await markChecksumFailed(primary, type, row.modelId, { message: "storm", claim: row.claim! });
          }
          await requestChecksum(primary, type, [pick(ids), pick(ids)]);
        } else {
          await compactRowCounts(tracking, type.name, Counted.registry);
          await compactRowCounts(primary, type.name, Counted.states);
          await compactRowCounts(primary, type.name, Counted.model);
        }
        done++;
      }
      return done;
    };
    try {
      const done = await Promise.all(Array.from({ length: WORKERS }, (_, n) => worker(n)));
      expect(Math.min(...done)).toBeGreaterThanOrEqual(9);
    } finally {
      await Promise.all([tracking.end(), primary.end()]);
    }
    // The storm moved rows through every state.
    const registry = await registryCount();
    expect(Object.keys(registry).length).toBeGreaterThanOrEqual(4);
    expect(await fromCounters(dbs.tracking, Counted.registry)).toEqual(registry);
    expect(await fromCounters(dbs.primary, Counted.states)).toEqual(await statesCount());
    expect(await fromCounters(dbs.primary, Counted.model)).toEqual(await modelCount());
  }, 60_000);

  it("follow TRUNCATE, and compaction folds the rows of a pair into one per group", async () => {
    await dbs.tracking.query(`TRUNCATE cool_widget_registry`);
    expect(await fromCounters(dbs.tracking, Counted.registry)).toEqual({});
    await reconcileRegistry(dbs.primary, dbs.tracking, type, SYNC_EVERYTHING, { batchSize: 100 });
    await dbs.tracking.query(`UPDATE cool_widget_registry SET state = 2 WHERE id % 3 = 0`);
    await compactRowCounts(dbs.tracking, type.name, Counted.registry);
    const read = await readRowCounts(dbs.tracking, type.name, Counted.registry);
    expect(read!.rows).toBe(read!.groups.length);
    expect(await fromCounters(dbs.tracking, Counted.registry)).toEqual(await registryCount());
  });

  it("a registry that existed before the counters gets its baseline when the migration runs; a baseline corrects wrong counters", async () => {
    // As on a database migrated by an older operator: version 1 only, rows, no triggers, no counter rows.
    for (const t of ["inserted", "updated", "deleted", "truncated"]) await dbs.tracking.query(`DROP TRIGGER geo_operator_count_${t} ON cool_widget_registry`);
    await dbs.tracking.query(`DELETE FROM geo_operator_row_counts WHERE type_name = 'cool_widget'`);
    await dbs.tracking.query(`DELETE FROM geo_operator_schema_migrations WHERE type_name = 'cool_widget' AND version = 2`);
    await dbs.tracking.query(`UPDATE cool_widget_registry SET state = 3 WHERE id % 5 = 0`);
    expect(await readRowCounts(dbs.tracking, type.name, Counted.registry)).toBeNull();
    const result = await withClient(dbs.tracking, (c) => applySchema(c, type, "secondary"));
    expect(result.applied).toEqual([2]);
    expect(await fromCounters(dbs.tracking, Counted.registry)).toEqual(await registryCount());
    // Applying again changes nothing.
    expect((await withClient(dbs.tracking, (c) => applySchema(c, type, "secondary"))).applied).toEqual([]);
    // A baseline over wrong counters corrects them with delta rows (it never deletes, so a compaction
    // running at the same time cannot make a row count twice).
    await dbs.tracking.query(`INSERT INTO geo_operator_row_counts (type_name, counted, state, verification_state, n) VALUES ('cool_widget', 'registry', 2, 2, 500)`);
    await dbs.tracking.query(`DELETE FROM geo_operator_schema_migrations WHERE type_name = 'cool_widget' AND version = 2`);
    await withClient(dbs.tracking, (c) => applySchema(c, type, "secondary"));
    expect(await fromCounters(dbs.tracking, Counted.registry)).toEqual(await registryCount());
  });
});
