/**
 * Servers going away mid-run: the secondary's S3 and the tracking PostgreSQL, each reached
 * through a proxy the test stops and starts (the shared servers other tests use keep running).
 */
import { afterEach, describe, expect, inject, it } from "vitest";
import { startFaultProxy, hostPort } from "../support/fault-proxy.ts";
import { expectInvariants } from "./invariants.ts";
import { scenario } from "./report.ts";
import { addBlobs, converge, createFaultBlobWorld, exited, runOk, sleep, spawnWorker, stateCounts, summaryField, until } from "./world.ts";

const env = inject("env");
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

/** Waits for a worker to exit; a worker still running after `ms` is killed and reported hung. */
async function exitedWithin(child: ReturnType<typeof spawnWorker>, ms: number) {
  const timer = setTimeout(() => child.kill("SIGKILL"), ms);
  const res = await exited(child);
  clearTimeout(timer);
  return { ...res, hung: child.signalCode === "SIGKILL" };
}

describe("fault suite: outages", () => {
  it("11 PostgreSQL and S3 stopped mid-run", () =>
    scenario(
      "11 PostgreSQL and S3 stopped mid-run",
      {
        done: "20 objects of 256 KiB; sync through a throttled proxy to the secondary's MinIO, proxy stopped after 3 copies, restarted; sync again with the tracking DB behind a proxy, stopped after more copies, restarted; rounds with backoff made due",
        expected: "S3 down: per-row failures with backoff, worker exits; PostgreSQL down: worker exits non-zero, nothing marked synced it did not copy; after restart everything converges",
      },
      async (o) => {
        const s3Proxy = await startFaultProxy(hostPort(env.s3!.secondary.endpoint));
        const pgProxy = await startFaultProxy(hostPort(process.env.GEO_TEST_SECONDARY_DB_URL!));
        cleanups.push(() => s3Proxy.close(), () => pgProxy.close());
        const w = await createFaultBlobWorld(env, { secondaryS3: { ...env.s3!.secondary, endpoint: s3Proxy.url(env.s3!.secondary.endpoint) } });
        cleanups.push(() => w.close());
        w.secondarySite = { ...w.secondarySite, capacities: { blobs: 2, verification: 4 } };
        await addBlobs(w, 20, { size: 256 * 1024 });
        await runOk(w, "verify-primary");
        await runOk(w, "consistency");

        // S3 goes away mid-run.
        s3Proxy.throttle(1024 * 1024);
        const a = spawnWorker(w, "sync");
        await until("3 copies", async () => (await stateCounts(w)).synced >= 3, 30_000);
        await s3Proxy.stop();
        const s3Run = await exitedWithin(a, 60_000);
        const afterS3 = await stateCounts(w);
        o.note(`S3 stopped: worker exit ${s3Run.hung ? "HUNG" : s3Run.code}, synced=${afterS3.synced} failed=${afterS3.failed} started=${afterS3.started}`);
        expect(s3Run.hung).toBe(false);
        expect(afterS3.started).toBe(0);
        await s3Proxy.start();
        s3Proxy.throttle(1024 * 1024);

        // The tracking database goes away mid-run.
        await w.dbs.tracking.query(`UPDATE cool_widget_registry SET retry_at = now() - interval '1 second' WHERE state = 3`);
        const before = afterS3.synced;
        const b = spawnWorker(w, "sync", { env: { GEO_TRACKING_DB_URL: pgProxy.url(w.dbs.trackingUrl) } });
        await until("more copies", async () => (await stateCounts(w)).synced >= before + 2, 30_000);
        await pgProxy.stop();
        const pgRun = await exitedWithin(b, 60_000);
        const afterPg = await stateCounts(w);
        o.note(`PostgreSQL stopped: worker exit ${pgRun.hung ? "HUNG" : pgRun.code}, synced=${afterPg.synced} started=${afterPg.started} (left for the stuck timeout)`);
        expect(pgRun.hung).toBe(false);
        expect(pgRun.code).not.toBe(0);
        await pgProxy.start();
        s3Proxy.throttle(0);

        await sleep(1100); // stuck-started timeout (1s)
        const again = await runOk(w, "sync", { env: { GEO_TRACKING_DB_URL: pgProxy.url(w.dbs.trackingUrl) } });
        o.note(`after restart: sync ${summaryField(again, "synced")} synced`);
        await converge(w, 2);
        const end = await stateCounts(w);
        o.note(`end: synced=${end.synced} verified=${end.verified}`);
        expect(end).toMatchObject({ synced: 20, verified: 20 });
        await expectInvariants(env, w, o);
      },
    ));
});
