/**
 * What a "not found" from the primary's git server means (the not-found rule of the repository
 * strategy; see replicator.ts for why).
 *
 * Over a network transport (http(s)://, git://, ssh://) it is always ambiguous: GitLab answers 404
 * "could not be found" for a project the token may not see, git daemon says "access denied or
 * repository not exported" for anything it will not serve, and a wrong baseURL makes every path
 * not found. Nothing in the answer tells these apart.
 *
 * Over file:// the operator can look for itself, and the answer is definite only when the look
 * proves absence: the base directory exists, is readable and is not empty (an empty one may be an
 * unmounted volume), and the repository's own path does not exist (ENOENT, not EACCES). A path
 * that exists but is not a repository, or with `%` in it (git's decoding of file URLs is not
 * ours to guess), stays ambiguous.
 */
import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";

export type NotFoundMeaning = "missing" | "ambiguous";

/** The meaning of the server's "not found" for `relativePath` under `baseURL`. */
export async function meaningOfNotFound(baseURL: string, relativePath: string): Promise<NotFoundMeaning> {
  const match = /^file:\/\/(\/.*)$/i.exec(baseURL.replace(/\/+$/, ""));
  if (!match) return "ambiguous";
  const base = match[1]!;
  if (base.includes("%") || relativePath.includes("%")) return "ambiguous";
  if (!(await isNonEmptyDirectory(base))) return "ambiguous";
  try {
    await lstat(join(base, relativePath));
    return "ambiguous"; // it exists: whatever is wrong with it, it is not absent
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "ENOENT" ? "missing" : "ambiguous";
  }
}

async function isNonEmptyDirectory(path: string): Promise<boolean> {
  try {
    return (await lstat(path)).isDirectory() && (await readdir(path)).length > 0;
  } catch {
    return false;
  }
}
