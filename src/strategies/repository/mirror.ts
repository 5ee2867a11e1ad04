/**
 * Mirrors of the primary's repositories on a secondary: bare repositories holding every ref
 * (`refs/*`) and HEAD as the primary has them. Every function here is idempotent and assumes the
 * caller holds the registry row, so no two syncs of one repository run at once.
 *
 * syncMirror
 * - First sync: `git clone --mirror` into a temporary directory next to the mirror (same
 *   filesystem), then one `rename` into place, so the mirror path holds a whole repository or
 *   nothing. A directory at the mirror path that is not a repository is replaced the same way,
 *   and so is any mirror when `redownload` is set.
 * - Later syncs: `git ls-remote --symref` first (while the mirror's own refs are read); if the primary's refs and HEAD equal the mirror's,
 *   nothing is fetched (the common case of a periodic resync). Otherwise `git fetch --prune
 *   --atomic <url> +refs/*:refs/*` (force-pushes and deleted refs included) and HEAD is pointed
 *   where the primary's points.
 * - A repository the primary says does not exist gives `{ missingOnPrimary: true }` (GitLab marks
 *   the row synced with missing_on_primary); an existing mirror is left as it is. See
 *   classifyGitFailure for what counts as "does not exist".
 * - The time limit covers the whole sync; when it passes, or the signal fires, the git process
 *   group is killed and the temporary directory removed before the error is thrown.
 */
import { lstat, mkdir, mkdtemp, readdir, rename, rm, rmdir } from "node:fs/promises";
import { basename, dirname, join, resolve, sep } from "node:path";
import { simpleGit } from "simple-git";
import { lsRemote, showRef } from "./checksum.ts";
import { GitCommandError, GitTimeoutError } from "./errors.ts";
import { classifyGitFailure, runGit, type GitCredentials } from "./git-process.ts";
import { mirrorPath as resolveMirrorPath, TEMPORARY_PREFIX } from "./paths.ts";
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
   * Clone afresh and swap it in even if a mirror exists (GitLab's "redownload"): for a mirror
   * whose checksum still mismatches after a fetch, e.g. one missing objects its refs point at.
   */
  redownload?: boolean;
  /** Run housekeeping after every N-th fetch; 0 or absent: never. */
  housekeepingEveryFetches?: number;
}

export interface SyncMirrorResult {
  missingOnPrimary: boolean;
  /** cloned: first sync; fetched: refs changed; unchanged: primary equals the mirror, nothing fetched. */
  outcome: "cloned" | "fetched" | "unchanged" | "missing-on-primary";
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
  const exists = await pathExists(options.mirrorPath);
  if (!exists || options.redownload) {
    outcome = await cloneMirror(options, deadline, exists);
  } else {
    // The primary's advertisement and the mirror's refs are read at the same time; the mirror's
    // read failing means the directory is not a usable repository and is replaced by a clone.
    const [advertised, local] = await Promise.allSettled([
      lsRemote(options.url, { credentials: options.credentials, timeoutMs: remaining(deadline), signal: options.signal }),
      mirrorRefs(options.mirrorPath),
    ]);
    if (local.status === "rejected") {
      outcome = await cloneMirror(options, deadline, true);
    } else if (advertised.status === "rejected") {
      const err: unknown = advertised.reason;
      if (err instanceof GitCommandError && err.category === "missing") outcome = MISSING;
      else throw err;
    } else {
      outcome = await fetchIntoMirror(options, deadline, parseRefListing(advertised.value), local.value);
    }
  }
  return { ...outcome, durationMs: Date.now() - started };
}

type Outcome = Omit<SyncMirrorResult, "durationMs">;

const MISSING: Outcome = { missingOnPrimary: true, outcome: "missing-on-primary", housekept: false };

/**
 * Runs a git command that talks to the primary. "missing" when the primary says the repository
 * does not exist; any other failure throws GitCommandError with its category.
 */
async function gitAgainstPrimary(command: string, args: string[], options: SyncMirrorOptions, deadline: number): Promise<"ok" | "missing"> {
  const result = await runGit({ args, url: options.url, credentials: options.credentials, timeoutMs: remaining(deadline), signal: options.signal });
  if (result.exitCode === 0) return "ok";
  const category = classifyGitFailure(result.stderr);
  if (category === "missing") return "missing";
  throw new GitCommandError({ command, category, exitCode: result.exitCode, stderr: result.stderr });
}

async function cloneMirror(options: SyncMirrorOptions, deadline: number, replaceExisting: boolean): Promise<Outcome> {
  const parent = dirname(options.mirrorPath);
  const prefix = `${TEMPORARY_PREFIX}${basename(options.mirrorPath)}-`;
  await mkdir(parent, { recursive: true });
  await removeLeftoverTemporaries(parent, prefix);
  const temporary = await mkdtemp(join(parent, prefix));
  try {
    if ((await gitAgainstPrimary("clone", ["clone", "--mirror", "--quiet", "--", options.url, temporary], options, deadline)) === "missing") return MISSING;
    if (replaceExisting) await rename(options.mirrorPath, `${temporary}-replaced`);
    await rename(temporary, options.mirrorPath);
    return { missingOnPrimary: false, outcome: "cloned", fetchCount: 0, housekept: false };
  } finally {
    await rm(temporary, { recursive: true, force: true });
    if (replaceExisting) await rm(`${temporary}-replaced`, { recursive: true, force: true });
  }
}

async function fetchIntoMirror(options: SyncMirrorOptions, deadline: number, primary: RefListing, mirror: RefListing): Promise<Outcome> {
  const gitDir = options.mirrorPath;
  const head = headUpdate(primary, mirror);
  if (head === undefined && sameRefs(primary.refs, mirror.refs)) {
    return { missingOnPrimary: false, outcome: "unchanged", housekept: false };
  }

  const fetched = await gitAgainstPrimary(
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
  if (fetched === "missing") return MISSING;
  const git = simpleGit();
  if (head?.target !== undefined) await git.raw([`--git-dir=${gitDir}`, "symbolic-ref", "HEAD", head.target]);
  else if (head?.detachedAt !== undefined) await git.raw([`--git-dir=${gitDir}`, "update-ref", "--no-deref", "HEAD", head.detachedAt]);
  const fetchCount = (await readFetchCount(gitDir)) + 1;
  await git.raw([`--git-dir=${gitDir}`, "config", FETCH_COUNT_KEY, String(fetchCount)]);
  const every = options.housekeepingEveryFetches ?? 0;
  const housekept = every > 0 && fetchCount % every === 0;
  if (housekept) await housekeeping(gitDir);
  return { missingOnPrimary: false, outcome: "fetched", fetchCount, housekept };
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

/**
 * Deletes a mirror (secondary only; the primary's data is never touched). The path is validated
 * like any other, so nothing outside `mirrorRoot` can be removed; directories left empty up to
 * the root are removed too. Returns whether there was something to remove.
 */
export async function removeMirror(mirrorRoot: string, relativePath: string): Promise<boolean> {
  const target = await resolveMirrorPath(mirrorRoot, relativePath);
  const existed = await pathExists(target);
  await rm(target, { recursive: true, force: true });
  // Hashed storage nests each repository two directories deep; do not leave the husks behind.
  const root = resolve(mirrorRoot);
  for (let dir = dirname(target); dir.startsWith(root + sep); dir = dirname(dir)) {
    try {
      await rmdir(dir);
    } catch {
      break; // not empty (or already gone): every ancestor is then in use too
    }
  }
  return existed;
}

async function pathExists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
}

/** Temporaries of this mirror left by a process that died mid-clone (a timeout cleans its own). */
async function removeLeftoverTemporaries(parent: string, prefix: string): Promise<void> {
  for (const entry of await readdir(parent)) {
    if (entry.startsWith(prefix)) await rm(join(parent, entry), { recursive: true, force: true });
  }
}

function remaining(deadline: number): number {
  const ms = deadline - Date.now();
  if (ms <= 0) throw new GitTimeoutError("repository sync ran out of time");
  return ms;
}
