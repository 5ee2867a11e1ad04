/**
 * The end-of-run judgement: does the secondary hold exactly what the primary holds?
 *
 * - every live blob: the secondary's object has the primary's bytes (ETag = MD5 of the stored bytes,
 *   on both MinIO servers, and equal to what the writer last put; a sample is also read in full and
 *   SHA-256'd on both sides); every live repository: the mirror's refs equal the bare repository's
 *   and main is the last commit pushed;
 * - no copy of a deleted record in storage (no object outside the live keys, no mirror outside the
 *   live repositories), given deletion grace 0 s;
 * - the registry has exactly the live records, every row synced, and how many are verified.
 */
import { createHash } from "node:crypto";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";
import type { Readable } from "node:stream";
import { SyncState, VerificationState } from "../../src/registry/states.ts";
import { findRegistryRows } from "../../src/registry/sync-state.ts";
import { typeRuntimeConfig } from "../../src/strategies/type-config.ts";
import type { DataKind } from "./ledger.ts";
import { git, type RepoRecord, type Workload } from "./workload.ts";

export interface DataState {
  live: number;
  /** Live records whose secondary copy is absent. */
  missing: number[];
  /** Live records whose secondary copy differs from the primary (or from the last version written). */
  differing: number[];
  /** Copies in secondary storage that belong to no live record (deleted records' leftovers). */
  extra: string[];
  /** Registry: live records without a row, rows of records that are gone, rows not synced, rows verified. */
  registryMissing: number[];
  registryExtra: number[];
  notSynced: number[];
  verified: number;
  /** Objects read in full on both sides and SHA-256 compared. */
  fullyCompared: number;
}

export interface FinalState {
  blob: DataState;
  repo: DataState;
}

const FULL_COMPARE_SAMPLE = 40;

export async function finalState(workload: Workload): Promise<FinalState> {
  return { blob: await blobState(workload), repo: await repoState(workload) };
}

export function statePasses(s: DataState): boolean {
  return s.missing.length + s.differing.length + s.extra.length + s.registryMissing.length + s.registryExtra.length + s.notSynced.length === 0;
}

async function registry(workload: Workload, data: DataKind, liveIds: number[]): Promise<Pick<DataState, "registryMissing" | "registryExtra" | "notSynced" | "verified">> {
  const world = workload.world;
  const schema = typeRuntimeConfig(data === "blob" ? world.blobType : world.repoType).schema;
  const everIds = [...liveIds, ...workload.deleted.filter((r) => r.data === data).map((r) => r.id)];
  const rows = await findRegistryRows(world.trackingDb, schema, everIds);
  const live = new Set(liveIds);
  const byId = new Map(rows.map((r) => [r.modelId, r]));
  return {
    registryMissing: liveIds.filter((id) => !byId.has(id)),
    registryExtra: rows.filter((r) => !live.has(r.modelId)).map((r) => r.modelId),
    notSynced: rows.filter((r) => live.has(r.modelId) && r.state !== SyncState.synced).map((r) => r.modelId),
    verified: rows.filter((r) => live.has(r.modelId) && r.verificationState === VerificationState.succeeded).length,
  };
}

async function blobState(workload: Workload): Promise<DataState> {
  const world = workload.world;
  const live = workload.live.blob;
  const [primary, secondary] = await Promise.all([listAll(world.primaryS3, world.buckets.primary, world.prefix), listAll(world.secondaryS3, world.buckets.secondary, world.prefix)]);
  const missing: number[] = [];
  const differing: number[] = [];
  const liveKeys = new Set<string>();
  for (const r of live) {
    const key = world.prefix + workload.blobKey(r);
    liveKeys.add(key);
    const s = secondary.get(key);
    if (!s) missing.push(r.id);
    else if (s !== primary.get(key) || s !== r.etags[r.version - 1]) differing.push(r.id);
  }
  const extra = [...secondary.keys()].filter((k) => !liveKeys.has(k));
  let fullyCompared = 0;
  for (const r of sample(live.filter((r) => secondary.has(world.prefix + workload.blobKey(r))), FULL_COMPARE_SAMPLE)) {
    const key = world.prefix + workload.blobKey(r);
    const [a, b] = await Promise.all([sha256Of(world.primaryS3, world.buckets.primary, key), sha256Of(world.secondaryS3, world.buckets.secondary, key)]);
    if (a !== b && !differing.includes(r.id)) differing.push(r.id);
    fullyCompared++;
  }
  return { live: live.length, missing, differing, extra, fullyCompared, ...(await registry(workload, "blob", live.map((r) => r.id))) };
}

async function repoState(workload: Workload): Promise<DataState> {
  const world = workload.world;
  const live = workload.live.repo;
  const missing: number[] = [];
  const differing: number[] = [];
  for (const r of live) {
    const [primary, mirror] = await Promise.all([refsOf(workload.barePath(r)), refsOf(workload.mirrorPath(r))]);
    if (mirror === null) missing.push(r.id);
    else if (mirror !== primary || !mirror.includes(`${r.shas.at(-1)} refs/heads/main`)) differing.push(r.id);
  }
  const liveMirrors = new Set(live.map((r: RepoRecord) => `${r.diskPath.split("/").at(-1)}.git`));
  const extra = mirrorsIn(join(world.mirrorRoot, world.repoDir)).filter((name) => !liveMirrors.has(name));
  return { live: live.length, missing, differing, extra, fullyCompared: 0, ...(await registry(workload, "repo", live.map((r) => r.id))) };
}

/** Key → ETag of every object under the prefix. */
async function listAll(client: S3Client, bucket: string, prefix: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of page.Contents ?? []) out.set(o.Key!, o.ETag ?? "");
    token = page.NextContinuationToken;
  } while (token);
  return out;
}

async function sha256Of(client: S3Client, bucket: string, key: string): Promise<string> {
  const r = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const hash = createHash("sha256");
  for await (const chunk of r.Body as Readable) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** Every ref and what it points at, sorted; null when the repository does not exist. */
async function refsOf(gitDir: string): Promise<string | null> {
  try {
    return (await git(["--git-dir", gitDir, "for-each-ref", "--format=%(objectname) %(refname)"])).trim();
  } catch {
    return null;
  }
}

function mirrorsIn(dir: string): string[] {
  try {
    return readdirSync(dir).filter((n) => n.endsWith(".git"));
  } catch {
    return [];
  }
}

function sample<T>(items: readonly T[], n: number): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy.slice(0, n);
}

