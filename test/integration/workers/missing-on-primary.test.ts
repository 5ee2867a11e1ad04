/**
 * Records whose data is not on the primary yet (a record committed before its upload finished,
 * storage restored from a backup): the sync worker must look at them again on a schedule and copy
 * them once the primary has the data. Worker commands run as processes against real PostgreSQL
 * and MinIO.
 */
import { randomBytes } from "node:crypto";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { markSynced, startSync } from "../../../src/registry/sync-state.ts";
import { typeRuntimeConfig } from "../../../src/strategies/type-config.ts";
import { createBlobWorld, readObject, registryRows, retryNow, type World } from "../../support/worker-world.ts";

const env = inject("env");
let world: World;

/** A record on the primary whose object is not uploaded yet; returns its id and object key. */
async function addRecordWithoutObject(): Promise<{ id: number; key: string }> {
  const fileName = `late-${randomBytes(3).toString("hex")}.bin`;
  const { rows } = await world.dbs.primary.query<{ id: string }>(`INSERT INTO cool_widgets (namespace_id, file_name) VALUES (1, $1) RETURNING id`, [fileName]);
  const id = Number(rows[0]!.id);
  return { id, key: `${world.prefix}cool_widgets/${id}/${fileName}` };
}

async function upload(key: string, body: Buffer): Promise<void> {
  await world.primaryS3.send(new PutObjectCommand({ Bucket: env.s3!.primary.bucket, Key: key, Body: body }));
}

const secondaryObject = (key: string) => readObject(world.secondaryS3, env.s3!.secondary.bucket, key);

async function runOk(kind: Parameters<World["run"]>[0]) {
  const res = await world.run(kind);
  expect(res.code, `${kind} failed: ${res.stderr}`).toBe(0);
  return res;
}

const rowOf = async (id: number) => (await registryRows(world.dbs.tracking)).get(id)!;

beforeAll(async () => {
  // A short re-check so the schedule can be waited out, not stood in for.
  world = await createBlobWorld(env, { typeOverrides: { timeouts: { missingOnPrimaryRecheck: "2s" } } });
});
afterAll(async () => {
  await world?.close();
});

describe("records missing on the primary", () => {
  it("fails a record whose object is not on the primary as missing_on_primary, and copies it once the primary has it and the retry is due", async () => {
    const late = await addRecordWithoutObject();
    await runOk("consistency");
    await runOk("sync");
    expect(await rowOf(late.id)).toMatchObject({ state: 3, missing_on_primary: true });
    expect(await secondaryObject(late.key)).toBeUndefined();

    const body = randomBytes(4096);
    await upload(late.key, body);
    // Not due yet: the row waits for its backoff rather than being retried by every run.
    const early = await runOk("sync");
    expect(early.stdout).toMatch(/claimed=0/);
    expect(await rowOf(late.id)).toMatchObject({ state: 3, missing_on_primary: true });

    await retryNow(world.dbs.tracking);
    await runOk("sync");
    expect(await rowOf(late.id)).toMatchObject({ state: 2, missing_on_primary: false, last_sync_failure: null });
    expect(await secondaryObject(late.key)).toEqual(body);
  });

  it("syncs again a row recorded as synced and missing_on_primary once spec.timeouts.missingOnPrimaryRecheck has passed", async () => {
    // The state a sync records when its copy "succeeds" while the primary has no data (markSynced
    // with missingOnPrimary, GitLab's synced+missing_on_primary): retry_at holds the re-check time.
    // No replicator reports that outcome today (they fail the row instead, as above), so the row
    // is recorded here the way the sync worker would, with the type's re-check setting.
    const late = await addRecordWithoutObject();
    await runOk("consistency");
    const schema = typeRuntimeConfig(world.type).schema;
    const started = await startSync(world.dbs.tracking, schema, (await rowOf(late.id)).id);
    expect(started).not.toBeNull();
    const recheckSeconds = typeRuntimeConfig(world.type).timeoutsMs.missingOnPrimaryRecheck / 1000;
    expect(await markSynced(world.dbs.tracking, schema, started!.id, { claim: started!.syncClaim!, missingOnPrimary: true, recheckAfterSeconds: recheckSeconds })).toBe(true);
    expect(await rowOf(late.id)).toMatchObject({ state: 2, missing_on_primary: true });

    const body = randomBytes(2048);
    await upload(late.key, body);
    await new Promise((r) => setTimeout(r, recheckSeconds * 1000 + 200));
    const sync = await runOk("sync");
    expect(sync.stdout).toMatch(/claimed=1 synced=1/);
    expect(await rowOf(late.id)).toMatchObject({ state: 2, missing_on_primary: false });
    expect(await secondaryObject(late.key)).toEqual(body);
  });
});
