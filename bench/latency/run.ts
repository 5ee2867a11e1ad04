#!/usr/bin/env node
/**
 * Change-to-synced latency (issue 13): how long after a change commits on the primary the
 * secondary's registry row is synced with the new content in place, for blobs and repositories,
 * in event mode (change capture triggers, the log cursors) and in scan mode (no capture, the
 * worker passes on the sample intervals).
 *
 *   node bench/latency/run.ts            event mode at 10, 30, 100, 500 changes/s, scan mode at 10, 100 and 500/s for 12 min each
 *   node bench/latency/run.ts --quick    a smoke run under two minutes
 *   node bench/latency/run.ts --help     every option
 *
 * Real servers from hack/localenv (the primary's PostgreSQL and its streaming standby, the
 * secondary's PostgreSQL, MinIO ×2, a git daemon), in a temp directory,
 * stopped by PID at the end. Prints markdown tables and PASS/FAIL lines; exits 1 when a
 * correctness check fails (a change lost, applied out of order, or a final state that differs),
 * not when a latency target is missed.
 */
import { existsSync, mkdtempSync } from "node:fs";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { startLocalEnvironment, type LocalEnvironment } from "../../hack/localenv/index.ts";
import { backfill, runOnIntervals, type JobRun } from "./jobs.ts";
import { summarizeProfile } from "./cpu-profile.ts";
import { cursorWarnings, profilePath, startCursors, stopCursors, type CursorProcess } from "./cursors.ts";
import { cpuBetween, cpuSnapshot } from "./cpu.ts";
import { finalState } from "./final-state.ts";
import { Ledger, type Change } from "./ledger.ts";
import { parseOptions, type BenchOptions } from "./options.ts";
import { breakdownTable, cpuTable, lagTable, latencyTable, profileTable, targetVerdicts, verdicts, writerTable, type CursorProfile, type RunResult } from "./report.ts";
import { Watcher } from "./watcher.ts";
import { Workload } from "./workload.ts";
import { findRegistryRows } from "../../src/registry/sync-state.ts";
import { typeRuntimeConfig } from "../../src/strategies/type-config.ts";
import { createWorld, type World } from "./world.ts";
import { writeSteadily } from "./writer.ts";

const started = Date.now();
const log = (msg: string) => console.error(`[latency +${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${msg}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Cursor logs outlive the run's servers, for a look at what went wrong. */
const logDir = mkdtempSync(join(tmpdir(), "geo-latency-logs-"));

async function main(): Promise<number> {
  const opts = parseOptions(process.argv.slice(2));
  const env = await startLocalEnvironment({ components: ["postgres", "s3", "git"], log });
  const stop = async () => env.stop();
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => void stop().finally(() => process.exit(130)));
  try {
    const results: RunResult[] = [];
    let readPath = "";
    if (opts.modes.includes("event")) {
      const r = await eventMode(env, opts);
      results.push(...r.results);
      readPath = r.readPath;
    }
    if (opts.modes.includes("scan")) {
      for (const rate of opts.scanRates) {
        const r = await scanMode(env, { ...opts, scan: { ...opts.scan, rate } });
        results.push(r.result);
        readPath ||= r.readPath;
      }
    }
    return print(results, opts, readPath);
  } finally {
    await stop();
  }
}

function print(results: RunResult[], opts: BenchOptions, readPath: string): number {
  const scan = results.find((r) => r.mode === "scan");
  const event = results.some((r) => r.mode === "event");
  const section = (title: string, table: string) => ["", title, "", table];
  const out = [
    "",
    `## Change-to-synced latency${opts.quick ? " (--quick: short runs, scaled-down scan intervals; not for the record)" : ""}`,
    "",
    `Machine: ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, load average ${loadavg().map((l) => l.toFixed(1)).join(" ")} at the end. All servers on 127.0.0.1.`,
    `Secondary reads the primary's event log and model rows ${readPath === "replica" ? "through hack/localenv's hot standby of the primary, streaming its WAL (no NOTIFY through it: the cursor's adaptive poll, 100 ms doubling to 2 s while idle)" : "directly from the primary (LISTEN/NOTIFY wakes the cursor)"}.`,
    `Workload: ${opts.mix.create}% creates, ${opts.mix.update}% updates, ${opts.mix.delete}% deletes over ${opts.seed.blobs} blobs and ${opts.seed.repos} repositories replicated beforehand; blobs ${opts.sizes.map((s) => `${s.share * 100}% ${s.label}`).join(", ")}; ${opts.repoShare * 100}% of changes are repository pushes (at most ${opts.repoMaxRate}/s). Deletion grace period 0 s in the bench's types (the samples' 1 h would keep every copy for an hour).`,
    "Commit time: the primary's clock_timestamp() in the committing statement (RETURNING, or beside the publish call). Synced: the registry's last_synced_at; verified: verified_at; removed: the watcher's poll that no longer finds the row (100 ms). \"untimed\": deletes of records never replicated, and creates/updates whose record was deleted before it was copied.",
    event ? "Event mode: `geo-operator cursor` processes for the primary (checksums) and the secondary (sync, verify, remove); no Jobs run, so every latency is the cursor's." : "",
    scan
      ? `Scan mode: changeCapture none, the worker passes in-process on ${opts.scan.intervals === "samples" ? "the samples' intervals (consistency 10m, sync 1m, verification 1m)" : `scaled-down intervals (${JSON.stringify(opts.scan.intervals)})`}; the writer writes until the next consistency pass is due, and the window closes ${(scan.windowSeconds! / 60).toFixed(1)} min after the first write.`
      : "",
    "",
    latencyTable(results),
    ...(event
      ? [
          ...section("Cursor lag (the event log's head vs the secondary cursor's saved position, and the age of the oldest event it has not applied; sampled every 250 ms while writing and draining):", lagTable(results)),
          ...section("Where the time goes (event mode, creates and updates):", breakdownTable(results)),
        ]
      : []),
    ...section(
      "CPU per change, by process (ms of CPU time per committed change, from the first write until drained; in scan mode the bench process also runs the Jobs), and how many of the cores were busy on average:",
      cpuTable(results),
    ),
    ...section("The writer (time from a change's start to its commit, object upload or push included):", writerTable(results)),
    ...(opts.profileCursors ? section("The cursors' own CPU profiles over all event mode runs (node --cpu-prof; time goes to the nearest caller that is ours or a library's):", profileTable(cursorProfiles())) : []),
    "",
    `Cursor logs: ${logDir}`,
    "",
  ];
  const lines = [...results.flatMap(verdicts), ...targetVerdicts(results)];
  console.log([...out, ...lines.map((v) => v.line)].join("\n"));
  // Latency targets are reported, not enforced; correctness is.
  return lines.some((v) => !v.ok && !v.line.includes("target:")) ? 1 : 0;
}

async function seed(workload: Workload, opts: BenchOptions): Promise<void> {
  const tasks: ("blob" | "repo")[] = [...Array<"blob">(opts.seed.blobs).fill("blob"), ...Array<"repo">(opts.seed.repos).fill("repo")];
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < tasks.length) {
        const r = workload.record(tasks[next]!, (await workload.change(tasks[next++]!, "create")).modelId);
        if (r) r.busy = false;
      }
    }),
  );
}

function seededLedger(workload: Workload): Ledger {
  const ledger = new Ledger();
  for (const r of [...workload.live.blob, ...workload.live.repo]) ledger.seeded(r.data, r.id, r.version);
  return ledger;
}

/** Logs the registry rows of changes that never settled (the first 10). */
async function describeOpen(world: World, open: Change[]): Promise<void> {
  for (const c of open.slice(0, 10)) {
    const type = c.data === "blob" ? world.blobType : world.repoType;
    const [row] = await findRegistryRows(world.trackingDb, typeRuntimeConfig(type).schema, [c.modelId]);
    const state = row
      ? `state ${row.state}, last_synced_at ${row.lastSyncedAt?.toISOString()}, verification ${row.verificationState} at ${row.verifiedAt?.toISOString()}, failure ${row.lastSyncFailure ?? row.verificationFailure ?? "none"}`
      : "no registry row";
    log(`  open: ${c.data} ${c.modelId} ${c.kind} v${c.version} committed ${new Date(c.committedAt).toISOString()} event ${c.eventId ?? "-"} applied ${c.appliedAt ? "yes" : "no"} synced ${c.syncedAt ? "yes" : "no"} verified ${c.verifiedAt ? "yes" : "no"}: ${state}`);
  }
}

/** Waits until every change settled or the timeout; returns the seconds it took, null on timeout. */
async function drain(ledger: Ledger, timeoutSeconds: number): Promise<number | null> {
  const began = Date.now();
  while (Date.now() - began < timeoutSeconds * 1000) {
    if (ledger.unsettled().length === 0) return (Date.now() - began) / 1000;
    await sleep(200);
  }
  return null;
}

async function eventMode(env: LocalEnvironment, opts: BenchOptions): Promise<{ results: RunResult[]; readPath: string }> {
  const world = await createWorld(env.info, "event", opts.scan.intervals, opts.secondaryReads);
  let cursors: CursorProcess[] = [];
  try {
    const workload = new Workload(world, opts, env.info.dir);
    await workload.prepare();
    log(`event mode: seeding ${opts.seed.blobs} blobs and ${opts.seed.repos} repositories, then one backfill pass of every worker`);
    await seed(workload, opts);
    await backfill(world);
    cursors = await startCursors(world, logDir, { logLevel: opts.cursorLogLevel, profile: opts.profileCursors });
    log(`event mode: cursors running (pids ${cursors.map((c) => c.child.pid).join(", ")}); secondary reads the ${world.readPath}`);
    const results: RunResult[] = [];
    let seen = new Map<string, number>();
    for (const plan of opts.event) {
      const result = await eventRun(world, workload, opts, plan);
      // The warnings logged during this run: the count so far minus the count before it.
      const now = cursorWarnings(cursors);
      result.warnings = new Map([...now].map(([m, n]) => [m, n - (seen.get(m) ?? 0)] as const).filter(([, n]) => n > 0));
      seen = now;
      if (result.warnings.size > 0) log(`  cursor warnings: ${[...result.warnings].map(([m, n]) => `${n}× ${m.slice(0, 160)}`).join("; ")}`);
      results.push(result);
    }
    return { results, readPath: world.readPath };
  } finally {
    await stopCursors(cursors);
    await world.close();
  }
}

/** The cursors' CPU profiles (--profile-cursors), when they were written. */
function cursorProfiles(): CursorProfile[] {
  const sites = [["secondary cursor", "tokyo"], ["primary cursor", "london"]] as const;
  return sites.flatMap(([label, site]) => {
    const file = profilePath(logDir, "event", site);
    return existsSync(file) ? [{ label, ...summarizeProfile(file) }] : [];
  });
}

async function eventRun(world: World, workload: Workload, opts: BenchOptions, plan: BenchOptions["event"][number]): Promise<RunResult> {
  const ledger = seededLedger(workload);
  const confirmEvery = opts.confirmEvery(plan.rate);
  const watcher = new Watcher(workload, ledger, { pollMs: opts.pollMs, confirmEvery, cursors: true });
  watcher.start();
  let seq = 0;
  log(`event mode: ${plan.rate} changes/s for ${plan.seconds} s`);
  const cpuBefore = cpuSnapshot();
  const began = Date.now();
  const writer = await writeSteadily(workload, ledger, opts, plan, () => seq++);
  log(`  wrote ${writer.committed} changes in ${writer.seconds.toFixed(1)} s (${writer.failed} failed${writer.firstError ? `: ${writer.firstError}` : ""}); draining`);
  const drained = await drain(ledger, opts.drainSeconds);
  const cpu = { seconds: cpuBetween(cpuBefore, cpuSnapshot()), wallSeconds: (Date.now() - began) / 1000 };
  await watcher.stop();
  log(`  ${drained === null ? `drain timed out with ${ledger.unsettled().length} changes open` : `drained in ${drained.toFixed(1)} s`}; checking the final state`);
  if (drained === null) await describeOpen(world, ledger.unsettled());
  const final = await finalState(workload);
  return { mode: "event", rate: plan.rate, writer, ledger, lag: watcher.lag, final, drainSeconds: drained, confirmEvery, watcherLongestRoundMs: watcher.longestRoundMs, cpu };
}

async function scanMode(env: LocalEnvironment, opts: BenchOptions): Promise<{ result: RunResult; readPath: string }> {
  const world = await createWorld(env.info, "scan", opts.scan.intervals, opts.secondaryReads, `scan_${opts.scan.rate}`);
  const jobsStop = new AbortController();
  let jobs: Promise<void> | undefined;
  try {
    const workload = new Workload(world, opts, env.info.dir);
    await workload.prepare();
    log(`scan mode: seeding ${opts.seed.blobs} blobs and ${opts.seed.repos} repositories; the Jobs start`);
    await seed(workload, opts);
    const runs: JobRun[] = [];
    jobs = runOnIntervals(world, jobsStop.signal, runs);
    // The first consistency pass and sync run replicate the seeds; the writer starts after them.
    const seeds = seededLedger(workload);
    for (const r of [...workload.live.blob, ...workload.live.repo]) seeds.add({ seq: 0, data: r.data, kind: "create", modelId: r.id, version: r.version, committedAt: 0 });
    const seedWatcher = new Watcher(workload, seeds, { pollMs: 500, confirmEvery: 1_000_000, cursors: false });
    seedWatcher.start();
    while (seeds.unsettled().some((c) => c.syncedAt === undefined)) await sleep(500);
    await seedWatcher.stop();
    const firstConsistency = runs.find((r) => r.kind === "consistency" && r.type === world.blobType.name)!;
    const consistencyMs = typeRuntimeConfig(world.blobType).intervalsMs.consistency;
    // Writes span the rest of one consistency interval, so every create precedes the next pass.
    const seconds = Math.max(5, Math.min(opts.scan.seconds, (firstConsistency.finishedAt + consistencyMs - 10_000 - Date.now()) / 1000));
    const ledger = seededLedger(workload);
    const watcher = new Watcher(workload, ledger, { pollMs: 1_000, confirmEvery: 1, cursors: false });
    watcher.start();
    let seq = 0;
    const windowEnds = Date.now() + opts.scan.windowSeconds * 1000;
    log(`scan mode: ${opts.scan.rate} changes/s for ${seconds.toFixed(0)} s, then watching until ${opts.scan.windowSeconds} s after the first write`);
    const cpuBefore = cpuSnapshot();
    const began = Date.now();
    const writer = await writeSteadily(workload, ledger, opts, { rate: opts.scan.rate, seconds }, () => seq++);
    log(`  wrote ${writer.committed} changes in ${writer.seconds.toFixed(1)} s (${writer.failed} failed${writer.firstError ? `: ${writer.firstError}` : ""}); waiting for the passes`);
    while (Date.now() < windowEnds && ledger.unsettled().length > 0) await sleep(1_000);
    const cpu = { seconds: cpuBetween(cpuBefore, cpuSnapshot()), wallSeconds: (Date.now() - began) / 1000 };
    await watcher.stop();
    jobsStop.abort();
    await jobs;
    const final = await finalState(workload);
    const t0 = firstConsistency.startedAt;
    log(`  ${world.blobType.name} consistency runs at ${runs.filter((r) => r.kind === "consistency" && r.type === world.blobType.name).map((r) => `+${((r.startedAt - t0) / 1000).toFixed(0)} s`).join(", ")}`);
    return {
      result: { mode: "scan", rate: opts.scan.rate, writer, ledger, lag: [], final, drainSeconds: null, confirmEvery: 1, windowSeconds: opts.scan.windowSeconds, jobs: runs, watcherLongestRoundMs: watcher.longestRoundMs, cpu },
      readPath: world.readPath,
    };
  } finally {
    jobsStop.abort();
    await jobs?.catch(() => undefined);
    await world.close();
  }
}

process.exitCode = await main();
