/**
 * Mirrors of the primary's repositories on a secondary: bare repositories holding every ref
 * (`refs/*`) and HEAD as the primary has them. Every function here is idempotent and assumes the
 * caller holds the registry row, so no two syncs of one repository run at once.
 *
 * syncMirror
 * - First sync: `git clone --mirror` into a staging directory next to the mirror (same
 *   filesystem), then one `rename` into place, so the mirror path holds a whole repository or
 *   nothing. A directory at the mirror path that is not a repository is replaced by a fresh clone,
 *   and so is any mirror when `redownload` is set (the repair of a damaged mirror: a fetch never
 *   re-downloads objects the refs say it has). See mirror-directories.ts for the swap and for
 *   what a crash leaves.
 * - Later syncs: `git ls-remote --symref` first (while the mirror's own refs are read); if the
 *   primary's refs and HEAD equal the mirror's, nothing is fetched (the common case of a periodic
 *   resync). Otherwise `git fetch --prune --atomic <url> +refs/*:refs/*` (force-pushes and deleted
 *   refs included) and HEAD is pointed where the primary's points.
 * - Every failure of a command against the primary throws GitCommandError with its category,
 *   `not-found` included: what "not found" means is the caller's decision (RepositoryReplicator's
 *   not-found rule). An existing mirror is left as it is whenever the primary does not answer
 *   with a repository.
 * - The time limit covers the whole sync; when it passes, or the signal fires, the git process
 *   group is killed and the staging directory removed before the error is thrown.
 */
import { rename, rm } from "node:fs/promises";
import { simpleGit } from "simple-git";
import { lsRemote, showRef } from "./checksum.ts";
import { GitCommandError, GitTimeoutError } from "./errors.ts";
import { classifyGitFailure, runGit, type GitCredentials } from "./git-process.ts";
import { createStagingDirectory, pathExists, replaceWithStaged, settleLeftovers } from "./mirror-directories.ts";
import { parseRefListing, readLocalRefs, refMap, type Ref, type RefListing } from "./refs.ts";

/** GitLab's default repository sync timeout. */
export const DEFAULT_SYNC_TIMEOUT_MS = 3 * 60 * 60 * 1000;

/** Git config key of the mirror's fetch counter (drives housekeeping). */
export const FETCH_COUNT_KEY = "geo.fetchcount";

export interface SyncMirrorOptions {
  /** Primary URL of the repository (see primaryRepositoryURL). */
  url: string;
  credentials?: GitCredentials;
  /** Absolute mirror directory, already validated (see mirrorPath in paths.ts). */
  mirrorPath: string;
  /** Limit for the whole sync; default 3 h. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /**
   * Clone afresh and swap it in even if a mirror exists (GitLab's "redownload"): the repair of a
   * mirror verification found damaged (missing objects its refs point at) or still mismatching.
   */
  redownload?: boolean;
  /** Run housekeeping after every N-th fetch; 0 or absent: never. */
  housekeepingEveryFetches?: number;
}

export interface SyncMirrorResult {
  /** cloned: first sync or rebuilt; fetched: refs changed; unchanged: primary equals the mirror, nothing fetched. */
  outcome: "cloned" | "fetched" | "unchanged";
  /** The mirror's fetch counter after this sync (fetches since the clone). */
  fetchCount?: number;
  /** Whether `git gc --auto` ran after this fetch. */
  housekept: boolean;
  durationMs: number;
}

/** Brings the mirror at `mirrorPath` up to date with `url`. See the module comment. */
export async function syncMirror(options: SyncMirrorOptions): Promise<SyncMirrorResult> {
  const started = Date.now();
  const deadline = started + (options.timeoutMs ?? DEFAULT_SYNC_TIMEOUT_MS);
  let outcome: Outcome;
  // Only a missing mirror costs a look at its neighbours: it may be a replacement cut short.
  const exists = (await pathExists(options.mirrorPath)) || (await settleLeftovers(options.mirrorPath));
  if (!exists || options.redownload) {
    outcome = await cloneMirror(options, deadline, exists);
  } else {
    // The primary's advertisement and the mirror's refs are read at the same time; the mirror's
    // read failing means the directory is not a usable repository and is replaced by a clone.
    const [advertised, local] = await Promise.allSettled([
      lsRemote(options.url, { credentials: options.credentials, timeoutMs: remaining(deadline), signal: options.signal }),
      mirrorRefs(options.mirrorPath),
    ]);
    if (local.status === "rejected") outcome = await cloneMirror(options, deadline, true);
    else if (advertised.status === "rejected") throw advertised.reason;
    else outcome = await fetchIntoMirror(options, deadline, parseRefListing(advertised.value), local.value);
  }
  return { ...outcome, durationMs: Date.now() - started };
}

type Outcome = Omit<SyncMirrorResult, "durationMs">;

/** Runs a git command that talks to the primary; any failure throws GitCommandError with its category. */
async function gitAgainstPrimary(command: string, args: string[], options: SyncMirrorOptions, deadline: number): Promise<void> {
  const result = await runGit({ args, url: options.url, credentials: options.credentials, timeoutMs: remaining(deadline), signal: options.signal });
  if (result.exitCode === 0) return;
  throw new GitCommandError({ command, category: classifyGitFailure(result.stderr), exitCode: result.exitCode, stderr: result.stderr });
}

async function cloneMirror(options: SyncMirrorOptions, deadline: number, replaceExisting: boolean): Promise<Outcome> {
  if (replaceExisting) await settleLeftovers(options.mirrorPath);
  const staged = await createStagingDirectory(options.mirrorPath);
  try {
    await gitAgainstPrimary("clone", ["clone", "--mirror", "--quiet", "--", options.url, staged], options, deadline);
    if (replaceExisting) await replaceWithStaged(staged, options.mirrorPath);
    else await rename(staged, options.mirrorPath);
    return { outcome: "cloned", fetchCount: 0, housekept: false };
  } finally {
    await rm(staged, { recursive: true, force: true });
  }
}

async function fetchIntoMirror(options: SyncMirrorOptions, deadline: number, primary: RefListing, mirror: RefListing): Promise<Outcome> {
  const gitDir = options.mirrorPath;
  const head = headUpdate(primary, mirror);
  if (head === undefined && sameRefs(primary.refs, mirror.refs)) {
    return { outcome: "unchanged", housekept: false };
  }

  await gitAgainstPrimary(
    "fetch",
    [
      `--git-dir=${gitDir}`,
      "fetch",
      "--prune",
      "--force",
      "--atomic",
      "--no-write-fetch-head",
      "--no-auto-maintenance",
      "--no-show-forced-updates",
      "--quiet",
      "--",
      options.url,
      "+refs/*:refs/*",
    ],
    options,
    deadline,
  );
  const git = simpleGit();
  if (head?.target !== undefined) await git.raw([`--git-dir=${gitDir}`, "symbolic-ref", "HEAD", head.target]);
  else if (head?.detachedAt !== undefined) await git.raw([`--git-dir=${gitDir}`, "update-ref", "--no-deref", "HEAD", head.detachedAt]);
  const fetchCount = (await readFetchCount(gitDir)) + 1;
  await git.raw([`--git-dir=${gitDir}`, "config", FETCH_COUNT_KEY, String(fetchCount)]);
  const every = options.housekeepingEveryFetches ?? 0;
  const housekept = every > 0 && fetchCount % every === 0;
  if (housekept) await housekeeping(gitDir);
  return { outcome: "fetched", fetchCount, housekept };
}

/**
 * What the mirror's HEAD must become to match the primary's, or undefined when it matches. The
 * refspec `+refs/*:refs/*` does not carry HEAD: a symbolic HEAD (`ls-remote --symref`) is
 * re-pointed, a detached one set to the same commit. A primary HEAD that resolves to nothing is
 * not advertised at all; the mirror's is then left as it is (it resolves to nothing either once
 * the refs match, which is all the checksum sees).
 */
function headUpdate(primary: RefListing, mirror: RefListing): { target?: string; detachedAt?: string } | undefined {
  if (primary.headTarget !== undefined) return primary.headTarget === mirror.headTarget ? undefined : { target: primary.headTarget };
  const primaryHead = primary.refs.find((r) => r.name === "HEAD")?.oid;
  if (primaryHead === undefined) return undefined;
  const mirrorHead = mirror.refs.find((r) => r.name === "HEAD")?.oid;
  return mirror.headTarget === undefined && mirrorHead === primaryHead ? undefined : { detachedAt: primaryHead };
}

/** HEAD's equality with the primary is checked separately: show-ref gives its oid, not its target. */
function sameRefs(primary: readonly Ref[], mirror: readonly Ref[]): boolean {
  const ours = refMap(mirror.filter((r) => r.name !== "HEAD"));
  const theirs = primary.filter((r) => r.name !== "HEAD");
  return theirs.length === ours.size && theirs.every((r) => ours.get(r.name) === r.oid);
}

/** The mirror's refs and HEAD: from the ref files when they are plain, else from git. */
async function mirrorRefs(gitDir: string): Promise<RefListing> {
  const fromFiles = await readLocalRefs(gitDir);
  if (fromFiles) return fromFiles;
  const [listing, head] = await Promise.all([showRef(gitDir), headTarget(gitDir)]);
  return { refs: parseRefListing(listing).refs, headTarget: head };
}

async function headTarget(gitDir: string): Promise<string | undefined> {
  const out = await simpleGit().raw([`--git-dir=${gitDir}`, "symbolic-ref", "-q", "HEAD"]);
  return out.trim() || undefined;
}

async function readFetchCount(gitDir: string): Promise<number> {
  // `git config <key>` exits 1 with no output when the key is unset.
  const value = Number((await simpleGit().raw([`--git-dir=${gitDir}`, "config", "--get", FETCH_COUNT_KEY])).trim());
  return Number.isSafeInteger(value) && value > 0 ? value : 0;
}

/**
 * `git gc --auto` in the foreground: repacks and packs refs only when git's own thresholds say so,
 * which keeps a mirror that receives many small fetches from accumulating loose objects and packs.
 */
export async function housekeeping(mirrorPath: string): Promise<void> {
  await simpleGit({ config: ["gc.autoDetach=false"] }).raw([`--git-dir=${mirrorPath}`, "gc", "--auto", "--quiet"]);
}

function remaining(deadline: number): number {
  const ms = deadline - Date.now();
  if (ms <= 0) throw new GitTimeoutError("repository sync ran out of time");
  return ms;
}
