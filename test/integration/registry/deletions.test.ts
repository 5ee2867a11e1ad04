/**
 * Deletions on a secondary need evidence (finding 1 of the safety review): the consistency worker
 * (src/workers/consistency.ts) run in-process against real PostgreSQL, with a replicator that
 * only records which copies it was asked to remove.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { ReplicableTypeSpec } from "../../../src/api/v1alpha1/types.generated.ts";
import { typeRuntimeConfig } from "../../../src/strategies/type-config.ts";
import { SYNC_EVERYTHING } from "../../../src/registry/config.ts";
import { registryConsistencyBatches } from "../../../src/registry/consistency.ts";
import {
  CONSISTENCY_PASSES_TABLE,
  DELETION_CANDIDATES_TABLE,
  DELETION_HOLDS_TABLE,
  currentPass,
  deletionHold,
  recordPassBatch,
  releaseDeletionHold,
  walkConsistencyPass,
} from "../../../src/registry/deletions.ts";
import { HEARTBEAT_TABLE, writeHeartbeat } from "../../../src/registry/heartbeat.ts";
import { recordLocation, REPLICAS_TABLE } from "../../../src/registry/replicas.ts";
import { ensureTrackingSideTables, PRIMARY_IDENTITIES_TABLE } from "../../../src/registry/side-tables.ts";
import type { Replicator } from "../../../src/strategies/replicator.ts";
import { createLogger } from "../../../src/util/log.ts";
import type { WorkerContext } from "../../../src/workers/context.ts";
import { runConsistency } from "../../../src/workers/consistency.ts";
import { HoldReason } from "../../../src/workers/deletion-policy.ts";
import { createTestDatabases, dropHeartbeat } from "./databases.ts";
import type { TestDatabases } from "./databases.ts";
import { insertWidgets, setUpType } from "./fixtures.ts";

let dbs: TestDatabases;
const PRIMARY = "london";
const spec: ReplicableTypeSpec = {
  name: "cool_widget",
  strategy: "blob",
  source: { table: "cool_widgets", objectKey: { template: "cool_widgets/{id}" }, namespaceColumn: "namespace_id" },
};
const log = createLogger({ name: "deletions-test", level: "silent" });
/** Locations the worker asked the replicator to remove, in order. */
let removed: string[] = [];

const replicator: Replicator = {
  columns: [],
  preflight: async () => undefined,
  checksumPrimary: async () => {
    throw new Error("not used by consistency");
  },
  sync: async () => {
    throw new Error("not used by consistency");
  },
  checksumSecondary: async () => {
    throw new Error("not used by consistency");
  },
  removeCopy: async (location) => {
    removed.push(location);
  },
  close: async () => undefined,
};

interface RunOptions {
  deletion?: ReplicableTypeSpec["deletion"];
  batchSize?: number;
  maxRunMs?: number;
  signal?: AbortSignal;
}

function context(opts: RunOptions = {}): WorkerContext {
  const type = typeRuntimeConfig({
    ...spec,
    deletion: opts.deletion ?? { gracePeriod: "0s" },
    batchSizes: { consistency: opts.batchSize ?? 1000 },
  });
  return {
    type,
    siteName: "tokyo",
    primarySiteName: PRIMARY,
    maxReplicationLagSeconds: 600,
    selectiveSync: SYNC_EVERYTHING,
    concurrency: 4,
    primaryDb: dbs.primary,
    trackingDb: dbs.tracking,
    replicator,
    log,
    maxRunMs: opts.maxRunMs ?? 60_000,
    signal: opts.signal ?? new AbortController().signal,
  };
}

const pass = (opts: RunOptions = {}) => runConsistency(context(opts));

beforeAll(async () => {
  dbs = await createTestDatabases();
  await setUpType(dbs.primary, dbs.tracking, typeRuntimeConfig(spec).schema);
  await ensureTrackingSideTables(dbs.tracking);
});
afterAll(async () => {
  await dbs?.drop();
});
beforeEach(async () => {
  removed = [];
  await dbs.tracking.query(`TRUNCATE cool_widget_registry, ${REPLICAS_TABLE}, ${CONSISTENCY_PASSES_TABLE}, ${DELETION_CANDIDATES_TABLE}, ${DELETION_HOLDS_TABLE}`);
  await dbs.primary.query("TRUNCATE cool_widgets, cool_widget_states");
  // Each test starts a new primary database identity, so the pin the secondary took from the
  // previous test's identity goes too; otherwise every pass would hold as ReplicaUnproven.
  await dbs.tracking.query(`TRUNCATE ${PRIMARY_IDENTITIES_TABLE}`);
  await dropHeartbeat(dbs.primary);
  await writeHeartbeat(dbs.primary, PRIMARY);
});

/** `count` primary records, replicated: registry rows from a complete pass, and a location each. */
async function replicated(count: number): Promise<number[]> {
  const ids = await insertWidgets(dbs.primary, count);
  const first = await pass();
  expect(first).toMatchObject({ claimed: expect.any(Number), deleted: 0 });
  for (const id of ids) await recordLocation(dbs.tracking, "cool_widget", id, `cool_widgets/${id}`);
  return ids;
}

async function deleteOnPrimary(ids: readonly number[]): Promise<void> {
  await dbs.primary.query("DELETE FROM cool_widgets WHERE id = ANY($1::bigint[])", [ids]);
}

async function registryIds(): Promise<number[]> {
  const { rows } = await dbs.tracking.query<{ id: string }>("SELECT cool_widget_id AS id FROM cool_widget_registry ORDER BY 1");
  return rows.map((r) => Number(r.id));
}

async function candidateIds(): Promise<number[]> {
  const { rows } = await dbs.tracking.query<{ id: string }>(`SELECT model_id AS id FROM ${DELETION_CANDIDATES_TABLE} ORDER BY 1`);
  return rows.map((r) => Number(r.id));
}

const without = (all: readonly number[], gone: readonly number[]) => all.filter((id) => !gone.includes(id));

describe("deletion evidence", () => {
  it("one pass never deletes; the second pass (grace 0s) deletes the copy, the registry row and the evidence", async () => {
    const ids = await replicated(5);
    const gone = ids[2]!;
    await deleteOnPrimary([gone]);

    const first = await pass();
    expect(first.deleted).toBe(0);
    expect(removed).toEqual([]);
    expect(await registryIds()).toEqual(ids);
    expect(await candidateIds()).toEqual([gone]);

    const second = await pass();
    expect(second.deleted).toBe(1);
    expect(removed).toEqual([`cool_widgets/${gone}`]);
    expect(await registryIds()).toEqual(without(ids, [gone]));
    expect(await candidateIds()).toEqual([]);
    const { rows } = await dbs.tracking.query(`SELECT model_id FROM ${REPLICAS_TABLE} WHERE model_id = $1`, [gone]);
    expect(rows).toEqual([]);
  });

  it("respects the grace period between the two sightings", async () => {
    const ids = await replicated(5);
    const gone = ids[0]!;
    await deleteOnPrimary([gone]);
    for (let i = 0; i < 3; i++) expect((await pass({ deletion: { gracePeriod: "1h" } })).deleted).toBe(0);
    expect(removed).toEqual([]);
    expect(await registryIds()).toEqual(ids);
    expect(await candidateIds()).toEqual([gone]);

    // Stands in for time passing: the first sighting is now two hours old.
    await dbs.tracking.query(`UPDATE ${DELETION_CANDIDATES_TABLE} SET first_seen_at = first_seen_at - interval '2 hours'`);
    expect((await pass({ deletion: { gracePeriod: "1h" } })).deleted).toBe(1);
    expect(removed).toEqual([`cool_widgets/${gone}`]);
    expect(await registryIds()).toEqual(without(ids, [gone]));
  });

  it("a record that comes back before the second pass is not deleted, and its evidence is dropped", async () => {
    const ids = await replicated(4);
    const back = ids[1]!;
    await deleteOnPrimary([back]);
    expect((await pass()).deleted).toBe(0);
    expect(await candidateIds()).toEqual([back]);
    // E.g. a replica that briefly missed rows, or a selective-sync change undone.
    await dbs.primary.query("INSERT INTO cool_widgets (id, repository_storage) VALUES ($1, 'default')", [back]);
    expect((await pass()).deleted).toBe(0);
    expect((await pass()).deleted).toBe(0);
    expect(removed).toEqual([]);
    expect(await registryIds()).toEqual(ids);
    expect(await candidateIds()).toEqual([]);
  });

  it("keeps a copy whose location another record still uses, and removes its registry row", async () => {
    // Five records, two gone: more than half of a small registry at once would be held.
    const ids = await replicated(5);
    const [a, b, c] = ids as [number, number, number];
    // a and b point at the same key (e.g. a deduplicated upload); c has its own.
    await recordLocation(dbs.tracking, "cool_widget", a, "shared/key");
    await recordLocation(dbs.tracking, "cool_widget", b, "shared/key");
    await deleteOnPrimary([a, c]);
    await pass();
    expect((await pass()).deleted).toBe(2);
    expect(removed).toEqual([`cool_widgets/${c}`]);
    expect(await registryIds()).toEqual([b, ...ids.slice(3)]);
  });
});

describe("implausible pictures hold every deletion", () => {
  it("an empty primary holds with PrimaryEmpty: nothing deleted, registry rows kept", async () => {
    const ids = await replicated(6);
    await deleteOnPrimary(ids);
    for (let i = 0; i < 3; i++) {
      const summary = await pass();
      expect(summary.deleted).toBe(0);
      expect(summary.held).toBe(6);
    }
    expect(removed).toEqual([]);
    expect(await registryIds()).toEqual(ids);
    expect(await deletionHold(dbs.tracking, "cool_widget")).toMatchObject({ reason: HoldReason.PrimaryEmpty, pending: 6, releasedAt: null });
  });

  it("more than maxPercentPerPass gone at once holds with TooManyDeletions; a release lets the next complete pass delete", async () => {
    const ids = await replicated(40);
    const gone = ids.slice(0, 12); // 30 % of 40, above the 10 % default and the 10-row floor
    await deleteOnPrimary(gone);
    expect((await pass()).held).toBe(12);
    expect((await pass()).deleted).toBe(0);
    const hold = await deletionHold(dbs.tracking, "cool_widget");
    expect(hold).toMatchObject({ reason: HoldReason.TooManyDeletions, pending: 12, releasedAt: null });
    expect(hold!.message).toMatch(/12 of 40/);
    expect(removed).toEqual([]);

    expect(await releaseDeletionHold(dbs.tracking, "cool_widget", "alice")).toBe(true);
    expect((await deletionHold(dbs.tracking, "cool_widget"))?.releasedBy).toBe("alice");
    const released = await pass();
    expect(released.deleted).toBe(12);
    expect(removed.sort()).toEqual(gone.map((id) => `cool_widgets/${id}`).sort());
    expect(await registryIds()).toEqual(without(ids, gone));
    expect(await deletionHold(dbs.tracking, "cool_widget")).toBeNull();
  });

  // The share is taken of the rows that existed when the pass began: a source that now reads
  // another table (an edit of source.table) with many other ids must not dilute it.
  it("every existing copy gone while the primary shows many new ids still holds with TooManyDeletions", async () => {
    const ids = await replicated(100);
    await deleteOnPrimary(ids);
    await insertWidgets(dbs.primary, 1000); // other ids: e.g. source.table now names another table
    await pass();
    await pass();
    expect(removed).toEqual([]);
    expect((await deletionHold(dbs.tracking, "cool_widget"))?.reason).toBe(HoldReason.TooManyDeletions);
  });

  it("more than maxPerPass gone holds with TooManyDeletions", async () => {
    const ids = await replicated(100);
    await deleteOnPrimary(ids.slice(0, 3));
    await pass({ deletion: { gracePeriod: "0s", maxPerPass: 2 } });
    expect((await pass({ deletion: { gracePeriod: "0s", maxPerPass: 2 } })).deleted).toBe(0);
    expect((await deletionHold(dbs.tracking, "cool_widget"))?.reason).toBe(HoldReason.TooManyDeletions);
    expect(removed).toEqual([]);
  });

  it("a replica without the primary's heartbeat table holds with ReplicaUnproven", async () => {
    const ids = await replicated(5);
    await deleteOnPrimary([ids[0]!]);
    await dbs.primary.query(`DROP TABLE ${HEARTBEAT_TABLE}`);
    await pass();
    expect((await pass()).deleted).toBe(0);
    expect(await deletionHold(dbs.tracking, "cool_widget")).toMatchObject({ reason: HoldReason.ReplicaUnproven });
    expect(removed).toEqual([]);
    expect(await registryIds()).toEqual(ids);
  });

  it("a replica carrying another site's heartbeat holds with ReplicaUnproven", async () => {
    const ids = await replicated(5);
    await deleteOnPrimary([ids[0]!]);
    await dbs.primary.query(`UPDATE ${HEARTBEAT_TABLE} SET site_name = 'paris'`);
    await pass();
    expect((await pass()).deleted).toBe(0);
    const hold = await deletionHold(dbs.tracking, "cool_widget");
    expect(hold).toMatchObject({ reason: HoldReason.ReplicaUnproven });
    expect(hold!.message).toMatch(/paris/);
    expect(removed).toEqual([]);
  });

  it("a replica whose heartbeat is older than maxReplicationLag holds with ReplicaLagging, and deletes once it catches up", async () => {
    const ids = await replicated(5);
    await deleteOnPrimary([ids[0]!]);
    await dbs.primary.query(`UPDATE ${HEARTBEAT_TABLE} SET beat_at = now() - interval '1 hour'`);
    await pass();
    expect((await pass()).deleted).toBe(0);
    expect(await deletionHold(dbs.tracking, "cool_widget")).toMatchObject({ reason: HoldReason.ReplicaLagging });
    expect(removed).toEqual([]);
    await writeHeartbeat(dbs.primary, PRIMARY);
    expect((await pass()).deleted).toBe(1);
    expect(await deletionHold(dbs.tracking, "cool_widget")).toBeNull();
  });

  it("a release given for one reason does not wave through another", async () => {
    const ids = await replicated(40);
    await deleteOnPrimary(ids.slice(0, 12));
    await pass();
    expect((await deletionHold(dbs.tracking, "cool_widget"))?.reason).toBe(HoldReason.TooManyDeletions);
    expect(await releaseDeletionHold(dbs.tracking, "cool_widget", "alice")).toBe(true);
    await dbs.primary.query(`UPDATE ${HEARTBEAT_TABLE} SET beat_at = now() - interval '1 hour'`);
    expect((await pass()).deleted).toBe(0);
    expect(await deletionHold(dbs.tracking, "cool_widget")).toMatchObject({ reason: HoldReason.ReplicaLagging, releasedAt: null });
    expect(removed).toEqual([]);
  });
});

describe("a pass across several runs", () => {
  it("a run stopped by --max-run resumes at its cursor; nothing is deleted before the pass is complete", async () => {
    const ids = await replicated(12);
    const gone = ids[1]!;
    await deleteOnPrimary([gone]);
    // maxRun 0: each run records one batch of 5 and stops.
    const run = () => pass({ batchSize: 5, maxRunMs: 0 });
    const claimedPerRun: number[] = [];
    for (let i = 0; i < 3; i++) claimedPerRun.push((await run()).claimed);
    expect(claimedPerRun).toEqual([5, 5, 1]); // 11 records left: the third run reaches the end
    expect((await currentPass(dbs.tracking, "cool_widget")).afterId).toBe("-9223372036854775808");
    expect(removed).toEqual([]);
    expect(await candidateIds()).toEqual([gone]);

    // The second pass, again over three runs: the deletion happens only when it completes.
    expect((await run()).deleted).toBe(0);
    expect((await currentPass(dbs.tracking, "cool_widget")).afterId).toBe(String(ids[5]));
    expect((await run()).deleted).toBe(0);
    expect(removed).toEqual([]);
    expect((await run()).deleted).toBe(1);
    expect(removed).toEqual([`cool_widgets/${gone}`]);
  });

  it("an aborted run (SIGTERM) stops after the batch in hand and the next run continues from there", async () => {
    await replicated(12);
    const abort = new AbortController();
    abort.abort();
    const stopped = await pass({ batchSize: 5, signal: abort.signal });
    expect(stopped.claimed).toBe(5);
    const rest = await pass({ batchSize: 5 });
    expect(rest.claimed).toBe(7);
  });

  it("registry level: walkConsistencyPass stops between batches when told to and the next walk resumes at the cursor", async () => {
    const ids = await replicated(10);
    const schema = typeRuntimeConfig(spec).schema;
    const stopped = await walkConsistencyPass(dbs.primary, dbs.tracking, schema, SYNC_EVERYTHING, { batchSize: 3, shouldStop: () => true });
    expect(stopped).toMatchObject({ complete: false, scanned: 3, passScanned: 3 });
    expect((await currentPass(dbs.tracking, "cool_widget")).afterId).toBe(String(ids[2]));
    const rest = await walkConsistencyPass(dbs.primary, dbs.tracking, schema, SYNC_EVERYTHING, { batchSize: 3 });
    expect(rest).toMatchObject({ complete: true, scanned: 7, passScanned: 10 });
    expect(rest.pass.startedAt).toBe(stopped.pass.startedAt); // one pass across both walks
  });

  it("registry level: recordPassBatch moves the cursor, and a walk resumed with startAfter reads only the rest", async () => {
    const ids = await replicated(10);
    const current = await currentPass(dbs.tracking, "cool_widget");
    const walk = registryConsistencyBatches(dbs.primary, dbs.tracking, typeRuntimeConfig(spec).schema, SYNC_EVERYTHING, {
      batchSize: 4,
      startAfter: current.afterId,
      walkStartedAt: current.startedAt,
    });
    const first = await walk.next();
    await walk.return(undefined);
    expect(first.value).toMatchObject({ scanned: 4, upper: String(ids[3]) });
    await recordPassBatch(dbs.tracking, "cool_widget", current, first.value!);
    const resumed = await currentPass(dbs.tracking, "cool_widget");
    expect(resumed).toMatchObject({ afterId: String(ids[3]), scanned: 4, startedAt: current.startedAt });
    const rest: number[] = [];
    for await (const batch of registryConsistencyBatches(dbs.primary, dbs.tracking, typeRuntimeConfig(spec).schema, SYNC_EVERYTHING, {
      batchSize: 4,
      startAfter: resumed.afterId,
      walkStartedAt: resumed.startedAt,
    })) {
      rest.push(batch.scanned);
    }
    expect(rest).toEqual([4, 2]);
  });
});
