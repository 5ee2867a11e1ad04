/**
 * The repository strategy's Replicator: git repositories on the primary's git server, mirrored
 * under each secondary's mirror root, compared by Gitaly-compatible checksums.
 *
 * The primary's checksum comes from `git ls-remote` against git.baseURL: the operator reaches the
 * primary over the network only, never through its storage.
 */
import { access, constants, mkdir } from "node:fs/promises";
import { existsSync } from "node:fs";
import { lsRemote, remoteChecksum, repositoryChecksum, showRef } from "./checksum.ts";
import { GitCommandError, RepositoryPathError } from "./errors.ts";
import type { GitCredentials } from "./git-process.ts";
import { removeMirror, syncMirror } from "./mirror.ts";
import { mirrorPath, primaryRepositoryURL, repositoryRelativePath, type RepositoryPathSource } from "./paths.ts";
import { refDifferences } from "./ref-differences.ts";
import {
  InvalidLocationError,
  MissingCopyError,
  MissingOnPrimaryError,
  type ChecksumResult,
  type ModelRecord,
  type Replicator,
  type ReplicatorContext,
  type ReplicatorFactory,
  type SyncResult,
} from "../replicator.ts";
import { templateColumns } from "../model-records.ts";

/** Mismatch reports list at most this many differing refs. */
const REF_DIFFERENCE_CAP = 20;

class RepositoryReplicator implements Replicator {
  readonly columns: readonly string[];
  private readonly source: RepositoryPathSource;
  private readonly baseURL: string;
  private readonly credentials?: GitCredentials;
  private readonly mirrorRoot?: string;
  private readonly ctx: ReplicatorContext;

  constructor(ctx: ReplicatorContext) {
    this.ctx = ctx;
    const spec = ctx.type.repositoryPath;
    if (!spec) throw new Error(`ReplicableType ${ctx.type.name} has no source.repositoryPath`);
    this.source = spec.column ? { column: spec.column } : { template: spec.template! };
    this.columns = spec.column ? [spec.column] : templateColumns(spec.template!).filter((c) => c !== "base");
    const git = ctx.endpoints.primaryGit;
    if (!git) throw new Error("the repository strategy needs the primary's git.baseURL");
    this.baseURL = git.baseURL;
    if (git.username || git.password) this.credentials = { username: git.username ?? "", password: git.password ?? "" };
    if (ctx.role === "secondary") {
      if (!ctx.endpoints.mirrorRoot) throw new Error("the repository strategy needs this secondary's git.mirrorRoot");
      this.mirrorRoot = ctx.endpoints.mirrorRoot;
    }
  }

  private relativePath(record: ModelRecord): string {
    try {
      return repositoryRelativePath(this.source, record.columns);
    } catch (err) {
      if (err instanceof RepositoryPathError) throw new InvalidLocationError(err.message);
      throw err;
    }
  }

  private url(record: ModelRecord): string {
    return primaryRepositoryURL(this.baseURL, this.relativePath(record));
  }

  private async mirror(relative: string): Promise<string> {
    if (!this.mirrorRoot) throw new Error("this operation runs on a secondary site");
    try {
      return await mirrorPath(this.mirrorRoot, relative);
    } catch (err) {
      if (err instanceof RepositoryPathError) throw new InvalidLocationError(err.message);
      throw err;
    }
  }

  async preflight(): Promise<void> {
    if (!this.mirrorRoot) return;
    await mkdir(this.mirrorRoot, { recursive: true });
    try {
      await access(this.mirrorRoot, constants.W_OK);
    } catch {
      throw new Error(`the mirror root ${this.mirrorRoot} is not writable by this process`);
    }
  }

  async checksumPrimary(record: ModelRecord, signal: AbortSignal): Promise<ChecksumResult> {
    try {
      const hex = await remoteChecksum(this.url(record), this.credentials, { signal });
      return { checksum: Buffer.from(hex, "hex"), bytes: 0 };
    } catch (err) {
      if (err instanceof GitCommandError && err.category === "missing") throw new MissingOnPrimaryError(`repository ${this.relativePath(record)} does not exist on the primary`);
      throw err;
    }
  }

  async sync(record: ModelRecord, signal: AbortSignal): Promise<SyncResult> {
    const relative = this.relativePath(record);
    const result = await syncMirror({
      url: this.url(record),
      ...(this.credentials ? { credentials: this.credentials } : {}),
      mirrorPath: await this.mirror(relative),
      timeoutMs: this.ctx.type.timeoutsMs.sync,
      signal,
      housekeepingEveryFetches: this.ctx.type.housekeepingEveryFetches,
    });
    return { missingOnPrimary: result.missingOnPrimary, bytes: 0, location: relative };
  }

  async checksumSecondary(record: ModelRecord): Promise<ChecksumResult> {
    const path = await this.mirror(this.relativePath(record));
    if (!existsSync(path)) throw new MissingCopyError(`no mirror of ${this.relativePath(record)} on this secondary`);
    return { checksum: Buffer.from(await repositoryChecksum(path), "hex"), bytes: 0 };
  }

  async describeMismatch(record: ModelRecord, signal: AbortSignal): Promise<unknown> {
    const [primary, mirror] = await Promise.all([
      lsRemote(this.url(record), { ...(this.credentials ? { credentials: this.credentials } : {}), signal }),
      showRef(await this.mirror(this.relativePath(record))),
    ]);
    return refDifferences(primary, mirror, REF_DIFFERENCE_CAP);
  }

  async removeCopy(location: string): Promise<void> {
    if (!this.mirrorRoot) throw new Error("mirrors are removed on secondaries only");
    await removeMirror(this.mirrorRoot, location);
  }

  async close(): Promise<void> {}
}

export const repositoryReplicatorFactory: ReplicatorFactory = {
  strategy: "repository",
  create: (ctx) => new RepositoryReplicator(ctx),
};
