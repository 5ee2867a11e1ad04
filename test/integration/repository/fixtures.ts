/**
 * Primary repositories for the repository-strategy tests: bare repositories under the shared git
 * daemon's root, changed with plumbing commands (no working copies).
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { RepositoryReplicator } from "../../../src/strategies/repository/replicator.ts";
import { repositoryStrategy } from "../../../src/strategies/repository/definition.ts";
import { buildTypeRuntimeConfig } from "../../../src/api/v1alpha1/runtime.ts";
import type { ReplicableTypeSpec } from "../../../src/api/v1alpha1/types.generated.ts";
import type { ModelRecord, Replicator } from "../../../src/strategies/replicator.ts";
import { createLogger } from "../../../src/util/log.ts";

const IDENTITY = {
  GIT_AUTHOR_NAME: "Geo Test",
  GIT_AUTHOR_EMAIL: "geo@example.com",
  GIT_COMMITTER_NAME: "Geo Test",
  GIT_COMMITTER_EMAIL: "geo@example.com",
  LC_ALL: "C",
};

/** Runs git in a bare repository and returns trimmed stdout. */
export function git(gitDir: string, ...args: string[]): string {
  return execFileSync("git", [`--git-dir=${gitDir}`, ...args], { env: { ...process.env, ...IDENTITY }, encoding: "utf8" }).trim();
}

/** The shared git daemon, with a directory of this test file's own. */
export interface PrimaryFixture {
  /** Directory served as `${baseURL}/…`. */
  root: string;
  /** git:// URL prefix of `root`. */
  baseURL: string;
  /** Fresh, empty mirror root on the "secondary". */
  mirrorRoot: string;
}

export function primaryFixture(name: string): PrimaryFixture {
  const daemonRoot = process.env.GEO_TEST_GIT_ROOT;
  const daemonURL = process.env.GEO_TEST_GIT_BASE_URL;
  if (!daemonRoot || !daemonURL) throw new Error("GEO_TEST_GIT_ROOT / GEO_TEST_GIT_BASE_URL are not set: run through the integration project");
  const unique = `${name}-${process.pid}-${randomBytes(3).toString("hex")}`;
  const root = join(daemonRoot, unique);
  mkdirSync(root, { recursive: true });
  return { root, baseURL: `${daemonURL}/${unique}`, mirrorRoot: mkdtempSync(join(tmpdir(), `geo-mirrors-${name}-`)) };
}

/** An empty bare repository at `<root>/<relativePath>` with HEAD → refs/heads/main. */
export function createRepository(root: string, relativePath: string): string {
  const path = join(root, relativePath);
  mkdirSync(dirname(path), { recursive: true });
  execFileSync("git", ["init", "--quiet", "--bare", "--initial-branch", "main", path]);
  return path;
}

let counter = 0;

/** Commits one file change on top of `parent` (or as a root commit) and returns the commit id. */
export function commitObject(gitDir: string, message: string, parent?: string): string {
  const blob = execFileSync("git", [`--git-dir=${gitDir}`, "hash-object", "-w", "--stdin"], { input: `${message} ${++counter}\n`, encoding: "utf8" }).trim();
  const tree = execFileSync("git", [`--git-dir=${gitDir}`, "mktree"], { input: `100644 blob ${blob}\tfile.txt\n`, encoding: "utf8" }).trim();
  return git(gitDir, "commit-tree", tree, "-m", message, ...(parent ? ["-p", parent] : []));
}

/** Adds `count` commits on `branch` (creating it) and returns the new tip. */
export function commit(gitDir: string, branch: string, count = 1): string {
  const ref = `refs/heads/${branch}`;
  let tip: string | undefined;
  try {
    tip = git(gitDir, "rev-parse", "--verify", "--quiet", ref);
  } catch {
    tip = undefined;
  }
  for (let i = 0; i < count; i++) tip = commitObject(gitDir, `${branch} ${i}`, tip);
  git(gitDir, "update-ref", ref, tip!);
  return tip!;
}

/** The strategy's Replicator for a secondary, with records whose `path` column is the relative path. */
export function secondaryReplicator(opts: { baseURL: string; mirrorRoot: string; username?: string; password?: string }): Replicator {
  const spec: ReplicableTypeSpec = { name: "test_repository", strategy: "repository", source: { table: "test_repositories", repositoryPath: { column: "path" } } };
  return new RepositoryReplicator({
    type: buildTypeRuntimeConfig(spec, { statesLayout: repositoryStrategy.statesLayout, settings: repositoryStrategy.parseSettings(spec), modelColumns: ["path"] }),
    siteName: "secondary",
    role: "secondary",
    endpoints: { primary: { baseURL: opts.baseURL, username: opts.username, password: opts.password }, mirrorRoot: opts.mirrorRoot },
    log: createLogger({ name: "test", level: "silent" }),
  });
}

/** A model record for secondaryReplicator. */
export function record(path: string, id = 1): ModelRecord {
  return { id, columns: { path } };
}

/** A signal that never fires. */
export const NEVER = new AbortController().signal;

/** Directory entries of the mirror's parent that are our clone temporaries. */
export function temporariesIn(dir: string): string[] {
  try {
    return readdirSync(dir).filter((e) => e.startsWith(".geo-tmp-"));
  } catch {
    return [];
  }
}

/** PIDs of live processes whose command line contains `text` (Linux /proc). */
export function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(text)) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}
