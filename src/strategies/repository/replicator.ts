/**
 * The repository strategy's Replicator: git repositories on the primary's git server, mirrored
 * under each secondary's mirror root, compared by Gitaly-compatible checksums.
 *
 * The primary's checksum comes from `git ls-remote` against git.baseURL: the operator reaches the
 * primary over the network only, never through its storage.
 *
 * The not-found rule (sync and checksumPrimary): when the primary's server will not serve a
 * repository (GitCommandError category `not-found`), the answer is AmbiguousNotFoundError unless
 * it is provably an absence, and only then MissingOnPrimaryError. Git servers answer "not found"
 * for a repository the credentials may not see (GitLab's 404 "could not be found or you don't have
 * permission"), and for every path under a wrong git.baseURL; marking rows missing_on_primary on
 * such an answer would mark a whole site's repositories synced with nothing in them. An ambiguous
 * answer is an ordinary failure with backoff, and costs only retries when the repository really is
 * gone. Provable means a file:// baseURL whose directory can be looked at (not-found.ts); over
 * http(s)://, git:// and ssh:// nothing is provable. An existing mirror is never touched either way.
 *
 * Damage: checksumSecondary checks that every object the mirror's refs reach is present
 * (connectivity.ts) and throws CopyDamagedError when not; sync with `repair` then rebuilds the
 * mirror from a fresh clone swapped into place (mirror-directories.ts).
 */
import { access, constants, mkdir } from "node:fs/promises";
import { existsSync } from "node:fs";
import { lsRemote, remoteChecksum, repositoryChecksum, showRef } from "./checksum.ts";
import { connectivityProblem } from "./connectivity.ts";
import { GitCommandError, RepositoryPathError } from "./errors.ts";
import type { GitCredentials } from "./git-process.ts";
import { removeMirror } from "./mirror-directories.ts";
import { syncMirror } from "./mirror.ts";
import { meaningOfNotFound } from "./not-found.ts";
import { mirrorPath, primaryRepositoryURL, repositoryRelativePath, type RepositoryPathSource } from "./paths.ts";
import { refDifferences } from "./ref-differences.ts";
import {
  AmbiguousNotFoundError,
  CopyDamagedError,
  InvalidLocationError,
  MissingCopyError,
  MissingOnPrimaryError,
  type ChecksumResult,
  type ModelRecord,
  type Replicator,
  type ReplicatorContext,
  type SyncOptions,
  type SyncResult,
} from "../replicator.ts";
import { repositoryStrategy, type RepositoryEndpoints, type RepositorySettings } from "./definition.ts";

/** Mismatch reports list at most this many differing refs. */
const REF_DIFFERENCE_CAP = 20;

type RepositoryContext = ReplicatorContext<RepositorySettings, RepositoryEndpoints>;

export class RepositoryReplicator implements Replicator {
  readonly columns: readonly string[];
  private readonly source: RepositoryPathSource;
  private readonly baseURL: string;
  private readonly credentials?: GitCredentials;
  private readonly mirrorRoot?: string;
  private readonly ctx: RepositoryContext;

  constructor(ctx: RepositoryContext) {
    this.ctx = ctx;
    this.source = ctx.type.settings.repositoryPath;
    this.columns = repositoryStrategy.modelColumns(ctx.type.settings);
    const git = ctx.endpoints.primary;
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
    const relative = this.relativePath(record);
    try {
      const hex = await remoteChecksum(this.url(record), this.credentials, { signal });
      return { checksum: Buffer.from(hex, "hex"), bytes: 0 };
    } catch (err) {
      throw await this.primaryFailure(err, relative);
    }
  }

  async sync(record: ModelRecord, signal: AbortSignal, options: SyncOptions = {}): Promise<SyncResult> {
    const relative = this.relativePath(record);
    try {
      await syncMirror({
        url: this.url(record),
        ...(this.credentials ? { credentials: this.credentials } : {}),
        mirrorPath: await this.mirror(relative),
        timeoutMs: this.ctx.type.timeoutsMs.sync,
        signal,
        housekeepingEveryFetches: this.ctx.type.settings.housekeepingEveryFetches,
        redownload: options.repair === true,
      });
    } catch (err) {
      throw await this.primaryFailure(err, relative);
    }
    return { missingOnPrimary: false, bytes: 0, location: relative };
  }

  /** The not-found rule of the module comment; other errors pass through unchanged. */
  private async primaryFailure(err: unknown, relative: string): Promise<unknown> {
    if (!(err instanceof GitCommandError) || err.category !== "not-found") return err;
    if ((await meaningOfNotFound(this.baseURL, relative)) === "missing") {
      return new MissingOnPrimaryError(`repository ${relative} does not exist on the primary`, { cause: err });
    }
    return new AmbiguousNotFoundError(
      `repository ${relative} was not found on the primary, or the credentials cannot see it; check git.baseURL and the credentials Secret (${err.message})`,
      { cause: err },
    );
  }

  async checksumSecondary(record: ModelRecord, signal: AbortSignal): Promise<ChecksumResult> {
    const relative = this.relativePath(record);
    const path = await this.mirror(relative);
    if (!existsSync(path)) throw new MissingCopyError(`no mirror of ${relative} on this secondary`);
    const problem = await connectivityProblem(path, { timeoutMs: this.ctx.type.timeoutsMs.sync, signal });
    if (problem !== undefined) throw new CopyDamagedError(`the mirror of ${relative} is damaged: ${problem}`);
    return { checksum: Buffer.from(await repositoryChecksum(path), "hex"), bytes: 0 };
  }

  async describeMismatch(record: ModelRecord, signal: AbortSignal): Promise<unknown> {
    // The mirror's path first: an `await` inside the array below would leave the ls-remote promise
    // without a handler meanwhile, and its rejection (the repository deleted on the primary since)
    // would end the process as an unhandled rejection.
    const mirrorPath = await this.mirror(this.relativePath(record));
    const [primary, mirror] = await Promise.all([
      lsRemote(this.url(record), { ...(this.credentials ? { credentials: this.credentials } : {}), signal }),
      showRef(mirrorPath),
    ]);
    return refDifferences(primary, mirror, REF_DIFFERENCE_CAP);
  }

  async removeCopy(location: string): Promise<void> {
    if (!this.mirrorRoot) throw new Error("mirrors are removed on secondaries only");
    await removeMirror(this.mirrorRoot, location);
  }

  async close(): Promise<void> {}
}
