#!/usr/bin/env node
/**
 * Blob benchmark: copying primary → secondary with our object-storage layer against
 * `rclone sync --checksum`, and our SHA-256 against sha256sum and openssl.
 *
 *   node bench/blob/run.ts
 *
 * Starts two MinIO servers of its own (in a temp dir; stopped by PID at the end), seeds
 * GEO_BENCH_SMALL_COUNT (10,000) × GEO_BENCH_SMALL_KIB (64) KiB objects and
 * GEO_BENCH_LARGE_COUNT (16) × GEO_BENCH_LARGE_MIB (64) MiB objects, and copies each set at
 * GEO_BENCH_CONCURRENCY (10, GitLab's blob capacity). "Ours" hashes the source while copying and
 * then reads the destination back to verify it; rclone copies with its MD5 checks. The
 * destination bucket is emptied before each run so both do the same work.
 */
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import { startMinio, type S3Endpoint } from "../../hack/localenv/minio.ts";
import { copyObject, DEFAULT_QUEUE_SIZE } from "../../src/strategies/blob/copy.ts";
import { createObjectStore, type ObjectStore } from "../../src/strategies/blob/object-store.ts";
import { sha256Object } from "../../src/strategies/blob/s3-read.ts";
import { MiB, emptyBucket, findMinio, listAll, objectSet, pool, rcloneEnv, run, seedSet, timed, timedCommand, type ObjectSet } from "./workload.ts";

const intEnv = (name: string, fallback: number) => {
  const v = process.env[name];
  return v === undefined || v === "" ? fallback : Number.parseInt(v, 10);
};
const concurrency = intEnv("GEO_BENCH_CONCURRENCY", 10);
const small = objectSet("small", intEnv("GEO_BENCH_SMALL_COUNT", 10_000), intEnv("GEO_BENCH_SMALL_KIB", 64) * 1024);
const large = objectSet("large", intEnv("GEO_BENCH_LARGE_COUNT", 16), intEnv("GEO_BENCH_LARGE_MIB", 64) * MiB);
const SRC_BUCKET = "bench-src";
const DST_BUCKET = "bench-dst";

const log = (msg: string) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}`);

interface Row {
  scenario: string;
  ours: number;
  baseline: number;
  baselineName: string;
  unit: string;
  target: number;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "geo-bench-blob-"));
  const binary = findMinio();
  let servers: S3Endpoint[] = [];
  const stop = async () => {
    const s = servers;
    servers = [];
    await Promise.allSettled(s.map((e) => e.stop()));
    rmSync(dir, { recursive: true, force: true });
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => void stop().finally(() => process.exit(130)));
  try {
    const [primary, secondary] = await Promise.all([
      startMinio({ name: "bench-primary", stateDir: dir, binary, buckets: [SRC_BUCKET] }),
      startMinio({ name: "bench-secondary", stateDir: dir, binary, buckets: [DST_BUCKET] }),
    ]);
    servers = [primary, secondary];
    const rows = await measure(primary, secondary, dir);
    console.log(table(rows));
  } finally {
    await stop();
  }
}

async function measure(primary: S3Endpoint, secondary: S3Endpoint, dir: string): Promise<Row[]> {
  const seeder = primary.client();
  const cleaner = secondary.client();
  const rclone = (await run("rclone", ["version"])).stdout.split("\n")[0];
  log(`${rclone}; MinIO ${binary()}; concurrency ${concurrency}`);
  const options = { maxSockets: concurrency * (DEFAULT_QUEUE_SIZE + 1) };
  const src = createObjectStore({ endpoint: primary.endpoint, bucket: SRC_BUCKET, forcePathStyle: true }, credentials(primary), "primary", options);
  const dst = createObjectStore({ endpoint: secondary.endpoint, bucket: DST_BUCKET, forcePathStyle: true }, credentials(secondary), "secondary", options);
  const env = rcloneEnv({ geosrc: primary, geodst: secondary });
  const rows: Row[] = [];
  try {
    for (const set of [small, large]) {
      if (set.keys.length === 0) continue;
      log(`seeding ${set.keys.length} × ${set.size / 1024} KiB`);
      log(`  seeded in ${(await timed(() => seedSet(seeder, SRC_BUCKET, set, 32))).toFixed(1)} s`);

      await emptyBucket(cleaner, DST_BUCKET);
      const ours = await timed(() => copyAndVerify(src, dst, set));
      await expectCopied(cleaner, set);
      log(`  ours: ${ours.toFixed(1)} s`);

      // The sync step alone (copy, hashing the stream), to show what verification adds.
      await emptyBucket(cleaner, DST_BUCKET);
      const copyOnly = await timed(() => pool(set.keys, concurrency, async (key) => void (await copyObject(src, dst, key))));
      await expectCopied(cleaner, set);
      log(`  ours, copy only: ${copyOnly.toFixed(1)} s`);

      await emptyBucket(cleaner, DST_BUCKET);
      const args = ["sync", "--checksum", "--transfers", String(concurrency), "--checkers", String(concurrency)];
      const theirs = await timedCommand("rclone", [...args, `geosrc:${SRC_BUCKET}/${set.name}`, `geodst:${DST_BUCKET}/${set.name}`], env);
      await expectCopied(cleaner, set);
      log(`  rclone: ${theirs.toFixed(1)} s`);
      await emptyBucket(cleaner, DST_BUCKET);

      const label = `${set.keys.length} × ${set.size >= MiB ? `${set.size / MiB} MiB` : `${set.size / 1024} KiB`}`;
      if (set === small) {
        rows.push({ scenario: `copy+verify ${label} (objects/s)`, ours: set.keys.length / ours, baseline: set.keys.length / theirs, baselineName: "rclone", unit: "obj/s", target: 1 });
        rows.push({ scenario: `copy only ${label} (objects/s)`, ours: set.keys.length / copyOnly, baseline: set.keys.length / theirs, baselineName: "rclone", unit: "obj/s", target: Number.NaN });
      } else {
        const mib = (set.keys.length * set.size) / MiB;
        rows.push({ scenario: `copy+verify ${label} (MiB/s)`, ours: mib / ours, baseline: mib / theirs, baselineName: "rclone", unit: "MiB/s", target: 0.8 });
        rows.push({ scenario: `copy only ${label} (MiB/s)`, ours: mib / copyOnly, baseline: mib / theirs, baselineName: "rclone", unit: "MiB/s", target: Number.NaN });
      }
    }
    if (large.keys.length > 0) rows.push(...(await hashing(seeder, dir)));
  } finally {
    src.client.destroy();
    dst.client.destroy();
    seeder.destroy();
    cleaner.destroy();
  }
  return rows;
}

/** Our sync worker's per-object work: copy (hashing the source as it streams), then re-read the copy. */
async function copyAndVerify(src: ObjectStore, dst: ObjectStore, set: ObjectSet): Promise<void> {
  await pool(set.keys, concurrency, async (key) => {
    const copied = await copyObject(src, dst, key);
    const verified = await sha256Object(dst, key);
    if (!verified.checksum.equals(copied.checksum) || verified.bytes !== set.size) throw new Error(`verification of ${key} failed`);
  });
}

async function expectCopied(client: ReturnType<S3Endpoint["client"]>, set: ObjectSet): Promise<void> {
  const copied = await listAll(client, DST_BUCKET, set.prefix);
  const bytes = copied.reduce((n, o) => n + o.size, 0);
  if (copied.length !== set.keys.length || bytes !== set.keys.length * set.size) {
    throw new Error(`${set.name}: expected ${set.keys.length} objects at the destination, found ${copied.length} (${bytes} bytes)`);
  }
}

/** SHA-256 of the large objects' bytes (written to one file): node:crypto vs openssl vs sha256sum. */
async function hashing(client: ReturnType<S3Endpoint["client"]>, dir: string): Promise<Row[]> {
  const file = join(dir, "large.bin");
  for (const key of large.keys) {
    const r = await client.send(new GetObjectCommand({ Bucket: SRC_BUCKET, Key: key }));
    await pipeline(r.Body as NodeJS.ReadableStream, createWriteStream(file, { flags: "a" }));
  }
  const mib = statSync(file).size / MiB;
  const ours = async () => {
    const hash = createHash("sha256");
    await pipeline(createReadStream(file, { highWaterMark: 4 * MiB }), hash);
  };
  await ours(); // warm the page cache so every tool reads from memory
  const best = async (fn: () => Promise<number>) => Math.min(await fn(), await fn());
  const oursSec = await best(() => timed(ours));
  const opensslSec = await best(() => timedCommand("openssl", ["dgst", "-sha256", file]));
  const sha256sumSec = await best(() => timedCommand("sha256sum", [file]));
  log(`hashing ${mib} MiB: ours ${oursSec.toFixed(2)} s, openssl ${opensslSec.toFixed(2)} s, sha256sum ${sha256sumSec.toFixed(2)} s`);
  return [
    { scenario: `SHA-256 of ${mib} MiB file (MiB/s)`, ours: mib / oursSec, baseline: mib / opensslSec, baselineName: "openssl dgst", unit: "MiB/s", target: 0.8 },
    { scenario: `SHA-256 of ${mib} MiB file (MiB/s)`, ours: mib / oursSec, baseline: mib / sha256sumSec, baselineName: "sha256sum", unit: "MiB/s", target: 0.8 },
  ];
}

function credentials(e: S3Endpoint): { accessKeyId: string; secretAccessKey: string } {
  return { accessKeyId: e.accessKeyId, secretAccessKey: e.secretAccessKey };
}

function binary(): string {
  return findMinio().split("/").at(-2) ?? "";
}

function table(rows: Row[]): string {
  const lines = [
    "| scenario | ours | baseline | ratio | target | met |",
    "|---|---:|---:|---:|---|---|",
  ];
  for (const r of rows) {
    const ratio = r.ours / r.baseline;
    lines.push(
      `| ${r.scenario} | ${r.ours.toFixed(1)} ${r.unit} | ${r.baseline.toFixed(1)} ${r.unit} (${r.baselineName}) | ${ratio.toFixed(2)} | ${Number.isNaN(r.target) ? "— (breakdown) | —" : `≥ ${r.target}× ${r.baselineName} | ${ratio >= r.target ? "yes" : "no"}`} |`,
    );
  }
  return lines.join("\n");
}

await main();
