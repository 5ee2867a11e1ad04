/**
 * The application on the primary, as the bench plays it: blobs (`cool_widgets` rows naming objects
 * in the primary's bucket) and git repositories (`design_repositories` rows naming bare
 * repositories the git daemon serves). Every change is written the way an application does it:
 *
 * - blob create: PUT the object, then INSERT its row (the capture trigger writes `created`);
 * - blob update: PUT new bytes at the same key, then either UPDATE a column the type reads
 *   (namespace_id: the trigger writes `updated`) or publish `updated` (geo_operator_publish_event,
 *   what an application does after rewriting a blob in place), half and half;
 * - blob delete: DELETE the row (the trigger writes `deleted`), then delete the object;
 * - repository create: `git init --bare`, push a first commit, INSERT the row;
 * - repository update: a commit pushed to the daemon, then publish `updated`, which is what the
 *   post-receive hook docs/ show does (`geo-operator event publish`), done here in-process with the
 *   same SQL function so a Node start per push does not weigh on the measurement;
 * - repository delete: DELETE the row, then remove the bare repository.
 *
 * The commit time of a change is the primary's clock_timestamp() in the statement that commits it
 * (RETURNING of the INSERT/UPDATE/DELETE, or beside the publish call), at most a commit's duration
 * before the change is visible. (The writer's clock after COMMIT returned is later by however long
 * the reply took to be read: under load, later than some secondaries' copies.) Object contents carry their version in `x-amz-meta-bench-version`, which the
 * sync copies with the object, so the watcher can tell which version a secondary holds.
 */
import { execFile } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { DeleteObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import type pg from "pg";
import { EVENTS_TABLE, PUBLISH_FUNCTION } from "../../src/registry/side-tables.ts";
import type { Change, ChangeKind, DataKind } from "./ledger.ts";
import type { BenchOptions } from "./options.ts";
import { NAMESPACES, type World } from "./world.ts";

const run = promisify(execFile);
export const VERSION_METADATA = "bench-version";
const GIT_ENV = {
  ...process.env,
  GIT_TERMINAL_PROMPT: "0",
  GIT_CONFIG_NOSYSTEM: "1",
  GIT_AUTHOR_NAME: "bench",
  GIT_AUTHOR_EMAIL: "bench@example.com",
  GIT_COMMITTER_NAME: "bench",
  GIT_COMMITTER_EMAIL: "bench@example.com",
};

export interface BlobRecord {
  data: "blob";
  id: number;
  version: number;
  size: { bytes: number; label: string };
  fileName: string;
  namespaceId: number;
  /** ETag (MD5) of each version as the primary stored it; index = version - 1. */
  etags: string[];
  busy: boolean;
}

export interface RepoRecord {
  data: "repo";
  id: number;
  version: number;
  diskPath: string;
  /** Commit each version's main points at; index = version - 1. */
  shas: string[];
  busy: boolean;
}

export type LiveRecord = BlobRecord | RepoRecord;

/** What a committed change hands back to the writer. */
export type Committed = Omit<Change, "seq">;

export class Workload {
  readonly world: World;
  private readonly opts: BenchOptions;
  /** Whether the primary writes events (event mode): each change then looks up its event id. */
  private readonly events: boolean;
  readonly live = { blob: [] as BlobRecord[], repo: [] as RepoRecord[] };
  readonly records = new Map<string, LiveRecord>();
  readonly deleted: LiveRecord[] = [];
  private readonly bases = new Map<number, Buffer>();
  private blobIds: number[] = [];
  private scratch = "";
  private emptyTree = "";

  constructor(world: World, opts: BenchOptions, scratchDir: string) {
    this.world = world;
    this.opts = opts;
    this.events = world.mode === "event";
    this.scratch = join(scratchDir, `scratch-${world.mode}.git`);
  }

  async prepare(): Promise<void> {
    for (const s of this.opts.sizes) this.bases.set(s.bytes, randomBytes(s.bytes));
    mkdirSync(this.scratch, { recursive: true });
    await git(["init", "--bare", "-q", this.scratch]);
    this.emptyTree = (await git(["--git-dir", this.scratch, "mktree"], "")).trim();
  }

  record(data: DataKind, id: number): LiveRecord | undefined {
    return this.records.get(`${data}:${id}`);
  }

  blobKey(r: BlobRecord): string {
    return `cool_widgets/${r.id}/${r.fileName}`;
  }

  /** The bare repository on the primary (under the git daemon's root). */
  barePath(r: RepoRecord): string {
    return join(this.world.gitRoot, `${r.diskPath}.git`);
  }

  mirrorPath(r: RepoRecord): string {
    return join(this.world.mirrorRoot, `${r.diskPath}.git`);
  }

  async change(data: DataKind, kind: ChangeKind, target?: LiveRecord): Promise<Committed> {
    if (data === "blob") {
      if (kind === "create") return this.createBlob();
      return kind === "update" ? this.updateBlob(target as BlobRecord) : this.deleteBlob(target as BlobRecord);
    }
    if (kind === "create") return this.createRepo();
    return kind === "update" ? this.updateRepo(target as RepoRecord) : this.deleteRepo(target as RepoRecord);
  }

  // --- blobs ---

  private pickSize(): { bytes: number; label: string } {
    let r = Math.random();
    for (const s of this.opts.sizes) {
      if (r < s.share) return s;
      r -= s.share;
    }
    return this.opts.sizes[0]!;
  }

  private async nextBlobId(): Promise<number> {
    if (this.blobIds.length === 0) {
      const { rows } = await this.world.primaryDb.query<{ id: string }>(`SELECT nextval('cool_widgets_id_seq')::text AS id FROM generate_series(1, 500)`);
      this.blobIds = rows.map((r) => Number(r.id));
    }
    return this.blobIds.shift()!;
  }

  /** Distinct bytes per version: the size class's random base with a fresh random head. */
  private async putBlob(r: BlobRecord): Promise<void> {
    const body = Buffer.allocUnsafe(r.size.bytes);
    this.bases.get(r.size.bytes)!.copy(body);
    randomBytes(32).copy(body);
    const out = await this.world.primaryS3.send(
      new PutObjectCommand({
        Bucket: this.world.buckets.primary,
        Key: this.world.prefix + this.blobKey(r),
        Body: body,
        ContentLength: body.length,
        Metadata: { [VERSION_METADATA]: String(r.version) },
      }),
    );
    r.etags[r.version - 1] = out.ETag ?? "";
  }

  private async createBlob(): Promise<Committed> {
    const r: BlobRecord = { data: "blob", id: await this.nextBlobId(), version: 1, size: this.pickSize(), fileName: `f-${randomBytes(4).toString("hex")}.bin`, namespaceId: NAMESPACES[randomInt(NAMESPACES.length)]!, etags: [], busy: true };
    await this.putBlob(r);
    const committed = await this.commit(`INSERT INTO cool_widgets (id, namespace_id, file_name) VALUES ($1::bigint, $2::bigint, $3::text)`, [r.id, r.namespaceId, r.fileName]);
    this.adopt(r);
    return { data: "blob", kind: "create", modelId: r.id, version: 1, size: r.size.label, ...committed };
  }

  private async updateBlob(r: BlobRecord): Promise<Committed> {
    r.version++;
    await this.putBlob(r);
    let committed: Pick<Change, "committedAt" | "eventId">;
    if (Math.random() < 0.5) {
      r.namespaceId = NAMESPACES.filter((n) => n !== r.namespaceId)[randomInt(NAMESPACES.length - 1)]!;
      committed = await this.commit(`UPDATE cool_widgets SET namespace_id = $2::bigint WHERE id = $1::bigint`, [r.id, r.namespaceId]);
    } else {
      committed = await this.publish(this.world.blobType.name, r.id);
    }
    return { data: "blob", kind: "update", modelId: r.id, version: r.version, size: r.size.label, ...committed };
  }

  private async deleteBlob(r: BlobRecord): Promise<Committed> {
    const committed = await this.commit(`DELETE FROM cool_widgets WHERE id = $1::bigint`, [r.id]);
    this.drop(r);
    await this.world.primaryS3.send(new DeleteObjectCommand({ Bucket: this.world.buckets.primary, Key: this.world.prefix + this.blobKey(r) }));
    return { data: "blob", kind: "delete", modelId: r.id, version: r.version, size: r.size.label, ...committed };
  }

  // --- repositories ---

  private async commitTree(message: string, parent?: string): Promise<string> {
    return (await git(["--git-dir", this.scratch, "commit-tree", this.emptyTree, ...(parent ? ["-p", parent] : []), "-m", message])).trim();
  }

  private async push(r: RepoRecord, sha: string): Promise<void> {
    await git(["--git-dir", this.scratch, "push", "-q", `${this.world.gitBaseURL}/${r.diskPath}.git`, `${sha}:refs/heads/main`]);
  }

  private async createRepo(): Promise<Committed> {
    const diskPath = `${this.world.repoDir}/r-${randomBytes(5).toString("hex")}`;
    const r: RepoRecord = { data: "repo", id: 0, version: 1, diskPath, shas: [], busy: true };
    await git(["init", "--bare", "-q", "--initial-branch=main", this.barePath(r)]);
    const sha = await this.commitTree(`${diskPath} v1 ${randomBytes(8).toString("hex")}`);
    await this.push(r, sha);
    r.shas.push(sha);
    const client = await this.world.primaryDb.connect();
    try {
      const { rows } = await client.query<{ id: string; at: Date }>(
        `INSERT INTO design_repositories (namespace_id, disk_path) VALUES ($1::bigint, $2::text) RETURNING id::text, clock_timestamp() AS at`,
        [NAMESPACES[randomInt(NAMESPACES.length)], diskPath],
      );
      const committedAt = rows[0]!.at.getTime();
      r.id = Number(rows[0]!.id);
      const event = this.events ? await lastEvent(client) : {};
      this.adopt(r);
      return { data: "repo", kind: "create", modelId: r.id, version: 1, committedAt, ...event };
    } finally {
      client.release();
    }
  }

  private async updateRepo(r: RepoRecord): Promise<Committed> {
    const sha = await this.commitTree(`${r.diskPath} v${r.version + 1} ${randomBytes(8).toString("hex")}`, r.shas.at(-1));
    await this.push(r, sha);
    r.shas.push(sha);
    r.version++;
    // The post-receive hook's call.
    const committed = await this.publish(this.world.repoType.name, r.id);
    return { data: "repo", kind: "update", modelId: r.id, version: r.version, ...committed };
  }

  private async deleteRepo(r: RepoRecord): Promise<Committed> {
    const committed = await this.commit(`DELETE FROM design_repositories WHERE id = $1::bigint`, [r.id]);
    this.drop(r);
    rmSync(this.barePath(r), { recursive: true, force: true });
    return { data: "repo", kind: "delete", modelId: r.id, version: r.version, ...committed };
  }

  // --- bookkeeping ---

  private async commit(sql: string, params: unknown[]): Promise<Pick<Change, "committedAt" | "eventId">> {
    const client = await this.world.primaryDb.connect();
    try {
      const { rows } = await client.query<{ at: Date }>(`${sql} RETURNING clock_timestamp() AS at`, params);
      const committedAt = rows[0]!.at.getTime();
      return { committedAt, ...(this.events ? await lastEvent(client) : {}) };
    } finally {
      client.release();
    }
  }

  /** What an application's call, or the post-receive hook's `geo-operator event publish`, does. */
  private async publish(typeName: string, id: number): Promise<Pick<Change, "committedAt" | "eventId">> {
    const { rows } = await this.world.primaryDb.query<{ id: string; at: Date }>(
      `SELECT public.${PUBLISH_FUNCTION}($1::text, $2::bigint, 'updated')::text AS id, clock_timestamp() AS at`,
      [typeName, id],
    );
    return { committedAt: rows[0]!.at.getTime(), ...(this.events ? { eventId: Number(rows[0]!.id) } : {}) };
  }

  private adopt(r: LiveRecord): void {
    this.records.set(`${r.data}:${r.id}`, r);
    (this.live[r.data] as LiveRecord[]).push(r);
  }

  private drop(r: LiveRecord): void {
    const list = this.live[r.data] as LiveRecord[];
    const i = list.indexOf(r);
    if (i >= 0) {
      list[i] = list[list.length - 1]!;
      list.pop();
    }
    this.deleted.push(r);
  }

  /** A random live record of `data` no change is being written to, or undefined. */
  pickIdle(data: DataKind): LiveRecord | undefined {
    const list = this.live[data] as LiveRecord[];
    for (let i = 0; i < 8 && list.length > 0; i++) {
      const r = list[randomInt(list.length)]!;
      if (!r.busy) return r;
    }
    return undefined;
  }
}

/** The event the trigger just wrote in this session's transaction (currval of the log's sequence). */
async function lastEvent(client: pg.PoolClient): Promise<{ eventId: number }> {
  const { rows } = await client.query<{ id: string }>(`SELECT currval(pg_get_serial_sequence('public.${EVENTS_TABLE}', 'id'))::text AS id`);
  return { eventId: Number(rows[0]!.id) };
}

export async function git(args: string[], input?: string): Promise<string> {
  const child = run("git", args, { env: GIT_ENV, maxBuffer: 64 * 1024 * 1024 });
  if (input !== undefined) child.child.stdin!.end(input);
  return (await child).stdout;
}
