/**
 * The worker passes the operator's Jobs run, in-process (src/workers/run.ts runWorker, the code a
 * Job's pod runs): once each for a backfill, or on the types' intervals for scan mode. Like the
 * operator's schedule (src/controllers/schedule.ts), a kind runs again one interval after its
 * previous run finished, and sync and verify wait for the first consistency run.
 */
import type { ReplicableTypeSpec } from "../../src/api/v1alpha1/types.generated.ts";
import { typeRuntimeConfig } from "../../src/strategies/type-config.ts";
import { runWorker, type WorkerKind } from "../../src/workers/run.ts";
import { PRIMARY_SITE, SECONDARY_SITE, type World } from "./world.ts";

export interface JobRun {
  type: string;
  kind: WorkerKind;
  startedAt: number;
  finishedAt: number;
  code: number;
  summary: string;
}

async function runOnce(world: World, type: ReplicableTypeSpec, kind: WorkerKind): Promise<JobRun> {
  const primary = kind === "verify-primary";
  let summary = "";
  const startedAt = Date.now();
  const code = await runWorker(kind, { type: type.name, site: primary ? PRIMARY_SITE : SECONDARY_SITE, maxRun: "10m", logLevel: "error" }, world.env(primary ? "primary" : "secondary", type), {
    // A signal of its own: without one runWorker would listen for the bench process's SIGTERM.
    signal: new AbortController().signal,
    out: (line) => (summary = line),
  });
  return { type: type.name, kind, startedAt, finishedAt: Date.now(), code, summary };
}

/** One pass of every kind for both types, in the order a fresh site needs them. */
export async function backfill(world: World): Promise<JobRun[]> {
  const runs: JobRun[] = [];
  for (const type of [world.blobType, world.repoType]) {
    for (const kind of ["verify-primary", "consistency", "sync", "verify"] as const) {
      const r = await runOnce(world, type, kind);
      if (r.code !== 0) throw new Error(`backfill ${kind} of ${type.name} exited ${r.code}: ${r.summary}`);
      runs.push(r);
    }
  }
  return runs;
}

/**
 * Runs every kind of both types on its interval until `signal` aborts, appending each run to
 * `runs`. Runs in progress when it aborts finish (a Job is not killed when a window closes).
 */
export async function runOnIntervals(world: World, signal: AbortSignal, runs: JobRun[]): Promise<void> {
  const loops = [world.blobType, world.repoType].flatMap((type) => {
    const intervals = typeRuntimeConfig(type).intervalsMs;
    const every: Record<WorkerKind, number> = { "verify-primary": intervals.primaryVerification, consistency: intervals.consistency, sync: intervals.sync, verify: intervals.verification };
    let consistencyDone: () => void = () => undefined;
    const firstConsistency = new Promise<void>((r) => (consistencyDone = r));
    return (["verify-primary", "consistency", "sync", "verify"] as const).map(async (kind) => {
      if (kind === "sync" || kind === "verify") await Promise.race([firstConsistency, aborted(signal)]);
      while (!signal.aborted) {
        const r = await runOnce(world, type, kind);
        runs.push(r);
        if (kind === "consistency" && r.code === 0) consistencyDone();
        await sleep(every[kind], signal);
      }
    });
  });
  await Promise.all(loops);
}

function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((r) => (signal.aborted ? r() : signal.addEventListener("abort", () => r(), { once: true })));
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}
