/**
 * What a ReplicableType reconcile decides, as pure functions over what it observed. The
 * controller reads the world into an Observation; `planReconcile` says what to do (which sites to
 * skip, where to bring the schema up to date, where to release held deletions, which runs to
 * start); the controller does it and reports what happened as an Outcome (a schema or a Job can
 * fail); `settleStatus` turns observation, plan and outcome into the status, the Events, the
 * held-deletions gauge and when to look again. Nothing here does I/O or reads a clock.
 *
 * `planDeletion` does the same for a type being deleted, once its tables have been dropped where
 * they could be.
 */
import {
  FORCE_DELETE_ANNOTATION,
  RELEASE_DELETIONS_ANNOTATION,
  TRIGGER_ANNOTATION,
  setCondition,
  type Condition,
  type GeoSite,
  type ReplicableType,
} from "../api/v1alpha1/resources.ts";
import type { TypeRuntimeConfig } from "../api/v1alpha1/runtime.ts";
import type { ReplicableTypeStatus } from "../api/v1alpha1/types.generated.ts";
import { describeError } from "../k8s/api-errors.ts";
import type { DeletionHold } from "../registry/deletions.ts";
import { canonicalJSON } from "../util/canonical.ts";
import { PRIMARY_KINDS, SECONDARY_KINDS, type WorkerKind } from "../workers/kinds.ts";
import { ConditionType, knownReason, Reason, type ReasonValue } from "./reasons.ts";
import { requestedRuns } from "./run-requests.ts";
import { decideRuns, latestRun, type RunRecord } from "./schedule.ts";
import { failureReason } from "./site-access.ts";
import type { Finding, TopologyCheck } from "./validation.ts";

export type SiteStatus = NonNullable<ReplicableTypeStatus["sites"]>[number];
type JobStatus = NonNullable<ReplicableTypeStatus["lastJobs"]>[number];

/** Look again after this long when nothing sooner is due. */
export const IDLE_REQUEUE_MS = 60_000;
/** Look again after this long when a site's worker Jobs could not be created. */
export const JOBS_NOT_CREATED_REQUEUE_MS = 30_000;
/** Look again after this long while a deletion waits for a site it cannot clean up. */
export const DELETION_BLOCKED_REQUEUE_MS = 30_000;

/** One site this operator acts for, as observed. */
export interface SiteObservation {
  site: GeoSite;
  /** A secondary whose tracking database turned out to be the primary's main database. */
  sharedDatabase?: Finding;
  /**
   * The schema version read from the site's database when this operator last brought this
   * generation's tables up to date; undefined when it has not yet (the schema step runs).
   */
  schemaVersion?: number;
  /** Deletions held on a secondary: null when there is no hold, undefined when not read. */
  hold?: DeletionHold | null;
  /** Synced copies wait for verification: read only after a sync run finished since verify started. */
  copiesAwaitVerification?: boolean;
}

export interface Observation {
  rt: ReplicableType;
  type: TypeRuntimeConfig;
  /** The ReplicableType that already holds this one's spec.name, when it does. */
  duplicateOf?: string;
  topology: TopologyCheck;
  /** The model table check; undefined when not made (the type was refused before it). */
  source?: { checked: boolean; problems: string[] };
  /** The sites this operator acts for (empty when the type was refused before reading them). */
  sites: SiteObservation[];
  /** Runs of this type, every site and kind. */
  runs: RunRecord[];
}

export interface SitePlan {
  site: GeoSite;
  /** Nothing is done on the site; its status says why. */
  skipped?: { reason: ReasonValue; message: string };
  /** Bring the tables up to date first; nothing else happens on the site if that fails. */
  applySchema: boolean;
  /** Let the held deletions go ahead (a new release annotation value), then start runs. */
  release?: { hold: DeletionHold; by: string };
  start: WorkerKind[];
  /** When the schedule wants to look again. */
  requeueAfterMs?: number;
}

/** Why the type is refused before any site is touched. */
export type Refusal =
  | { kind: "duplicate"; holder: string }
  | { kind: "topology"; finding: Finding }
  | { kind: "source"; problems: string[] };

export interface Plan {
  refusal?: Refusal;
  sites: SitePlan[];
  /** A new trigger annotation value: every idle kind starts now. */
  triggered: boolean;
  /** A new release annotation value, recorded in status once acted on. */
  releaseValue?: string;
}

/** What applying a plan did on one site; absent fields mean the step did not run. */
export interface SiteOutcome {
  schema?: { version: number; applied: number[] } | { error: unknown };
  release?: { error?: unknown };
  startError?: unknown;
}

export interface Outcome {
  sites: Map<string, SiteOutcome>;
  /** The runs once the planned ones were started. */
  runs: RunRecord[];
}

export interface PlannedEvent {
  type: "Normal" | "Warning";
  reason: ReasonValue;
  message: string;
}

export interface Settled {
  status: ReplicableTypeStatus;
  /** The status differs from the one the object has: write it. */
  changed: boolean;
  events: PlannedEvent[];
  /** Deletions held per secondary whose holds were read (the gauge). */
  heldDeletions: { site: string; pending: number }[];
  requeueAfterMs: number;
}

/** The worker kinds that run on a site: verify-primary on the primary; on a secondary as the type enables them. */
export function kindsFor(type: TypeRuntimeConfig, role: GeoSite["spec"]["role"]): WorkerKind[] {
  if (role === "primary") return [...PRIMARY_KINDS];
  return SECONDARY_KINDS.filter((k) => (k === "verify" ? type.verificationEnabled : type.replicationEnabled));
}

/** A hold that still keeps deletions back (not released since it was last raised). */
export function activeHold(hold: DeletionHold | null | undefined): DeletionHold | undefined {
  if (!hold) return undefined;
  return hold.releasedAt && hold.releasedAt.getTime() >= hold.heldAt.getTime() ? undefined : hold;
}

const annotation = (rt: ReplicableType, key: string) => rt.metadata.annotations?.[key];

/** Decides what to do: refusals first, then per site schema, release and the runs that are due. */
export function planReconcile(obs: Observation, now: Date): Plan {
  const { rt, topology } = obs;
  const trigger = annotation(rt, TRIGGER_ANNOTATION);
  const release = annotation(rt, RELEASE_DELETIONS_ANNOTATION);
  const releaseValue = release && release !== rt.status?.lastDeletionRelease ? release : undefined;
  if (obs.duplicateOf) return { refusal: { kind: "duplicate", holder: obs.duplicateOf }, sites: [], triggered: false };
  if (topology.problem || !topology.primary) {
    const finding = topology.problem ?? { reason: Reason.NoPrimary, message: "no enabled GeoSite has role primary in this namespace; exactly one is required" };
    return { refusal: { kind: "topology", finding }, sites: [], triggered: false };
  }
  if (obs.source?.problems.length) return { refusal: { kind: "source", problems: obs.source.problems }, sites: [], triggered: false };
  const triggered = !!trigger && trigger !== rt.status?.lastTrigger;

  const sites = obs.sites.map((o): SitePlan => {
    const { site } = o;
    const finding = topology.invalidSecondaries.get(site.metadata.name) ?? o.sharedDatabase;
    if (site.spec.enabled === false) return { site, skipped: { reason: Reason.SiteDisabled, message: "spec.enabled is false" }, applySchema: false, start: [] };
    if (finding) return { site, skipped: finding, applySchema: false, start: [] };
    const hold = activeHold(o.hold);
    const decision = decideRuns({
      kinds: kindsFor(obs.type, site.spec.role),
      intervalsMs: {
        "verify-primary": obs.type.intervalsMs.primaryVerification,
        sync: obs.type.intervalsMs.sync,
        verify: obs.type.intervalsMs.verification,
        consistency: obs.type.intervalsMs.consistency,
      },
      runs: obs.runs.filter((r) => r.site === site.metadata.name),
      now,
      triggered,
      ...(o.copiesAwaitVerification === undefined ? {} : { copiesAwaitVerification: o.copiesAwaitVerification }),
      requestedAt: requestedRuns(rt, site.metadata.name),
    });
    return {
      site,
      applySchema: o.schemaVersion === undefined,
      ...(hold && releaseValue ? { release: { hold, by: `annotation ${RELEASE_DELETIONS_ANNOTATION}=${releaseValue}` } } : {}),
      start: decision.start,
      requeueAfterMs: decision.requeueAfterMs,
    };
  });
  return { sites, triggered, ...(releaseValue ? { releaseValue } : {}) };
}

const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** The last run of each (site, kind), as status shows it. */
export function lastJobs(runs: readonly RunRecord[]): JobStatus[] {
  const out: JobStatus[] = [];
  for (const site of new Set(runs.map((r) => r.site))) {
    const ofSite = runs.filter((r) => r.site === site);
    for (const kind of new Set(ofSite.map((r) => r.kind))) {
      const r = latestRun(ofSite, kind)!;
      out.push({
        site,
        kind,
        jobName: r.name,
        result: r.active ? "Running" : r.succeeded ? "Succeeded" : "Failed",
        ...(r.startTime ? { startTime: r.startTime.toISOString() } : {}),
        ...(r.completionTime ? { completionTime: r.completionTime.toISOString() } : {}),
        ...(r.message ? { message: r.message } : {}),
      });
    }
  }
  return out.sort((a, b) => `${a.site}/${a.kind}`.localeCompare(`${b.site}/${b.kind}`));
}

/**
 * Turns what was observed, planned and done into the status to write, the Events to record and
 * when to look again. Events fire on transitions only: compared with the status the object has.
 */
export function settleStatus(obs: Observation, plan: Plan, outcome: Outcome, now: Date): Settled {
  const { rt } = obs;
  const previous = rt.status;
  let conditions: Condition[] = previous?.conditions ?? [];
  const set = (type: string, status: "True" | "False", reason: ReasonValue, message: string) => {
    conditions = setCondition(conditions, { type, status, reason, message, observedGeneration: rt.metadata.generation ?? 0 }, now);
  };
  const previousCondition = (type: string) => previous?.conditions?.find((c) => c.type === type);
  const events: PlannedEvent[] = [];
  const heldDeletions: Settled["heldDeletions"] = [];
  const sites: SiteStatus[] = [];
  let requeueAfterMs = IDLE_REQUEUE_MS;
  let released = false;

  const refusal = plan.refusal;
  if (refusal?.kind === "duplicate") {
    const message = `spec.name ${rt.spec.name} is already used by ReplicableType ${refusal.holder} in this namespace; two types with one name would share (and delete each other's) registry tables. Nothing is scheduled for this one: rename spec.name or delete it`;
    set(ConditionType.Ready, "False", Reason.DuplicateName, message);
    if (previousCondition(ConditionType.Ready)?.reason !== Reason.DuplicateName) events.push({ type: "Warning", reason: Reason.DuplicateName, message });
  } else if (refusal?.kind === "topology") {
    set(ConditionType.SitesValid, "False", refusal.finding.reason, refusal.finding.message);
    set(ConditionType.Ready, "False", refusal.finding.reason, refusal.finding.message);
  } else {
    const invalid = [...obs.topology.invalidSecondaries.values()];
    set(
      ConditionType.SitesValid,
      invalid.length ? "False" : "True",
      invalid.length ? Reason.PointsAtPrimary : Reason.Reconciled,
      invalid.length ? invalid.map((f) => f.message).join("; ") : "exactly one primary; secondaries use their own storage",
    );
    if (refusal?.kind === "source") {
      const message = `${rt.spec.source.table}: ${refusal.problems.join("; ")}`;
      set(ConditionType.SourceValid, "False", Reason.SourceMissing, message);
      set(ConditionType.Ready, "False", Reason.SourceMissing, `nothing is scheduled: ${message}`);
      if (previousCondition(ConditionType.SourceValid)?.status !== "False") events.push({ type: "Warning", reason: Reason.SourceMissing, message });
    } else if (obs.source?.checked) {
      set(ConditionType.SourceValid, "True", Reason.Reconciled, `${rt.spec.source.table} and its columns exist on the primary`);
    }
  }

  const schemaFailures: { site: string; reason: ReasonValue; message: string }[] = [];
  for (const p of plan.sites) {
    const name = p.site.metadata.name;
    const base: SiteStatus = { name, role: p.site.spec.role, ready: false };
    if (p.skipped) {
      sites.push({ ...base, ...p.skipped });
      continue;
    }
    const done = outcome.sites.get(name) ?? {};
    if (done.schema && "error" in done.schema) {
      const failure = { reason: failureReason(done.schema.error, Reason.SchemaFailed), message: errorText(done.schema.error) };
      schemaFailures.push({ site: name, ...failure });
      sites.push({ ...base, ...failure });
      continue;
    }
    if (done.schema?.applied.length) {
      const table = p.site.spec.role === "primary" ? `${obs.type.name}_states` : `${obs.type.name}_registry`;
      events.push({ type: "Normal", reason: Reason.SchemaApplied, message: `${table} migrated to version ${Math.max(...done.schema.applied)} on site ${name}` });
    }
    const schemaVersion = done.schema?.version ?? obs.sites.find((o) => o.site.metadata.name === name)?.schemaVersion;
    let status: SiteStatus = { ...base, ready: true, reason: Reason.Reconciled, message: "tables ready; worker runs scheduled", ...(schemaVersion === undefined ? {} : { schemaVersion }) };

    const observedHold = obs.sites.find((o) => o.site.metadata.name === name)?.hold;
    if (p.release && done.release && !done.release.error) {
      released = true;
      events.push({
        type: "Normal",
        reason: Reason.DeletionsReleased,
        message: `held deletions on site ${name} released (${p.release.hold.pending} copies, ${p.release.hold.reason}); the next complete consistency pass deletes what it still confirms`,
      });
    }
    const hold = released && p.release ? undefined : activeHold(observedHold);
    if (observedHold !== undefined) heldDeletions.push({ site: name, pending: hold?.pending ?? 0 });
    if (hold) {
      status = { ...status, heldDeletions: hold.pending, holdReason: hold.reason, reason: hold.reason, message: hold.message };
      if (previous?.sites?.find((s) => s.name === name)?.holdReason !== hold.reason) {
        events.push({ type: "Warning", reason: Reason.DeletionsHeld, message: `site ${name}: ${hold.message}` });
      }
    }
    if (done.startError !== undefined) {
      status = { ...status, ready: false, reason: failureReason(done.startError, Reason.JobsNotCreated), message: `worker Jobs could not be created: ${describeError(done.startError)}` };
      requeueAfterMs = Math.min(requeueAfterMs, JOBS_NOT_CREATED_REQUEUE_MS);
    } else if (p.requeueAfterMs !== undefined) {
      requeueAfterMs = Math.min(requeueAfterMs, p.requeueAfterMs);
    }
    sites.push(status);
  }
  sites.sort((a, b) => a.name.localeCompare(b.name));

  if (!refusal) {
    set(
      ConditionType.SchemaReady,
      schemaFailures.length ? "False" : "True",
      schemaFailures[0]?.reason ?? Reason.Reconciled,
      schemaFailures.map((f) => `${f.site}: ${f.message}`).join("; ") || "registry and verification-state tables are current",
    );
    const held = sites.filter((s) => (s.heldDeletions ?? 0) > 0);
    set(
      ConditionType.DeletionsHeld,
      held.length ? "True" : "False",
      held.length ? knownReason(held[0]!.holdReason, Reason.DeletionsHeld) : Reason.NothingHeld,
      held.length ? held.map((s) => `${s.name}: ${s.message}`).join("; ") : "no deletions are held",
    );
    const notReady = sites.filter((s) => !s.ready && s.reason !== Reason.SiteDisabled);
    set(
      ConditionType.Ready,
      notReady.length ? "False" : "True",
      knownReason(notReady[0]?.reason, Reason.Reconciled),
      notReady.length ? notReady.map((s) => `${s.name}: ${s.message}`).join("; ") : `ready on ${sites.filter((s) => s.ready).length} site(s)`,
    );
    if (plan.triggered) events.push({ type: "Normal", reason: Reason.ManualTrigger, message: `trigger ${annotation(rt, TRIGGER_ANNOTATION)}: worker runs started now` });
  }

  const jobs = lastJobs(outcome.runs);
  const previousJobs = new Map((previous?.lastJobs ?? []).map((j) => [`${j.site}/${j.kind}`, j]));
  for (const job of jobs) {
    const before = previousJobs.get(`${job.site}/${job.kind}`);
    if (job.result === "Failed" && (before?.jobName !== job.jobName || before?.result !== "Failed")) {
      events.push({ type: "Warning", reason: Reason.JobFailed, message: `${job.kind} run ${job.jobName} on site ${job.site} failed${job.message ? `: ${job.message}` : ""}` });
    }
  }

  // A release that failed (or did not get its turn, after a schema failure) on a site is not
  // recorded as acted on: a later pass tries it again.
  const releaseFailed = plan.sites.some((p) => {
    const done = outcome.sites.get(p.site.metadata.name)?.release;
    return p.release && (!done || done.error !== undefined);
  });
  const lastDeletionRelease = plan.releaseValue && !releaseFailed ? plan.releaseValue : previous?.lastDeletionRelease;
  const lastTrigger = plan.triggered ? annotation(rt, TRIGGER_ANNOTATION) : previous?.lastTrigger;
  const status: ReplicableTypeStatus = {
    observedGeneration: rt.metadata.generation ?? 0,
    ...(lastTrigger ? { lastTrigger } : {}),
    ...(lastDeletionRelease ? { lastDeletionRelease } : {}),
    sites,
    lastJobs: jobs,
    conditions,
  };
  return { status, changed: canonicalJSON(status) !== canonicalJSON(previous ?? {}), events, heldDeletions, requeueAfterMs };
}

/** What deleting a type should do once its tables were dropped where they could be. */
export type DeletionPlan =
  | { action: "wait"; conditions: Condition[]; changed: boolean; event?: PlannedEvent; requeueAfterMs: number }
  | { action: "release"; event?: PlannedEvent };

/**
 * A site that could not be cleaned up (`blocked`, one "site: why" each) holds the finalizer until
 * the deletion timeout, or until the force-delete annotation; then the finalizer goes and those
 * tables stay. Waiting says so in the DeletionBlocked condition (with an Event when it changes).
 */
export function planDeletion(input: { rt: ReplicableType; blocked: string[]; now: Date; timeoutMs: number }): DeletionPlan {
  const { rt, blocked, now, timeoutMs } = input;
  if (!blocked.length) return { action: "release" };
  const force = annotation(rt, FORCE_DELETE_ANNOTATION) === "true";
  const waitedMs = now.getTime() - new Date(rt.metadata.deletionTimestamp!).getTime();
  if (force || waitedMs >= timeoutMs) {
    return { action: "release", event: { type: "Warning", reason: Reason.ForcedDeletion, message: `${force ? "force-delete annotation" : "deletion timeout"}: tables left in place on ${blocked.join("; ")}` } };
  }
  const message =
    `deletionPolicy Delete is waiting for ${blocked.join("; ")}. It gives up after ${Math.round(timeoutMs / 60_000)} min and leaves those tables; ` +
    `to stop waiting now: kubectl annotate replicabletype ${rt.metadata.name} ${FORCE_DELETE_ANNOTATION}=true`;
  const before = rt.status?.conditions ?? [];
  const conditions = setCondition(before, { type: ConditionType.DeletionBlocked, status: "True", reason: Reason.SiteUnreachable, message, observedGeneration: rt.metadata.generation ?? 0 }, now);
  const changed = canonicalJSON(conditions) !== canonicalJSON(before);
  return { action: "wait", conditions, changed, ...(changed ? { event: { type: "Warning", reason: Reason.SiteUnreachable, message } } : {}), requeueAfterMs: DELETION_BLOCKED_REQUEUE_MS };
}
