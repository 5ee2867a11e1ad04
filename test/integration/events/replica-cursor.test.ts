/**
 * A secondary's log cursor reading the event log through a real hot standby of the primary (its
 * own, so pausing replay here disturbs no other test file): no NOTIFY reaches it, the adaptive
 * poll finds events within seconds, and while replay lags nothing is skipped: the events appear
 * and are applied once replay resumes.
 */
import { randomBytes } from "node:crypto";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { startStandby } from "../../../hack/localenv/postgres.ts";
import { runSiteCursor } from "../../../src/cursor/site-cursor.ts";
import { SyncState } from "../../../src/registry/states.ts";
import { createLogger } from "../../../src/util/log.ts";
import { createBlobWorld, registryRows, type World } from "../../support/worker-world.ts";

const env = inject("env");
const log = createLogger({ name: "cursor-replica-test", level: process.env.GEO_TEST_LOG_LEVEL ?? "silent" });
let world: World;
let standby: Awaited<ReturnType<typeof startStandby>>;
let abort: AbortController;
let cursor: Promise<void>;

async function addRecord(): Promise<number> {
  const { rows } = await world.dbs.primary.query<{ id: string }>(`SELECT nextval('cool_widgets_id_seq')::text AS id`);
  const id = Number(rows[0]!.id);
  await world.primaryS3.send(new PutObjectCommand({ Bucket: env.s3!.primary.bucket, Key: `${world.prefix}cool_widgets/${id}/x.bin`, Body: randomBytes(500) }));
  await world.dbs.primary.query(`INSERT INTO cool_widgets (id, file_name) VALUES ($1, 'x.bin')`, [id]);
  return id;
}

async function synced(id: number): Promise<boolean> {
  return (await registryRows(world.dbs.tracking)).get(id)?.state === SyncState.synced;
}

async function waitFor(ms: number, probe: () => Promise<boolean>): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < ms) {
    if (await probe()) return Date.now() - started;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`not within ${ms} ms`);
}

beforeAll(async () => {
  world = await createBlobWorld(env);
  const server = process.env.GEO_TEST_PRIMARY_DB_URL!;
  standby = await startStandby(
    { name: "pg-primary", port: Number(new URL(server).port), url: server },
    { name: `pg-cursor-replica-${randomBytes(4).toString("hex")}`, stateDir: process.env.GEO_TEST_ENV_DIR! },
  );
  process.once("exit", () => standby.process.kill("SIGKILL"));
  await standby.waitForCatchUp();
  const replicaURL = standby.urlFor(new URL(world.dbs.primaryUrl).pathname.slice(1));
  abort = new AbortController();
  cursor = runSiteCursor(
    { ...world.env("secondary"), GEO_PRIMARY_DB_URL: replicaURL, GEO_TYPE_SPECS: JSON.stringify([world.type]) },
    { site: "tokyo", log, signal: abort.signal, tuning: { minPollMs: 100, maxPollMs: 1000 } },
  );
  await new Promise((r) => setTimeout(r, 500));
}, 60_000);

afterAll(async () => {
  abort?.abort();
  await cursor;
  await standby?.stop();
  await world?.close();
});

describe("log cursor through a hot standby", () => {
  it("follows the log by polling (no NOTIFY through a physical replica), within seconds", async () => {
    const id = await addRecord();
    const ms = await waitFor(5_000, () => synced(id));
    expect(ms).toBeLessThan(5_000);
  });

  it("skips nothing while the replica lags: events committed during paused replay are applied after it resumes", async () => {
    await standby.pauseReplay();
    let ids: number[] = [];
    try {
      ids = [await addRecord(), await addRecord(), await addRecord()];
      await new Promise((r) => setTimeout(r, 2_500));
      for (const id of ids) expect(await synced(id)).toBe(false);
    } finally {
      await standby.resumeReplay();
    }
    for (const id of ids) await waitFor(5_000, () => synced(id));
  });
});
