/**
 * A copy that is overtaken by a newer claim of its row (a resync after the record changed on the
 * primary) and lands after that claim's copy: its fenced markSynced is refused, but its bytes are
 * already in the secondary's bucket, over the newer ones. The row must not stay synced over them.
 * Driven in-process (claimSyncWork, requestResync and syncClaimedRows, as the log cursor and the
 * sync Job call them) against real PostgreSQL and two real MinIO servers; the older copy's read of
 * the primary goes through the test proxy, which delivers it late.
 */
import { randomBytes } from "node:crypto";
import { GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { GeoSiteSpec } from "../../../src/api/v1alpha1/types.generated.ts";
import { SYNC_EVERYTHING } from "../../../src/registry/config.ts";
import { ensureRegistryRows } from "../../../src/registry/consistency.ts";
import { ensureTrackingSideTables } from "../../../src/registry/side-tables.ts";
import { SyncState } from "../../../src/registry/states.ts";
import { claimSyncWork, requestResync } from "../../../src/registry/sync-state.ts";
import { strategyFor } from "../../../src/strategies/catalog.ts";
import type { Replicator } from "../../../src/strategies/replicator.ts";
import { typeRuntimeConfig } from "../../../src/strategies/type-config.ts";
import { createLogger } from "../../../src/util/log.ts";
import type { WorkerContext } from "../../../src/workers/context.ts";
import { newSummary } from "../../../src/workers/summary.ts";
import { runSync, syncClaimedRows } from "../../../src/workers/sync.ts";
import { startS3Proxy, type S3Proxy } from "../blob/s3-proxy.ts";
import { until } from "../../support/until.ts";
import { createBlobWorld, PRIMARY_SITE_NAME, registryRows, type World } from "../../support/worker-world.ts";

const env = inject("env");
const SITE = "tokyo";
const log = createLogger({ name: "stale-copy-test", level: "silent" });
let world: World;
/** In front of the primary's MinIO, for the copy that is to be overtaken. */
let primaryProxy: S3Proxy;
const replicators: Replicator[] = [];

/** A secondary sync worker's context whose replicator reads the primary's bucket at `primaryEndpoint`. */
async function workerContext(primaryEndpoint: string): Promise<WorkerContext> {
  const type = typeRuntimeConfig(world.type);
  const strategy = strategyFor(type.strategy);
  const primarySite: GeoSiteSpec = { ...world.primarySite, objectStorage: { ...world.primarySite.objectStorage!, endpoint: primaryEndpoint } };
  const endpoints = strategy.endpointsFromEnv(world.env("secondary"), world.secondarySite, primarySite, type.settings, SITE);
  const replicator = await strategy.createReplicator({ type, siteName: SITE, role: "secondary", endpoints, log });
  replicators.push(replicator);
  return {
    type,
    siteName: SITE,
    primarySiteName: PRIMARY_SITE_NAME,
    maxReplicationLagSeconds: 600,
    selectiveSync: SYNC_EVERYTHING,
    concurrency: 4,
    primaryDb: world.dbs.primary,
    trackingDb: world.dbs.tracking,
    replicator,
    log,
    maxRunMs: 60_000,
    signal: new AbortController().signal,
  };
}

async function putOnPrimary(key: string, body: Buffer): Promise<void> {
  await world.primaryS3.send(new PutObjectCommand({ Bucket: env.s3!.primary.bucket, Key: key, Body: body }));
}

async function objectAt(side: "primary" | "secondary", key: string): Promise<Buffer> {
  const client = side === "primary" ? world.primaryS3 : world.secondaryS3;
  const res = await client.send(new GetObjectCommand({ Bucket: env.s3![side].bucket, Key: key }));
  return Buffer.from(await res.Body!.transformToByteArray());
}

const rowOf = async (id: number) => (await registryRows(world.dbs.tracking)).get(id)!;

beforeAll(async () => {
  world = await createBlobWorld(env);
  await ensureTrackingSideTables(world.dbs.tracking);
  primaryProxy = await startS3Proxy(env.s3!.primary.endpoint);
});
afterAll(async () => {
  for (const replicator of replicators) await replicator.close();
  await primaryProxy?.close();
  await world?.close();
});

describe("a copy overtaken by a newer claim", () => {
  it("lands its older bytes after the newer claim marked the row synced; the row is asked for another copy, which brings the primary's current bytes", async () => {
    const overtaken = await workerContext(primaryProxy.endpoint);
    const newer = await workerContext(env.s3!.primary.endpoint);
    const schema = overtaken.type.schema;

    const fileName = `x-${randomBytes(3).toString("hex")}.bin`;
    const { rows } = await world.dbs.primary.query<{ id: string }>(`INSERT INTO cool_widgets (namespace_id, file_name) VALUES (1, $1) RETURNING id`, [fileName]);
    const id = Number(rows[0]!.id);
    const key = `${world.prefix}cool_widgets/${id}/${fileName}`;
    const v1 = Buffer.concat([Buffer.from("v1 "), randomBytes(4096)]);
    const v2 = Buffer.concat([Buffer.from("v2 "), randomBytes(4096)]);
    await putOnPrimary(key, v1);
    await ensureRegistryRows(world.dbs.tracking, schema, [id]);

    // Claim A reads v1 from the primary; the proxy holds the answer it has read.
    const claimA = await claimSyncWork(world.dbs.tracking, schema, { limit: 10 });
    expect(claimA.map((r) => r.modelId)).toEqual([id]);
    const release = primaryProxy.holdGets();
    const summaryA = newSummary("sync", world.type.name, SITE);
    const requeuedA: number[] = [];
    const copyA = syncClaimedRows(overtaken, claimA, summaryA, undefined, { onRequeued: (row) => requeuedA.push(row.modelId) });
    await until("claim A's read of v1 held by the proxy", () => primaryProxy.heldGets === 1, 30_000);

    // The application rewrites the object, and the change asks for a resync as the log cursor
    // does on an `updated` event; claim B copies v2 (not through the proxy) and marks the row synced.
    await putOnPrimary(key, v2);
    expect(await requestResync(world.dbs.tracking, schema, [id])).toBe(1);
    const claimB = await claimSyncWork(world.dbs.tracking, schema, { limit: 10 });
    expect(claimB.map((r) => r.modelId)).toEqual([id]);
    expect(claimB[0]!.syncClaim).not.toBe(claimA[0]!.syncClaim);
    const summaryB = newSummary("sync", world.type.name, SITE);
    await syncClaimedRows(newer, claimB, summaryB);
    expect(summaryB).toMatchObject({ succeeded: 1, failed: 0, requeued: 0 });
    expect(await rowOf(id)).toMatchObject({ state: SyncState.synced });
    expect((await objectAt("secondary", key)).equals(v2)).toBe(true);

    // Claim A gets its answer now: its v1 lands over v2, and its markSynced is refused.
    release();
    await copyA;
    expect(summaryA).toMatchObject({ succeeded: 0, failed: 0, requeued: 1 });
    expect((await objectAt("secondary", key)).subarray(0, 3).toString(), "claim A's older copy landed after claim B's").toBe("v1 ");

    // The row must not say synced over v1: it is asked for another copy.
    expect((await rowOf(id)).state, "the row stayed synced while the secondary holds claim A's stale v1").toBe(SyncState.pending);
    expect(requeuedA).toEqual([id]);

    // The next sync run copies the primary's current bytes.
    const next = await runSync(newer);
    expect(next).toMatchObject({ claimed: 1, succeeded: 1, failed: 0, requeued: 0 });
    expect(await rowOf(id)).toMatchObject({ state: SyncState.synced });
    const primaryNow = await objectAt("primary", key);
    expect(primaryNow.equals(v2)).toBe(true);
    expect((await objectAt("secondary", key)).equals(primaryNow), "the secondary holds the primary's v2").toBe(true);
  });
});
