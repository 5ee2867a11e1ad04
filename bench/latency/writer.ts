/**
 * A writer at a steady rate: change i is started at start + i/rate (never earlier), whatever the
 * previous ones are doing, up to a bound on changes in flight, for the planned number of seconds:
 * changes that could not start in time are not written (the achieved rate says so). Each change picks what to do by the
 * mix (creates, updates, deletes) and whether it is a repository push (a share of the rate, with a
 * ceiling in pushes per second). Committed changes go to the ledger in commit order.
 */
import type { ChangeKind, DataKind, Ledger } from "./ledger.ts";
import type { BenchOptions } from "./options.ts";
import type { LiveRecord, Workload } from "./workload.ts";

export interface WriteOutcome {
  started: number;
  committed: number;
  failed: number;
  seconds: number;
  /** Most changes that were due but could not start because the in-flight bound was reached. */
  maxBehind: number;
  /** Milliseconds from a change's start to its commit (object PUT or push included). */
  writeMs: number[];
  firstError?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function writeSteadily(
  workload: Workload,
  ledger: Ledger,
  opts: Pick<BenchOptions, "repoShare" | "repoMaxRate" | "mix" | "writerConcurrency">,
  plan: { rate: number; seconds: number; signal?: AbortSignal },
  nextSeq: () => number,
): Promise<WriteOutcome> {
  const out: WriteOutcome = { started: 0, committed: 0, failed: 0, seconds: 0, maxBehind: 0, writeMs: [] };
  const total = Math.round(plan.rate * plan.seconds);
  const start = performance.now();
  const inFlight = new Set<Promise<void>>();
  let repoStarted = 0;
  while (out.started < total && !plan.signal?.aborted && performance.now() - start < plan.seconds * 1000) {
    const elapsed = performance.now() - start;
    const due = Math.min(total, Math.floor((elapsed / 1000) * plan.rate) + 1);
    while (out.started < due && inFlight.size < opts.writerConcurrency) {
      // Pushes are a share of the changes, but never more per second than the ceiling.
      const repo = Math.random() < opts.repoShare && repoStarted < Math.max(1, (elapsed / 1000) * opts.repoMaxRate);
      if (repo) repoStarted++;
      const p = one(workload, ledger, repo ? "repo" : "blob", pickKind(opts.mix), nextSeq, out).finally(() => inFlight.delete(p));
      inFlight.add(p);
      out.started++;
    }
    out.maxBehind = Math.max(out.maxBehind, due - out.started);
    const nextDue = ((out.started) / plan.rate) * 1000 - (performance.now() - start);
    await (inFlight.size >= opts.writerConcurrency ? Promise.race(inFlight) : sleep(Math.max(1, Math.min(nextDue, 50))));
  }
  await Promise.all(inFlight);
  out.seconds = (performance.now() - start) / 1000;
  return out;
}

function pickKind(mix: BenchOptions["mix"]): ChangeKind {
  const r = Math.random() * (mix.create + mix.update + mix.delete);
  return r < mix.create ? "create" : r < mix.create + mix.update ? "update" : "delete";
}

async function one(workload: Workload, ledger: Ledger, data: DataKind, kind: ChangeKind, nextSeq: () => number, out: WriteOutcome): Promise<void> {
  let target: LiveRecord | undefined;
  if (kind !== "create") {
    target = workload.pickIdle(data);
    if (!target) kind = "create";
  }
  if (target) target.busy = true;
  const began = Date.now();
  try {
    const committed = await workload.change(data, kind, target);
    out.writeMs.push(committed.committedAt - began);
    ledger.add({ seq: nextSeq(), ...committed });
    out.committed++;
    const created = workload.record(data, committed.modelId);
    if (created) created.busy = false;
  } catch (err) {
    out.failed++;
    out.firstError ??= (err as Error).message;
    if (target) target.busy = false;
  }
}
