/**
 * When each worker of a type runs on a site. Pure: given the runs that exist and the clock, says
 * which kinds to start now and when to look again.
 *
 * Rules: never two runs of one kind for one (type, site) at once; a kind runs again one interval
 * after its previous run finished (Jobs, not CronJobs: the interval counts from the end of the
 * last run, so a slow run is never overlapped or queued behind itself); sync and verify wait for
 * the first successful consistency run (before it the registry is empty); a new manual trigger
 * starts every kind that is not already running; verification follows a sync run that left copies
 * waiting for it, instead of waiting out its interval (see `copiesAwaitVerification`); a run
 * asked for through the registry API starts at once (`requestedAt`).
 */
import type { WorkerKind } from "./job-spec.ts";

export interface RunRecord {
  name: string;
  site: string;
  kind: WorkerKind;
  scheduledAt: Date;
  active: boolean;
  succeeded: boolean;
  failed: boolean;
  startTime?: Date;
  completionTime?: Date;
  message?: string;
}

export interface ScheduleInput {
  kinds: readonly WorkerKind[];
  intervalsMs: Record<WorkerKind, number>;
  /** Runs of this type on this site, any age. */
  runs: readonly RunRecord[];
  now: Date;
  triggered: boolean;
  /**
   * Synced copies wait for their first verification, as read from the registry after a sync run
   * finished (only asked when `syncFinishedSinceVerify`). Verification then starts at once: a
   * copy is verified a Pod start after it landed, not up to a whole interval later, and a sync
   * run that copied nothing costs no extra verification run.
   */
  copiesAwaitVerification?: boolean;
  /**
   * When a person last asked for each kind through the registry API (run-requests.ts). A request
   * made after the kind's latest run was scheduled starts it at once; later runs satisfy it.
   */
  requestedAt?: Partial<Record<WorkerKind, Date>>;
}

export interface ScheduleDecision {
  start: WorkerKind[];
  /** Look again after this long (the earliest due time, or a short poll while runs are active). */
  requeueAfterMs: number;
}

const ACTIVE_POLL_MS = 5_000;

export function latestRun(runs: readonly RunRecord[], kind: WorkerKind): RunRecord | undefined {
  return runs.filter((r) => r.kind === kind).sort((a, b) => b.scheduledAt.getTime() - a.scheduledAt.getTime())[0];
}

/** A sync run succeeded after the latest verification run started (or there was none yet). */
export function syncFinishedSinceVerify(runs: readonly RunRecord[]): boolean {
  const sync = latestRun(runs, "sync");
  if (!sync?.succeeded || !sync.completionTime) return false;
  const verify = latestRun(runs, "verify");
  return !verify || sync.completionTime.getTime() > (verify.startTime ?? verify.scheduledAt).getTime();
}

export function decideRuns(input: ScheduleInput): ScheduleDecision {
  const start: WorkerKind[] = [];
  let requeueAfterMs = Number.POSITIVE_INFINITY;
  const consistencyDone = !input.kinds.includes("consistency") || input.runs.some((r) => r.kind === "consistency" && r.succeeded);
  for (const kind of input.kinds) {
    const runs = input.runs.filter((r) => r.kind === kind);
    if (runs.some((r) => r.active)) {
      requeueAfterMs = Math.min(requeueAfterMs, ACTIVE_POLL_MS);
      continue;
    }
    if ((kind === "sync" || kind === "verify") && !consistencyDone) {
      requeueAfterMs = Math.min(requeueAfterMs, ACTIVE_POLL_MS);
      continue;
    }
    const last = latestRun(runs, kind);
    const followsSync = kind === "verify" && !!input.copiesAwaitVerification && syncFinishedSinceVerify(input.runs);
    const requested = input.requestedAt?.[kind];
    const asked = !!requested && (!last || requested.getTime() > last.scheduledAt.getTime());
    if (!last || input.triggered || followsSync || asked) {
      start.push(kind);
      requeueAfterMs = Math.min(requeueAfterMs, ACTIVE_POLL_MS);
      continue;
    }
    const finished = (last.completionTime ?? last.startTime ?? last.scheduledAt).getTime();
    const dueIn = finished + input.intervalsMs[kind] - input.now.getTime();
    if (dueIn <= 0) {
      start.push(kind);
      requeueAfterMs = Math.min(requeueAfterMs, ACTIVE_POLL_MS);
    } else {
      requeueAfterMs = Math.min(requeueAfterMs, dueIn);
    }
  }
  return { start, requeueAfterMs: Number.isFinite(requeueAfterMs) ? requeueAfterMs : 60_000 };
}
