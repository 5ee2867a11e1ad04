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
import { claimSyncWork, findRegistryRows, markSynced } from "../../../src/registry/sync-state.ts";
import {
  claimVerificationWorkFromPrimary,
  failStuckVerifications,
  markChecksumMismatch,
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
      await markChecksumSucceeded(dbs.primary, type, row.modelId, { checksum });
    }
  }
  await ensureRegistryRows(dbs.tracking, type, ids);
  for (const row of await claimSyncWork(dbs.tracking, type, { limit: count })) await markSynced(dbs.tracking, type, row.id);
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

    expect(await markChecksumSucceeded(dbs.primary, type, a!, { checksum: sum("aaa"), now: at(1) })).toBe(true);
    expect(await markChecksumSucceeded(dbs.primary, type, a!, { checksum: sum("aaa") })).toBe(false); // not started
    const failed = await markChecksumFailed(dbs.primary, type, b!, { message: "unreadable", now: at(1), random: noJitter });
    expect(failed).toMatchObject({ verificationState: VerificationState.failed, verificationRetryCount: 1, verificationRetryAt: at(1 + retryDelaySeconds(1, 0)) });

    const retried = await claimChecksumWork(dbs.primary, type, { limit: 5, now: at(1000) });
    expect(retried.map((r) => r.modelId)).toEqual([b]);
    const again = await markChecksumFailed(dbs.primary, type, b!, { message: "unreadable", now: at(1000), random: noJitter });
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
    const claimed = await claimVerificationWorkFromPrimary(dbs.tracking, dbs.primary, type, { limit: 10, now: at(0) });
    expect(claimed.map((r) => r.modelId).sort()).toEqual(withSum);
    expect(claimed.every((r) => r.primaryChecksum.equals(sum("good")) && r.verificationState === VerificationState.started)).toBe(true);
    for (const id of withoutSum) expect((await registryRow(id)).verificationState).toBe(VerificationState.pending);
  });

  it("started → succeeded stores the checksum and resets the retry count", async () => {
    const [id] = await syncedWithPrimaryChecksum(1, sum("good"));
    const [claimed] = await claimVerificationWorkFromPrimary(dbs.tracking, dbs.primary, type, { limit: 1 });
    await dbs.tracking.query("UPDATE cool_widget_registry SET verification_retry_count = 3 WHERE id = $1", [claimed!.id]);
    expect(await markVerificationSucceeded(dbs.tracking, type, claimed!.id, { checksum: sum("good"), now: at(5) })).toBe(true);
    expect(await registryRow(id!)).toMatchObject({
      verificationState: VerificationState.succeeded,
      verificationChecksum: sum("good"),
      verifiedAt: at(5),
      verificationRetryCount: 0,
      checksumMismatch: false,
    });
    // Forbidden: succeeded → succeeded / failed / mismatch without a new claim.
    expect(await markVerificationSucceeded(dbs.tracking, type, claimed!.id, { checksum: sum("good") })).toBe(false);
    expect(await markVerificationFailed(dbs.tracking, type, claimed!.id, { message: "x" })).toBeNull();
    expect(await markChecksumMismatch(dbs.tracking, type, claimed!.id, { checksum: sum("bad") })).toBeNull();
  });

  it("refuses verification transitions on rows that are not synced", async () => {
    await ensureRegistryRows(dbs.tracking, type, [77]);
    const row = await registryRow(77);
    await dbs.tracking.query("UPDATE cool_widget_registry SET verification_state = 1 WHERE id = $1", [row.id]);
    expect(await markVerificationSucceeded(dbs.tracking, type, row.id, { checksum: sum("x") })).toBe(false);
    expect(await markChecksumMismatch(dbs.tracking, type, row.id, { checksum: sum("x") })).toBeNull();
  });

  it("failed verification backs off and is retried when due", async () => {
    const [id] = await syncedWithPrimaryChecksum(1, sum("good"));
    const [claimed] = await claimVerificationWorkFromPrimary(dbs.tracking, dbs.primary, type, { limit: 1, now: at(0) });
    const failed = await markVerificationFailed(dbs.tracking, type, claimed!.id, { message: "read error", now: at(0), random: noJitter });
    expect(failed).toMatchObject({ verificationState: VerificationState.failed, verificationRetryCount: 1, verificationRetryAt: at(16) });
    expect(await claimVerificationWorkFromPrimary(dbs.tracking, dbs.primary, type, { limit: 1, now: at(10) })).toEqual([]);
    expect((await claimVerificationWorkFromPrimary(dbs.tracking, dbs.primary, type, { limit: 1, now: at(16) })).map((r) => r.modelId)).toEqual([id]);
  });

  it("mismatch fails verification and sync; repeated mismatches grow the counts 1, 2, 3 and the delays (GitLab's bug fixed)", async () => {
    const [id] = await syncedWithPrimaryChecksum(1, sum("primary"));
    const counts: number[] = [];
    const syncDelays: number[] = [];
    let now = 0;
    for (let round = 0; round < 3; round++) {
      const [claimed] = await claimVerificationWorkFromPrimary(dbs.tracking, dbs.primary, type, { limit: 1, now: at(now) });
      expect(claimed?.modelId).toBe(id);
      const row = await markChecksumMismatch(dbs.tracking, type, claimed!.id, { checksum: sum("secondary"), now: at(now), random: noJitter });
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
      expect(await markSynced(dbs.tracking, type, resync!.id, { now: at(now) })).toBe(true);
      expect((await registryRow(id!)).verificationState).toBe(VerificationState.pending);
    }
    expect(counts).toEqual([1, 2, 3]);
    expect(syncDelays).toEqual([1, 2, 3].map((n) => minimumRetryDelaySeconds(n)));
    expect(syncDelays[0]!).toBeLessThan(syncDelays[1]!);
    expect(syncDelays[1]!).toBeLessThan(syncDelays[2]!);
  });

  it("stuck verification returns to failed", async () => {
    await syncedWithPrimaryChecksum(1, sum("good"));
    const [claimed] = await claimVerificationWorkFromPrimary(dbs.tracking, dbs.primary, type, { limit: 1, now: at(0) });
    expect(await failStuckVerifications(dbs.tracking, type, { now: at(8 * 3600 - 1) })).toEqual([]);
    expect(await failStuckVerifications(dbs.tracking, type, { now: at(8 * 3600 + 1) })).toEqual([claimed!.id]);
    expect((await registryRow(claimed!.modelId)).verificationFailure).toMatch(/timed out/);
  });

  it("verification switched off marks rows disabled on both sides; a resync keeps them disabled", async () => {
    const ids = await syncedWithPrimaryChecksum(3, sum("good"));
    expect(await setVerificationEnabled(dbs.tracking, type, "secondary", false, { batchSize: 2 })).toBe(3);
    expect(await setVerificationEnabled(dbs.primary, type, "primary", false)).toBe(3);
    expect(await claimVerificationWorkFromPrimary(dbs.tracking, dbs.primary, type, { limit: 10 })).toEqual([]);
    const [first] = await findRegistryRows(dbs.tracking, type, [ids[0]!]);
    await dbs.tracking.query("UPDATE cool_widget_registry SET state = 1 WHERE id = $1", [first!.id]);
    await markSynced(dbs.tracking, type, first!.id);
    expect((await registryRow(ids[0]!)).verificationState).toBe(VerificationState.disabled);

    expect(await setVerificationEnabled(dbs.tracking, type, "secondary", true)).toBe(3);
    expect((await registryRow(ids[0]!)).verificationState).toBe(VerificationState.pending);
  });
});
