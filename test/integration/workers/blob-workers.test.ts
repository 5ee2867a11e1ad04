/**
 * Blobs end to end through the worker commands, each run as its own process the way a Job runs
 * it, against two real MinIO servers and two real PostgreSQL servers.
 */
import { createHash, randomBytes } from "node:crypto";
import { DeleteObjectCommand, HeadObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startMinio } from "../../../hack/localenv/minio.ts";
import { writeHeartbeat } from "../../../src/registry/heartbeat.ts";
import { createBlobWorld, PRIMARY_SITE_NAME, readObject, registryRows, retryNow, type World } from "../../support/worker-world.ts";

const env = inject("env");
let world: World;
const contents = new Map<number, Buffer>();
const sha = (b: Buffer) => createHash("sha256").update(b).digest();

async function addWidget(body: Buffer | null, fileName = `file-${randomBytes(3).toString("hex")}.bin`, namespaceId = 1): Promise<number> {
  const { rows } = await world.dbs.primary.query<{ id: string }>(`INSERT INTO cool_widgets (namespace_id, file_name) VALUES ($1, $2) RETURNING id`, [namespaceId, fileName]);
  const id = Number(rows[0]!.id);
  if (body) {
    await world.primaryS3.send(new PutObjectCommand({ Bucket: env.s3!.primary.bucket, Key: `${world.prefix}cool_widgets/${id}/${fileName}`, Body: body }));
    contents.set(id, body);
  }
  return id;
}

async function secondaryObject(id: number): Promise<Buffer | undefined> {
  const { rows } = await world.dbs.primary.query<{ file_name: string }>(`SELECT file_name FROM cool_widgets WHERE id = $1`, [id]);
  return readObject(world.secondaryS3, env.s3!.secondary.bucket, `${world.prefix}cool_widgets/${id}/${rows[0]!.file_name}`);
}

async function runOk(kind: Parameters<World["run"]>[0]) {
  const res = await world.run(kind);
  expect(res.code, `${kind} failed: ${res.stderr}`).toBe(0);
  return res;
}

/** One full round: checksum on the primary, registry rows, copies, secondary checksums. */
async function fullRound() {
  await runOk("verify-primary");
  await runOk("consistency");
  const sync = await runOk("sync");
  const verify = await runOk("verify");
  return { sync, verify };
}

/** Deletions need two consistency passes at least the grace period apart; these tests use 0s. */
const IMMEDIATE_DELETIONS = { deletion: { gracePeriod: "0s" } };

beforeAll(async () => {
  world = await createBlobWorld(env, { typeOverrides: IMMEDIATE_DELETIONS });
});
afterAll(async () => {
  await world?.close();
});

describe("blob workers", () => {
  it("replicate and verify new objects, including zero-byte and multipart-sized ones", async () => {
    const ids = [
      await addWidget(Buffer.alloc(0), "empty.txt"),
      await addWidget(randomBytes(1000), "small one.bin"),
      await addWidget(Buffer.from("unicodé ✓ content"), "ünïcödé ✓.txt"),
      await addWidget(randomBytes(20 * 1024 * 1024 + 123), "large.bin"),
    ];
    const { sync, verify } = await fullRound();
    expect(sync.stdout).toMatch(/^sync cool_widget@tokyo: claimed=4 synced=4 failed=0 bytes=\d+ seconds=/m);
    expect(verify.stdout).toMatch(/verified=4 failed=0/);
    const rows = await registryRows(world.dbs.tracking);
    for (const id of ids) {
      const row = rows.get(id)!;
      expect(row.state).toBe(2);
      expect(row.verification_state).toBe(2);
      expect(Buffer.compare(row.verification_checksum, sha(contents.get(id)!))).toBe(0);
      expect(Buffer.compare((await secondaryObject(id))!, contents.get(id)!)).toBe(0);
    }
    const primaryStates = await world.dbs.primary.query(`SELECT cool_widget_id, verification_state, verification_checksum FROM cool_widget_states`);
    for (const s of primaryStates.rows) {
      expect(s.verification_state).toBe(2);
      expect(Buffer.compare(s.verification_checksum, sha(contents.get(Number(s.cool_widget_id))!))).toBe(0);
    }
  });

  it("detects a corrupted secondary copy, resyncs it and verifies it again", async () => {
    const id = await addWidget(randomBytes(4096), "to-corrupt.bin");
    await fullRound();
    const key = `${world.prefix}cool_widgets/${id}/to-corrupt.bin`;
    await world.secondaryS3.send(new PutObjectCommand({ Bucket: env.s3!.secondary.bucket, Key: key, Body: Buffer.from("corrupted") }));
    // Make the verified row due for re-verification, as the interval would.
    await world.dbs.tracking.query(`UPDATE cool_widget_registry SET verification_state = 0 WHERE cool_widget_id = $1`, [id]);
    const verify = await runOk("verify");
    expect(verify.stdout).toMatch(/failed=1/);
    let row = (await registryRows(world.dbs.tracking)).get(id)!;
    expect(row).toMatchObject({ state: 3, verification_state: 3, checksum_mismatch: true, verification_retry_count: 1 });
    expect(Buffer.compare(row.verification_checksum_mismatched, sha(Buffer.from("corrupted")))).toBe(0);
    expect(row.retry_at.getTime()).toBeGreaterThan(Date.now());

    await retryNow(world.dbs.tracking);
    await runOk("sync");
    await runOk("verify");
    row = (await registryRows(world.dbs.tracking)).get(id)!;
    expect(row).toMatchObject({ state: 2, verification_state: 2, checksum_mismatch: false, verification_retry_count: 0 });
    expect(Buffer.compare((await secondaryObject(id))!, contents.get(id)!)).toBe(0);
  });

  it("removes the secondary copy and registry row of a record deleted on the primary, and nothing on the primary", async () => {
    const keep = await addWidget(randomBytes(100), "keep.bin");
    const gone = await addWidget(randomBytes(100), "gone.bin");
    await fullRound();
    expect(await secondaryObject(gone)).toBeDefined();
    const goneKey = `${world.prefix}cool_widgets/${gone}/gone.bin`;
    await world.dbs.primary.query(`DELETE FROM cool_widgets WHERE id = $1`, [gone]);
    // What the primary's operator keeps doing: a fresh heartbeat, so the replica is not "lagging".
    await writeHeartbeat(world.dbs.primary, PRIMARY_SITE_NAME);
    // The first pass only notes the record as gone; nothing is removed on one sighting.
    const first = await runOk("consistency");
    expect(first.stdout).not.toMatch(/deleted=/);
    expect((await registryRows(world.dbs.tracking)).has(gone)).toBe(true);
    await expect(world.secondaryS3.send(new HeadObjectCommand({ Bucket: env.s3!.secondary.bucket, Key: goneKey }))).resolves.toBeDefined();
    const consistency = await runOk("consistency");
    expect(consistency.stdout).toMatch(/deleted=1/);
    const rows = await registryRows(world.dbs.tracking);
    expect(rows.has(gone)).toBe(false);
    expect(rows.has(keep)).toBe(true);
    await expect(world.secondaryS3.send(new HeadObjectCommand({ Bucket: env.s3!.secondary.bucket, Key: goneKey }))).rejects.toMatchObject({ name: "NotFound" });
    // The primary's object stays: the application deleted the row; geo-operator never deletes there.
    await expect(world.primaryS3.send(new HeadObjectCommand({ Bucket: env.s3!.primary.bucket, Key: goneKey }))).resolves.toBeDefined();
    expect(await secondaryObject(keep)).toBeDefined();
  });

  it("copies again a secondary object that vanished (verification puts the row back into sync)", async () => {
    const id = await addWidget(randomBytes(2048), "vanishes.bin");
    await fullRound();
    await world.secondaryS3.send(new DeleteObjectCommand({ Bucket: env.s3!.secondary.bucket, Key: `${world.prefix}cool_widgets/${id}/vanishes.bin` }));
    // Make the verified row due for re-verification, as the interval would.
    await world.dbs.tracking.query(`UPDATE cool_widget_registry SET verification_state = 0 WHERE cool_widget_id = $1`, [id]);
    const verify = await runOk("verify");
    expect(verify.stdout).toMatch(/failed=1/);
    let row = (await registryRows(world.dbs.tracking)).get(id)!;
    expect(row).toMatchObject({ state: 0, verification_state: 3, checksum_mismatch: true });
    expect(row.verification_failure).toBeTruthy();
    // No waiting for a backoff: the next sync copies it.
    await runOk("sync");
    await runOk("verify");
    row = (await registryRows(world.dbs.tracking)).get(id)!;
    expect(row).toMatchObject({ state: 2, verification_state: 2, checksum_mismatch: false });
    expect(Buffer.compare((await secondaryObject(id))!, contents.get(id)!)).toBe(0);
  });

  it("holds every deletion when the primary looks empty or the replica is not the primary's, and says so", async () => {
    const local = await createBlobWorld(env, { typeOverrides: IMMEDIATE_DELETIONS });
    try {
      const keys: string[] = [];
      for (let i = 0; i < 3; i++) {
        const { rows } = await local.dbs.primary.query<{ id: string }>(`INSERT INTO cool_widgets (namespace_id, file_name) VALUES (1, $1) RETURNING id`, [`h${i}.bin`]);
        const key = `${local.prefix}cool_widgets/${rows[0]!.id}/h${i}.bin`;
        await local.primaryS3.send(new PutObjectCommand({ Bucket: env.s3!.primary.bucket, Key: key, Body: randomBytes(128) }));
        keys.push(key);
      }
      for (const kind of ["consistency", "sync"] as const) expect((await local.run(kind)).code).toBe(0);
      expect([...(await registryRows(local.dbs.tracking)).values()].every((r) => r.state === 2)).toBe(true);

      // A secondary must say which primary it follows.
      const unnamed = await local.run("consistency", { GEO_PRIMARY_SITE_NAME: "" });
      expect(unnamed.code).toBe(2);
      expect(unnamed.stderr).toMatch(/GEO_PRIMARY_SITE_NAME is required on a secondary/);

      // The safety review's scenario: the replica's model table exists but is empty.
      await local.dbs.primary.query("DELETE FROM cool_widgets");
      for (let pass = 0; pass < 2; pass++) {
        const res = await local.run("consistency");
        expect(res.code, res.stderr).toBe(0);
        expect(res.stdout).toMatch(/held=3/);
        expect(res.stdout).not.toMatch(/deleted=/);
      }
      const holds = await local.dbs.tracking.query(`SELECT reason, pending FROM geo_operator_deletion_holds`);
      expect(holds.rows).toEqual([{ reason: "PrimaryEmpty", pending: "3" }]);
      // A replica carrying another site's heartbeat is not believed either.
      const other = await local.run("consistency", { GEO_PRIMARY_SITE_NAME: "paris" });
      expect(other.stdout).toMatch(/held=3/);
      expect((await local.dbs.tracking.query(`SELECT reason FROM geo_operator_deletion_holds`)).rows).toEqual([{ reason: "ReplicaUnproven" }]);
      expect((await registryRows(local.dbs.tracking)).size).toBe(3);
      for (const key of keys) await expect(local.secondaryS3.send(new HeadObjectCommand({ Bucket: env.s3!.secondary.bucket, Key: key }))).resolves.toBeDefined();
    } finally {
      await local.close();
    }
  });

  it("fails an object missing on the primary with missing_on_primary and a backoff capped at 4 hours", async () => {
    const id = await addWidget(null, "never-uploaded.bin");
    const primary = await world.run("verify-primary");
    expect(primary.code).toBe(0);
    const state = await world.dbs.primary.query(`SELECT verification_state, verification_failure FROM cool_widget_states WHERE cool_widget_id = $1`, [id]);
    expect(state.rows[0]).toMatchObject({ verification_state: 3 });
    expect(state.rows[0].verification_failure).toMatch(/does not exist on the primary/);
    await runOk("consistency");
    await runOk("sync");
    const row = (await registryRows(world.dbs.tracking)).get(id)!;
    expect(row).toMatchObject({ state: 3, missing_on_primary: true, retry_count: 1 });
    expect(row.last_sync_failure).toMatch(/does not exist on the primary/);
    const delay = (row.retry_at.getTime() - Date.now()) / 1000;
    expect(delay).toBeGreaterThan(0);
    expect(delay).toBeLessThanOrEqual(4 * 3600);
    expect(await secondaryObject(id)).toBeUndefined();
  });

  it("refuses a hostile key on its row without writing anything", async () => {
    const id = await addWidget(null, "../../escape.bin");
    await runOk("consistency");
    await runOk("sync");
    const row = (await registryRows(world.dbs.tracking)).get(id)!;
    expect(row.state).toBe(3);
    expect(row.last_sync_failure).toMatch(/invalid object key/i);
  });

  it("exits non-zero with a readable message on fatal configuration errors", async () => {
    const badCreds = await world.run("sync", { GEO_SECONDARY_S3_SECRET_ACCESS_KEY: "wrong" });
    expect(badCreds.code).toBe(1);
    expect(badCreds.stderr).toMatch(/the secondary's bucket .* rejects the credentials/);
    const noBucket = await world.run("sync", {
      GEO_SITE_SPEC: JSON.stringify({ ...world.secondarySite, objectStorage: { ...world.secondarySite.objectStorage, bucket: "no-such-bucket" } }),
    });
    expect(noBucket.code).toBe(1);
    expect(noBucket.stderr).toMatch(/bucket no-such-bucket does not exist/);
    const noDb = await world.run("sync", { GEO_TRACKING_DB_URL: "postgres://geo:hunter2@127.0.0.1:1/nowhere" });
    expect(noDb.code).toBe(1);
    expect(noDb.stderr).toMatch(/cannot reach the tracking database at 127\.0\.0\.1:1\/nowhere: connection refused/);
    expect(noDb.stderr).not.toContain("hunter2");
    const wrongSite = await world.run("verify-primary", { GEO_SITE_SPEC: JSON.stringify(world.secondarySite) });
    expect(wrongSite.code).toBe(2);
    expect(wrongSite.stderr).toMatch(/verify-primary runs on the primary site/);
  });

  it("lets two sync workers share a type, claiming disjoint rows", async () => {
    const ids: number[] = [];
    for (let i = 0; i < 40; i++) ids.push(await addWidget(randomBytes(64 * 1024), `par-${i}.bin`));
    await runOk("verify-primary");
    await runOk("consistency");
    // Rows earlier tests left failed (a hostile key) come due after their backoff, which a slow
    // machine reaches during this test: keep them out of the count.
    await world.dbs.tracking.query(`UPDATE cool_widget_registry SET retry_at = now() + interval '1 day' WHERE state = 3`);
    const [a, b] = await Promise.all([world.run("sync"), world.run("sync")]);
    expect(a.code).toBe(0);
    expect(b.code).toBe(0);
    const claimed = (s: string) => Number(/claimed=(\d+)/.exec(s)![1]);
    const synced = (s: string) => Number(/synced=(\d+)/.exec(s)![1]);
    expect(claimed(a.stdout) + claimed(b.stdout)).toBe(40);
    expect(synced(a.stdout) + synced(b.stdout)).toBe(40);
    const rows = await registryRows(world.dbs.tracking);
    for (const id of ids) expect(rows.get(id)!.state).toBe(2);
  });

  it("a worker killed mid-copy leaves nothing marked synced, and the stuck row is retried", async () => {
    // Large enough (a multipart upload) that the copy is still running when the worker is killed.
    const id = await addWidget(randomBytes(160 * 1024 * 1024), "killed.bin");
    await runOk("consistency");
    const child = world.spawnWorker("sync");
    // Wait until the copy is under way (the row is started), then kill the worker outright.
    for (let i = 0; i < 200; i++) {
      const row = (await registryRows(world.dbs.tracking)).get(id);
      if (row?.state === 1) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    child.kill("SIGKILL");
    await new Promise((r) => child.on("close", r));
    let row = (await registryRows(world.dbs.tracking)).get(id)!;
    expect(row.state).toBe(1);
    const partial = await secondaryObject(id);
    if (partial) expect(Buffer.compare(partial, contents.get(id)!)).toBe(0); // a complete object or none
    // Past the stuck-started timeout the row returns to failed and is copied again.
    await world.dbs.tracking.query(`UPDATE cool_widget_registry SET last_synced_at = now() - interval '9 hours' WHERE cool_widget_id = $1`, [id]);
    await runOk("sync");
    row = (await registryRows(world.dbs.tracking)).get(id)!;
    expect(row.state).toBe(3);
    await retryNow(world.dbs.tracking);
    await runOk("sync");
    row = (await registryRows(world.dbs.tracking)).get(id)!;
    expect(row.state).toBe(2);
    expect(Buffer.compare((await secondaryObject(id))!, contents.get(id)!)).toBe(0);
    await world.secondaryS3.send(new DeleteObjectCommand({ Bucket: env.s3!.secondary.bucket, Key: `${world.prefix}cool_widgets/${id}/killed.bin` }));
  });

  it("an S3 endpoint stopped mid-run gives failures with backoff, and recovery once it is back", async () => {
    const stateDir = mkdtempSync(join(tmpdir(), "geo-minio-"));
    let minio = await startMinio({ name: "s3-flaky", stateDir, binary: process.env.GEO_TEST_MINIO!, buckets: ["geo-flaky"] });
    const flaky = { endpoint: minio.endpoint, region: minio.region, bucket: "geo-flaky", accessKeyId: minio.accessKeyId, secretAccessKey: minio.secretAccessKey };
    const local = await createBlobWorld(env, { secondaryS3: flaky });
    try {
      const put = async (i: number) => {
        const { rows } = await local.dbs.primary.query<{ id: string }>(`INSERT INTO cool_widgets (namespace_id, file_name) VALUES (1, $1) RETURNING id`, [`f${i}.bin`]);
        await local.primaryS3.send(new PutObjectCommand({ Bucket: env.s3!.primary.bucket, Key: `${local.prefix}cool_widgets/${rows[0]!.id}/f${i}.bin`, Body: randomBytes(4 * 1024 * 1024) }));
      };
      // Enough data that the run is still copying when the server goes away.
      for (let i = 0; i < 40; i++) await put(i);
      const ok = async (kind: Parameters<World["run"]>[0]) => expect((await local.run(kind)).code).toBe(0);
      await ok("consistency");
      const child = local.spawnWorker("sync");
      let out = "";
      child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
      // Stop the secondary's S3 server once some objects are copied.
      for (let i = 0; i < 400; i++) {
        const { rows } = await local.dbs.tracking.query(`SELECT count(*)::int AS n FROM cool_widget_registry WHERE state = 2`);
        if (rows[0].n >= 1) break;
        await new Promise((r) => setTimeout(r, 25));
      }
      await minio.stop();
      const code = await new Promise((r) => child.on("close", r));
      expect(code).toBe(0);
      const after = [...(await registryRows(local.dbs.tracking)).values()];
      const failed = after.filter((r) => r.state === 3);
      expect(failed.length).toBeGreaterThan(0);
      expect(after.filter((r) => r.state === 1)).toHaveLength(0);
      for (const r of failed) {
        expect(r.retry_count).toBe(1);
        expect(r.retry_at.getTime()).toBeGreaterThan(Date.now());
        expect(r.last_sync_failure).toBeTruthy();
      }
      expect(out).toMatch(/failed=[1-9]/);
      // Back on the same port and data: once the backoff has passed, everything syncs.
      minio = await startMinio({ name: "s3-flaky", stateDir, binary: process.env.GEO_TEST_MINIO!, buckets: ["geo-flaky"], port: minio.port });
      await retryNow(local.dbs.tracking);
      await ok("sync");
      await ok("verify-primary");
      await ok("verify");
      const healed = [...(await registryRows(local.dbs.tracking)).values()];
      expect(healed.every((r) => r.state === 2 && r.verification_state === 2)).toBe(true);
    } finally {
      await local.close();
      await minio.stop();
      rmSync(stateDir, { recursive: true, force: true });
    }
  });

  it("replicates only the selected namespaces with selective sync, and removes copies that leave the selection", async () => {
    const local = await createBlobWorld(env, { typeOverrides: IMMEDIATE_DELETIONS });
    try {
      const add = async (ns: number, name: string) => {
        const { rows } = await local.dbs.primary.query<{ id: string }>(`INSERT INTO cool_widgets (namespace_id, file_name) VALUES ($1, $2) RETURNING id`, [ns, name]);
        await local.primaryS3.send(new PutObjectCommand({ Bucket: env.s3!.primary.bucket, Key: `${local.prefix}cool_widgets/${rows[0]!.id}/${name}`, Body: randomBytes(256) }));
        return Number(rows[0]!.id);
      };
      const inSelection = await add(7, "selected.bin");
      const outside = await add(8, "not-selected.bin");
      local.secondarySite = { ...local.secondarySite, selectiveSync: { type: "namespaces", namespaces: [7] } };
      for (const kind of ["consistency", "sync"] as const) expect((await local.run(kind)).code).toBe(0);
      let rows = await registryRows(local.dbs.tracking);
      expect([...rows.keys()]).toEqual([inSelection]);
      expect(rows.get(inSelection)!.state).toBe(2);
      // Namespace 7 leaves the selection: its copy and registry row go (on the second pass); namespace 8 comes in.
      local.secondarySite = { ...local.secondarySite, selectiveSync: { type: "namespaces", namespaces: [8] } };
      for (const kind of ["consistency", "sync"] as const) expect((await local.run(kind)).code).toBe(0);
      expect((await registryRows(local.dbs.tracking)).has(inSelection)).toBe(true);
      expect((await local.run("consistency")).code).toBe(0);
      rows = await registryRows(local.dbs.tracking);
      expect([...rows.keys()]).toEqual([outside]);
      await expect(local.secondaryS3.send(new HeadObjectCommand({ Bucket: env.s3!.secondary.bucket, Key: `${local.prefix}cool_widgets/${inSelection}/selected.bin` }))).rejects.toMatchObject({ name: "NotFound" });
      await expect(local.primaryS3.send(new HeadObjectCommand({ Bucket: env.s3!.primary.bucket, Key: `${local.prefix}cool_widgets/${inSelection}/selected.bin` }))).resolves.toBeDefined();
    } finally {
      await local.close();
    }
  });
});
