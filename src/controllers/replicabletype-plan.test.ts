import { ApiException } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { RELEASE_DELETIONS_ANNOTATION, TRIGGER_ANNOTATION, type GeoSite, type ReplicableType } from "../api/v1alpha1/resources.ts";
import { typeRuntimeConfig } from "../api/v1alpha1/runtime.ts";
import type { ReplicableTypeSpec } from "../api/v1alpha1/types.generated.ts";
import { SecretNotOptedInError } from "../k8s/secrets.ts";
import type { DeletionHold } from "../registry/deletions.ts";
import { ConditionType, Reason } from "./reasons.ts";
import {
  IDLE_REQUEUE_MS,
  JOBS_NOT_CREATED_REQUEUE_MS,
  kindsFor,
  planDeletion,
  planReconcile,
  settleStatus,
  type Observation,
  type Outcome,
  type Plan,
  type SiteObservation,
  type SiteOutcome,
} from "./replicabletype-plan.ts";
import type { RunRecord } from "./schedule.ts";
import { checkTopology } from "./validation.ts";

const t0 = new Date("2026-05-01T12:00:00Z");
const at = (s: number) => new Date(t0.getTime() + s * 1000);

const site = (name: string, role: "primary" | "secondary", extra: Partial<GeoSite["spec"]> = {}): GeoSite => ({
  apiVersion: "geo.replication.dev/v1alpha1",
  kind: "GeoSite",
  metadata: { name, namespace: "geo", uid: `uid-${name}`, generation: 1 },
  spec: { role, database: { secretRef: { name: `${name}-db` } }, ...extra },
});
const london = site("london", "primary");
const tokyo = site("tokyo", "secondary");

const rtype = (spec: Partial<ReplicableTypeSpec> = {}, annotations: Record<string, string> = {}): ReplicableType => ({
  apiVersion: "geo.replication.dev/v1alpha1",
  kind: "ReplicableType",
  metadata: { name: "cool-widget", namespace: "geo", uid: "uid-rt", generation: 2, annotations },
  spec: {
    name: "cool_widget",
    strategy: "blob",
    source: { table: "cool_widgets", objectKey: { column: "path" } },
    intervals: { sync: "1m", verification: "1m", primaryVerification: "1m", consistency: "10m" },
    ...spec,
  },
});

const run = (siteName: string, kind: RunRecord["kind"], s: number, state: "active" | "ok" | "failed", doneAt?: number): RunRecord => ({
  name: `${siteName}-${kind}-${s}`,
  site: siteName,
  kind,
  scheduledAt: at(s),
  active: state === "active",
  succeeded: state === "ok",
  failed: state === "failed",
  ...(doneAt === undefined ? {} : { completionTime: at(doneAt) }),
});
/** Every kind on both sites ran and finished at t0+10 s: nothing is due for a minute. */
const settledRuns = [
  run("london", "verify-primary", 0, "ok", 10),
  run("tokyo", "consistency", 0, "ok", 10),
  run("tokyo", "sync", 0, "ok", 10),
  run("tokyo", "verify", 0, "ok", 10),
];

const hold = (over: Partial<DeletionHold> = {}): DeletionHold => ({
  typeName: "cool_widget",
  reason: Reason.PrimaryEmpty,
  message: "the primary's table is empty",
  pending: 12,
  heldAt: at(-100),
  updatedAt: at(-50),
  releasedAt: null,
  releasedBy: null,
  ...over,
});

function observe(o: { rt?: ReplicableType; sites?: GeoSite[]; observed?: Partial<SiteObservation>[]; runs?: RunRecord[]; duplicateOf?: string; problems?: string[] } = {}): Observation {
  const rt = o.rt ?? rtype();
  const sites = o.sites ?? [london, tokyo];
  return {
    rt,
    type: typeRuntimeConfig(rt.spec),
    topology: checkTopology(sites),
    source: { checked: true, problems: o.problems ?? [] },
    sites: sites.map((s, i) => ({ site: s, ...(o.observed?.[i] ?? {}) })),
    runs: o.runs ?? settledRuns,
    ...(o.duplicateOf ? { duplicateOf: o.duplicateOf } : {}),
  };
}

/** What apply would report: the schema step succeeds at version 1 wherever planned, unless told otherwise. */
function outcomeOf(plan: Plan, obs: Observation, per: Record<string, SiteOutcome> = {}): Outcome {
  const sites = new Map<string, SiteOutcome>();
  for (const p of plan.sites.filter((x) => !x.skipped)) {
    const name = p.site.metadata.name;
    sites.set(name, {
      ...(p.applySchema ? { schema: { version: 1, applied: [] } } : {}),
      ...(p.release ? { release: {} } : {}),
      ...per[name],
    });
  }
  return { sites, runs: obs.runs };
}

function pass(obs: Observation, now = at(20), per: Record<string, SiteOutcome> = {}) {
  const plan = planReconcile(obs, now);
  return { plan, ...settleStatus(obs, plan, outcomeOf(plan, obs, per), now) };
}

const condition = (r: { status: { conditions?: { type: string }[] } }, type: string) => r.status.conditions?.find((c) => c.type === type);
const planFor = (plan: Plan, name: string) => plan.sites.find((p) => p.site.metadata.name === name)!;

describe("planReconcile and settleStatus", () => {
  it("refuses a duplicate spec.name: nothing planned, Ready False, one Event per transition", () => {
    const r = pass(observe({ duplicateOf: "older-widget" }));
    expect(r.plan.refusal).toEqual({ kind: "duplicate", holder: "older-widget" });
    expect(r.plan.sites).toEqual([]);
    expect(condition(r, ConditionType.Ready)).toMatchObject({ status: "False", reason: Reason.DuplicateName });
    expect(condition(r, ConditionType.Ready)!).toHaveProperty("message", expect.stringMatching(/already used by ReplicableType older-widget/));
    expect(r.events.map((e) => e.reason)).toEqual([Reason.DuplicateName]);
    const again = pass(observe({ rt: { ...rtype(), status: r.status }, duplicateOf: "older-widget" }));
    expect(again.events).toEqual([]);
    expect(again.changed).toBe(false);
  });

  it("refuses a topology without exactly one primary, naming the problem in SitesValid and Ready", () => {
    const r = pass(observe({ sites: [london, site("paris", "primary"), tokyo] }));
    expect(r.plan.refusal?.kind).toBe("topology");
    expect(r.plan.sites).toEqual([]);
    expect(condition(r, ConditionType.SitesValid)).toMatchObject({ status: "False", reason: Reason.MultiplePrimaries });
    expect(condition(r, ConditionType.Ready)).toMatchObject({ status: "False", reason: Reason.MultiplePrimaries });
    expect(r.status.sites).toEqual([]);
    expect(pass(observe({ sites: [tokyo] })).status.conditions?.find((c) => c.type === ConditionType.Ready)?.reason).toBe(Reason.NoPrimary);
  });

  it("refuses a type whose model table is missing, with an Event only when SourceValid turns False", () => {
    const r = pass(observe({ problems: ["table public.cool_widgets does not exist on the primary"] }));
    expect(r.plan.refusal).toEqual({ kind: "source", problems: ["table public.cool_widgets does not exist on the primary"] });
    expect(r.plan.sites).toEqual([]);
    expect(condition(r, ConditionType.SourceValid)).toMatchObject({ status: "False", reason: Reason.SourceMissing });
    expect(condition(r, ConditionType.Ready)).toMatchObject({ status: "False", reason: Reason.SourceMissing });
    expect(r.events.map((e) => e.reason)).toEqual([Reason.SourceMissing]);
    expect(pass(observe({ rt: { ...rtype(), status: r.status }, problems: ["x"] })).events).toEqual([]);
  });

  it("skips a disabled site and a secondary sharing the primary's database, and only the latter keeps the type from Ready", () => {
    const osaka = site("osaka", "secondary", { enabled: false });
    const disabledOnly = pass(observe({ sites: [london, tokyo, osaka] }));
    expect(planFor(disabledOnly.plan, "osaka")).toMatchObject({ skipped: { reason: Reason.SiteDisabled }, applySchema: false, start: [] });
    expect(disabledOnly.status.sites?.find((s) => s.name === "osaka")).toMatchObject({ ready: false, reason: Reason.SiteDisabled });
    expect(condition(disabledOnly, ConditionType.Ready)).toMatchObject({ status: "True", message: "ready on 2 site(s)" });

    const shared = { reason: Reason.PointsAtPrimary, message: "secondary tokyo: its tracking database is the primary's main database" };
    const r = pass(observe({ observed: [{}, { sharedDatabase: shared }] }));
    expect(planFor(r.plan, "tokyo")).toMatchObject({ skipped: shared, applySchema: false, start: [] });
    expect(condition(r, ConditionType.Ready)).toMatchObject({ status: "False", reason: Reason.PointsAtPrimary });
  });

  it("a schema failure makes the site not ready and SchemaReady False with the failure's reason", () => {
    const obs = observe({ runs: [] });
    const plan = planReconcile(obs, at(20));
    expect(planFor(plan, "tokyo").applySchema).toBe(true);
    const failed = settleStatus(obs, plan, outcomeOf(plan, obs, { tokyo: { schema: { error: new Error("cannot reach the tracking database") } } }), at(20));
    expect(failed.status.sites?.find((s) => s.name === "tokyo")).toMatchObject({ ready: false, reason: Reason.SchemaFailed, message: "cannot reach the tracking database" });
    expect(failed.status.sites?.find((s) => s.name === "tokyo")).not.toHaveProperty("schemaVersion");
    expect(condition(failed, ConditionType.SchemaReady)).toMatchObject({ status: "False", reason: Reason.SchemaFailed, message: "tokyo: cannot reach the tracking database" });
    expect(condition(failed, ConditionType.Ready)).toMatchObject({ status: "False", reason: Reason.SchemaFailed });

    const unlabelled = settleStatus(obs, plan, outcomeOf(plan, obs, { tokyo: { schema: { error: new SecretNotOptedInError("geo", "tokyo-db") } } }), at(20));
    expect(condition(unlabelled, ConditionType.SchemaReady)).toMatchObject({ status: "False", reason: Reason.SecretNotOptedIn });
  });

  it("reports the schema version read from the database, and skips the schema step once it is known", () => {
    const applied = pass(observe(), at(20), { tokyo: { schema: { version: 4, applied: [3, 4] } } });
    expect(applied.status.sites?.find((s) => s.name === "tokyo")).toMatchObject({ ready: true, schemaVersion: 4 });
    expect(applied.events).toContainEqual({ type: "Normal", reason: Reason.SchemaApplied, message: "cool_widget_registry migrated to version 4 on site tokyo" });
    const cached = pass(observe({ observed: [{ schemaVersion: 2 }, { schemaVersion: 7 }] }));
    expect(cached.plan.sites.map((p) => p.applySchema)).toEqual([false, false]);
    expect(cached.status.sites?.map((s) => s.schemaVersion)).toEqual([2, 7]);
    expect(cached.events).toEqual([]);
  });

  it("a Job that cannot be created makes the site not ready, says why, and looks again sooner", () => {
    const obs = observe({ runs: settledRuns.filter((r) => r.site === "london") });
    const forbidden = new ApiException(403, "Forbidden", JSON.stringify({ message: "jobs.batch is forbidden: not allowed in this namespace" }), {});
    const r = pass(obs, at(20), { tokyo: { startError: forbidden } });
    expect(r.status.sites?.find((s) => s.name === "tokyo")).toMatchObject({
      ready: false,
      reason: Reason.JobsNotCreated,
      message: "worker Jobs could not be created: jobs.batch is forbidden: not allowed in this namespace (HTTP 403)",
    });
    expect(condition(r, ConditionType.Ready)).toMatchObject({ status: "False", reason: Reason.JobsNotCreated });
    expect(r.requeueAfterMs).toBe(JOBS_NOT_CREATED_REQUEUE_MS);
  });

  it("held deletions: condition, site status, gauge, and an Event when the hold reason is new", () => {
    const r = pass(observe({ observed: [{}, { hold: hold() }] }));
    expect(condition(r, ConditionType.DeletionsHeld)).toMatchObject({ status: "True", reason: Reason.PrimaryEmpty, message: "tokyo: the primary's table is empty" });
    expect(r.status.sites?.find((s) => s.name === "tokyo")).toMatchObject({ ready: true, heldDeletions: 12, holdReason: Reason.PrimaryEmpty });
    expect(r.heldDeletions).toEqual([{ site: "tokyo", pending: 12 }]);
    expect(r.events.map((e) => e.reason)).toEqual([Reason.DeletionsHeld]);
    expect(condition(r, ConditionType.Ready)).toMatchObject({ status: "True" });
    expect(r.plan.sites.some((p) => p.release)).toBe(false);
    // Seen before with the same reason: no second Event. A hold released since it was raised holds nothing.
    expect(pass(observe({ rt: { ...rtype(), status: r.status }, observed: [{}, { hold: hold() }] })).events).toEqual([]);
    const over = pass(observe({ observed: [{}, { hold: hold({ releasedAt: at(-10) }) }] }));
    expect(condition(over, ConditionType.DeletionsHeld)).toMatchObject({ status: "False", reason: Reason.NothingHeld });
    expect(over.heldDeletions).toEqual([{ site: "tokyo", pending: 0 }]);
  });

  it("a new release annotation value releases an active hold once and is recorded in status", () => {
    const rt = rtype({}, { [RELEASE_DELETIONS_ANNOTATION]: "1700000000" });
    const r = pass(observe({ rt, observed: [{}, { hold: hold() }] }));
    expect(planFor(r.plan, "tokyo").release).toEqual({ hold: hold(), by: `annotation ${RELEASE_DELETIONS_ANNOTATION}=1700000000` });
    expect(planFor(r.plan, "london").release).toBeUndefined();
    expect(condition(r, ConditionType.DeletionsHeld)).toMatchObject({ status: "False", reason: Reason.NothingHeld });
    expect(r.events.map((e) => e.reason)).toEqual([Reason.DeletionsReleased]);
    expect(r.status.lastDeletionRelease).toBe("1700000000");
    expect(r.heldDeletions).toEqual([{ site: "tokyo", pending: 0 }]);
    // The same value again (already acted on) releases nothing.
    const again = planReconcile(observe({ rt: { ...rt, status: r.status }, observed: [{}, { hold: hold() }] }), at(30));
    expect(planFor(again, "tokyo").release).toBeUndefined();
    // A release that failed is not recorded as acted on, and the hold still shows.
    const failed = pass(observe({ rt, observed: [{}, { hold: hold() }] }), at(20), { tokyo: { release: { error: new Error("connection reset") } } });
    expect(failed.status.lastDeletionRelease).toBeUndefined();
    expect(condition(failed, ConditionType.DeletionsHeld)).toMatchObject({ status: "True" });
  });

  it("a new trigger value starts every idle kind at once, records it and says so in an Event", () => {
    const quiet = pass(observe());
    expect(quiet.plan.sites.flatMap((p) => p.start)).toEqual([]);
    const rt = rtype({}, { [TRIGGER_ANNOTATION]: "now-1" });
    const running = [...settledRuns.filter((r) => r.kind !== "sync"), run("tokyo", "sync", 15, "active")];
    const r = pass(observe({ rt, runs: running }));
    expect(r.plan.triggered).toBe(true);
    expect(planFor(r.plan, "london").start).toEqual(["verify-primary"]);
    expect(planFor(r.plan, "tokyo").start).toEqual(["verify", "consistency"]);
    expect(r.status.lastTrigger).toBe("now-1");
    expect(r.events).toContainEqual({ type: "Normal", reason: Reason.ManualTrigger, message: "trigger now-1: worker runs started now" });
    const acted = planReconcile(observe({ rt: { ...rt, status: r.status } }), at(20));
    expect(acted.triggered).toBe(false);
    expect(acted.sites.flatMap((p) => p.start)).toEqual([]);
  });

  it("runs the kinds of each role, as the type enables them", () => {
    const type = (spec: Partial<ReplicableTypeSpec>) => typeRuntimeConfig(rtype(spec).spec);
    expect(kindsFor(type({}), "primary")).toEqual(["verify-primary"]);
    expect(kindsFor(type({}), "secondary")).toEqual(["sync", "verify", "consistency"]);
    expect(kindsFor(type({ replication: { enabled: false } }), "secondary")).toEqual(["verify"]);
    expect(kindsFor(type({ verification: { enabled: false } }), "secondary")).toEqual(["sync", "consistency"]);
    const fresh = pass(observe({ rt: rtype({ verification: { enabled: false } }), runs: [run("tokyo", "consistency", 0, "ok", 1)] }));
    expect(planFor(fresh.plan, "london").start).toEqual(["verify-primary"]);
    expect(planFor(fresh.plan, "tokyo").start).toEqual(["sync"]);
  });

  it("looks again when the earliest site is due, at most after a minute", () => {
    // Everything finished at t0+10 s with 1-minute intervals (consistency 10 min): due at t0+70 s.
    expect(pass(observe(), at(20)).requeueAfterMs).toBe(50_000);
    expect(pass(observe(), at(40)).requeueAfterMs).toBe(30_000);
    expect(pass(observe({ runs: [] })).requeueAfterMs).toBe(5_000);
    expect(pass(observe({ rt: rtype({ intervals: { sync: "1h", verification: "1h", primaryVerification: "1h", consistency: "1h" } }) })).requeueAfterMs).toBe(IDLE_REQUEUE_MS);
    expect(pass(observe({ duplicateOf: "older" })).requeueAfterMs).toBe(IDLE_REQUEUE_MS);
  });

  it("writes status only when it changed", () => {
    const first = pass(observe({ observed: [{ schemaVersion: 1 }, { schemaVersion: 1 }] }), at(20));
    expect(first.changed).toBe(true);
    const rt = { ...rtype(), status: first.status };
    const same = pass(observe({ rt, observed: [{ schemaVersion: 1 }, { schemaVersion: 1 }] }), at(40));
    expect(same.changed).toBe(false);
    expect(same.status).toEqual(first.status);
    const moved = pass(observe({ rt, observed: [{ schemaVersion: 1 }, { schemaVersion: 1 }], runs: [...settledRuns, run("tokyo", "sync", 30, "active")] }), at(40));
    expect(moved.changed).toBe(true);
    expect(moved.status.lastJobs?.find((j) => j.kind === "sync")).toMatchObject({ result: "Running", jobName: "tokyo-sync-30" });
  });

  it("records a failed run once", () => {
    const runs = [...settledRuns.filter((r) => !(r.site === "tokyo" && r.kind === "verify")), run("tokyo", "verify", 0, "failed", 10)];
    const r = pass(observe({ runs }));
    expect(r.events.filter((e) => e.reason === Reason.JobFailed)).toHaveLength(1);
    expect(pass(observe({ rt: { ...rtype(), status: r.status }, runs })).events).toEqual([]);
  });
});

describe("planDeletion", () => {
  const deleting = (annotations: Record<string, string> = {}): ReplicableType => ({ ...rtype({}, annotations), metadata: { ...rtype({}, annotations).metadata, deletionTimestamp: t0 } });

  it("releases the finalizer when every site was cleaned up", () => {
    expect(planDeletion({ rt: deleting(), blocked: [], now: at(1), timeoutMs: 600_000 })).toEqual({ action: "release" });
  });

  it("waits for a blocked site until the timeout, saying so once, then gives up", () => {
    const wait = planDeletion({ rt: deleting(), blocked: ["tokyo: the site is disabled"], now: at(60), timeoutMs: 600_000 });
    expect(wait).toMatchObject({ action: "wait", changed: true, event: { reason: Reason.SiteUnreachable } });
    if (wait.action !== "wait") throw new Error("expected to wait");
    expect(wait.conditions.find((c) => c.type === ConditionType.DeletionBlocked)).toMatchObject({ status: "True", reason: Reason.SiteUnreachable });
    const still = planDeletion({ rt: { ...deleting(), status: { conditions: wait.conditions } }, blocked: ["tokyo: the site is disabled"], now: at(90), timeoutMs: 600_000 });
    expect(still).toMatchObject({ action: "wait", changed: false });
    expect(still).not.toHaveProperty("event");
    expect(planDeletion({ rt: deleting(), blocked: ["tokyo: x"], now: at(600), timeoutMs: 600_000 })).toMatchObject({ action: "release", event: { reason: Reason.ForcedDeletion } });
  });

  it("gives up at once with the force-delete annotation", () => {
    const r = planDeletion({ rt: deleting({ "geo.replication.dev/force-delete": "true" }), blocked: ["tokyo: x"], now: at(1), timeoutMs: 600_000 });
    expect(r).toMatchObject({ action: "release", event: { reason: Reason.ForcedDeletion, message: "force-delete annotation: tables left in place on tokyo: x" } });
  });
});
