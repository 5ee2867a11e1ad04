/**
 * Fault scenarios about copies on the secondary: a copy deleted or corrupted behind the registry's
 * back, a worker killed mid-copy, resyncs and reverifications landing while three workers copy
 * and hash, and an item that takes longer than one run. Copies are made slow where a scenario
 * needs them in flight by a throttling proxy in front of MinIO (test/support/fault-proxy.ts).
 */
import { randomBytes } from "node:crypto";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { afterEach, describe, expect, inject, it } from "vitest";
import type { ReplicableType } from "../../src/api/v1alpha1/resources.ts";
import type { ReplicableTypeSpec } from "../../src/api/v1alpha1/types.generated.ts";
import { jobDeadlineSeconds, DEFAULT_JOB_SETTINGS } from "../../src/controllers/job-spec.ts";
import { requestReverification } from "../../src/registry/reverification.ts";
import { requestResync } from "../../src/registry/sync-state.ts";
import { requestChecksum } from "../../src/registry/checksum-state.ts";
import { typeRuntimeConfig } from "../../src/strategies/type-config.ts";
import { startFaultProxy, hostPort, type FaultProxy } from "../support/fault-proxy.ts";
import { registryRows, type World } from "../support/worker-world.ts";
import { checkBlobInvariants, expectInvariants } from "./invariants.ts";
import { scenario } from "./report.ts";
import {
  addBlobs,
  converge,
  createFaultBlobWorld,
  exited,
  round,
  runOk,
  runWorker,
  sleep,
  spawnWorker,
  stateCounts,
  summaryField,
  until,
} from "./world.ts";

const env = inject("env");
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

/** A world whose primary (and optionally secondary) MinIO is reached through throttling proxies. */
async function world(opts: { typeOverrides?: Partial<ReplicableTypeSpec>; proxySecondary?: boolean; capacities?: { blobs: number; verification: number } } = {}) {
  const primaryProxy = await startFaultProxy(hostPort(env.s3!.primary.endpoint));
  cleanups.push(() => primaryProxy.close());
  let secondaryProxy: FaultProxy | undefined;
  if (opts.proxySecondary) {
    secondaryProxy = await startFaultProxy(hostPort(env.s3!.secondary.endpoint));
    cleanups.push(() => secondaryProxy!.close());
  }
  const w = await createFaultBlobWorld(env, {
    primaryS3: { ...env.s3!.primary, endpoint: primaryProxy.url(env.s3!.primary.endpoint) },
    ...(secondaryProxy ? { secondaryS3: { ...env.s3!.secondary, endpoint: secondaryProxy.url(env.s3!.secondary.endpoint) } } : {}),
    ...(opts.typeOverrides ? { typeOverrides: opts.typeOverrides } : {}),
  });
  if (opts.capacities) w.secondarySite = { ...w.secondarySite, capacities: opts.capacities };
  cleanups.push(() => w.close());
  return { w, primaryProxy, secondaryProxy };
}

async function overwrite(w: World, side: "primary" | "secondary", key: string, body: Buffer) {
  const s3 = side === "primary" ? w.primaryS3 : w.secondaryS3;
  const bucket = (side === "primary" ? w.primarySite : w.secondarySite).objectStorage!.bucket;
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
}

async function rowOf(w: World, id: number) {
  return (await registryRows(w.dbs.tracking, w.type.name)).get(id)!;
}

describe("fault suite: copies", () => {
  it("06 secondary copy deleted", () =>
    scenario(
      "06 secondary copy deleted",
      {
        done: "6 replicated and verified; 2 copies deleted from the secondary bucket; re-verification due (interval 1s); verify, sync, verify",
        expected: "verify puts both rows back into sync; sync copies them again; verify verifies them",
      },
      async (o) => {
        const { w } = await world({ typeOverrides: { verification: { minimumReverificationInterval: "1s" } } });
        const blobs = await addBlobs(w, 6);
        await round(w);
        const { DeleteObjectCommand } = await import("@aws-sdk/client-s3");
        for (const b of blobs.slice(0, 2)) await w.secondaryS3.send(new DeleteObjectCommand({ Bucket: w.secondarySite.objectStorage!.bucket, Key: b.key }));
        await sleep(1100);
        const verify = await runOk(w, "verify");
        const states = [(await rowOf(w, blobs[0]!.id)).state, (await rowOf(w, blobs[1]!.id)).state];
        o.note(`verify: failed=${summaryField(verify, "failed")}, rows now state ${states.join(",")} (0 pending)`);
        expect(states).toEqual([0, 0]);
        const sync = await runOk(w, "sync");
        const again = await runOk(w, "verify");
        o.note(`sync: synced=${summaryField(sync, "synced")}; verify: verified=${summaryField(again, "verified")}`);
        expect(summaryField(sync, "synced")).toBe(2);
        expect(await stateCounts(w)).toMatchObject({ synced: 6, verified: 6 });
        await expectInvariants(env, w, o);
      },
    ));

  it("07 secondary copy corrupted", () =>
    scenario(
      "07 secondary copy corrupted",
      {
        done: "6 replicated and verified; one copy overwritten with same-size garbage, one truncated; re-verification due; verify, then rounds with backoff made due",
        expected: "both found (mismatch or wrong size), resynced, verified again with the primary's content",
      },
      async (o) => {
        const { w } = await world({ typeOverrides: { verification: { minimumReverificationInterval: "1s" } } });
        const blobs = await addBlobs(w, 6, { size: 1024 });
        await round(w);
        await overwrite(w, "secondary", blobs[0]!.key, randomBytes(1024));
        await overwrite(w, "secondary", blobs[1]!.key, randomBytes(10));
        await sleep(1100);
        const verify = await runOk(w, "verify");
        const rows = [await rowOf(w, blobs[0]!.id), await rowOf(w, blobs[1]!.id)];
        o.note(`verify: failed=${summaryField(verify, "failed")}; rows state/verification ${rows.map((r) => `${r.state}/${r.verification_state}`).join(", ")}`);
        expect(summaryField(verify, "failed")).toBe(2);
        for (const r of rows) expect(r.verification_state).not.toBe(2);
        await converge(w, 2);
        o.note(`after repair: ${JSON.stringify(await stateCounts(w))}`);
        expect(await stateCounts(w)).toMatchObject({ synced: 6, verified: 6 });
        await expectInvariants(env, w, o);
      },
    ));

  it("08 worker SIGKILL mid-copy", () =>
    scenario(
      "08 worker SIGKILL mid-copy",
      {
        done: "a 1 MiB object copied through a proxy throttled to 200 KiB/s; the sync worker SIGKILLed while the row is started; stuck-started timeout (1s) waited out; sync again",
        expected: "row left started, no partial object; after the timeout it is re-synced, never synced with partial data",
      },
      async (o) => {
        const { w, primaryProxy } = await world();
        const [big] = await addBlobs(w, 1, { size: 1024 * 1024 });
        await runOk(w, "verify-primary");
        await runOk(w, "consistency");
        primaryProxy.throttle(200 * 1024);
        const child = spawnWorker(w, "sync");
        await until("the row to be started", async () => (await rowOf(w, big!.id)).state === 1);
        await sleep(1000); // well into the copy
        child.kill("SIGKILL");
        await exited(child);
        const row = await rowOf(w, big!.id);
        const mid = await checkBlobInvariants(env, w, { mustHave: [] });
        o.note(`after SIGKILL: state=${row.state}; ${mid.problems.length === 0 ? "no row verified with a differing copy" : mid.problems.join("; ")}`);
        expect(row.state).toBe(1);
        expect(mid.problems).toEqual([]);
        const partial = (await checkBlobInvariants(env, w, { mustHave: [big!.id] })).problems;
        o.note(`secondary object after kill: ${partial.length === 0 ? "complete" : partial[0]!.includes("no copy") ? "absent" : "PARTIAL"}`);
        expect(partial.filter((p) => p.includes("differs"))).toEqual([]);
        primaryProxy.throttle(0);
        await sleep(1100);
        const first = await runOk(w, "sync");
        o.note(`sync after timeout: ${first.stdout.trim().replace(/^sync \S+: /, "")}; state=${(await rowOf(w, big!.id)).state}`);
        await converge(w, 2);
        expect(await stateCounts(w)).toMatchObject({ synced: 1, verified: 1 });
        await expectInvariants(env, w, o);
      },
    ));

  it("09 resync and reverify in flight, parallelism 3", () =>
    scenario(
      "09 resync and reverify in flight, parallelism 3",
      {
        done: "6 objects of 512 KiB, 3 sync workers at once (2 each) through a 256 KiB/s proxy; mid-copy 3 objects changed on the primary and resynced; then 3 verify workers through a throttled secondary; mid-hash one copy corrupted and every row reverified",
        expected: "no stale worker marks a newer claim synced/verified; no row synced+verified with a differing copy at any check; all converge to the primary's new content",
      },
      async (o) => {
        const { w, primaryProxy, secondaryProxy } = await world({ proxySecondary: true, capacities: { blobs: 2, verification: 2 } });
        const blobs = await addBlobs(w, 6, { size: 512 * 1024 });
        await runOk(w, "verify-primary");
        await runOk(w, "consistency");
        primaryProxy.throttle(256 * 1024);
        const syncers = [spawnWorker(w, "sync"), spawnWorker(w, "sync"), spawnWorker(w, "sync")];
        await until("three rows in flight", async () => (await stateCounts(w)).started >= 3, 30_000);
        await sleep(500);
        const inFlight = (await w.dbs.tracking.query<{ id: string }>(`SELECT cool_widget_id AS id FROM cool_widget_registry WHERE state = 1 ORDER BY 1 LIMIT 3`)).rows.map((r) => Number(r.id));
        for (const id of inFlight) await overwrite(w, "primary", blobs.find((b) => b.id === id)!.key, randomBytes(512 * 1024));
        // What a changed record does: the primary checksums it again, the secondary resyncs it.
        await requestChecksum(w.dbs.primary, typeRuntimeConfig(w.type).schema, inFlight);
        const resynced = await requestResync(w.dbs.tracking, typeRuntimeConfig(w.type).schema, inFlight);
        const runs = await Promise.all(syncers.map(exited));
        primaryProxy.throttle(0);
        const requeued = runs.reduce((n, r) => n + summaryField(r, "requeued"), 0);
        o.note(`sync: exits ${runs.map((r) => r.code).join(",")}, resync of ${resynced} in flight, requeued=${requeued}, synced=${runs.reduce((n, r) => n + summaryField(r, "synced"), 0)}`);
        expect(runs.map((r) => r.code)).toEqual([0, 0, 0]);
        // The primary's checksums of the new content, then a verification pass: nothing may be
        // verified whose copy is not the primary's.
        await runOk(w, "verify-primary");
        await runOk(w, "sync");
        await runOk(w, "verify");
        const afterSync = await checkBlobInvariants(env, w, { mustHave: [] });
        o.note(`after the sync race and one verify: ${afterSync.summary}; ${JSON.stringify(await stateCounts(w))}`);
        expect(afterSync.problems).toEqual([]);

        // Reverify while three verifiers hash through a throttled secondary.
        await requestReverification(w.dbs.tracking, typeRuntimeConfig(w.type).schema, blobs.map((b) => b.id));
        secondaryProxy!.throttle(96 * 1024);
        const verifiers = [spawnWorker(w, "verify"), spawnWorker(w, "verify"), spawnWorker(w, "verify")];
        const hashing = await until(
          "hashes in flight",
          async () => {
            const { rows } = await w.dbs.tracking.query<{ id: string }>(`SELECT cool_widget_id AS id FROM cool_widget_registry WHERE verification_state = 1 ORDER BY 1`);
            return rows.length >= 2 ? rows.map((r) => Number(r.id)) : undefined;
          },
          60_000,
        );
        await sleep(300);
        const victim = blobs.find((b) => b.id === hashing[0])!;
        // Straight to MinIO, not through the throttled proxy.
        const { s3Client } = await import("../support/worker-world.ts");
        const direct = s3Client(env.s3!.secondary);
        await direct.send(new PutObjectCommand({ Bucket: w.secondarySite.objectStorage!.bucket, Key: victim.key, Body: randomBytes(512 * 1024) }));
        direct.destroy();
        const reverified = await requestReverification(w.dbs.tracking, typeRuntimeConfig(w.type).schema, blobs.map((b) => b.id));
        const vruns = await Promise.all(verifiers.map(exited));
        secondaryProxy!.throttle(0);
        const afterVerify = await checkBlobInvariants(env, w, { mustHave: [] });
        o.note(`verify: ${hashing.length} hashes in flight, exits ${vruns.map((r) => r.code).join(",")}, reverify of ${reverified} mid-hash (1 copy corrupted); ${afterVerify.summary}`);
        expect(vruns.map((r) => r.code)).toEqual([0, 0, 0]);
        expect(afterVerify.problems).toEqual([]);
        await converge(w, 3);
        expect(await stateCounts(w)).toMatchObject({ synced: 6, verified: 6 });
        await expectInvariants(env, w, o);
      },
    ));

  it("10 item larger than one run", () =>
    scenario(
      "10 item larger than one run",
      {
        done: "a 1 MiB object through a 200 KiB/s proxy (≈5 s) synced by a worker with --max-run 1s; jobDeadlineSeconds checked against timeouts.sync",
        expected: "the item completes and is synced in that run (exit 0); Job deadline ≥ max-run + per-item timeout",
      },
      async (o) => {
        const { w, primaryProxy } = await world();
        const [big] = await addBlobs(w, 1, { size: 1024 * 1024 });
        await runOk(w, "verify-primary");
        await runOk(w, "consistency");
        primaryProxy.throttle(200 * 1024);
        const started = Date.now();
        const sync = await runWorker(w, "sync", { args: ["--max-run", "1s"] });
        const seconds = (Date.now() - started) / 1000;
        primaryProxy.throttle(0);
        const row = await rowOf(w, big!.id);
        o.note(`sync --max-run 1s: exit ${sync.code} after ${seconds.toFixed(1)} s, synced=${summaryField(sync, "synced")}, state=${row.state}`);
        expect(sync.code).toBe(0);
        expect(row.state).toBe(2);
        const deadlines = ["3h", "30m", "12h"].map((t) => {
          const type = { spec: { ...w.type, timeouts: { sync: t } } } as unknown as ReplicableType;
          const d = jobDeadlineSeconds(DEFAULT_JOB_SETTINGS.maxRunSeconds, type);
          return { t, d, ok: d >= DEFAULT_JOB_SETTINGS.maxRunSeconds + typeRuntimeConfig({ ...w.type, timeouts: { sync: t } }).timeoutsMs.sync / 1000 };
        });
        o.note(`jobDeadlineSeconds(maxRun ${DEFAULT_JOB_SETTINGS.maxRunSeconds}s): ${deadlines.map((x) => `sync ${x.t} → ${x.d}s`).join(", ")}`);
        expect(deadlines.every((x) => x.ok)).toBe(true);
        await runOk(w, "verify");
        await expectInvariants(env, w, o);
      },
    ));
});
