#!/usr/bin/env node
/**
 * Repository strategy benchmark: our sync against plain git over the same repositories, served by
 * a git daemon on 127.0.0.1, at the same concurrency (GitLab's repository capacity, 25).
 *
 *   node bench/repository/run.ts
 *
 * - initial: syncMirror + repositoryChecksum of every repository, vs
 *   `xargs -P 25 git clone --mirror` over the same list.
 * - resync without changes: syncMirror of every repository, vs
 *   `xargs -P 25 git --git-dir=<mirror> fetch --prune <url> +refs/*:refs/*`.
 * Each measurement is the median of GEO_BENCH_ROUNDS rounds (default 3), ours and git's
 * alternating so neither always gets the warmer cache.
 *
 * Sizes: GEO_BENCH_SMALL_REPOS (200, 10 commits each), GEO_BENCH_LARGE_REPOS (5),
 * GEO_BENCH_LARGE_COMMITS (5,000), GEO_BENCH_CONCURRENCY (25).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startGitDaemon } from "../../hack/localenv/git-server.ts";
import { mirrorPath, primaryRepositoryURL, repositoryChecksum, syncMirror } from "../../src/strategies/repository/index.ts";
import { generateRepository } from "./generate.ts";

const SMALL = Number(process.env.GEO_BENCH_SMALL_REPOS ?? 200);
const LARGE = Number(process.env.GEO_BENCH_LARGE_REPOS ?? 5);
const LARGE_COMMITS = Number(process.env.GEO_BENCH_LARGE_COMMITS ?? 5_000);
const CONCURRENCY = Number(process.env.GEO_BENCH_CONCURRENCY ?? 25);
const ROUNDS = Number(process.env.GEO_BENCH_ROUNDS ?? 3);

/** Runs `work` over `items` with at most `limit` in flight. */
async function pool<T>(items: readonly T[], limit: number, work: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** A shell pipeline; rejects on non-zero exit. */
function sh(script: string, input: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("sh", ["-c", script], { stdio: ["pipe", "ignore", "pipe"], env: { ...process.env, LC_ALL: "C", GIT_TERMINAL_PROMPT: "0" } });
    let stderr = "";
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.stdin.end(input);
    child.once("close", (code) => (code === 0 ? resolve() : reject(new Error(`${script} exited ${code}: ${stderr.slice(-2000)}`))));
  });
}

async function seconds(work: () => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  await work();
  return Number(process.hrtime.bigint() - started) / 1e9;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const stateDir = mkdtempSync(join(tmpdir(), "geo-bench-repository-"));
  const daemon = await startGitDaemon({ name: "git-bench", stateDir });
  try {
    const generated = Date.now();
    const paths: string[] = [];
    for (let i = 0; i < SMALL; i++) {
      const path = `small/${String(i).padStart(4, "0")}.git`;
      generateRepository(join(daemon.root, path), { commits: 10 });
      paths.push(path);
    }
    for (let i = 0; i < LARGE; i++) {
      const path = `large/${i}.git`;
      generateRepository(join(daemon.root, path), { commits: LARGE_COMMITS, files: 200 });
      paths.push(path);
    }
    console.error(`generated ${SMALL} small and ${LARGE} large (${LARGE_COMMITS} commits) repositories in ${((Date.now() - generated) / 1000).toFixed(1)} s`);
    const list = `${paths.join("\n")}\n`;
    const url = (p: string): string => primaryRepositoryURL(daemon.baseURL, p);

    const ours = { initial: [] as number[], resync: [] as number[], checksum: [] as number[] };
    const git = { initial: [] as number[], resync: [] as number[] };
    for (let round = 0; round < ROUNDS; round++) {
      const oursRoot = mkdtempSync(join(stateDir, "ours-"));
      const gitRoot = mkdtempSync(join(stateDir, "git-"));
      const initialOurs = async (): Promise<void> => {
        ours.initial.push(
          await seconds(() =>
            pool(paths, CONCURRENCY, async (p) => {
              const mirror = await mirrorPath(oursRoot, p);
              const result = await syncMirror({ url: url(p), mirrorPath: mirror });
              if (result.outcome !== "cloned") throw new Error(`${p}: ${result.outcome}`);
            }),
          ),
        );
        // Verification is its own pass (the verify worker), timed separately: it has no git baseline.
        ours.checksum.push(await seconds(() => pool(paths, CONCURRENCY, async (p) => void (await repositoryChecksum(join(oursRoot, p))))));
      };
      const initialGit = async (): Promise<void> => {
        git.initial.push(
          await seconds(() => sh(`xargs -P ${CONCURRENCY} -I{} git clone --quiet --mirror ${daemon.baseURL}/{} ${gitRoot}/{}`, list)),
        );
      };
      const resyncOurs = async (): Promise<void> => {
        ours.resync.push(
          await seconds(() =>
            pool(paths, CONCURRENCY, async (p) => {
              const result = await syncMirror({ url: url(p), mirrorPath: await mirrorPath(oursRoot, p) });
              if (result.outcome !== "unchanged") throw new Error(`${p}: ${result.outcome}`);
            }),
          ),
        );
      };
      const resyncGit = async (): Promise<void> => {
        git.resync.push(
          await seconds(() =>
            sh(`xargs -P ${CONCURRENCY} -I{} git --git-dir=${gitRoot}/{} fetch --quiet --prune ${daemon.baseURL}/{} '+refs/*:refs/*'`, list),
          ),
        );
      };
      const order = round % 2 === 0 ? [initialOurs, initialGit, resyncOurs, resyncGit] : [initialGit, initialOurs, resyncGit, resyncOurs];
      for (const step of order) await step();
      rmSync(oursRoot, { recursive: true, force: true });
      rmSync(gitRoot, { recursive: true, force: true });
      console.error(`round ${round + 1}/${ROUNDS} done`);
    }

    const rows: Array<[string, string, number, number, number]> = [
      ["initial sync", "`git clone --mirror`", median(ours.initial), median(git.initial), 1.15],
      ["initial sync + checksum of every mirror", "`git clone --mirror`", median(ours.initial) + median(ours.checksum), median(git.initial), Number.NaN],
      ["no-change resync", "`git fetch --prune`", median(ours.resync), median(git.resync), 1.2],
    ];
    console.log(`\n${paths.length} repositories (${SMALL} × 10 commits, ${LARGE} × ${LARGE_COMMITS} commits), git daemon on 127.0.0.1, concurrency ${CONCURRENCY} (ours: promise pool; git: \`xargs -P ${CONCURRENCY}\`), median of ${ROUNDS} rounds\n`);
    console.log("| measurement | ours (s) | git loop | git (s) | ratio | target | met |");
    console.log("|---|---:|---|---:|---:|---:|---|");
    for (const [name, baseline, a, b, target] of rows) {
      const ratio = a / b;
      const judged = Number.isNaN(target) ? "— | —" : `≤ ${target}× | ${ratio <= target ? "yes" : "no"}`;
      console.log(`| ${name} | ${a.toFixed(2)} | ${baseline} | ${b.toFixed(2)} | ${ratio.toFixed(2)}× | ${judged} |`);
    }
  } finally {
    await daemon.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

await main();
