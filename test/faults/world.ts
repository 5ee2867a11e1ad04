/**
 * What every fault scenario starts from: a worker world (test/support/worker-world.ts) with the
 * safety settings a test can afford (deletion grace 0s, stuck-started 1s), records with data on
 * the primary, and workers run as processes with any extra flags (--max-run).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { expect } from "vitest";
import type { ReplicableTypeSpec } from "../../src/api/v1alpha1/types.generated.ts";
import { REPO_ROOT } from "../../hack/localenv/tools.ts";
import type { LocalEnvironmentInfo } from "../../hack/localenv/index.ts";
import { PRIMARY_SITE_NAME, createBlobWorld, retryNow, type S3Side, type World, type WorkerRun } from "../support/worker-world.ts";

export type Kind = "verify-primary" | "sync" | "verify" | "consistency";

/** Settings that make the rails testable in seconds; each scenario may add its own. */
export const FAULT_TYPE_SETTINGS: Partial<ReplicableTypeSpec> = {
  deletion: { gracePeriod: "0s" },
  timeouts: { stuckStarted: "1s" },
};

export function faultTypeOverrides(extra: Partial<ReplicableTypeSpec> = {}): Partial<ReplicableTypeSpec> {
  return {
    ...FAULT_TYPE_SETTINGS,
    ...extra,
    deletion: { ...FAULT_TYPE_SETTINGS.deletion, ...extra.deletion },
    timeouts: { ...FAULT_TYPE_SETTINGS.timeouts, ...extra.timeouts },
  };
}

export async function createFaultBlobWorld(env: LocalEnvironmentInfo, opts: { primaryS3?: S3Side; secondaryS3?: S3Side; typeOverrides?: Partial<ReplicableTypeSpec> } = {}): Promise<World> {
  return quietPools(await createBlobWorld(env, { ...opts, typeOverrides: faultTypeOverrides(opts.typeOverrides) }));
}

/** Idle pool clients cut by DROP DATABASE ... WITH (FORCE) at cleanup must not crash the run. */
export function quietPools(world: World): World {
  world.dbs.primary.on("error", () => undefined);
  world.dbs.tracking.on("error", () => undefined);
  return world;
}

export interface WorkerOptions {
  /** Env overrides (e.g. a database URL through a proxy). */
  env?: Record<string, string>;
  /** Extra CLI flags, e.g. ["--max-run", "1s"]. */
  args?: string[];
}

/** Starts `geo-operator worker <kind>` as a Job's pod would, with extra flags. */
export function spawnWorker(world: World, kind: Kind, opts: WorkerOptions = {}): ChildProcess & { output: { stdout: string; stderr: string } } {
  const site = kind === "verify-primary" ? "primary" : "secondary";
  const child = spawn(
    process.execPath,
    [join(REPO_ROOT, "bin/geo-operator.js"), "worker", kind, "--type", world.type.name, "--site", site === "primary" ? PRIMARY_SITE_NAME : "tokyo", ...(opts.args ?? [])],
    { env: world.env(site, opts.env), stdio: ["ignore", "pipe", "pipe"] },
  ) as ChildProcess & { output: { stdout: string; stderr: string } };
  child.output = { stdout: "", stderr: "" };
  child.stdout!.on("data", (c: Buffer) => (child.output.stdout += c.toString()));
  child.stderr!.on("data", (c: Buffer) => (child.output.stderr += c.toString()));
  return child;
}

export function exited(child: ChildProcess & { output: { stdout: string; stderr: string } }): Promise<WorkerRun> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve({ code: child.exitCode ?? -1, ...child.output });
    else child.on("close", (code) => resolve({ code: code ?? -1, ...child.output }));
  });
}

export function runWorker(world: World, kind: Kind, opts: WorkerOptions = {}): Promise<WorkerRun> {
  return exited(spawnWorker(world, kind, opts));
}

export async function runOk(world: World, kind: Kind, opts: WorkerOptions = {}): Promise<WorkerRun> {
  const res = await runWorker(world, kind, opts);
  expect(res.code, `${kind} exited ${res.code}: ${res.stderr.slice(-600)}`).toBe(0);
  return res;
}

/** One full round, in the order the Jobs would run. */
export async function round(world: World, opts: WorkerOptions = {}): Promise<Record<Kind, WorkerRun>> {
  const primary = await runOk(world, "verify-primary", opts);
  const consistency = await runOk(world, "consistency", opts);
  const sync = await runOk(world, "sync", opts);
  const verify = await runOk(world, "verify", opts);
  return { "verify-primary": primary, consistency, sync, verify };
}

/** Rounds with every backoff made due, until the secondary has settled (a few at most). */
export async function converge(world: World, rounds = 3, opts: WorkerOptions = {}): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    await retryNow(world.dbs.tracking, world.type.name);
    await world.dbs.tracking.query(`UPDATE ${world.type.name}_registry SET retry_at = now() - interval '1 second' WHERE state = 3 OR (state = 2 AND missing_on_primary)`);
    await round(world, opts);
  }
}

/** A number from a worker's summary line (`deleted=3`); 0 when absent (the line omits zeros). */
export function summaryField(run: WorkerRun, field: string): number {
  const m = new RegExp(`\\b${field}=(\\d+)`).exec(run.stdout);
  return m ? Number(m[1]) : 0;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` until it returns something other than undefined/false. */
export async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 30_000, everyMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

export interface Blob {
  id: number;
  fileName: string;
  key: string;
}

/** Records in cool_widgets with an object of `size` random bytes each on the primary. */
export async function addBlobs(world: World, n: number, opts: { size?: number; namespaceId?: number; table?: string } = {}): Promise<Blob[]> {
  const out: Blob[] = [];
  const bucket = world.primarySite.objectStorage!.bucket;
  for (let i = 0; i < n; i++) {
    const fileName = `f-${randomBytes(4).toString("hex")}.bin`;
    const { rows } = await world.dbs.primary.query<{ id: string }>(
      `INSERT INTO ${opts.table ?? "cool_widgets"} (namespace_id, file_name) VALUES ($1, $2) RETURNING id`,
      [opts.namespaceId ?? 1, fileName],
    );
    const id = Number(rows[0]!.id);
    const key = `${world.prefix}cool_widgets/${id}/${fileName}`;
    await world.primaryS3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: randomBytes(opts.size ?? 256) }));
    out.push({ id, fileName, key });
  }
  return out;
}

/** Registry rows by state: "synced=12 pending=0 started=0 failed=0". */
export async function stateCounts(world: World): Promise<{ pending: number; started: number; synced: number; failed: number; verified: number; rows: number }> {
  const { rows } = await world.dbs.tracking.query<{ pending: number; started: number; synced: number; failed: number; verified: number; rows: number }>(
    `SELECT count(*) FILTER (WHERE state = 0)::int AS pending, count(*) FILTER (WHERE state = 1)::int AS started,
            count(*) FILTER (WHERE state = 2)::int AS synced, count(*) FILTER (WHERE state = 3)::int AS failed,
            count(*) FILTER (WHERE state = 2 AND verification_state = 2)::int AS verified, count(*)::int AS rows
     FROM ${world.type.name}_registry`,
  );
  return rows[0]!;
}

/** The type's deletion hold on the secondary, if any. */
export async function holdOf(world: World): Promise<{ reason: string; message: string; pending: number } | undefined> {
  const present = await world.dbs.tracking.query<{ p: boolean }>(`SELECT to_regclass('public.geo_operator_deletion_holds') IS NOT NULL AS p`);
  if (!present.rows[0]!.p) return undefined;
  const { rows } = await world.dbs.tracking.query(`SELECT reason, message, pending::int AS pending FROM geo_operator_deletion_holds WHERE type_name = $1`, [world.type.name]);
  return rows[0];
}
