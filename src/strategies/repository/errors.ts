/**
 * Errors of the repository strategy. Each carries a `reason` constant the sync worker can store in
 * `last_sync_failure` and branch on; none of them carries a credential (messages are scrubbed
 * before they are built).
 */

export type RepositoryFailureReason =
  | "InvalidRepositoryPath"
  | "NotFoundOnPrimary"
  | "PrimaryUnreachable"
  | "AuthenticationFailed"
  | "GitFailed"
  | "Timeout"
  | "Aborted";

export abstract class RepositoryError extends Error {
  abstract readonly reason: RepositoryFailureReason;
}

/**
 * A repository path or URL that cannot be used: absolute, `..`, control characters, outside the
 * mirror root, a placeholder without a column. The row fails; retrying will not help until the
 * row or the ReplicableType changes.
 */
export class RepositoryPathError extends RepositoryError {
  readonly reason = "InvalidRepositoryPath";
  override name = "RepositoryPathError";
}

/**
 * How a failed git command failed, from its exit status and its (C-locale) stderr. `not-found` is
 * what the server said, not what is true: most servers answer "not found" for a repository the
 * credentials may not see (see the not-found rule in replicator.ts).
 */
export type GitFailureCategory = "not-found" | "auth" | "unreachable" | "other";

/** A git command that exited non-zero. `stderr` is scrubbed of credentials and truncated. */
export class GitCommandError extends RepositoryError {
  override name = "GitCommandError";
  readonly category: GitFailureCategory;
  readonly exitCode: number | null;
  readonly stderr: string;

  constructor(opts: { command: string; category: GitFailureCategory; exitCode: number | null; stderr: string }) {
    super(`git ${opts.command} failed (${opts.category}, exit ${opts.exitCode ?? "signal"}): ${opts.stderr.trim() || "no output"}`);
    this.category = opts.category;
    this.exitCode = opts.exitCode;
    this.stderr = opts.stderr;
  }

  get reason(): RepositoryFailureReason {
    switch (this.category) {
      case "auth":
        return "AuthenticationFailed";
      case "not-found":
        return "NotFoundOnPrimary";
      case "unreachable":
        return "PrimaryUnreachable";
      default:
        return "GitFailed";
    }
  }
}

/** A git command outlived its time limit; its whole process group was killed. */
export class GitTimeoutError extends RepositoryError {
  readonly reason = "Timeout";
  override name = "GitTimeoutError";
}

/** The caller's AbortSignal fired; the git process group was killed. */
export class GitAbortedError extends RepositoryError {
  readonly reason = "Aborted";
  override name = "GitAbortedError";
}
