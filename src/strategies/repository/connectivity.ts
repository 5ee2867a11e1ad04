/**
 * Whether a mirror holds every object its refs reach. The checksum covers refs only, and a fetch
 * never re-downloads objects the refs say are there, so a mirror that lost objects (a deleted pack,
 * a disk error) would otherwise stay verified forever.
 *
 * `git rev-list --objects --all --quiet` walks every commit and tree reachable from any ref or
 * HEAD and fails on an object that is absent (blobs included: "missing blob object"), without
 * hashing content. Measured against `git fsck --connectivity-only --no-dangling --no-progress`
 * (git 2.39, best of 15 on a shared 2-core machine): 4,500 objects in one pack, as a mirror clone
 * has them, 10.5 ms vs 25.9 ms; the same objects loose, 59.5 ms vs 54.9 ms; 60,000 objects packed,
 * 208 ms vs 241 ms. Both found a deleted blob and a deleted tree. rev-list is the cheaper for the
 * packed layout mirrors have. Neither reads blob contents, so bit rot inside a blob goes unseen.
 */
import { runGit } from "./git-process.ts";

export interface ConnectivityOptions {
  timeoutMs: number;
  signal?: AbortSignal;
}

/**
 * undefined when every object reachable from the mirror's refs is present; otherwise git's
 * complaint (a missing object, or "not a git repository"). A non-zero exit is taken as damage
 * whatever its cause: the worst a wrong call costs is one rebuild. A timeout or abort throws.
 */
export async function connectivityProblem(gitDir: string, options: ConnectivityOptions): Promise<string | undefined> {
  const result = await runGit({ args: [`--git-dir=${gitDir}`, "rev-list", "--objects", "--all", "--quiet"], timeoutMs: options.timeoutMs, signal: options.signal });
  if (result.exitCode === 0) return undefined;
  return result.stderr.trim().split("\n").slice(-3).join("; ") || `git rev-list exited ${result.exitCode ?? "on a signal"}`;
}
