import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { minimumRetryDelaySeconds, retryDelaySeconds } from "../../../src/registry/backoff.ts";
import { ensureRegistryRows } from "../../../src/registry/consistency.ts";
import { SyncState } from "../../../src/registry/states.ts";
import {
  claimSyncWork,
  failStuckSyncs,
  findRegistryRows,
  markSynced,
  markSyncFailed,
  requestResync,
  startSync,
} from "../../../src/registry/sync-state.ts";
import { createTestDatabases } from "./databases.ts";
import type { TestDatabases } from "./databases.ts";
import { clockAt, noJitter, setUpType, widgetType } from "./fixtures.ts";

let dbs: TestDatabases;
const type = widgetType();
const at = clockAt();

beforeAll(async () => {
  dbs = await createTestDatabases();
  await setUpType(dbs.primary, dbs.tracking, type);
});
afterAll(async () => {
  await dbs?.drop();
});
beforeEach(async () => {
  await dbs.tracking.query("TRUNCATE cool_widget_registry");
});

async function rowOf(modelId: number) {
  const [row] = await findRegistryRows(dbs.tracking, type, [modelId]);
  if (!row) throw new Error(`no registry row for ${modelId}`);
  return row;
}

async function startedRow(modelId: number, now = at(0)) {
  await ensureRegistryRows(dbs.tracking, type, [modelId]);
  const row = await startSync(dbs.tracking, type, (await rowOf(modelId)).id, { now });
  if (!row) throw new Error("start refused");
  return row;
}

describe("sync transitions", () => {
  it("pending → started sets last_synced_at; started → synced resets failure fields and re-queues verification", async () => {
    const started = await startedRow(1, at(0));
    expect(started.state).toBe(SyncState.started);
    expect(started.lastSyncedAt).toEqual(at(0));
    await dbs.tracking.query(`UPDATE cool_widget_registry SET verification_state = 2, retry_count = 4, last_sync_failure = 'old' WHERE id = $1`, [started.id]);

    expect(await markSynced(dbs.tracking, type, started.id, { now: at(30), missingOnPrimary: true })).toBe(true);
    const synced = await rowOf(1);
    expect(synced).toMatchObject({
      state: SyncState.synced,
      retryCount: 0,
      retryAt: null,
      lastSyncFailure: null,
      lastSyncedAt: at(30),
      missingOnPrimary: true,
      verificationState: 0,
    });
  });

  it("refuses synced and failed unless the row is started", async () => {
    await ensureRegistryRows(dbs.tracking, type, [2]);
    const pending = await rowOf(2);
    expect(await markSynced(dbs.tracking, type, pending.id)).toBe(false);
    expect(await markSyncFailed(dbs.tracking, type, pending.id, { message: "x" })).toBeNull();

    const started = await startSync(dbs.tracking, type, pending.id);
    expect(started).not.toBeNull();
    expect(await startSync(dbs.tracking, type, pending.id)).toBeNull(); // started → started is someone else's copy
    expect(await markSynced(dbs.tracking, type, pending.id)).toBe(true);
    expect(await markSynced(dbs.tracking, type, pending.id)).toBe(false); // synced → synced
    expect(await markSyncFailed(dbs.tracking, type, pending.id, { message: "x" })).toBeNull(); // synced → failed
    expect((await rowOf(2)).state).toBe(SyncState.synced);
    expect(await startSync(dbs.tracking, type, pending.id)).not.toBeNull(); // synced → started (resync) is allowed
  });

  it("keeps a resync requested during the copy: synced is refused and the row stays pending", async () => {
    const started = await startedRow(3);
    expect(await requestResync(dbs.tracking, type, [3])).toBe(1);
    expect(await markSynced(dbs.tracking, type, started.id)).toBe(false);
    expect((await rowOf(3)).state).toBe(SyncState.pending);
    const [claimed] = await claimSyncWork(dbs.tracking, type, { limit: 10 });
    expect(claimed?.modelId).toBe(3);
  });

  it("failed: counts up, backs off by GitLab's formula and truncates the message to 255 characters", async () => {
    const started = await startedRow(4);
    const failed = await markSyncFailed(dbs.tracking, type, started.id, { message: "é".repeat(400), now: at(0), random: noJitter });
    expect(failed?.state).toBe(SyncState.failed);
    expect(failed?.retryCount).toBe(1);
    expect(failed?.retryAt).toEqual(at(retryDelaySeconds(1, 0)));
    expect(failed?.lastSyncFailure).toBe("é".repeat(255));

    const jittered = await startSync(dbs.tracking, type, started.id);
    const again = await markSyncFailed(dbs.tracking, type, jittered!.id, { message: "x", now: at(0), random: () => 0.999 });
    expect(again?.retryCount).toBe(2);
    expect(again?.retryAt).toEqual(at(retryDelaySeconds(2, 29)));
  });

  it("backoff grows with each failure and caps at 1 h, or 4 h when missing on the primary", async () => {
    const started = await startedRow(5);
    const delays: number[] = [];
    for (let i = 0; i < 12; i++) {
      await startSync(dbs.tracking, type, started.id, { now: at(0) });
      const row = await markSyncFailed(dbs.tracking, type, started.id, { message: "boom", now: at(0), random: noJitter });
      delays.push((row!.retryAt!.getTime() - at(0).getTime()) / 1000);
    }
    expect(delays.slice(0, 7)).toEqual([1, 2, 3, 4, 5, 6, 7].map((n) => minimumRetryDelaySeconds(n)));
    for (let i = 1; i < delays.length; i++) expect(delays[i]).toBeGreaterThanOrEqual(delays[i - 1]!);
    expect(delays.at(-1)).toBe(3600);

    await startSync(dbs.tracking, type, started.id);
    const missing = await markSyncFailed(dbs.tracking, type, started.id, { message: "gone", missingOnPrimary: true, now: at(0), random: noJitter });
    expect(missing?.missingOnPrimary).toBe(true);
    expect(missing?.retryAt).toEqual(at(14400)); // 13⁴ + 15 s, capped at 4 h
  });

  it("random jitter from SQL stays within GitLab's bounds", async () => {
    const started = await startedRow(6);
    const row = await markSyncFailed(dbs.tracking, type, started.id, { message: "x", now: at(0) });
    const delay = (row!.retryAt!.getTime() - at(0).getTime()) / 1000;
    expect(delay).toBeGreaterThanOrEqual(retryDelaySeconds(1, 0));
    expect(delay).toBeLessThanOrEqual(retryDelaySeconds(1, 29));
  });
});

describe("claiming", () => {
  it("claims pending rows, then failed rows whose retry is due, never rows still backing off", async () => {
    await ensureRegistryRows(dbs.tracking, type, [10, 11, 12]);
    const due = await startedRow(13);
    await markSyncFailed(dbs.tracking, type, due.id, { message: "x", now: at(-3600), random: noJitter });
    const notDue = await startedRow(14);
    await markSyncFailed(dbs.tracking, type, notDue.id, { message: "x", now: at(0), random: noJitter });

    const claimed = await claimSyncWork(dbs.tracking, type, { limit: 10, now: at(1) });
    expect(claimed.map((r) => r.modelId).sort()).toEqual([10, 11, 12, 13]);
    expect(claimed.every((r) => r.state === SyncState.started && r.lastSyncedAt?.getTime() === at(1).getTime())).toBe(true);
    expect(await claimSyncWork(dbs.tracking, type, { limit: 10, now: at(1) })).toEqual([]);
    expect((await claimSyncWork(dbs.tracking, type, { limit: 10, now: at(3600) })).map((r) => r.modelId)).toEqual([14]);
  });

  it("respects the limit and never hands one row to two concurrent workers", async () => {
    const ids = Array.from({ length: 500 }, (_, i) => 1000 + i);
    await ensureRegistryRows(dbs.tracking, type, ids);
    const workers = await Promise.all(Array.from({ length: 8 }, () => claimSyncWork(dbs.tracking, type, { limit: 40 })));
    const claimed = workers.flatMap((rows) => rows.map((r) => r.modelId));
    for (const rows of workers) expect(rows.length).toBeLessThanOrEqual(40);
    expect(new Set(claimed).size).toBe(claimed.length);
    expect(claimed.length).toBe(320);
  });
});

describe("stuck in started", () => {
  it("returns rows started longer than the timeout (8 h default) to failed with backoff", async () => {
    const old = await startedRow(20, at(0));
    const fresh = await startedRow(21, at(8 * 3600 - 60));
    const failed = await failStuckSyncs(dbs.tracking, type, { now: at(8 * 3600 + 1), random: noJitter });
    expect(failed).toEqual([old.id]);
    expect(await rowOf(20)).toMatchObject({ state: SyncState.failed, retryCount: 1, retryAt: at(8 * 3600 + 1 + retryDelaySeconds(1, 0)) });
    expect((await rowOf(20)).lastSyncFailure).toMatch(/timed out/);
    expect((await rowOf(21)).state).toBe(SyncState.started);
    expect(await failStuckSyncs(dbs.tracking, type, { now: at(8 * 3600 + 1), timeoutSeconds: 30 })).toEqual([fresh.id]);
  });
});
