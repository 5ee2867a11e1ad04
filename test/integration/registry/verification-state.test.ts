import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { minimumRetryDelaySeconds, retryDelaySeconds } from "../../../src/registry/backoff.ts";
import {
  claimChecksumWork,
  failStuckChecksums,
  findChecksumStates,
  markChecksumFailed,
  markChecksumSucceeded,
  requestChecksum,
  setVerificationEnabled,
} from "../../../src/registry/checksum-state.ts";
import { ensureRegistryRows } from "../../../src/registry/consistency.ts";
import { backfillStates } from "../../../src/registry/states-backfill.ts";
import { CHECKSUM_MISMATCH_MESSAGE, SyncState, VerificationState } from "../../../src/registry/states.ts";
import { claimSyncWork, findRegistryRows, markSynced, startSync } from "../../../src/registry/sync-state.ts";
import {
  claimVerificationWorkFromPrimary,
  failStuckVerifications,
  markChecksumMismatch,
  markCopyUnusable,
  markVerificationFailed,
  markVerificationSucceeded,
} from "../../../src/registry/verification-state.ts";
import { createTestDatabases } from "./databases.ts";
import type { TestDatabases } from "./databases.ts";
import { clockAt, insertWidgets, noJitter, setUpType, widgetType } from "./fixtures.ts";

let dbs: TestDatabases;
const type = widgetType();
const at = clockAt();
const sum = (s: string): Buffer => Buffer.from(s);

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

/** Primary records checksummed as `checksum`, and synced registry rows for them. */
async function syncedWithPrimaryChecksum(count: number, checksum: Buffer | null): Promise<number[]> {
  const ids = await insertWidgets(dbs.primary, count);
  await backfillStates(dbs.primary, type);
  if (checksum) {
    for (const row of await claimChecksumWork(dbs.primary, type, { limit: count })) {
      await markChecksumSucceeded(dbs.primary, type, row.modelId, { claim: row.claim!, checksum });
    }
  }
  await ensureRegistryRows(dbs.tracking, type, ids);
  for (const row of await claimSyncWork(dbs.tracking, type, { limit: count })) await markSynced(dbs.tracking, type, row.id, { claim: row.syncClaim! });
  return ids;
}

describe("primary checksums (<name>_states)", () => {
  it("pending → started → succeeded, and failed with a growing retry count from a NULL start", async () => {
    const [a, b] = await insertWidgets(dbs.primary, 2);
    expect(await backfillStates(dbs.primary, type)).toMatchObject({ inserted: 2 });
    const claimed = await claimChecksumWork(dbs.primary, type, { limit: 5, now: at(0) });
    expect(claimed.map((r) => [r.modelId, r.verificationState])).toEqual([
      [a, VerificationState.started],
      [b, VerificationState.started],
    ]);
    expect(await claimChecksumWork(dbs.primary, type, { limit: 5 })).toEqual([]);

    const [claimA, claimB] = claimed.map((r) => r.claim!);
    expect(claimA).toBe("2025-01-01T00:00:00.000000");
    expect(await markChecksumSucceeded(dbs.primary, type, a!, { claim: claimA!, checksum: sum("aaa"), now: at(1) })).toBe(true);
    expect(await markChecksumSucceeded(dbs.primary, type, a!, { claim: claimA!, checksum: sum("aaa") })).toBe(false); // not started
    const failed = await markChecksumFailed(dbs.primary, type, b!, { claim: claimB!, message: "unreadable", now: at(1), random: noJitter });
    expect(failed).toMatchObject({ verificationState: VerificationState.failed, verificationRetryCount: 1, verificationRetryAt: at(1 + retryDelaySeconds(1, 0)) });

    const retried = await claimChecksumWork(dbs.primary, type, { limit: 5, now: at(1000) });
    expect(retried.map((r) => r.modelId)).toEqual([b]);
    const again = await markChecksumFailed(dbs.primary, type, b!, { claim: retried[0]!.claim!, message: "unreadable", now: at(1000), random: noJitter });
    expect(again?.verificationRetryCount).toBe(2);

    expect(await requestChecksum(dbs.primary, type, [a!])).toBe(1);
    const [state] = await findChecksumStates(dbs.primary, type, [a!]);
    expect(state).toMatchObject({ verificationState: VerificationState.pending, verificationChecksum: null });
  });

  it("stuck checksum work returns to failed", async () => {
    const [a] = await insertWidgets(dbs.primary, 1);
    await backfillStates(dbs.primary, type);
    await claimChecksumWork(dbs.primary, type, { limit: 1, now: at(0) });
    expect(await failStuckChecksums(dbs.primary, type, { now: at(3600) })).toEqual([]);
    expect(await failStuckChecksums(dbs.primary, type, { now: at(8 * 3600 + 1) })).toEqual([a]);
  });
});

describe("secondary verification (registry)", () => {
  it("only claims synced rows whose primary has a checksum; the others stay pending", async () => {
    const withSum = await syncedWithPrimaryChecksum(2, sum("good"));
    const withoutSum = await syncedWithPrimaryChecksum(2, null);
    const { rows: claimed } = await claimVerificationWorkFromPrimary(dbs.tracking, dbs.primary, type, { limit: 10, now: at(0) });
    expect(claimed.map((r) => r.modelId).sort()).toEqual(withSum);
    expect(claimed.every((r) => r.primaryChecksum.equals(sum("good")) && r.verificationState === VerificationState.started)).toBe(true);
    for (const id of withoutSum) expect((await registryRow(id)).verificationState).toBe(VerificationState.pending);
  });

  it("rows without a primary checksum never block the queue: 450 of them, and the rows after them are still claimed", async () => {
    const blocked = await syncedWithPrimaryChecksum(450, null);
    const ready = await syncedWithPrimaryChecksum(5, null);
    // The primary checksummed only the last five (their registry ids are above all 450 others).
    await dbs.primary.query("UPDATE cool_widget_states SET verification_state = 2, verification_checksum = $2 WHERE cool_widget_id = ANY($1::bigint[])", [ready, sum("good")]);

    const first = await claimVerificationWorkFromPrimary(dbs.tracking, dbs.primary, type, { limit: 2, now: at(0) });
    expect(first.rows.map((r) => r.modelId)).toEqual(ready.slice(0, 2));
    expect(first.exhausted).toBe(false);
    const claimed = [...first.rows];
    let afterId = first.afterId;
    for (let calls = 0; calls < 10; calls++) {
      const next = await claimVerificationWorkFromPrimary(dbs.tracking, dbs.primary, type, { limit: 2, afterId, now: at(0) });
      claimed.push(...next.rows);
      afterId = next.afterId;
      if (next.exhausted) break;
    }
    expect(claimed.map((r) => r.modelId)).toEqual(ready);
    expect((await claimVerificationWorkFromPrimary(dbs.tracking, dbs.primary, type, { limit: 2, afterId, now: at(0) })).exhausted).toBe(true);
    for (const id of [blocked[0]!, blocked[449]!]) expect((await registryRow(id)).verificationState).toBe(VerificationState.pending);
    // A new run starts again from the lowest id: the stepped-over rows are looked at again once their checksum exists.
    await dbs.primary.query("UPDATE cool_widget_states SET verification_state = 2, verification_checksum = $2 WHERE cool_widget_id = $1", [blocked[0], sum("good")]);
    expect((await claimVerificationWorkFromPrimary(dbs.tracking, dbs.primary, type, { limit: 2, now: at(0) })).rows.map((r) => r.modelId)).toEqual([blocked[0]]);
  });

  it("a missing or damaged copy puts the row back into sync at once, with checksum_mismatch for a repair", async () => {
    const [id] = await syncedWithPrimaryChecksum(1, sum("good"));
    const {
      rows: [claimed],
    } = await claimVerificationWorkFromPrimary(dbs.tracking, dbs.primary, type, { limit: 1, now: at(0) });
    const row = await markCopyUnusable(dbs.tracking, type, claimed!.id, { claim: claimed!.verificationClaim!, message: "no object at key k", now: at(0), random: noJitter });
    expect(row).toMatchObject({
      state: SyncState.pending,
      retryAt: null,
      checksumMismatch: true,
      verificationChecksumMismatched: null,
      verificationState: VerificationState.failed,
      verificationFailure: "no object at key k",
      lastSyncFailure: "no object at key k",
      verificationRetryCount: 1,
    });
    // The sync claims it straight away (no backoff), and a successful copy clears verification back to pending.
    const [resync] = await claimSyncWork(dbs.tracking, type, { limit: 1, now: at(0) });
    expect(resync).toMatchObject({ modelId: id, checksumMismatch: true });
    expect(await markSynced(dbs.tracking, type, resync!.id, { claim: resync!.syncClaim!, now: at(1) })).toBe(true);
    expect((await registryRow(id!)).verificationState).toBe(VerificationState.pending);
    // Only from a verification in progress: a second report with the same claim changes nothing.
    expect(await markCopyUnusable(dbs.tracking, type, claimed!.id, { claim: claimed!.verificationClaim!, message: "again" })).toBeNull();
  });

  it("started → succeeded stores the checksum and resets the retry count", async () => {
    const [id] = await syncedWithPrimaryChecksum(1, sum("good"));
    const {
      rows: [claimed],
    } = await claimVerificationWorkFromPrimary(dbs.tracking, dbs.primary, type, { limit: 1 });
    const claim = claimed!.verificationClaim!;
    await dbs.tracking.query("UPDATE cool_widget_registry SET verification_retry_count = 3 WHERE id = $1", [claimed!.id]);
    expect(await markVerificationSucceeded(dbs.tracking, type, claimed!.id, { claim, checksum: sum("good"), now: at(5) })).toBe(true);
    expect(await registryRow(id!)).toMatchObject({
      verificationState: VerificationState.succeeded,
      verificationChecksum: sum("good"),
      verifiedAt: at(5),
      verificationRetryCount: 0,
      checksumMismatch: false,
    });
    // Forbidden: succeeded → succeeded / failed / mismatch without a new claim.
    expect(await markVerificationSucceeded(dbs.tracking, type, claimed!.id, { claim, checksum: sum("good") })).toBe(false);
    expect(await markVerificationFailed(dbs.tracking, type, claimed!.id, { claim, message: "x" })).toBeNull();
    expect(await markChecksumMismatch(dbs.tracking, type, claimed!.id, { claim, checksum: sum("bad") })).toBeNull();
  });

  it("refuses verification transitions on rows that are not synced", async () => {
    await ensureRegistryRows(dbs.tracking, type, [77]);
    const row = await registryRow(77);
    await dbs.tracking.query("UPDATE cool_widget_registry SET verification_state = 1, verification_started_at = $2 WHERE id = $1", [row.id, at(0)]);
    const claim = (await registryRow(77)).verificationClaim!;
    expect(claim).not.toBeNull();
    expect(await markVerificationSucceeded(dbs.tracking, type, row.id, { claim, checksum: sum("x") })).toBe(false);
    expect(await markChecksumMismatch(dbs.tracking, type, row.id, { claim, checksum: sum("x") })).toBeNull();
  });

  it("failed verification backs off and is retried when due", async () => {
    const [id] = await syncedWithPrimaryChecksum(1, sum("good"));
    const {
      rows: [claimed],
    } = await claimVerificationWorkFromPrimary(dbs.tracking, dbs.primary, type, { limit: 1, now: at(0) });
    const failed = await markVerificationFailed(dbs.tracking, type, claimed!.id, { claim: claimed!.verificationClaim!, message: "read error", now: at(0), random: noJitter });
    expect(failed).toMatchObject({ verificationState: VerificationState.failed, verificationRetryCount: 1, verificationRetryAt: at(16) });
    expect((await claimVerificationWorkFromPrimary(dbs.tracking, dbs.primary, type, { limit: 1, now: at(10) })).rows).toEqual([]);
    expect((await claimVerificationWorkFromPrimary(dbs.tracking, dbs.primary, type, { limit: 1, now: at(16) })).rows.map((r) => r.modelId)).toEqual([id]);
  });

  it("mismatch fails verification and sync; repeated mismatches grow the counts 1, 2, 3 and the delays (GitLab's bug fixed)", async () => {
    const [id] = await syncedWithPrimaryChecksum(1, sum("primary"));
    const counts: number[] = [];
    const syncDelays: number[] = [];
    let now = 0;
    for (let round = 0; round < 3; round++) {
      const {
        rows: [claimed],
      } = await claimVerificationWorkFromPrimary(dbs.tracking, dbs.primary, type, { limit: 1, now: at(now) });
      expect(claimed?.modelId).toBe(id);
      const row = await markChecksumMismatch(dbs.tracking, type, claimed!.id, { claim: claimed!.verificationClaim!, checksum: sum("secondary"), now: at(now), random: noJitter });
      expect(row).toMatchObject({
        state: SyncState.failed,
        verificationState: VerificationState.failed,
        checksumMismatch: true,
        verificationChecksumMismatched: sum("secondary"),
        verificationFailure: CHECKSUM_MISMATCH_MESSAGE,
      });
      counts.push(row!.verificationRetryCount);
      syncDelays.push((row!.retryAt!.getTime() - at(now).getTime()) / 1000);
      // The resync: claimed when due, copied again, back to verification pending.
      now += syncDelays.at(-1)!;
      const [resync] = await claimSyncWork(dbs.tracking, type, { limit: 1, now: at(now) });
      expect(resync?.modelId).toBe(id);
      expect(await markSynced(dbs.tracking, type, resync!.id, { claim: resync!.syncClaim!, now: at(now) })).toBe(true);
      expect((await registryRow(id!)).verificationState).toBe(VerificationState.pending);
    }
    expect(counts).toEqual([1, 2, 3]);
    expect(syncDelays).toEqual([1, 2, 3].map((n) => minimumRetryDelaySeconds(n)));
    expect(syncDelays[0]!).toBeLessThan(syncDelays[1]!);
    expect(syncDelays[1]!).toBeLessThan(syncDelays[2]!);
  });

  it("stuck verification returns to failed", async () => {
    await syncedWithPrimaryChecksum(1, sum("good"));
    const {
      rows: [claimed],
    } = await claimVerificationWorkFromPrimary(dbs.tracking, dbs.primary, type, { limit: 1, now: at(0) });
    expect(await failStuckVerifications(dbs.tracking, type, { now: at(8 * 3600 - 1) })).toEqual([]);
    expect(await failStuckVerifications(dbs.tracking, type, { now: at(8 * 3600 + 1) })).toEqual([claimed!.id]);
    expect((await registryRow(claimed!.modelId)).verificationFailure).toMatch(/timed out/);
  });

  it("verification switched off marks rows disabled on both sides; a resync keeps them disabled", async () => {
    const ids = await syncedWithPrimaryChecksum(3, sum("good"));
    expect(await setVerificationEnabled(dbs.tracking, type, "secondary", false, { batchSize: 2 })).toBe(3);
    expect(await setVerificationEnabled(dbs.primary, type, "primary", false)).toBe(3);
    expect((await claimVerificationWorkFromPrimary(dbs.tracking, dbs.primary, type, { limit: 10 })).rows).toEqual([]);
    const [first] = await findRegistryRows(dbs.tracking, type, [ids[0]!]);
    const resync = await startSync(dbs.tracking, type, first!.id);
    expect(await markSynced(dbs.tracking, type, first!.id, { claim: resync!.syncClaim! })).toBe(true);
    expect((await registryRow(ids[0]!)).verificationState).toBe(VerificationState.disabled);

    expect(await setVerificationEnabled(dbs.tracking, type, "secondary", true)).toBe(3);
    expect((await registryRow(ids[0]!)).verificationState).toBe(VerificationState.pending);
  });
});
