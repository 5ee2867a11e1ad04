/**
 * The check every fault scenario ends with, against the real servers and not the registry's own
 * word:
 *
 * 1. nothing lost: every record that must be on the secondary (by default every record of the
 *    primary's model table whose data exists on the primary) has a copy equal to the primary's:
 *    the same SHA-256 for objects, the same refs (and a connected object graph) for repositories;
 * 2. nothing falsely verified: registry rows that claim a copy equal to the primary's have one.
 *    Which rows claim it depends on when the check runs (RowClaims): at the end of a scenario,
 *    once it has converged, every row marked synced or verified; mid-scenario only rows marked
 *    both, since a row synced before its primary object changed, or before its copy was damaged,
 *    legitimately differs until verification notices.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";
import { expect } from "vitest";
import type { LocalEnvironmentInfo } from "../../hack/localenv/index.ts";
import { s3Client, type World } from "../support/worker-world.ts";
import type { Observer } from "./report.ts";

/**
 * Which registry rows must have a copy equal to the primary's (rows missing on the primary have
 * no data to compare and are left out):
 * - "synced-and-verified": verification compared this copy with the primary's checksum. Holds at
 *   every moment, mid-scenario included.
 * - "synced-or-verified": any row the registry calls synced (state 2) or verified
 *   (verification_state 2, which a resync or a failed retry leaves in place). Holds once the
 *   scenario has converged: nothing changed on either side since the last sync and verify rounds.
 */
export type RowClaims = "synced-and-verified" | "synced-or-verified";

export interface InvariantOptions {
  /** Model ids whose copy must be on the secondary; default: every record on the primary with data. */
  mustHave?: readonly number[];
  /** The primary's model table (ground truth) when the scenario changed the type's source. */
  table?: string;
  /** Default "synced-and-verified" for the check functions, "synced-or-verified" for expectInvariants (a scenario's end). */
  rows?: RowClaims;
}

function claimingRowsQuery(name: string, claims: RowClaims): string {
  const claimed = claims === "synced-and-verified" ? "state = 2 AND verification_state = 2" : "(state = 2 OR verification_state = 2)";
  return `SELECT ${name}_id AS model_id FROM ${name}_registry WHERE ${claimed} AND NOT missing_on_primary ORDER BY ${name}_id`;
}

const claimsLabel = (claims: RowClaims) => (claims === "synced-and-verified" ? "synced+verified" : "synced-or-verified");

export interface InvariantResult {
  ok: boolean;
  summary: string;
  problems: string[];
}

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

async function objectHashes(s3: S3Client, bucket: string, prefix: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of page.Contents ?? []) {
      const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: o.Key! }));
      out.set(o.Key!, sha256(await res.Body!.transformToByteArray()));
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return out;
}

/** Blob types of a worker world: keys `<prefix>cool_widgets/{id}/{file_name}`. */
export async function checkBlobInvariants(env: LocalEnvironmentInfo, world: World, opts: InvariantOptions = {}): Promise<InvariantResult> {
  const name = world.type.name;
  const table = opts.table ?? "cool_widgets";
  const primaryOs = world.primarySite.objectStorage!;
  const secondaryOs = world.secondarySite.objectStorage!;
  // Straight to the servers: a scenario may have pointed the world at a proxy it stopped.
  const primaryS3 = s3Client(env.s3!.primary);
  const secondaryS3 = s3Client(env.s3!.secondary);
  try {
    const scope = `${world.prefix}cool_widgets/`;
    const [onPrimary, onSecondary] = await Promise.all([objectHashes(primaryS3, primaryOs.bucket, scope), objectHashes(secondaryS3, secondaryOs.bucket, scope)]);
    const { rows: records } = await world.dbs.primary.query<{ id: string; file_name: string }>(`SELECT id, file_name FROM ${table} ORDER BY id`);
    const keyOf = new Map(records.map((r) => [Number(r.id), `${world.prefix}cool_widgets/${r.id}/${r.file_name}`]));
    const must = opts.mustHave ?? [...keyOf.keys()].filter((id) => onPrimary.has(keyOf.get(id)!));
    const problems: string[] = [];
    let equal = 0;
    for (const id of must) {
      const key = keyOf.get(id);
      if (!key) {
        problems.push(`record ${id} is not in ${table} on the primary`);
        continue;
      }
      const p = onPrimary.get(key);
      const s = onSecondary.get(key);
      if (!s) problems.push(`record ${id}: no copy on the secondary`);
      else if (s !== p) problems.push(`record ${id}: secondary copy differs from the primary (sha256 ${s.slice(0, 12)} ≠ ${p?.slice(0, 12)})`);
      else equal++;
    }
    const claims = opts.rows ?? "synced-and-verified";
    const { rows: claimed } = await world.dbs.tracking.query<{ model_id: string }>(claimingRowsQuery(name, claims));
    let claimsOk = 0;
    for (const r of claimed) {
      const id = Number(r.model_id);
      const key = keyOf.get(id);
      const p = key ? onPrimary.get(key) : undefined;
      const s = key ? onSecondary.get(key) : undefined;
      if (!p || !s || p !== s) problems.push(`registry row ${id} is ${claimsLabel(claims)} but its copy ${!s ? "is missing" : !p ? "has no primary object" : "differs from the primary"}`);
      else claimsOk++;
    }
    const summary = `${equal}/${must.length} copies equal to the primary (sha256); ${claimsOk}/${claimed.length} ${claimsLabel(claims)} rows match`;
    return { ok: problems.length === 0, summary, problems };
  } finally {
    primaryS3.destroy();
    secondaryS3.destroy();
  }
}

function git(args: string[]): string {
  return execFileSync("git", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** sha256 of the sorted `objectname refname` list: what a mirror must share with its primary. */
export function refsChecksum(gitDir: string): string {
  const refs = git(["--git-dir", gitDir, "for-each-ref", "--format=%(objectname) %(refname)"]).split("\n").filter(Boolean).sort().join("\n");
  return sha256(Buffer.from(refs));
}

/** Every object reachable from the refs is present. */
export function connected(gitDir: string): boolean {
  try {
    git(["--git-dir", gitDir, "fsck", "--connectivity-only", "--no-dangling", "--no-progress"]);
    return true;
  } catch {
    return false;
  }
}

/** Repository types of a worker world: `<git root>/<disk_path>.git` mirrored to `<mirrorRoot>/<disk_path>.git`. */
export async function checkRepositoryInvariants(env: LocalEnvironmentInfo, world: World, opts: InvariantOptions = {}): Promise<InvariantResult> {
  const name = world.type.name;
  const mirrorRoot = world.secondarySite.git!.mirrorRoot!;
  const { rows: records } = await world.dbs.primary.query<{ id: string; disk_path: string }>(`SELECT id, disk_path FROM ${opts.table ?? "design_repositories"} ORDER BY id`);
  const pathOf = new Map(records.map((r) => [Number(r.id), r.disk_path]));
  const primaryDir = (id: number) => join(env.git!.root, `${pathOf.get(id)}.git`);
  const mirrorDir = (id: number) => join(mirrorRoot, `${pathOf.get(id)}.git`);
  const same = (id: number): string | undefined => {
    if (!existsSync(mirrorDir(id))) return "no mirror on the secondary";
    if (refsChecksum(mirrorDir(id)) !== refsChecksum(primaryDir(id))) return "mirror refs differ from the primary";
    if (!connected(mirrorDir(id))) return "mirror refs point at missing objects";
    return undefined;
  };
  const must = opts.mustHave ?? [...pathOf.keys()].filter((id) => existsSync(primaryDir(id)));
  const problems: string[] = [];
  let equal = 0;
  for (const id of must) {
    const why = pathOf.has(id) ? same(id) : "not in the primary's model table";
    if (why) problems.push(`repository ${id}: ${why}`);
    else equal++;
  }
  const claims = opts.rows ?? "synced-and-verified";
  const { rows: claimed } = await world.dbs.tracking.query<{ model_id: string }>(claimingRowsQuery(name, claims));
  let claimsOk = 0;
  for (const r of claimed) {
    const id = Number(r.model_id);
    const why = pathOf.has(id) && existsSync(primaryDir(id)) ? same(id) : "no repository on the primary";
    if (why) problems.push(`registry row ${id} is ${claimsLabel(claims)} but ${why}`);
    else claimsOk++;
  }
  const summary = `${equal}/${must.length} mirrors equal to the primary (refs checksum, connectivity); ${claimsOk}/${claimed.length} ${claimsLabel(claims)} rows match`;
  return { ok: problems.length === 0, summary, problems };
}

/**
 * Runs the check for the world's strategy, notes its summary in the table and asserts it. Meant
 * for a scenario's end, so every row marked synced or verified is held to the primary's data
 * unless `opts.rows` says otherwise. (Scenario 13 also calls it mid-way, while its primary is
 * unchanged: a row's claim holds there as well.)
 */
export async function expectInvariants(env: LocalEnvironmentInfo, world: World, o: Observer, opts: InvariantOptions = {}): Promise<void> {
  const settled: InvariantOptions = { rows: "synced-or-verified", ...opts };
  const result = world.type.strategy === "repository" ? await checkRepositoryInvariants(env, world, settled) : await checkBlobInvariants(env, world, settled);
  o.note(`invariant: ${result.summary}${result.ok ? "" : ` — ${result.problems.slice(0, 3).join("; ")}`}`);
  expect(result.problems, "fault-suite invariant: nothing lost, nothing falsely verified").toEqual([]);
}
