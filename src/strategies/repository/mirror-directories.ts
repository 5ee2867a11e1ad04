/**
 * The filesystem side of mirrors: where clones are staged, how a fresh clone replaces a mirror,
 * how an interrupted replacement is finished, and how a mirror is removed. No git runs here.
 *
 * Temporaries: a clone is staged in `<parent>/<temporaryPrefix(mirror)><random>` (same filesystem
 * as the mirror, so it moves in with one rename). A mirror being replaced is first renamed to the
 * same staging name plus RETIRED_SUFFIX. Both carry this mirror's prefix only (see paths.ts), so
 * settling one mirror's leftovers never touches a sibling's clone in progress.
 *
 * Nested mirrors: a repository path may lie inside another's (`a/b` and `a/b/c.git` from a
 * template without `.git`). The inner mirror then lives in a directory of the outer one. Such
 * entries are "nested": a directory whose name git does not use in a bare repository and that
 * holds a repository. Removing or replacing the outer mirror keeps them. An inner path whose first
 * segment below the outer one is a name git uses there (`objects`, `refs`, …) cannot be told from
 * the outer repository's own data and goes with it.
 */
import { lstat, mkdir, mkdtemp, readdir, rename, rm, rmdir } from "node:fs/promises";
import { dirname, join, resolve, sep } from "node:path";
import { mirrorPath as resolveMirrorPath, temporaryPrefix } from "./paths.ts";

/** Suffix of the staging name a replaced mirror is moved to until the new one is in place. */
export const RETIRED_SUFFIX = "-retired";

/** Directories git itself keeps in a bare repository: never another repository's mirror. */
const GIT_DIRECTORIES = new Set(["objects", "refs", "hooks", "info", "logs", "branches", "reftable", "worktrees", "modules", "rr-cache", "lfs"]);

/**
 * A new, empty staging directory for a clone of `mirrorPath`, after its parent is created. A
 * concurrent removeMirror of a sibling may prune the parent between the two steps; that is retried.
 */
export async function createStagingDirectory(mirrorPath: string): Promise<string> {
  const parent = dirname(mirrorPath);
  for (let attempt = 1; ; attempt++) {
    await mkdir(parent, { recursive: true });
    try {
      return await mkdtemp(join(parent, temporaryPrefix(mirrorPath)));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT" || attempt === 3) throw err;
    }
  }
}

/**
 * Finishes what a process that died left of this mirror's staging: a retired mirror goes back in
 * place when the mirror path is empty (the crash fell between the two renames of a replacement;
 * the retired copy is whole), otherwise its nested mirrors move to the mirror and it is removed;
 * clone temporaries are removed. Returns whether a mirror exists at `mirrorPath` afterwards.
 * The caller holds the registry row, so no other sync of this mirror runs.
 */
export async function settleLeftovers(mirrorPath: string): Promise<boolean> {
  const parent = dirname(mirrorPath);
  const prefix = temporaryPrefix(mirrorPath);
  let entries: string[];
  try {
    entries = (await readdir(parent)).filter((e) => e.startsWith(prefix));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
  // Retired copies first: one may be the only whole mirror there is.
  entries.sort((a, b) => Number(b.endsWith(RETIRED_SUFFIX)) - Number(a.endsWith(RETIRED_SUFFIX)));
  for (const entry of entries) {
    const path = join(parent, entry);
    if (entry.endsWith(RETIRED_SUFFIX)) {
      if (!(await pathExists(mirrorPath))) {
        await rename(path, mirrorPath);
        continue;
      }
      await carryNestedMirrors(path, mirrorPath);
    }
    await rm(path, { recursive: true, force: true });
  }
  return pathExists(mirrorPath);
}

/**
 * Puts the finished clone `staged` at `mirrorPath` in place of the directory there: rename the old
 * one away, rename the new one in, move nested mirrors across, remove the old one. A crash leaves
 * either mirror at the path or, between the renames, a retired whole copy that settleLeftovers
 * puts back; never a partial clone at the mirror path.
 */
export async function replaceWithStaged(staged: string, mirrorPath: string): Promise<void> {
  const retired = `${staged}${RETIRED_SUFFIX}`;
  await rename(mirrorPath, retired);
  try {
    await rename(staged, mirrorPath);
  } catch (err) {
    await rename(retired, mirrorPath);
    throw err;
  }
  await carryNestedMirrors(retired, mirrorPath);
  await rm(retired, { recursive: true, force: true });
}

/**
 * Deletes a mirror (secondary only; the primary's data is never touched). The path is validated
 * like any other, so nothing outside `mirrorRoot` can be removed. Mirrors nested inside it stay;
 * directories left empty up to the root are removed, and nothing that still holds anything.
 * Returns whether there was something to remove.
 */
export async function removeMirror(mirrorRoot: string, relativePath: string): Promise<boolean> {
  const target = await resolveMirrorPath(mirrorRoot, relativePath);
  if (!(await pathExists(target))) return false;
  const nested = new Set(await nestedMirrorEntries(target));
  if (nested.size === 0) {
    await rm(target, { recursive: true, force: true });
  } else {
    for (const entry of await readdir(target)) {
      if (!nested.has(entry)) await rm(join(target, entry), { recursive: true, force: true });
    }
  }
  // Hashed storage nests each repository two directories deep; do not leave the husks behind.
  const root = resolve(mirrorRoot);
  for (let dir = dirname(target); dir.startsWith(root + sep); dir = dirname(dir)) {
    try {
      await rmdir(dir);
    } catch {
      break; // not empty (or already gone): every ancestor is then in use too
    }
  }
  return true;
}

/** Entries of the mirror directory `dir` that hold other repositories' mirrors (module comment). */
export async function nestedMirrorEntries(dir: string): Promise<string[]> {
  const nested: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (!entry.isDirectory() || GIT_DIRECTORIES.has(entry.name)) continue;
    if (await holdsRepository(join(dir, entry.name))) nested.push(entry.name);
  }
  return nested;
}

/** Moves nested mirrors from `from` to `to`; one already at `to` (synced meanwhile) wins. */
async function carryNestedMirrors(from: string, to: string): Promise<void> {
  for (const entry of await nestedMirrorEntries(from)) {
    try {
      await rename(join(from, entry), join(to, entry));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "EEXIST" && code !== "ENOTEMPTY") throw err;
    }
  }
}

/** Whether `dir` is, or contains at any depth, a bare repository. Symlinks are not followed. */
async function holdsRepository(dir: string): Promise<boolean> {
  if (await isBareRepository(dir)) return true;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.isDirectory() && (await holdsRepository(join(dir, entry.name)))) return true;
  }
  return false;
}

async function isBareRepository(dir: string): Promise<boolean> {
  const kinds = await Promise.all(["HEAD", "objects", "refs"].map((name) => lstat(join(dir, name)).catch(() => undefined)));
  return kinds[0]?.isFile() === true && kinds[1]?.isDirectory() === true && kinds[2]?.isDirectory() === true;
}

export async function pathExists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
}
