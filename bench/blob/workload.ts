/**
 * Pieces of the blob benchmark: a worker pool, seeding and emptying buckets, timing, and running
 * the baseline tools.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { DeleteObjectsCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";

export const MiB = 1024 * 1024;
export const run = promisify(execFile);

/** Runs `fn` over `items` with at most `concurrency` calls in flight; fails on the first error. */
export async function pool<T>(items: readonly T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

export async function timed(fn: () => Promise<void>): Promise<number> {
  const started = performance.now();
  await fn();
  return (performance.now() - started) / 1000;
}

export interface ObjectSet {
  name: string;
  prefix: string;
  keys: string[];
  size: number;
}

export function objectSet(name: string, count: number, size: number): ObjectSet {
  const keys = Array.from({ length: count }, (_, i) => `${name}/${String(i).padStart(6, "0")}.bin`);
  return { name, prefix: `${name}/`, keys, size };
}

/** Puts every object of `set`, each with distinct random content. */
export async function seedSet(client: S3Client, bucket: string, set: ObjectSet, concurrency: number): Promise<void> {
  const base = randomBytes(set.size);
  await pool(set.keys, concurrency, async (key) => {
    const body = Buffer.from(base);
    // Distinct content per object, so no layer can deduplicate.
    randomBytes(Math.min(64, body.length)).copy(body);
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
  });
}

export async function listAll(client: S3Client, bucket: string, prefix: string): Promise<{ key: string; size: number }[]> {
  const out: { key: string; size: number }[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of page.Contents ?? []) out.push({ key: o.Key!, size: o.Size ?? 0 });
    token = page.NextContinuationToken;
  } while (token);
  return out;
}

/** Deletes everything in the bucket (the benchmark's own secondary), so each run starts empty. */
export async function emptyBucket(client: S3Client, bucket: string): Promise<void> {
  const objects = await listAll(client, bucket, "");
  for (let i = 0; i < objects.length; i += 1000) {
    const batch = objects.slice(i, i + 1000).map((o) => ({ Key: o.key }));
    await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: batch, Quiet: true } }));
  }
}

export function findMinio(): string {
  if (process.env.GEO_TEST_MINIO) return process.env.GEO_TEST_MINIO;
  const cache = join(homedir(), ".cache", "geo-operator");
  const dir = readdirSync(cache).find((d) => d.startsWith("minio-"));
  if (!dir) throw new Error(`no MinIO in ${cache}; run the integration tests once (they download it) or set GEO_TEST_MINIO`);
  return join(cache, dir, "minio");
}

/** Environment for rclone: two remotes named geosrc and geodst, no config file. */
export function rcloneEnv(remotes: Record<string, { endpoint: string; accessKeyId: string; secretAccessKey: string }>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, RCLONE_CONFIG: "/dev/null" };
  // rclone's S3 backend fails on a plain-HTTP endpoint when a CA bundle is configured.
  delete env.AWS_CA_BUNDLE;
  for (const [name, r] of Object.entries(remotes)) {
    const p = `RCLONE_CONFIG_${name.toUpperCase()}_`;
    Object.assign(env, {
      [`${p}TYPE`]: "s3",
      [`${p}PROVIDER`]: "Minio",
      [`${p}ENV_AUTH`]: "false",
      [`${p}ACCESS_KEY_ID`]: r.accessKeyId,
      [`${p}SECRET_ACCESS_KEY`]: r.secretAccessKey,
      [`${p}ENDPOINT`]: r.endpoint,
      [`${p}REGION`]: "us-east-1",
      [`${p}FORCE_PATH_STYLE`]: "true",
    });
  }
  return env;
}

/** The median of `values` (the mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error("median of nothing");
  const v = [...values].sort((a, b) => a - b);
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

/** `rclone hashsum` output ("<hex>  <path>" per line) as path → hex digest. */
export function parseHashsum(stdout: string): Map<string, string> {
  const sums = new Map<string, string>();
  for (const line of stdout.split("\n")) {
    const m = /^([0-9a-f]{64}) {2}(.+)$/.exec(line);
    if (m) sums.set(m[2]!, m[1]!);
    else if (line.trim() !== "") throw new Error(`unexpected rclone hashsum line: ${line}`);
  }
  return sums;
}

/**
 * CPU seconds (user + system) of this process's children that have exited and been waited for,
 * from /proc/self/stat (cutime, cstime): the baseline tools' CPU, read before and after a run.
 */
export function childrenCpuSeconds(): number {
  // cutime and cstime are fields 16 and 17 of stat(5); in clock ticks (100 Hz on Linux).
  const fields = statFields("self");
  return (Number(fields[13]) + Number(fields[14])) / 100;
}

/** CPU seconds (user + system) a running process has used so far (utime, stime): a MinIO server's. */
export function processCpuSeconds(pid: number): number {
  const fields = statFields(String(pid));
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** /proc/<pid>/stat from its fourth field on (after the command name, which may contain spaces). */
function statFields(pid: string): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}
