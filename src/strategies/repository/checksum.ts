/**
 * Repository checksums, as Gitaly's CalculateChecksum computes them, so that a mirror can be
 * compared with its primary without comparing objects.
 *
 * Definition (this module's contract):
 * 1. List refs with `git show-ref --head`: lines `<oid> <refname>`. HEAD is listed (as the oid it
 *    resolves to) only when it resolves; an empty repository lists nothing.
 * 2. Keep the line when refname is `HEAD` or starts with one of `refs/heads/`, `refs/tags/`,
 *    `refs/keep-around/`, `refs/merge-requests/`, `refs/environments/`, `refs/notes/`.
 * 3. For each kept ref, SHA-1 of the ASCII string `<oid> <refname>` (no newline).
 * 4. XOR the 20-byte digests together, starting from 20 zero bytes.
 * 5. Hex-encode: always 40 lower-case characters. No refs kept → 40 zeros.
 *
 * Where it differs from Gitaly (both are deliberate, and both only matter when comparing with a
 * checksum Gitaly itself produced):
 * - Gitaly matches the unanchored regexp `HEAD|(refs/(heads|tags|…)/)`, so it also counts refs
 *   outside those namespaces whose names merely contain one of them (`refs/remotes/origin/HEAD`,
 *   `refs/pipelines/refs/heads/x`). We anchor: HEAD itself or a listed prefix.
 * - Gitaly hex-encodes a big integer and so drops leading zero bytes (a 38-character checksum one
 *   time in 256). We keep all 40 characters; left-pad a Gitaly value before comparing.
 *
 * Remote checksums: the operator usually reaches the primary's repositories only over the network,
 * so the primary's checksum is computed from `git ls-remote <url>`, which lists HEAD and every
 * advertised ref with a tab separator plus peeled `<tag>^{}` lines. Peeled lines are skipped and
 * the separator normalised, which makes the value equal to the on-disk one (proved against a real
 * server in test/integration/repository). It is equal only if the server advertises every counted
 * namespace: a server with `transfer.hideRefs`/`uploadpack.hideRefs` on, say, refs/keep-around
 * (GitLab's public HTTP endpoint) must not be the baseURL.
 */
import { createHash } from "node:crypto";
import { simpleGit } from "simple-git";
import { GitCommandError } from "./errors.ts";
import { classifyGitFailure, runGit, type GitCredentials } from "./git-process.ts";
import { parseRefListing, type Ref } from "./refs.ts";

export const ZERO_CHECKSUM = "0".repeat(40);

const CHECKSUMMED_PREFIXES = [
  "refs/heads/",
  "refs/tags/",
  "refs/keep-around/",
  "refs/merge-requests/",
  "refs/environments/",
  "refs/notes/",
] as const;

/** Whether a ref counts in the checksum (step 2 of the definition). */
export function isChecksummedRef(name: string): boolean {
  return name === "HEAD" || CHECKSUMMED_PREFIXES.some((prefix) => name.startsWith(prefix));
}

/** Steps 2–5 over already-parsed refs. */
export function checksumOfRefs(refs: readonly Ref[]): string {
  const sum = Buffer.alloc(20);
  for (const ref of refs) {
    if (!isChecksummedRef(ref.name)) continue;
    const digest = createHash("sha1").update(`${ref.oid} ${ref.name}`).digest();
    for (let i = 0; i < 20; i++) sum[i]! ^= digest[i]!;
  }
  return sum.toString("hex");
}

/** The checksum of `git show-ref --head` (or `git ls-remote`) output. Pure. */
export function checksumFromShowRef(text: string): string {
  return checksumOfRefs(parseRefListing(text).refs);
}

/** `git show-ref --head` of a local repository; empty for a repository without refs. */
export async function showRef(repositoryPath: string): Promise<string> {
  // show-ref exits 1 with no output when nothing matches (an empty repository); simple-git
  // resolves that with the empty stdout, and rejects on a real error (not a repository).
  // --git-dir rather than a working directory: a broken mirror must fail, not be resolved to
  // whatever repository encloses it.
  return simpleGit().raw([`--git-dir=${repositoryPath}`, "show-ref", "--head"]);
}

/** The checksum of a local (bare) repository. Rejects if the path is not a git repository. */
export async function repositoryChecksum(repositoryPath: string): Promise<string> {
  return checksumFromShowRef(await showRef(repositoryPath));
}

export interface RemoteRefsOptions {
  credentials?: GitCredentials;
  timeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * `git ls-remote --symref <url>`: the primary's refs and where its HEAD points. Throws
 * GitCommandError (category `not-found` when the server will not serve the repository),
 * GitTimeoutError or GitAbortedError.
 */
export async function lsRemote(url: string, options: RemoteRefsOptions = {}): Promise<string> {
  const result = await runGit({
    args: ["ls-remote", "--symref", "--", url],
    url,
    credentials: options.credentials,
    timeoutMs: options.timeoutMs ?? 600_000,
    signal: options.signal,
  });
  if (result.exitCode !== 0) {
    throw new GitCommandError({ command: "ls-remote", category: classifyGitFailure(result.stderr), exitCode: result.exitCode, stderr: result.stderr });
  }
  return result.stdout;
}

/** The checksum of a repository on the primary, from `git ls-remote` (see the module comment). */
export async function remoteChecksum(url: string, credentials?: GitCredentials, options: Omit<RemoteRefsOptions, "credentials"> = {}): Promise<string> {
  return checksumFromShowRef(await lsRemote(url, { ...options, credentials }));
}
