/**
 * Every completion is fenced by the claim it completes (findings 6 of the safety review): a
 * worker whose claim was superseded (a resync, a re-claim after the stuck timeout, another pod)
 * can neither finish nor fail the newer claim.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  claimChecksumWork,
  failStuckChecksums,
  findChecksumStates,
  markChecksumFailed,
  markChecksumSucceeded,
  requestChecksum,
} from "../../../src/registry/checksum-state.ts";
import { ensureRegistryRows } from "../../../src/registry/consistency.ts";
import { backfillStates } from "../../../src/registry/states-backfill.ts";
import { SyncState, VerificationState } from "../../../src/registry/states.ts";
import { claimSyncWork, failStuckSyncs, findRegistryRows, markSynced, markSyncFailed, requestResync } from "../../../src/registry/sync-state.ts";
import {
  claimVerificationWorkFromPrimary,
  failStuckVerifications,
  markChecksumMismatch,
  markCopyUnusable,
  markVerificationFailed,
  markVerificationSucceeded,
} from "../../../src/registry/verification-state.ts";
import { createTestDatabases, withClient } from "./databases.ts";
import type { TestDatabases } from "./databases.ts";
import { clockAt, insertWidgets, noJitter, setUpType, widgetType } from "./fixtures.ts";

let dbs: TestDatabases;
const type = widgetType();
const at = clockAt();
const sum = (s: string): Buffer => Buffer.from(s);
const HOURS_8 = 8 * 3600;

beforeAll(async () => {
  dbs = await createTestDatabases();
  await setUpType(dbs.primary, dbs.tracking, type);
});
afterAll(async () => {
  await dbs?.drop();
});
beforeEach(async () => {
  await dbs.tracking.query("TRUNCATE cool_widget_registry");
  await dbs.primary.query("TRUNCATE cool_widgets, cool_widget_states");
});

async function registryRow(modelId: number) {
  const [row] = await findRegistryRows(dbs.tracking, type, [modelId]);
  if (!row) throw new Error(`no registry row for ${modelId}`);
  return row;
}

/** One registry row claimed for sync at `now`. */
async function claimedForSync(modelId: number, now: Date) {
  await ensureRegistryRows(dbs.tracking, type, [modelId]);
  const [row] = await claimSyncWork(dbs.tracking, type, { limit: 1, now });
  if (row?.modelId !== modelId) throw new Error("claim failed");
  return row;
}

/** A synced row whose primary has checksum `good`, claimed for verification at `now`. */
async function claimedForVerification(now: Date) {
  const [id] = await insertWidgets(dbs.primary, 1);
  await backfillStates(dbs.primary, type);
  const [state] = await claimChecksumWork(dbs.primary, type, { limit: 1, now: at(0) });
  expect(await markChecksumSucceeded(dbs.primary, type, id!, { claim: state!.claim!, checksum: sum("good") })).toBe(true);
  const sync = await claimedForSync(id!, at(0));
  expect(await markSynced(dbs.tracking, type, sync.id, { claim: sync.syncClaim!, now: at(1) })).toBe(true);
  const {
    rows: [row],
  } = await claimVerificationWorkFromPrimary(dbs.tracking, dbs.primary, type, { limit: 1, now });
  if (!row) throw new Error("verification claim failed");
  return row;
}

describe("sync completions are fenced by the sync claim", () => {
  it("an older claim cannot mark synced (or failed) after a resync and a re-claim; the newer claim can", async () => {
    const old = await claimedForSync(1, at(0));
    expect(old.syncClaim).toBe("2025-01-01T00:00:00.000000");
    expect(await requestResync(dbs.tracking, type, [1])).toBe(1);
    const fresh = await claimedForSync(1, at(10));
    expect(fresh.id).toBe(old.id);
    expect(fresh.syncClaim).not.toBe(old.syncClaim);

    // The first worker finishes its copy of the old data: it must not close the newer claim.
    expect(await markSynced(dbs.tracking, type, old.id, { claim: old.syncClaim! })).toBe(false);
    expect(await markSyncFailed(dbs.tracking, type, old.id, { claim: old.syncClaim!, message: "late failure" })).toBeNull();
    expect(await registryRow(1)).toMatchObject({ state: SyncState.started, syncClaim: fresh.syncClaim, lastSyncFailure: null, retryCount: 0 });

    expect(await markSynced(dbs.tracking, type, fresh.id, { claim: fresh.syncClaim!, now: at(20) })).toBe(true);
    expect((await registryRow(1)).state).toBe(SyncState.synced);
  });

  it("a row stuck in started and claimed again cannot be finished by the worker that was presumed dead", async () => {
    const old = await claimedForSync(2, at(0));
    expect(await failStuckSyncs(dbs.tracking, type, { now: at(HOURS_8 + 1), random: noJitter })).toEqual([old.id]);
    const [fresh] = await claimSyncWork(dbs.tracking, type, { limit: 1, now: at(HOURS_8 + 3600) });
    expect(fresh?.id).toBe(old.id);

    expect(await markSynced(dbs.tracking, type, old.id, { claim: old.syncClaim! })).toBe(false);
    expect(await markSyncFailed(dbs.tracking, type, old.id, { claim: old.syncClaim!, message: "x" })).toBeNull();
    expect((await registryRow(2)).state).toBe(SyncState.started);
    expect(await markSynced(dbs.tracking, type, fresh!.id, { claim: fresh!.syncClaim! })).toBe(true);
  });

  it("the claim token tells apart claims less than a millisecond apart", async () => {
    const old = await claimedForSync(3, at(0));
    // Stands in for a resync and re-claim within the same millisecond (a JS Date could not tell them apart).
    await dbs.tracking.query("UPDATE cool_widget_registry SET last_synced_at = last_synced_at + interval '1 microsecond' WHERE id = $1", [old.id]);
    const fresh = await registryRow(3);
    expect(fresh.syncClaim).toBe("2025-01-01T00:00:00.000001");
    expect(fresh.lastSyncedAt?.getTime()).toBe(old.lastSyncedAt?.getTime());
    expect(await markSynced(dbs.tracking, type, old.id, { claim: old.syncClaim! })).toBe(false);
    expect(await markSynced(dbs.tracking, type, old.id, { claim: fresh.syncClaim! })).toBe(true);
  });

  it("the claim token does not depend on the session's time zone", async () => {
    const claimed = await claimedForSync(4, at(0));
    const token = await withClient(dbs.tracking, async (c) => {
      await c.query("SET TIME ZONE 'Asia/Tokyo'");
      try {
        const [row] = await findRegistryRows(c, type, [4]);
        // A worker in another time zone finishes the claim it holds.
        expect(await markSynced(c, type, claimed.id, { claim: claimed.syncClaim! })).toBe(true);
        return row!.syncClaim;
      } finally {
        await c.query("RESET TIME ZONE");
      }
    });
    expect(token).toBe(claimed.syncClaim);
  });
});

describe("verification completions are fenced by the verification claim", () => {
  it("a verifier that hashed the copy before a resync cannot mark the new copy verified", async () => {
    const old = await claimedForVerification(at(100));
    const modelId = old.modelId;
    // A resync while the verifier hashes: the copy is replaced and verification claimed again.
    expect(await requestResync(dbs.tracking, type, [modelId])).toBe(1);
    const sync = await claimedForSync(modelId, at(110));
    expect(await markSynced(dbs.tracking, type, sync.id, { claim: sync.syncClaim!, now: at(120) })).toBe(true);
    const {
      rows: [fresh],
    } = await claimVerificationWorkFromPrimary(dbs.tracking, dbs.primary, type, { limit: 1, now: at(130) });
    expect(fresh?.id).toBe(old.id);
    expect(fresh!.verificationClaim).not.toBe(old.verificationClaim);

    const claim = old.verificationClaim!;
    expect(await markVerificationSucceeded(dbs.tracking, type, old.id, { claim, checksum: sum("good") })).toBe(false);
    expect(await markVerificationFailed(dbs.tracking, type, old.id, { claim, message: "x" })).toBeNull();
    expect(await markChecksumMismatch(dbs.tracking, type, old.id, { claim, checksum: sum("bad") })).toBeNull();
    expect(await markCopyUnusable(dbs.tracking, type, old.id, { claim, message: "no copy" })).toBeNull();
    expect(await registryRow(modelId)).toMatchObject({ state: SyncState.synced, verificationState: VerificationState.started, checksumMismatch: false });

    expect(await markVerificationSucceeded(dbs.tracking, type, fresh!.id, { claim: fresh!.verificationClaim!, checksum: sum("good") })).toBe(true);
  });

  it("a verification stuck in started and claimed again cannot be finished by the old verifier", async () => {
    const old = await claimedForVerification(at(100));
    expect(await failStuckVerifications(dbs.tracking, type, { now: at(100 + HOURS_8 + 1), random: noJitter })).toEqual([old.id]);
    const {
      rows: [fresh],
    } = await claimVerificationWorkFromPrimary(dbs.tracking, dbs.primary, type, { limit: 1, now: at(100 + HOURS_8 + 3600) });
    expect(fresh?.id).toBe(old.id);
    expect(await markVerificationSucceeded(dbs.tracking, type, old.id, { claim: old.verificationClaim!, checksum: sum("good") })).toBe(false);
    expect(await markCopyUnusable(dbs.tracking, type, old.id, { claim: old.verificationClaim!, message: "gone" })).toBeNull();
    expect((await registryRow(old.modelId)).verificationState).toBe(VerificationState.started);
    expect(await markVerificationSucceeded(dbs.tracking, type, fresh!.id, { claim: fresh!.verificationClaim!, checksum: sum("good") })).toBe(true);
  });
});

describe("primary checksum completions are fenced by the _states claim", () => {
  it("a checksum of older data is not published after requestChecksum and a re-claim", async () => {
    const [id] = await insertWidgets(dbs.primary, 1);
    await backfillStates(dbs.primary, type);
    const [old] = await claimChecksumWork(dbs.primary, type, { limit: 1, now: at(0) });
    expect(old?.claim).toBe("2025-01-01T00:00:00.000000");
    // The data changed while the checksum was computed; another worker claims the new data.
    expect(await requestChecksum(dbs.primary, type, [id!])).toBe(1);
    const [fresh] = await claimChecksumWork(dbs.primary, type, { limit: 1, now: at(5) });
    expect(fresh?.modelId).toBe(id);

    expect(await markChecksumSucceeded(dbs.primary, type, id!, { claim: old!.claim!, checksum: sum("old data") })).toBe(false);
    expect(await markChecksumFailed(dbs.primary, type, id!, { claim: old!.claim!, message: "x" })).toBeNull();
    expect((await findChecksumStates(dbs.primary, type, [id!]))[0]).toMatchObject({ verificationState: VerificationState.started, verificationChecksum: null });

    expect(await markChecksumSucceeded(dbs.primary, type, id!, { claim: fresh!.claim!, checksum: sum("new data") })).toBe(true);
    expect((await findChecksumStates(dbs.primary, type, [id!]))[0]!.verificationChecksum).toEqual(sum("new data"));
  });

  it("a checksum stuck in started and claimed again cannot be finished by the old worker", async () => {
    const [id] = await insertWidgets(dbs.primary, 1);
    await backfillStates(dbs.primary, type);
    const [old] = await claimChecksumWork(dbs.primary, type, { limit: 1, now: at(0) });
    expect(await failStuckChecksums(dbs.primary, type, { now: at(HOURS_8 + 1), random: noJitter })).toEqual([id]);
    const [fresh] = await claimChecksumWork(dbs.primary, type, { limit: 1, now: at(HOURS_8 + 3600) });
    expect(fresh?.modelId).toBe(id);
    expect(await markChecksumSucceeded(dbs.primary, type, id!, { claim: old!.claim!, checksum: sum("x") })).toBe(false);
    expect(await markChecksumSucceeded(dbs.primary, type, id!, { claim: fresh!.claim!, checksum: sum("x") })).toBe(true);
  });
});
