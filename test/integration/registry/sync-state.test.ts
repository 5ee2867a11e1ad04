import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { minimumRetryDelaySeconds, retryDelaySeconds } from "../../../src/registry/backoff.ts";
import { ensureRegistryRows } from "../../../src/registry/consistency.ts";
import { SyncState } from "../../../src/registry/states.ts";
import {
  DEFAULT_MISSING_RECHECK_SECONDS,
  claimSyncWork,
  failStuckSyncs,
  findRegistryRows,
  markSynced,
  markSyncFailed,
  requestResync,
  requestResyncOfOldest,
  requeueMissingOnPrimary,
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

    expect(await markSynced(dbs.tracking, type, started.id, { claim: started.syncClaim!, now: at(30), missingOnPrimary: true })).toBe(true);
    const synced = await rowOf(1);
    expect(synced).toMatchObject({
      state: SyncState.synced,
      retryCount: 0,
      // Missing on the primary: retry_at holds the re-check time (default 1 h), see requeueMissingOnPrimary.
      retryAt: at(30 + DEFAULT_MISSING_RECHECK_SECONDS),
      lastSyncFailure: null,
      lastSyncedAt: at(30),
      missingOnPrimary: true,
      verificationState: 0,
    });
  });

  it("refuses synced and failed unless the row is started", async () => {
    await ensureRegistryRows(dbs.tracking, type, [2]);
    const pending = await rowOf(2);
    expect(pending.syncClaim).toBeNull();
    const anyClaim = "2025-01-01T00:00:00.000000";
    expect(await markSynced(dbs.tracking, type, pending.id, { claim: anyClaim })).toBe(false);
    expect(await markSyncFailed(dbs.tracking, type, pending.id, { claim: anyClaim, message: "x" })).toBeNull();

    const started = await startSync(dbs.tracking, type, pending.id);
    expect(started).not.toBeNull();
    const claim = started!.syncClaim!;
    expect(await startSync(dbs.tracking, type, pending.id)).toBeNull(); // started → started is someone else's copy
    expect(await markSynced(dbs.tracking, type, pending.id, { claim })).toBe(true);
    expect(await markSynced(dbs.tracking, type, pending.id, { claim })).toBe(false); // synced → synced
    expect(await markSyncFailed(dbs.tracking, type, pending.id, { claim, message: "x" })).toBeNull(); // synced → failed
    expect((await rowOf(2)).state).toBe(SyncState.synced);
    expect(await startSync(dbs.tracking, type, pending.id)).not.toBeNull(); // synced → started (resync) is allowed
  });

  it("keeps a resync requested during the copy: synced is refused and the row stays pending", async () => {
    const started = await startedRow(3);
    expect(await requestResync(dbs.tracking, type, [3])).toBe(1);
    expect(await markSynced(dbs.tracking, type, started.id, { claim: started.syncClaim! })).toBe(false);
    expect((await rowOf(3)).state).toBe(SyncState.pending);
    const [claimed] = await claimSyncWork(dbs.tracking, type, { limit: 10 });
    expect(claimed?.modelId).toBe(3);
  });

  it("failed: counts up, backs off by GitLab's formula and truncates the message to 255 characters", async () => {
    const started = await startedRow(4);
    const failed = await markSyncFailed(dbs.tracking, type, started.id, { claim: started.syncClaim!, message: "é".repeat(400), now: at(0), random: noJitter });
    expect(failed?.state).toBe(SyncState.failed);
    expect(failed?.retryCount).toBe(1);
    expect(failed?.retryAt).toEqual(at(retryDelaySeconds(1, 0)));
    expect(failed?.lastSyncFailure).toBe("é".repeat(255));

    const jittered = await startSync(dbs.tracking, type, started.id);
    const again = await markSyncFailed(dbs.tracking, type, jittered!.id, { claim: jittered!.syncClaim!, message: "x", now: at(0), random: () => 0.999 });
    expect(again?.retryCount).toBe(2);
    expect(again?.retryAt).toEqual(at(retryDelaySeconds(2, 29)));
  });

  it("backoff grows with each failure and caps at 1 h, or 4 h when missing on the primary", async () => {
    const started = await startedRow(5);
    const delays: number[] = [];
    let claim = started.syncClaim!;
    for (let i = 0; i < 12; i++) {
      if (i > 0) claim = (await startSync(dbs.tracking, type, started.id, { now: at(0) }))!.syncClaim!;
      const row = await markSyncFailed(dbs.tracking, type, started.id, { claim, message: "boom", now: at(0), random: noJitter });
      delays.push((row!.retryAt!.getTime() - at(0).getTime()) / 1000);
    }
    expect(delays.slice(0, 7)).toEqual([1, 2, 3, 4, 5, 6, 7].map((n) => minimumRetryDelaySeconds(n)));
    for (let i = 1; i < delays.length; i++) expect(delays[i]).toBeGreaterThanOrEqual(delays[i - 1]!);
    expect(delays.at(-1)).toBe(3600);

    const last = await startSync(dbs.tracking, type, started.id);
    const missing = await markSyncFailed(dbs.tracking, type, started.id, { claim: last!.syncClaim!, message: "gone", missingOnPrimary: true, now: at(0), random: noJitter });
    expect(missing?.missingOnPrimary).toBe(true);
    expect(missing?.retryAt).toEqual(at(14400)); // 13⁴ + 15 s, capped at 4 h
  });

  it("random jitter from SQL stays within GitLab's bounds", async () => {
    const started = await startedRow(6);
    const row = await markSyncFailed(dbs.tracking, type, started.id, { claim: started.syncClaim!, message: "x", now: at(0) });
    const delay = (row!.retryAt!.getTime() - at(0).getTime()) / 1000;
    expect(delay).toBeGreaterThanOrEqual(retryDelaySeconds(1, 0));
    expect(delay).toBeLessThanOrEqual(retryDelaySeconds(1, 29));
  });
});

describe("missing on the primary and refreshes", () => {
  it("requeueMissingOnPrimary makes rows synced as missing pending once their re-check time has come", async () => {
    const missing = await startedRow(30, at(0));
    expect(await markSynced(dbs.tracking, type, missing.id, { claim: missing.syncClaim!, missingOnPrimary: true, recheckAfterSeconds: 600, now: at(0) })).toBe(true);
    const present = await startedRow(31, at(0));
    expect(await markSynced(dbs.tracking, type, present.id, { claim: present.syncClaim!, now: at(0) })).toBe(true);
    expect((await rowOf(30)).retryAt).toEqual(at(600));
    expect((await rowOf(31)).retryAt).toBeNull();

    expect(await requeueMissingOnPrimary(dbs.tracking, type, { now: at(599) })).toBe(0);
    expect((await rowOf(30)).state).toBe(SyncState.synced);
    expect(await requeueMissingOnPrimary(dbs.tracking, type, { now: at(600) })).toBe(1);
    expect(await rowOf(30)).toMatchObject({ state: SyncState.pending, retryAt: null, retryCount: 0 });
    expect((await rowOf(31)).state).toBe(SyncState.synced);
    expect((await claimSyncWork(dbs.tracking, type, { limit: 10, now: at(600) })).map((r) => r.modelId)).toEqual([30]);
  });

  it("requestResyncOfOldest refreshes at most `limit` synced rows older than the age, oldest first", async () => {
    for (const [modelId, syncedAt] of [[40, 0], [41, 100], [42, 200], [43, 5000]] as const) {
      const row = await startedRow(modelId, at(syncedAt));
      expect(await markSynced(dbs.tracking, type, row.id, { claim: row.syncClaim!, now: at(syncedAt) })).toBe(true);
    }
    expect(await requestResyncOfOldest(dbs.tracking, type, 3600, { limit: 2, now: at(5100) })).toBe(2);
    const states = await Promise.all([40, 41, 42, 43].map(async (m) => (await rowOf(m)).state));
    expect(states).toEqual([SyncState.pending, SyncState.pending, SyncState.synced, SyncState.synced]);
  });
});

describe("claiming", () => {
  it("claims pending rows, then failed rows whose retry is due, never rows still backing off", async () => {
    await ensureRegistryRows(dbs.tracking, type, [10, 11, 12]);
    const due = await startedRow(13);
    await markSyncFailed(dbs.tracking, type, due.id, { claim: due.syncClaim!, message: "x", now: at(-3600), random: noJitter });
    const notDue = await startedRow(14);
    await markSyncFailed(dbs.tracking, type, notDue.id, { claim: notDue.syncClaim!, message: "x", now: at(0), random: noJitter });

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
