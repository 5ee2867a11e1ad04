#!/usr/bin/env node
/**
 * Blob benchmark (issue 15): our sync and verification against rclone on the same objects, in one
 * run, at the same concurrency; and our SHA-256 against `openssl dgst -sha256` on the same bytes.
 *
 *   node bench/blob/run.ts [--quick] [--rounds N] [--profile] [--help]
 *
 * Starts two MinIO servers of its own (in a temp dir; stopped by PID at the end) and seeds the
 * primary with small (4,000 × 64 KiB) and large (16 × 64 MiB) objects, each with distinct bytes.
 * Per set and round, with the secondary's bucket emptied before each copy:
 *   - ours: the sync worker's per-object work (copyObject, object-store.ts's client as a worker
 *     builds it), 10 objects at once; then our verification pass over the copies (read every byte
 *     back, SHA-256, compare with the copy's checksum) and `rclone hashsum sha256 --download` over
 *     the same objects (their digests are compared with ours);
 *     then the default first verification (the SHA-256 the bucket checked at upload, a HEAD);
 *   - `rclone copy` and `rclone sync --checksum`, both with --transfers and --checkers 10;
 *   - as a breakdown, the floor of a copy on our transport: the bytes piped from GET (PlainHttpGet)
 *     to PUT (node:http) with nothing hashed (bare-pipe.ts), what our sync's own code cannot go below.
 * The order of the copiers rotates between rounds; the table shows medians. rclone and openssl
 * are the system's (`bash hack/tools/ensure-system.sh --bench`). Load averages are printed so a
 * busy machine shows in the output; wrap final runs in `flock /tmp/geo-bench.lock`.
 */
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { createWriteStream, mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { finished, pipeline } from "node:stream/promises";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import { startMinio, type S3Endpoint } from "../../hack/localenv/minio.ts";
import { FileSource, FileStore } from "../../src/strategies/blob/files/file-store.ts";
import { S3BlobStore } from "../../src/strategies/blob/s3-store.ts";
import { copyObject } from "../../src/strategies/blob/copy.ts";
import { createObjectStore, type ObjectStore } from "../../src/strategies/blob/object-store.ts";
import { sha256Object, storedSha256 } from "../../src/strategies/blob/s3-read.ts";
import { Sha256Meter } from "../../src/util/sha256-meter.ts";
import { BarePipe } from "./bare-pipe.ts";
import { parseOptions, type BenchOptions } from "./options.ts";
import { formatProfile, profiled, summarizeCpuProfile } from "./profile.ts";
import { MiB, childrenCpuSeconds, processCpuSeconds, emptyBucket, findMinio, listAll, median, objectSet, parseHashsum, pool, rcloneEnv, run, seedSet, timed, type ObjectSet } from "./workload.ts";

const SRC_BUCKET = "bench-src";
const DST_BUCKET = "bench-dst";

const log = (msg: string) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}`);
const load = () => loadavg().map((l) => l.toFixed(2)).join(" ");

/** One line of the table: our median against a baseline's, as a rate (higher is better). */
export interface Row {
  scenario: string;
  unit: string;
  ours: number;
  baseline: number;
  baselineName: string;
  /** Ratio ours/baseline that meets the issue's target; NaN when the row is a breakdown. */
  target: number;
}

interface Context {
  opts: BenchOptions;
  src: ObjectStore;
  dst: ObjectStore;
  cleaner: ReturnType<S3Endpoint["client"]>;
  env: NodeJS.ProcessEnv;
  profiles: string[];
  /** The floor of a copy in Node, for comparison (bare-pipe.ts). */
  bare: BarePipe;
  /** PIDs of the two MinIO servers, whose CPU is logged beside ours and rclone's. */
  minioPids: number[];
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const dir = mkdtempSync(join(tmpdir(), "geo-bench-blob-"));
  let servers: S3Endpoint[] = [];
  const stop = async () => {
    const s = servers;
    servers = [];
    await Promise.allSettled(s.map((e) => e.stop()));
    rmSync(dir, { recursive: true, force: true });
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => void stop().finally(() => process.exit(130)));
  const header = await describeMachine(opts);
  try {
    const binary = findMinio();
    const [primary, secondary] = await Promise.all([
      startMinio({ name: "bench-primary", stateDir: dir, binary, buckets: [SRC_BUCKET] }),
      startMinio({ name: "bench-secondary", stateDir: dir, binary, buckets: [DST_BUCKET] }),
    ]);
    servers = [primary, secondary];
    const rows = await measure(opts, primary, secondary, dir);
    console.log([...header, `Load average at the end: ${load()}.`, "", table(rows)].join("\n"));
  } finally {
    await stop();
  }
}

async function describeMachine(opts: BenchOptions): Promise<string[]> {
  const rclone = (await run("rclone", ["version"])).stdout.split("\n")[0];
  const openssl = (await run("openssl", ["version"])).stdout.trim();
  const uptime = (await run("uptime")).stdout.trim();
  const lines = [
    `Blob benchmark${opts.quick ? " (--quick: a smoke run, not numbers for the record)" : ""}: ${opts.small.count} × ${opts.small.bytes / 1024} KiB and ` +
      `${opts.large.count} × ${opts.large.bytes / MiB} MiB, concurrency ${opts.concurrency}, median of ${opts.rounds} rounds.`,
    `${rclone}; ${openssl}; Node ${process.version}; MinIO ${findMinio().split("/").at(-2) ?? ""}.`,
    `uptime at the start: ${uptime}`,
  ];
  for (const l of lines) log(l);
  return lines;
}

async function measure(opts: BenchOptions, primary: S3Endpoint, secondary: S3Endpoint, dir: string): Promise<Row[]> {
  const seeder = primary.client();
  const cleaner = secondary.client();
  // The stores a sync or verify worker builds (replicator.ts): the defaults, nothing tuned here.
  const src = createObjectStore({ endpoint: primary.endpoint, bucket: SRC_BUCKET, forcePathStyle: true }, credentials(primary), "primary");
  const dst = createObjectStore({ endpoint: secondary.endpoint, bucket: DST_BUCKET, forcePathStyle: true }, credentials(secondary), "secondary");
  const ctx: Context = { opts, src, dst, cleaner, env: rcloneEnv({ geosrc: primary, geodst: secondary }), profiles: [], bare: new BarePipe({ ...credentials(primary), endpoint: primary.endpoint, bucket: SRC_BUCKET }, { ...credentials(secondary), endpoint: secondary.endpoint, bucket: DST_BUCKET }), minioPids: [primary.process.pid, secondary.process.pid] };
  const rows: Row[] = [];
  const small = objectSet("small", opts.small.count, opts.small.bytes);
  const large = objectSet("large", opts.large.count, opts.large.bytes);
  try {
    for (const set of [small, large]) {
      const measured = opts.only.includes(set.name as "small" | "large");
      const volume = set === large && opts.only.includes("volume");
      if (set.keys.length === 0 || !(measured || volume)) continue;
      log(`seeding ${label(set)}`);
      log(`  seeded in ${(await timed(() => seedSet(seeder, SRC_BUCKET, set, 32))).toFixed(1)} s`);
      if (measured) rows.push(...(await measureSet(ctx, set)));
      if (volume) rows.push(...(await measureVolumes(ctx, set, dir)));
    }
    if (opts.only.includes("hash")) {
      // MinIO keeps deleting the emptied buckets' objects for a while; hashing competes with nothing.
      log(`  waited ${(await quiesce(ctx.minioPids)).toFixed(0)} s for MinIO to go idle`);
      rows.push(...(await hashing(opts, seeder, large, dir)));
    }
  } finally {
    src.client.destroy();
    dst.client.destroy();
    ctx.bare.close();
    seeder.destroy();
    cleaner.destroy();
  }
  for (const p of ctx.profiles) console.log(`${p}\n`);
  return rows;
}

type Measure = "bare pipe" | "ours sync" | "ours verify" | "ours first verify (store checksum)" | "rclone copy" | "rclone sync --checksum" | "rclone hashsum";

async function measureSet(ctx: Context, set: ObjectSet): Promise<Row[]> {
  const { opts } = ctx;
  const { record, m, count } = recorder<Measure>();
  const c = String(opts.concurrency);
  const rcloneArgs = ["--transfers", c, "--checkers", c, `geosrc:${SRC_BUCKET}/${set.name}`, `geodst:${DST_BUCKET}/${set.name}`];
  const copiers: (() => Promise<void>)[] = [
    async () => {
      const checksums = new Map<string, Buffer>();
      const cpu = cpuMeter(ctx);
      record("ours sync", await timed(() => oursSync(ctx, set, checksums)));
      log(`    ${cpu()}`);
      await expectCopied(ctx, set);
      // Both verifications read the same copies; which goes first alternates with the rounds.
      const verifiers = [
        async () => {
          const cpu = cpuMeter(ctx);
          record("ours verify", await timed(() => oursVerify(ctx, set, checksums)));
          log(`    ${cpu()}`);
        },
        async () => {
          const cpu = cpuMeter(ctx);
          record("rclone hashsum", await timed(() => rcloneHashsum(ctx, set, checksums)));
          log(`    ${cpu()}`);
        },
      ];
      // What a first verification after the copy does by default (spec.blob.firstVerification).
      record("ours first verify (store checksum)", await timed(() => oursFirstVerify(ctx, set, checksums)));
      if (count("ours sync") % 2 === 0) verifiers.reverse();
      for (const v of verifiers) await v();
    },
    async () => {
      const cpu = cpuMeter(ctx);
      record("rclone copy", await timed(async () => void (await run("rclone", ["copy", ...rcloneArgs], { env: ctx.env }))));
      log(`    ${cpu()}`);
      await expectCopied(ctx, set);
    },
    async () => {
      const cpu = cpuMeter(ctx);
      record("bare pipe", await timed(() => pool(set.keys, opts.concurrency, (key) => ctx.bare.copy(key))));
      log(`    ${cpu()}`);
      await expectCopied(ctx, set);
    },
    async () => {
      record("rclone sync --checksum", await timed(async () => void (await run("rclone", ["sync", "--checksum", ...rcloneArgs], { env: ctx.env }))));
      await expectCopied(ctx, set);
    },
  ];
  for (let round = 0; round < opts.rounds; round++) {
    log(`${label(set)}: round ${round + 1} of ${opts.rounds} (load ${load()})`);
    for (let i = 0; i < copiers.length; i++) {
      await emptyBucket(ctx.cleaner, DST_BUCKET);
      await copiers[(i + round) % copiers.length]!();
    }
  }
  if (opts.profile) {
    await emptyBucket(ctx.cleaner, DST_BUCKET);
    const checksums = new Map<string, Buffer>();
    const sync = await profiled(() => oursSync(ctx, set, checksums));
    ctx.profiles.push(formatProfile(`ours sync, ${label(set)}`, summarizeCpuProfile(sync.profile), sync.processCpuMs, sync.systemCpuMs));
    const verify = await profiled(() => oursVerify(ctx, set, checksums));
    ctx.profiles.push(formatProfile(`ours verify, ${label(set)}`, summarizeCpuProfile(verify.profile), verify.processCpuMs, verify.systemCpuMs));
  }
  await emptyBucket(ctx.cleaner, DST_BUCKET);

  const bySmall = set.size < MiB;
  const unit = bySmall ? "obj/s" : "MiB/s";
  const amount = bySmall ? set.keys.length : (set.keys.length * set.size) / MiB;
  const rate = (s: number) => amount / s;
  const name = label(set);
  return [
    { scenario: `sync ${name}`, unit, ours: rate(m("ours sync")), baseline: rate(m("rclone copy")), baselineName: "rclone copy", target: 1 },
    { scenario: `sync ${name}`, unit, ours: rate(m("ours sync")), baseline: rate(m("rclone sync --checksum")), baselineName: "rclone sync --checksum", target: 1 },
    {
      scenario: `… floor: the bytes piped GET → PUT on our transport, nothing hashed (bare-pipe.ts), ${name}`,
      unit,
      ours: rate(m("bare pipe")),
      baseline: rate(m("rclone copy")),
      baselineName: "rclone copy",
      target: Number.NaN,
    },
    { scenario: `verify ${name} (read back + SHA-256)`, unit, ours: rate(m("ours verify")), baseline: rate(m("rclone hashsum")), baselineName: "rclone hashsum sha256 --download", target: 1 },
    {
      scenario: `first verification ${name} (StoreChecksum: a HEAD, no bytes read)`,
      unit,
      ours: rate(m("ours first verify (store checksum)")),
      baseline: rate(m("rclone hashsum")),
      baselineName: "rclone hashsum sha256 --download",
      target: Number.NaN,
    },
    {
      // The default end to end: rclone needs a read-back for the SHA-256 our sync has the store check.
      scenario: `sync + first verification ${name} (the default: StoreChecksum)`,
      unit,
      ours: rate(m("ours sync") + m("ours first verify (store checksum)")),
      baseline: rate(m("rclone copy") + m("rclone hashsum")),
      baselineName: "rclone copy + hashsum",
      target: Number.NaN,
    },
    {
      scenario: `sync + verify ${name}`,
      unit,
      ours: rate(m("ours sync") + m("ours verify")),
      baseline: rate(m("rclone sync --checksum") + m("rclone hashsum")),
      baselineName: "rclone sync --checksum + hashsum",
      target: Number.NaN,
    },
  ];
}

/**
 * Blobs on volumes (issue 12's file storage) against rclone with a local directory on the same
 * side: a copy from the primary's bucket onto a secondary's volume (S3BlobStore.open into
 * FileStore.write, as the sync worker does: temporary file, fsync, rename, directory fsync) against
 * `rclone copy` into a directory (rclone does not fsync), and from a primary's volume into a
 * secondary's bucket (FileSource.open into S3BlobStore.write) against `rclone copy` from one.
 */
async function measureVolumes(ctx: Context, set: ObjectSet, dir: string): Promise<Row[]> {
  const { opts } = ctx;
  const c = String(opts.concurrency);
  const target = join(dir, "volume-target");
  const source = join(dir, "volume-source");
  const { record, m } = recorder<string>();
  const freshTarget = () => {
    rmSync(target, { recursive: true, force: true });
    mkdirSync(target);
  };
  const expectFiles = (root: string) => {
    const sizes = set.keys.map((key) => statSync(join(root, key), { throwIfNoEntry: false })?.size);
    if (sizes.some((size) => size !== set.size)) throw new Error(`${root}: expected ${set.keys.length} files of ${set.size} bytes`);
  };
  const bucket = new S3BlobStore(ctx.src);
  const secondaryBucket = new S3BlobStore(ctx.dst);
  const oursToVolume = async () => {
    const volume = new FileStore(target);
    await pool(set.keys, opts.concurrency, async (key) => {
      const blob = await bucket.open(key);
      await volume.write(key, blob.body, blob.length);
    });
  };
  // The volume the copies to a bucket read from: the objects, written once.
  mkdirSync(source);
  const seedVolume = new FileStore(source);
  for (const key of set.keys) {
    const blob = await bucket.open(key);
    await seedVolume.write(key, blob.body, blob.length);
  }
  const volumeSource = new FileSource(source);
  const copiers: [string, () => void | Promise<void>, () => Promise<void>][] = [
    ["ours bucket → volume", freshTarget, oursToVolume],
    ["rclone bucket → directory", freshTarget, async () => void (await run("rclone", ["copy", "--transfers", c, "--checkers", c, `geosrc:${SRC_BUCKET}/${set.name}`, join(target, set.name)], { env: ctx.env }))],
    ["ours volume → bucket", () => emptyBucket(ctx.cleaner, DST_BUCKET), () => pool(set.keys, opts.concurrency, async (key) => {
      const blob = await volumeSource.open(key);
      await secondaryBucket.write(key, blob.body, blob.length);
    })],
    ["rclone directory → bucket", () => emptyBucket(ctx.cleaner, DST_BUCKET), async () => void (await run("rclone", ["copy", "--transfers", c, "--checkers", c, join(source, set.name), `geodst:${DST_BUCKET}/${set.name}`], { env: ctx.env }))],
  ];
  for (let round = 0; round < opts.rounds; round++) {
    log(`volumes, ${label(set)}: round ${round + 1} of ${opts.rounds} (load ${load()})`);
    for (let i = 0; i < copiers.length; i++) {
      const [name, prepare, copy] = copiers[(i + round) % copiers.length]!;
      await prepare();
      const cpu = cpuMeter(ctx);
      record(name, await timed(copy));
      log(`    ${cpu()}`);
      if (name.endsWith("bucket")) await expectCopied(ctx, set);
      else expectFiles(target);
    }
  }
  rmSync(target, { recursive: true, force: true });
  rmSync(source, { recursive: true, force: true });
  await emptyBucket(ctx.cleaner, DST_BUCKET);
  const mib = (set.keys.length * set.size) / MiB;
  const rate = (k: string) => mib / m(k);
  const name = label(set);
  return [
    { scenario: `sync ${name} from a bucket onto a volume (fsync per file)`, unit: "MiB/s", ours: rate("ours bucket → volume"), baseline: rate("rclone bucket → directory"), baselineName: "rclone copy to a directory", target: Number.NaN },
    { scenario: `sync ${name} from a volume into a bucket`, unit: "MiB/s", ours: rate("ours volume → bucket"), baseline: rate("rclone directory → bucket"), baselineName: "rclone copy from a directory", target: Number.NaN },
  ];
}

/** Waits until the processes use under 5 % of a core each over a second (at most a minute); returns the seconds waited. */
async function quiesce(pids: number[]): Promise<number> {
  const started = performance.now();
  while (performance.now() - started < 60_000) {
    const before = pids.map(processCpuSeconds);
    await new Promise((r) => setTimeout(r, 1000));
    if (pids.every((pid, i) => processCpuSeconds(pid) - before[i]! < 0.05)) break;
  }
  return (performance.now() - started) / 1000;
}

/** Seconds per measurement, logged as they come; `m` is a measurement's median, `count` how many it has. */
function recorder<K extends string>(): { record: (k: K, s: number) => void; m: (k: K) => number; count: (k: K) => number } {
  const seconds = new Map<K, number[]>();
  return {
    record(k, s) {
      seconds.set(k, [...(seconds.get(k) ?? []), s]);
      log(`  ${k}: ${s.toFixed(2)} s`);
    },
    m: (k) => median(seconds.get(k)!),
    count: (k) => seconds.get(k)?.length ?? 0,
  };
}

/**
 * Starts counting CPU: this process's (ours), its children's (rclone) and the MinIO servers'
 * (source + destination); the function returned says what each used since.
 */
function cpuMeter(ctx: Context): () => string {
  const ours = process.cpuUsage();
  const children = childrenCpuSeconds();
  const minio = ctx.minioPids.map(processCpuSeconds);
  return () => {
    const used = process.cpuUsage(ours);
    const servers = ctx.minioPids.map((pid, i) => (processCpuSeconds(pid) - minio[i]!).toFixed(2)).join(" + ");
    const rclone = (childrenCpuSeconds() - children).toFixed(2);
    return `CPU: ours ${((used.user + used.system) / 1e6).toFixed(2)} s (kernel ${(used.system / 1e6).toFixed(2)} s), rclone's ${rclone} s, MinIO's ${servers} s`;
  };
}

/** The sync worker's per-object work: copy, hashing the bytes as they stream. */
async function oursSync(ctx: Context, set: ObjectSet, checksums: Map<string, Buffer>): Promise<void> {
  await pool(set.keys, ctx.opts.concurrency, async (key) => {
    const copied = await copyObject(ctx.src, ctx.dst, key);
    checksums.set(key, copied.checksum);
  });
}

/** The verify worker's per-object work: read the copy back, SHA-256 it, compare. */
async function oursVerify(ctx: Context, set: ObjectSet, checksums: Map<string, Buffer>): Promise<void> {
  await pool(set.keys, ctx.opts.concurrency, async (key) => {
    const verified = await sha256Object(ctx.dst, key);
    if (!verified.checksum.equals(checksums.get(key)!) || verified.bytes !== set.size) throw new Error(`verification of ${key} failed`);
  });
}

/** A first verification with StoreChecksum: the SHA-256 the bucket checked at upload, from a HEAD. */
async function oursFirstVerify(ctx: Context, set: ObjectSet, checksums: Map<string, Buffer>): Promise<void> {
  await pool(set.keys, ctx.opts.concurrency, async (key) => {
    const stored = await storedSha256(ctx.dst, key);
    if (!stored || !stored.checksum.equals(checksums.get(key)!) || stored.bytes !== set.size) throw new Error(`first verification of ${key} failed`);
  });
}

/** `rclone hashsum sha256 --download` over the copies; its digests must be ours. */
async function rcloneHashsum(ctx: Context, set: ObjectSet, checksums: Map<string, Buffer>): Promise<void> {
  const c = String(ctx.opts.concurrency);
  const { stdout } = await run("rclone", ["hashsum", "sha256", "--download", "--checkers", c, "--transfers", c, `geodst:${DST_BUCKET}/${set.name}`], { env: ctx.env, maxBuffer: 64 * MiB });
  const sums = parseHashsum(stdout);
  if (sums.size !== set.keys.length) throw new Error(`rclone hashsum listed ${sums.size} objects, expected ${set.keys.length}`);
  for (const [path, hex] of sums) {
    const ours = checksums.get(`${set.name}/${path}`);
    if (!ours || ours.toString("hex") !== hex) throw new Error(`rclone hashsum and our copy disagree on ${path}`);
  }
}

async function expectCopied(ctx: Context, set: ObjectSet): Promise<void> {
  const copied = await listAll(ctx.cleaner, DST_BUCKET, set.prefix);
  const bytes = copied.reduce((n, o) => n + o.size, 0);
  if (copied.length !== set.keys.length || bytes !== set.keys.length * set.size) {
    throw new Error(`${set.name}: expected ${set.keys.length} objects at the destination, found ${copied.length} (${bytes} bytes)`);
  }
}

/**
 * SHA-256 of the same bytes (the large objects, one file in the page cache): our hashing path for
 * a file (FileStore.sha256, what verification of blobs on volumes runs) against
 * `openssl dgst -sha256`; and, as a breakdown, the file streamed as a copy from a volume reads it
 * (FileSource.open's 1 MiB reads) through the Sha256Meter that multipart uploads and file writes
 * hash with (a streamed single PUT and a verification hash each chunk as it arrives instead).
 */
async function hashing(opts: BenchOptions, client: ReturnType<S3Endpoint["client"]>, large: ObjectSet, dir: string): Promise<Row[]> {
  const file = join(dir, "files", "hash.bin");
  mkdirSync(join(dir, "files"));
  if (large.keys.length > 0 && opts.only.includes("large")) {
    for (const key of large.keys) {
      const r = await client.send(new GetObjectCommand({ Bucket: SRC_BUCKET, Key: key }));
      await pipeline(r.Body as NodeJS.ReadableStream, createWriteStream(file, { flags: "a" }));
    }
  } else {
    // Only the hash is measured: random bytes of the large set's size.
    const out = createWriteStream(file);
    for (let left = large.keys.length * large.size || 256 * MiB; left > 0; left -= 16 * MiB) {
      if (!out.write(randomBytes(Math.min(left, 16 * MiB)))) await once(out, "drain");
    }
    out.end();
    await finished(out);
  }
  const size = statSync(file).size;
  const mib = size / MiB;
  const store = new FileStore(join(dir, "files"));
  const ours = async () => (await store.sha256("hash.bin")).checksum.toString("hex");
  // A file as a copy from a volume reads it: FileSource.open's stream, hashed by a Sha256Meter.
  const stream = async () => {
    const meter = new Sha256Meter(size, file);
    meter.resume();
    await pipeline((await store.open("hash.bin")).body, meter);
    return meter.result().checksum.toString("hex");
  };
  const openssl = async () => (await run("openssl", ["dgst", "-sha256", "-r", file])).stdout.split(" ")[0]!;
  const expected = await ours(); // also warms the page cache, so every tool reads from memory
  const tools = [ours, openssl, stream];
  const seconds = tools.map((): number[] => []);
  // Hashing a GiB takes a second and moves ±30 % between runs on shared cores: five rounds at least.
  for (let round = 0; round < Math.max(opts.rounds, 5); round++) {
    for (let i = 0; i < tools.length; i++) {
      const t = (i + round) % tools.length;
      const started = performance.now();
      const digest = await tools[t]!();
      seconds[t]!.push((performance.now() - started) / 1000);
      if (digest !== expected) throw new Error(`SHA-256 disagrees: ${digest} vs ${expected}`);
    }
  }
  const [oursSec, opensslSec, streamSec] = seconds.map((s) => s.map((x) => x.toFixed(2)).join(", "));
  log(`hashing ${mib} MiB: FileStore.sha256 ${oursSec} s; openssl ${opensslSec} s; Sha256Meter stream ${streamSec} s`);
  const rate = (t: number) => mib / median(seconds[t]!);
  return [
    { scenario: `SHA-256 of a ${mib} MiB file (page cache), FileStore.sha256`, unit: "MiB/s", ours: rate(0), baseline: rate(1), baselineName: "openssl dgst -sha256", target: 0.9 },
    { scenario: `SHA-256 of a ${mib} MiB file streamed as a copy from a volume reads it (FileSource.open, Sha256Meter)`, unit: "MiB/s", ours: rate(2), baseline: rate(1), baselineName: "openssl dgst -sha256", target: Number.NaN },
  ];
}

function credentials(e: S3Endpoint): { accessKeyId: string; secretAccessKey: string } {
  return { accessKeyId: e.accessKeyId, secretAccessKey: e.secretAccessKey };
}

function label(set: ObjectSet): string {
  return `${set.keys.length} × ${set.size >= MiB ? `${set.size / MiB} MiB` : `${set.size / 1024} KiB`}`;
}

/** The Markdown table: medians as rates, the ratio, and whether it meets the issue's target. */
export function table(rows: Row[]): string {
  const lines = ["| scenario | ours | baseline | ratio | target | met |", "|---|---:|---:|---:|---|---|"];
  for (const r of rows) {
    const ratio = r.ours / r.baseline;
    const target = Number.isNaN(r.target) ? "— | —" : `≥ ${r.target.toFixed(1)}× | ${ratio >= r.target ? "yes" : "no"}`;
    lines.push(`| ${r.scenario} | ${r.ours.toFixed(1)} ${r.unit} | ${r.baseline.toFixed(1)} ${r.unit} (${r.baselineName}) | ${ratio.toFixed(2)}× | ${target} |`);
  }
  return lines.join("\n");
}

await main();
