/**
 * Runs the git commands that talk to the primary (clone, fetch, ls-remote).
 *
 * Local commands go through simple-git; these do not, because a network git command is a tree of
 * processes (git → git-remote-http → fetch-pack, index-pack) and simple-git can only signal the
 * top one. On a timeout or abort we must stop the whole tree, so each command runs as the leader
 * of its own process group and the group is signalled: SIGTERM first (git removes its lock files
 * on SIGTERM), SIGKILL after a grace period.
 *
 * Credentials never appear in argv, URLs, logs or errors. They reach git through the
 * environment: `GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n` install a credential
 * helper scoped to the primary's origin (`credential.<origin>.helper`), a shell function that
 * prints `GEO_GIT_USERNAME`/`GEO_GIT_PASSWORD` from git's own environment. Git asks for it only
 * after an HTTP 401 from that origin, so a redirect to another host never receives them, and the
 * inherited helper list is reset first so a `credential.helper=store` in some global config cannot
 * write the password to disk. Anything the process prints is scrubbed of the password (raw,
 * base64'd with the username, URL-encoded) before it is kept.
 */
import { spawn } from "node:child_process";
import { GitAbortedError, GitTimeoutError, type GitFailureCategory } from "./errors.ts";

/** HTTP credentials for the primary (a password or a token). */
export interface GitCredentials {
  username: string;
  password: string;
}

export interface GitRunOptions {
  args: string[];
  cwd?: string;
  /** The primary URL the command talks to; scopes the credential helper. */
  url?: string;
  credentials?: GitCredentials;
  timeoutMs: number;
  signal?: AbortSignal;
  /** How long to wait after SIGTERM before SIGKILL. */
  killGraceMs?: number;
}

export interface GitRunResult {
  exitCode: number | null;
  stdout: string;
  /** Scrubbed, at most MAX_STDERR characters (the tail, where git puts the fatal line). */
  stderr: string;
}

const MAX_STDERR = 16_384;

/** Variables that would point git at another repository or config than the one we name. */
const INHERITED_GIT_VARIABLES_TO_DROP = [
  "GIT_DIR",
  "GIT_WORK_TREE",
  "GIT_INDEX_FILE",
  "GIT_OBJECT_DIRECTORY",
  "GIT_ALTERNATE_OBJECT_DIRECTORIES",
  "GIT_NAMESPACE",
  "GIT_CONFIG_PARAMETERS",
  "GIT_CONFIG_COUNT",
  "GIT_ASKPASS",
  "SSH_ASKPASS",
];

const CREDENTIAL_HELPER =
  '!f() { test "$1" = get || return 0; printf "username=%s\\npassword=%s\\n" "$GEO_GIT_USERNAME" "$GEO_GIT_PASSWORD"; }; f';

/**
 * The environment for a git command: inherited, minus repository-redirecting variables, C locale
 * (failure classification reads stderr), never an interactive prompt, plus the credential helper
 * when credentials are given.
 */
export function gitEnvironment(url?: string, credentials?: GitCredentials): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of INHERITED_GIT_VARIABLES_TO_DROP) delete env[name];
  for (const name of Object.keys(env)) if (/^GIT_CONFIG_(KEY|VALUE)_\d+$/.test(name)) delete env[name];
  Object.assign(env, { LC_ALL: "C", LANG: "C", LANGUAGE: "C", GIT_TERMINAL_PROMPT: "0", GCM_INTERACTIVE: "never" });
  if (credentials) {
    assertUsableCredentials(credentials);
    const origin = url ? credentialOrigin(url) : undefined;
    Object.assign(env, {
      GEO_GIT_USERNAME: credentials.username,
      GEO_GIT_PASSWORD: credentials.password,
      GIT_CONFIG_COUNT: "2",
      GIT_CONFIG_KEY_0: "credential.helper",
      GIT_CONFIG_VALUE_0: "",
      GIT_CONFIG_KEY_1: origin ? `credential.${origin}.helper` : "credential.helper",
      GIT_CONFIG_VALUE_1: CREDENTIAL_HELPER,
    });
  }
  return env;
}

function assertUsableCredentials(credentials: GitCredentials): void {
  // The credential protocol is line based; a newline would end the value early or inject a key.
  if (/[\0\n\r]/.test(credentials.username) || /[\0\n\r]/.test(credentials.password)) {
    throw new Error("git credentials must not contain NUL, CR or LF characters");
  }
}

/** `scheme://host[:port]` of an http(s) URL, which is what `credential.<url>.*` matches on. */
function credentialOrigin(url: string): string | undefined {
  try {
    const parsed = new URL(url);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? `${parsed.protocol}//${parsed.host}` : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Removes credential-looking text: the given secrets in the forms git or curl could print them,
 * `user:password@` in URLs, Authorization headers and `password=` lines.
 */
export function scrubSecrets(text: string, credentials?: GitCredentials): string {
  let out = text;
  if (credentials && credentials.password !== "") {
    const { username, password } = credentials;
    const forms = [
      password,
      encodeURIComponent(password),
      Buffer.from(`${username}:${password}`).toString("base64"),
      Buffer.from(password).toString("base64"),
    ];
    for (const form of forms.sort((a, b) => b.length - a.length)) out = out.split(form).join("[redacted]");
  }
  return out
    .replace(/(\b[a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/gi, "$1[redacted]@")
    .replace(/(authorization:\s*)\S+(\s+\S+)?/gi, "$1[redacted]")
    .replace(/(password\s*[=:]\s*)\S+/gi, "$1[redacted]");
}

/**
 * Sorts a failed network command by its stderr (git exits 128 for every fatal error, so the exit
 * code alone says nothing; git offers nothing better to branch on). `not-found` gathers the
 * answers a server gives for a repository it will not serve:
 * - smart HTTP 404: `fatal: repository '<url>' not found` (GitLab adds `The project you were
 *   looking for could not be found`), also GitLab's answer for a token that cannot see the project,
 * - git daemon: `access denied or repository not exported` (its answer for a path that does not
 *   exist, is not exported, or is refused),
 * - local paths and ssh: `does not appear to be a git repository`.
 * None of them proves the repository is absent: RepositoryReplicator decides what they mean
 * (see its not-found rule).
 */
export function classifyGitFailure(stderr: string): GitFailureCategory {
  if (
    /fatal: repository '.*' not found/i.test(stderr) ||
    /could not be found/i.test(stderr) ||
    /access denied or repository not exported/i.test(stderr) ||
    /does not appear to be a git repository/i.test(stderr)
  ) {
    return "not-found";
  }
  if (/authentication failed|could not read (username|password)|HTTP Basic: Access denied|returned error: 40[13]/i.test(stderr)) return "auth";
  if (
    /could not resolve host|unable to (connect|access)|connection (refused|reset|timed out)|failed to connect|operation timed out|couldn't connect|network is unreachable|no route to host|returned error: 5\d\d|the remote end hung up|early EOF|RPC failed/i.test(
      stderr,
    )
  ) {
    return "unreachable";
  }
  return "other";
}

/**
 * Runs `git <args>` in its own process group. Resolves with the exit code and output whatever the
 * exit code; rejects with GitTimeoutError or GitAbortedError (after the process group is gone, so
 * the caller can remove directories git was writing to).
 */
export function runGit(options: GitRunOptions): Promise<GitRunResult> {
  if (options.signal?.aborted) return Promise.reject(new GitAbortedError(`git ${options.args[0] ?? ""} aborted before it started`));
  return new Promise<GitRunResult>((resolve, reject) => {
    const child = spawn("git", options.args, {
      cwd: options.cwd,
      env: gitEnvironment(options.url, options.credentials),
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    const stdout: Buffer[] = [];
    let stderr = "";
    let stoppedBy: "timeout" | "abort" | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => {
      stderr = (stderr + chunk).slice(-4 * MAX_STDERR);
    });

    const signalGroup = (signal: NodeJS.Signals): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, signal);
      } catch {
        // The group is already gone.
      }
    };
    const stop = (why: "timeout" | "abort"): void => {
      if (stoppedBy) return;
      stoppedBy = why;
      signalGroup("SIGTERM");
      killTimer = setTimeout(() => signalGroup("SIGKILL"), options.killGraceMs ?? 5_000);
    };
    const timer = setTimeout(() => stop("timeout"), options.timeoutMs);
    const onAbort = (): void => stop("abort");
    options.signal?.addEventListener("abort", onAbort, { once: true });

    const finish = (): void => {
      clearTimeout(timer);
      clearTimeout(killTimer);
      options.signal?.removeEventListener("abort", onAbort);
      // Children that outlived git itself (none expected) go with the group.
      if (stoppedBy) signalGroup("SIGKILL");
    };
    child.once("error", (err) => {
      finish();
      reject(err);
    });
    child.once("close", (exitCode) => {
      finish();
      const command = options.args.find((a) => !a.startsWith("-")) ?? "";
      if (stoppedBy === "timeout") reject(new GitTimeoutError(`git ${command} did not finish within ${options.timeoutMs} ms and was killed`));
      else if (stoppedBy === "abort") reject(new GitAbortedError(`git ${command} was aborted`));
      else {
        resolve({
          exitCode,
          stdout: Buffer.concat(stdout).toString("utf8"),
          stderr: scrubSecrets(stderr, options.credentials).slice(-MAX_STDERR),
        });
      }
    });
  });
}
