/**
 * Blobs kept as files, end to end through the worker commands (each run as its own process, as a
 * Job runs it): real directories, real MinIO, real PostgreSQL, and the primary's retrieval server
 * over real HTTPS. After every run the primary's directory is byte-for-byte what it was.
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { HeadObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import type { GeoSite } from "../../../src/api/v1alpha1/resources.ts";
import type { GeoSiteSpec, ReplicableTypeSpec } from "../../../src/api/v1alpha1/types.generated.ts";
import { writeHeartbeat } from "../../../src/registry/heartbeat.ts";
import { blobStrategy } from "../../../src/strategies/blob/definition.ts";
import type { BlobSettings } from "../../../src/strategies/blob/settings.ts";
import type { RunningSiteServer } from "../../../src/strategies/site-server.ts";
import { createTestCertificates, type TestCertificates } from "../../support/tls.ts";
import { createBlobWorld, PRIMARY_SITE_NAME, readObject, registryRows, retryNow, type World } from "../../support/worker-world.ts";

const env = inject("env");
const sha = (b: Buffer) => createHash("sha256").update(b).digest();
const NO_S3 = { GEO_PRIMARY_S3_ACCESS_KEY_ID: "", GEO_PRIMARY_S3_SECRET_ACCESS_KEY: "", GEO_SECONDARY_S3_ACCESS_KEY_ID: "", GEO_SECONDARY_S3_SECRET_ACCESS_KEY: "" };

/** SHA-256 over every entry under `dir` (path, kind, mode, content or link target), in order. */
function treeHash(dir: string): string {
  const hash = createHash("sha256");
  const walk = (rel: string) => {
    for (const name of readdirSync(join(dir, rel)).sort()) {
      const path = join(rel, name);
      const stat = lstatSync(join(dir, path));
      hash.update(`${path}\0${stat.mode}\0${stat.mtimeMs}\0`);
      if (stat.isSymbolicLink()) hash.update(readlinkSync(join(dir, path)));
      else if (stat.isDirectory()) walk(path);
      else hash.update(readFileSync(join(dir, path)));
      hash.update("\0");
    }
  };
  walk("");
  return hash.digest("hex");
}

interface FilesWorld {
  world: World;
  base: string;
  primaryRoot: string;
  secondaryRoot: string;
  /** Adds a model row and its blob: a file under the primary's root, or an object in its bucket. */
  add(body: Buffer, opts?: { name?: string; store?: 1 | 2 | null; namespaceId?: number }): Promise<number>;
  key(id: number): Promise<string>;
  secondaryFile(id: number): Promise<Buffer | undefined>;
  secondaryObject(id: number): Promise<Buffer | undefined>;
  /** Runs a worker, expects exit 0, and checks that the primary's directory did not change. */
  runOk(kind: Parameters<World["run"]>[0], overrides?: Record<string, string>): Promise<string>;
  fullRound(overrides?: Record<string, string>): Promise<{ sync: string; verify: string }>;
  close(): Promise<void>;
}

async function createFilesWorld(blob: ReplicableTypeSpec["blob"], opts: { storeColumn?: boolean; overrides?: Record<string, string> } = {}): Promise<FilesWorld> {
  const world = await createBlobWorld(env, {
    typeOverrides: {
      blob,
      deletion: { gracePeriod: "0s" },
      source: { table: "cool_widgets", objectKey: { template: "cool_widgets/{id}/{file_name}" }, namespaceColumn: "namespace_id", ...(opts.storeColumn ? { storeColumn: "file_store" } : {}) },
    },
  });
  if (opts.storeColumn) await world.dbs.primary.query(`ALTER TABLE cool_widgets ADD COLUMN file_store smallint`);
  const base = mkdtempSync(join(tmpdir(), "geo-files-workers-"));
  const primaryRoot = join(base, "primary");
  const secondaryRoot = join(base, "secondary");
  mkdirSync(primaryRoot);
  mkdirSync(secondaryRoot);
  world.primarySite = { ...world.primarySite, fileStorage: { root: primaryRoot } };
  world.secondarySite = { ...world.secondarySite, fileStorage: { root: secondaryRoot } };
  const fw: FilesWorld = {
    world,
    base,
    primaryRoot,
    secondaryRoot,
    async add(body, { name = `f-${randomBytes(3).toString("hex")}.bin`, store = null, namespaceId = 1 } = {}) {
      const { rows } = opts.storeColumn
        ? await world.dbs.primary.query<{ id: string }>(`INSERT INTO cool_widgets (namespace_id, file_name, file_store) VALUES ($1, $2, $3) RETURNING id`, [namespaceId, name, store])
        : await world.dbs.primary.query<{ id: string }>(`INSERT INTO cool_widgets (namespace_id, file_name) VALUES ($1, $2) RETURNING id`, [namespaceId, name]);
      const id = Number(rows[0]!.id);
      const key = `cool_widgets/${id}/${name}`;
      const inFiles = store === 1 || (store === null && (blob?.primaryStore ?? "ObjectStorage") === "FileStorage");
      if (inFiles) {
        mkdirSync(dirname(join(primaryRoot, key)), { recursive: true });
        writeFileSync(join(primaryRoot, key), body);
      } else {
        await world.primaryS3.send(new PutObjectCommand({ Bucket: env.s3!.primary.bucket, Key: `${world.prefix}${key}`, Body: body }));
      }
      return id;
    },
    async key(id) {
      const { rows } = await world.dbs.primary.query<{ file_name: string }>(`SELECT file_name FROM cool_widgets WHERE id = $1`, [id]);
      return `cool_widgets/${id}/${rows[0]!.file_name}`;
    },
    async secondaryFile(id) {
      const path = join(secondaryRoot, await fw.key(id));
      return existsSync(path) ? readFileSync(path) : undefined;
    },
    async secondaryObject(id) {
      return readObject(world.secondaryS3, env.s3!.secondary.bucket, `${world.prefix}${await fw.key(id)}`);
    },
    async runOk(kind, overrides = {}) {
      const before = treeHash(primaryRoot);
      const res = await world.run(kind, { ...opts.overrides, ...overrides });
      expect(res.code, `${kind} failed: ${res.stderr}`).toBe(0);
      expect(treeHash(primaryRoot), `${kind} changed the primary's directory`).toBe(before);
      return res.stdout;
    },
    async fullRound(overrides = {}) {
      await fw.runOk("verify-primary", overrides);
      await fw.runOk("consistency", overrides);
      const sync = await fw.runOk("sync", overrides);
      const verify = await fw.runOk("verify", overrides);
      return { sync, verify };
    },
    async close() {
      await world.close();
      rmSync(base, { recursive: true, force: true });
    },
  };
  return fw;
}

/** Every registry row synced and verified, with the primary's checksum. */
async function expectReplicated(fw: FilesWorld, contents: Map<number, Buffer>) {
  const rows = await registryRows(fw.world.dbs.tracking);
  for (const [id, body] of contents) {
    const row = rows.get(id)!;
    expect(row, `row ${id}`).toMatchObject({ state: 2, verification_state: 2, missing_on_primary: false });
    expect(Buffer.compare(row.verification_checksum, sha(body))).toBe(0);
  }
  const states = await fw.world.dbs.primary.query(`SELECT cool_widget_id, verification_state, verification_checksum FROM cool_widget_states`);
  for (const s of states.rows) {
    const body = contents.get(Number(s.cool_widget_id));
    if (!body) continue;
    expect(s.verification_state).toBe(2);
    expect(Buffer.compare(s.verification_checksum, sha(body))).toBe(0);
  }
}

async function locationOf(fw: FilesWorld, id: number): Promise<string | null> {
  const { rows } = await fw.world.dbs.tracking.query(`SELECT location FROM geo_operator_replicas WHERE type_name = 'cool_widget' AND model_id = $1`, [id]);
  return rows[0]?.location ?? null;
}

/** Deletes the model rows and runs consistency twice (grace 0), as the deletion tests do. */
async function deleteOnPrimary(fw: FilesWorld, ids: number[]) {
  await fw.world.dbs.primary.query(`DELETE FROM cool_widgets WHERE id = ANY($1::bigint[])`, [ids]);
  await writeHeartbeat(fw.world.dbs.primary, PRIMARY_SITE_NAME);
  expect(await fw.runOk("consistency")).not.toMatch(/deleted=/);
  expect(await fw.runOk("consistency")).toMatch(new RegExp(`deleted=${ids.length}`));
}

describe("blob workers with files on both sides, read directly", () => {
  let fw: FilesWorld;
  const contents = new Map<number, Buffer>();
  beforeAll(async () => {
    // No S3 credentials at all: a type whose blobs are files never needs them.
    fw = await createFilesWorld({ primaryStore: "FileStorage" }, { overrides: NO_S3 });
  });
  afterAll(async () => fw?.close());

  it("replicates and verifies files (empty, unicode, 5 MiB) into the secondary's directory", async () => {
    for (const [body, name] of [[Buffer.alloc(0), "empty.txt"], [Buffer.from("unicodé ✓"), "ünï cödé ✓.txt"], [randomBytes(5 * 1024 * 1024 + 7), "large.bin"]] as const) {
      contents.set(await fw.add(body, { name }), body);
    }
    const { sync, verify } = await fw.fullRound();
    expect(sync).toMatch(/claimed=3 synced=3 failed=0/);
    expect(verify).toMatch(/verified=3 failed=0/);
    await expectReplicated(fw, contents);
    for (const [id, body] of contents) {
      expect(Buffer.compare((await fw.secondaryFile(id))!, body)).toBe(0);
      expect(await locationOf(fw, id)).toBe(`file:${await fw.key(id)}`);
    }
    // Written atomically: no temporary file is left behind.
    const names: string[] = [];
    const walk = (d: string) => readdirSync(d, { withFileTypes: true }).forEach((e) => (e.isDirectory() ? walk(join(d, e.name)) : names.push(e.name)));
    walk(fw.secondaryRoot);
    expect(names.filter((n) => n.startsWith(".geo-tmp-"))).toEqual([]);
  });

  it("fails a corrupted file copy's verification and heals it on the next sync", async () => {
    const body = randomBytes(4096);
    const id = await fw.add(body, { name: "to-corrupt.bin" });
    await fw.fullRound();
    writeFileSync(join(fw.secondaryRoot, await fw.key(id)), "corrupted");
    await fw.world.dbs.tracking.query(`UPDATE cool_widget_registry SET verification_state = 0 WHERE cool_widget_id = $1`, [id]);
    expect(await fw.runOk("verify")).toMatch(/failed=1/);
    let row = (await registryRows(fw.world.dbs.tracking)).get(id)!;
    expect(row).toMatchObject({ state: 3, verification_state: 3, checksum_mismatch: true });
    expect(Buffer.compare(row.verification_checksum_mismatched, sha(Buffer.from("corrupted")))).toBe(0);
    await retryNow(fw.world.dbs.tracking);
    await fw.runOk("sync");
    await fw.runOk("verify");
    row = (await registryRows(fw.world.dbs.tracking)).get(id)!;
    expect(row).toMatchObject({ state: 2, verification_state: 2, checksum_mismatch: false });
    expect(Buffer.compare((await fw.secondaryFile(id))!, body)).toBe(0);
  });

  it("a complete consistency pass removes temporary files a crashed write left on the secondary's volume, and only stale ones", async () => {
    const id = await fw.add(randomBytes(100), { name: "neighbour.bin" });
    await fw.fullRound();
    const dir = dirname(join(fw.secondaryRoot, await fw.key(id)));
    const stale = join(dir, ".geo-tmp-0123456789abcdef");
    const fresh = join(dir, ".geo-tmp-fedcba9876543210");
    const lookalike = join(fw.primaryRoot, ".geo-tmp-on-the-primary");
    for (const f of [stale, fresh, lookalike]) writeFileSync(f, "partial write");
    const threeHoursAgo = new Date(Date.now() - 3 * 60 * 60_000);
    utimesSync(stale, threeHoursAgo, threeHoursAgo);
    utimesSync(lookalike, threeHoursAgo, threeHoursAgo);
    await fw.runOk("consistency");
    expect(existsSync(stale)).toBe(false);
    // A write that may still be in progress, the copies, and anything on the primary stay.
    expect(existsSync(fresh)).toBe(true);
    expect(await fw.secondaryFile(id)).toBeDefined();
    expect(existsSync(lookalike)).toBe(true);
    rmSync(fresh);
    rmSync(lookalike);
  });

  it("removes the file copy of a record deleted on the primary, and never the primary's file", async () => {
    const keep = await fw.add(randomBytes(100), { name: "keep.bin" });
    const gone = await fw.add(randomBytes(100), { name: "gone.bin" });
    await fw.fullRound();
    const goneKey = await fw.key(gone);
    expect(await fw.secondaryFile(gone)).toBeDefined();
    await deleteOnPrimary(fw, [gone]);
    expect(existsSync(join(fw.secondaryRoot, goneKey))).toBe(false);
    expect(existsSync(join(fw.primaryRoot, goneKey))).toBe(true);
    expect(await fw.secondaryFile(keep)).toBeDefined();
    expect((await registryRows(fw.world.dbs.tracking)).has(gone)).toBe(false);
  });

  it("records a file missing on the primary as missing_on_primary, and a key that leaves the root as a failure that reads nothing outside", async () => {
    const { rows } = await fw.world.dbs.primary.query<{ id: string }>(`INSERT INTO cool_widgets (namespace_id, file_name) VALUES (1, 'never-written.bin') RETURNING id`);
    const missing = Number(rows[0]!.id);
    // A directory of the key is a symlink that points outside the root, at a file that exists.
    mkdirSync(join(fw.base, "outside"));
    writeFileSync(join(fw.base, "outside/secret.txt"), "outside the root");
    const escaping = await fw.add(Buffer.from("x"), { name: "placeholder.bin" });
    rmSync(join(fw.primaryRoot, `cool_widgets/${escaping}`), { recursive: true });
    symlinkSync(join(fw.base, "outside"), join(fw.primaryRoot, `cool_widgets/${escaping}`));
    await fw.world.dbs.primary.query(`UPDATE cool_widgets SET file_name = 'secret.txt' WHERE id = $1`, [escaping]);

    await fw.runOk("verify-primary");
    await fw.runOk("consistency");
    await fw.runOk("sync");
    const after = await registryRows(fw.world.dbs.tracking);
    expect(after.get(missing)).toMatchObject({ state: 3, missing_on_primary: true });
    expect(after.get(escaping)).toMatchObject({ state: 3, missing_on_primary: false });
    expect(after.get(escaping)!.last_sync_failure).toMatch(/real path leaves the root directory/);
    const state = await fw.world.dbs.primary.query(`SELECT verification_state, verification_failure FROM cool_widget_states WHERE cool_widget_id = $1`, [escaping]);
    expect(state.rows[0]).toMatchObject({ verification_state: 3 });
    expect(state.rows[0].verification_failure).toMatch(/leaves the root/);
    expect(existsSync(join(fw.secondaryRoot, `cool_widgets/${escaping}`))).toBe(false);
  });
});

describe("an unavailable volume", () => {
  it("fails the run (the volume is not mounted), never marking anything missing", async () => {
    const fw = await createFilesWorld({ primaryStore: "FileStorage" }, { overrides: NO_S3 });
    try {
      await fw.add(randomBytes(10));
      const gone = { ...fw.world.primarySite, fileStorage: { root: join(fw.base, "not-mounted") } };
      const primary = await fw.world.run("verify-primary", { ...NO_S3, GEO_SITE_SPEC: JSON.stringify(gone) });
      expect(primary.code).toBe(1);
      expect(primary.stderr).toMatch(/directory .*not-mounted \(read-only\): the directory is not available \(ENOENT\); is the volume mounted\?/);
      await fw.runOk("consistency");
      const sync = await fw.world.run("sync", { ...NO_S3, GEO_PRIMARY_SITE_SPEC: JSON.stringify(gone) });
      expect(sync.code).toBe(1);
      const rows = [...(await registryRows(fw.world.dbs.tracking)).values()];
      expect(rows.every((r) => r.state === 0 && !r.missing_on_primary)).toBe(true);
      const states = await fw.world.dbs.primary.query(`SELECT count(*)::int AS n FROM cool_widget_states WHERE verification_state = 3`);
      expect(states.rows[0].n).toBe(0);
    } finally {
      await fw.close();
    }
  });
});

describe("blob workers between files and object storage", () => {
  it("copies the primary's files into the secondary's bucket", async () => {
    const fw = await createFilesWorld({ primaryStore: "FileStorage", secondaryStore: "ObjectStorage" }, { overrides: { GEO_PRIMARY_S3_ACCESS_KEY_ID: "", GEO_PRIMARY_S3_SECRET_ACCESS_KEY: "" } });
    try {
      const contents = new Map<number, Buffer>();
      for (const size of [0, 1000, 20 * 1024 * 1024 + 3]) {
        const body = randomBytes(size);
        contents.set(await fw.add(body), body);
      }
      const { sync } = await fw.fullRound();
      expect(sync).toMatch(/synced=3 failed=0/);
      await expectReplicated(fw, contents);
      for (const [id, body] of contents) {
        expect(Buffer.compare((await fw.secondaryObject(id))!, body)).toBe(0);
        expect(await fw.secondaryFile(id)).toBeUndefined();
        expect(await locationOf(fw, id)).toBe(await fw.key(id));
      }
      const [gone] = contents.keys();
      const goneKey = await fw.key(gone!);
      await deleteOnPrimary(fw, [gone!]);
      await expect(fw.world.secondaryS3.send(new HeadObjectCommand({ Bucket: env.s3!.secondary.bucket, Key: `${fw.world.prefix}${goneKey}` }))).rejects.toMatchObject({ name: "NotFound" });
      expect(existsSync(join(fw.primaryRoot, goneKey))).toBe(true);
    } finally {
      await fw.close();
    }
  });

  it("copies the primary's objects into the secondary's directory", async () => {
    const fw = await createFilesWorld({ primaryStore: "ObjectStorage", secondaryStore: "FileStorage" }, { overrides: { GEO_SECONDARY_S3_ACCESS_KEY_ID: "", GEO_SECONDARY_S3_SECRET_ACCESS_KEY: "" } });
    try {
      const contents = new Map<number, Buffer>();
      for (const size of [0, 1000, 3 * 1024 * 1024]) {
        const body = randomBytes(size);
        contents.set(await fw.add(body), body);
      }
      await fw.fullRound();
      await expectReplicated(fw, contents);
      for (const [id, body] of contents) {
        expect(Buffer.compare((await fw.secondaryFile(id))!, body)).toBe(0);
        expect(await locationOf(fw, id)).toBe(`file:${await fw.key(id)}`);
      }
    } finally {
      await fw.close();
    }
  });

  it("follows GitLab's file_store per record (1 file, 2 object storage, empty: primaryStore) and removes each copy from its own store", async () => {
    const fw = await createFilesWorld({}, { storeColumn: true });
    try {
      const local = Buffer.from("a local upload");
      const remote = Buffer.from("an object-stored upload");
      const unset = Buffer.from("no file_store: primaryStore ObjectStorage");
      const l = await fw.add(local, { store: 1 });
      const r = await fw.add(remote, { store: 2 });
      const u = await fw.add(unset, { store: null });
      const bad = await fw.add(Buffer.from("?"), { store: 2 });
      await fw.world.dbs.primary.query(`UPDATE cool_widgets SET file_store = 7 WHERE id = $1`, [bad]);
      await fw.fullRound();
      await expectReplicated(fw, new Map([[l, local], [r, remote], [u, unset]]));
      expect(Buffer.compare((await fw.secondaryFile(l))!, local)).toBe(0);
      expect(await fw.secondaryObject(l)).toBeUndefined();
      expect(Buffer.compare((await fw.secondaryObject(r))!, remote)).toBe(0);
      expect(await fw.secondaryFile(r)).toBeUndefined();
      expect(Buffer.compare((await fw.secondaryObject(u))!, unset)).toBe(0);
      expect(await locationOf(fw, l)).toBe(`file:${await fw.key(l)}`);
      expect(await locationOf(fw, r)).toBe(await fw.key(r));
      const badRow = (await registryRows(fw.world.dbs.tracking)).get(bad)!;
      expect(badRow).toMatchObject({ state: 3, missing_on_primary: false });
      expect(badRow.last_sync_failure).toMatch(/file_store = 7 is not a store/);

      const [lKey, rKey] = [await fw.key(l), await fw.key(r)];
      await deleteOnPrimary(fw, [l, r]);
      expect(existsSync(join(fw.secondaryRoot, lKey))).toBe(false);
      expect(existsSync(join(fw.primaryRoot, lKey))).toBe(true);
      await expect(fw.world.secondaryS3.send(new HeadObjectCommand({ Bucket: env.s3!.secondary.bucket, Key: `${fw.world.prefix}${rKey}` }))).rejects.toMatchObject({ name: "NotFound" });
      await expect(fw.world.primaryS3.send(new HeadObjectCommand({ Bucket: env.s3!.primary.bucket, Key: `${fw.world.prefix}${rKey}` }))).resolves.toBeDefined();
      expect(await fw.secondaryObject(u)).toBeDefined();
    } finally {
      await fw.close();
    }
  });
});

describe("blob workers reading the primary's files through its retrieval server", () => {
  let fw: FilesWorld;
  let certs: TestCertificates;
  let server: RunningSiteServer;
  const key = randomBytes(32).toString("hex");
  const contents = new Map<number, Buffer>();

  async function freePort(): Promise<number> {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise((resolve) => probe.close(resolve));
    return port;
  }

  beforeAll(async () => {
    certs = createTestCertificates();
    fw = await createFilesWorld({ primaryStore: "FileStorage" }, { overrides: { ...NO_S3, GEO_PRIMARY_FILES_KEY: key, GEO_PRIMARY_FILES_CA: certs.ca } });
    const port = await freePort();
    const primarySpec: GeoSiteSpec = {
      ...fw.world.primarySite,
      fileStorage: { root: fw.primaryRoot, retrieval: { url: `https://127.0.0.1:${port}`, port, tlsSecretRef: { name: "files-tls" } } },
    };
    fw.world.primarySite = primarySpec;
    // The secondary keeps no path to the primary's directory: only the server can read it.
    fw.world.secondarySite = { ...fw.world.secondarySite, fileStorage: { root: fw.secondaryRoot, retrievalCredentialsSecretRef: { name: "tokyo-files-key" } } };
    const asSite = (name: string, spec: GeoSiteSpec): GeoSite => ({ apiVersion: "geo.replication.dev/v1alpha1", kind: "GeoSite", metadata: { name, namespace: "geo" }, spec });
    const settings = blobStrategy.parseSettings(fw.world.type) as BlobSettings;
    const [wanted] = blobStrategy.siteServers!(asSite(PRIMARY_SITE_NAME, primarySpec), [asSite("tokyo", fw.world.secondarySite)], [settings]);
    expect(wanted!.env.map((e) => e.name)).toEqual(["GEO_FILES_TLS_CERT", "GEO_FILES_TLS_KEY", "GEO_FILES_SITE_KEY_tokyo"]);
    // What the in-process executor does: the env resolved from the Secrets, then start().
    server = await wanted!.start({ GEO_FILES_TLS_CERT: certs.cert, GEO_FILES_TLS_KEY: certs.key, GEO_FILES_SITE_KEY_tokyo: key }, pino({ level: "silent" }));
  });
  afterAll(async () => {
    await server?.close();
    await fw?.close();
    certs?.remove();
  });
  afterEach(async () => retryNow(fw.world.dbs.tracking));

  it("replicates and verifies through the server", async () => {
    expect(server.url).toBe(fw.world.primarySite.fileStorage!.retrieval!.url);
    for (const [body, name] of [[randomBytes(3 * 1024 * 1024 + 1), "big.bin"], [Buffer.alloc(0), "empty"], [Buffer.from("spaces & ünïcode"), "a b ü#?.txt"]] as const) {
      contents.set(await fw.add(body, { name }), body);
    }
    const { sync } = await fw.fullRound();
    expect(sync).toMatch(/synced=3 failed=0/);
    await expectReplicated(fw, contents);
    for (const [id, body] of contents) expect(Buffer.compare((await fw.secondaryFile(id))!, body)).toBe(0);
  });

  it("fails rows with a backoff, never missing_on_primary, when the server refuses this site's key", async () => {
    const id = await fw.add(randomBytes(64), { name: "refused.bin" });
    const missing = Number((await fw.world.dbs.primary.query<{ id: string }>(`INSERT INTO cool_widgets (namespace_id, file_name) VALUES (1, 'absent.bin') RETURNING id`)).rows[0]!.id);
    const wrongKey = { GEO_PRIMARY_FILES_KEY: randomBytes(32).toString("hex") };
    await fw.runOk("consistency", wrongKey);
    expect(await fw.runOk("sync", wrongKey)).toMatch(/failed=2/);
    const rows = await registryRows(fw.world.dbs.tracking);
    for (const row of [rows.get(id)!, rows.get(missing)!]) {
      expect(row).toMatchObject({ state: 3, missing_on_primary: false, retry_count: 1 });
      expect(row.last_sync_failure).toMatch(/refused this site's credentials \(401/);
      expect(row.retry_at.getTime()).toBeGreaterThan(Date.now());
    }
    expect(await fw.secondaryFile(id)).toBeUndefined();
    // With the right key the same rows sync (or are found missing, now unambiguously).
    await retryNow(fw.world.dbs.tracking);
    await fw.runOk("sync");
    const healed = await registryRows(fw.world.dbs.tracking);
    expect(healed.get(id)).toMatchObject({ state: 2 });
    expect(healed.get(missing)).toMatchObject({ state: 3, missing_on_primary: true });
  });

  it("refuses a key whose real path leaves the primary's root: the row fails and nothing is read or written outside", async () => {
    mkdirSync(join(fw.base, "outside-r"));
    writeFileSync(join(fw.base, "outside-r/secret.txt"), "outside the root");
    const id = await fw.add(Buffer.from("x"), { name: "secret.txt" });
    rmSync(join(fw.primaryRoot, `cool_widgets/${id}`), { recursive: true });
    symlinkSync(join(fw.base, "outside-r"), join(fw.primaryRoot, `cool_widgets/${id}`));
    await fw.runOk("consistency");
    await fw.runOk("sync");
    const row = (await registryRows(fw.world.dbs.tracking)).get(id)!;
    expect(row).toMatchObject({ state: 3, missing_on_primary: false });
    expect(row.last_sync_failure).toMatch(/refused it \(outside-root\)/);
    expect(existsSync(join(fw.secondaryRoot, `cool_widgets/${id}`))).toBe(false);
    expect(readdirSync(join(fw.base, "outside-r"))).toEqual(["secret.txt"]);
  });

  it("a sync waits for a retrieval server that starts late, and copies without a failed attempt", async () => {
    const id = await fw.add(randomBytes(64), { name: "late-server.bin" });
    const files = fw.world.primarySite.fileStorage!;
    const target = new URL(files.retrieval!.url);
    // The server's address as the sync sees it starts answering 2 s after the sync starts.
    const port = await freePort();
    const late = createServer((client) => {
      const upstream = connect(Number(target.port), target.hostname);
      client.pipe(upstream).pipe(client);
      client.on("error", () => upstream.destroy());
      upstream.on("error", () => client.destroy());
    });
    const opening = setTimeout(() => late.listen(port, "127.0.0.1"), 2_000);
    try {
      const env = { GEO_PRIMARY_SITE_SPEC: JSON.stringify({ ...fw.world.primarySite, fileStorage: { ...files, retrieval: { ...files.retrieval!, url: `https://127.0.0.1:${port}` } } }), GEO_RETRIEVAL_WAIT_SECONDS: "30" };
      await fw.runOk("consistency", env);
      await fw.runOk("sync", env);
      expect((await registryRows(fw.world.dbs.tracking)).get(id)).toMatchObject({ state: 2, retry_count: 0, last_sync_failure: null });
      expect(await fw.secondaryFile(id)).toBeDefined();
    } finally {
      clearTimeout(opening);
      await new Promise<void>((done) => late.close(() => done()));
    }
  });

  it("does not stop a run while the server is unreachable (starting, restarting): rows that read it fail with a backoff, never missing, and sync once it answers", async () => {
    const id = await fw.add(randomBytes(64), { name: "while-down.bin" });
    const files = fw.world.primarySite.fileStorage!;
    // (No wait for the server at the start of the sync: this is the path once a wait ran out.)
    const down = {
      GEO_PRIMARY_SITE_SPEC: JSON.stringify({ ...fw.world.primarySite, fileStorage: { ...files, retrieval: { ...files.retrieval!, url: `https://127.0.0.1:${await freePort()}` } } }),
      GEO_RETRIEVAL_WAIT_SECONDS: "0",
    };
    await fw.runOk("consistency", down);
    await fw.runOk("sync", down);
    const row = (await registryRows(fw.world.dbs.tracking)).get(id)!;
    expect(row).toMatchObject({ state: 3, missing_on_primary: false, retry_count: 1 });
    expect(row.last_sync_failure).toMatch(/unreachable \(ECONNREFUSED\)/);
    expect(row.retry_at.getTime()).toBeGreaterThan(Date.now());
    await retryNow(fw.world.dbs.tracking);
    await fw.runOk("sync");
    expect((await registryRows(fw.world.dbs.tracking)).get(id)).toMatchObject({ state: 2 });
    expect(await fw.secondaryFile(id)).toBeDefined();
  });
});
