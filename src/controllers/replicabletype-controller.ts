/**
 * Reconciles a ReplicableType: validates it against the sites, prepares the tables on the primary
 * and on each secondary this operator acts for, starts the worker runs that are due, and reports
 * per-site readiness and the last run of each kind in status.
 *
 *   ensureFinalizer → checkTopology → refuse a duplicate spec.name → checkSource → for each site:
 *   ensureSchema → scheduleRuns → observe held deletions (and release them on request)
 *   → writeStatus (only when it changed)
 */
import { ApiException, type CustomObjectsApi } from "@kubernetes/client-node";
import { patchFinalizers, patchStatus } from "../k8s/status.ts";
import { describeError } from "../k8s/api-errors.ts";
import {
  FINALIZER,
  FORCE_DELETE_ANNOTATION,
  PLURALS,
  RELEASE_DELETIONS_ANNOTATION,
  TRIGGER_ANNOTATION,
  setCondition,
  type Condition,
  type GeoSite,
  type ReplicableType,
} from "../api/v1alpha1/resources.ts";
import type { TypeRuntimeConfig } from "../api/v1alpha1/runtime.ts";
import { typeRuntimeConfig } from "../strategies/type-config.ts";
import type { ReplicableTypeStatus } from "../api/v1alpha1/types.generated.ts";
import type { EventRecorder } from "../k8s/events.ts";
import type { Informer } from "../k8s/informer.ts";
import { deletionHold, releaseDeletionHold, type DeletionHold } from "../registry/deletions.ts";
import { ensurePrimarySideTables, ensureTrackingSideTables } from "../registry/side-tables.ts";
import type { OperatorMetrics } from "../metrics/metrics.ts";
import { applySchema, dropSchemaForDeletedType } from "../registry/schema-manager.ts";
import { canonicalJSON } from "../util/canonical.ts";
import { describeDatabase } from "../util/database.ts";
import type { Logger } from "../util/log.ts";
import { PRIMARY_KINDS, SECONDARY_KINDS, type WorkerKind } from "../workers/kinds.ts";
import type { ReconcileResult } from "./controller-loop.ts";
import type { RunExecutor } from "./executor.ts";
import type { JobSettings } from "./job-spec.ts";
import { buildWorkerRun } from "./worker-run.ts";
import { ConditionType, Reason } from "./reasons.ts";
import { decideRuns, latestRun } from "./schedule.ts";
import { failureReason, type SiteAccess } from "./site-access.ts";
import { sourceProblems } from "./source-check.ts";
import { checkTopology, duplicateTypeNames, sameDatabase } from "./validation.ts";

type SiteStatus = NonNullable<ReplicableTypeStatus["sites"]>[number];
type JobStatus = NonNullable<ReplicableTypeStatus["lastJobs"]>[number];

export interface ReplicableTypeControllerDeps {
  custom: CustomObjectsApi;
  types: Informer<ReplicableType>;
  sites: Informer<GeoSite>;
  executor: RunExecutor;
  access: SiteAccess;
  events: EventRecorder;
  jobSettings: JobSettings;
  metrics?: OperatorMetrics;
  /** How long a type being deleted waits for unreachable sites before it gives up on their tables. */
  deletionTimeoutMs?: number;
  /** The one site this operator acts for; undefined acts for every site. */
  site?: string;
  log: Logger;
  now?: () => Date;
}

export class ReplicableTypeController {
  private readonly d: ReplicableTypeControllerDeps;
  /** Schema already applied per (type uid, site, generation): skips the DDL round trip on every pass. */
  private readonly schemaDone = new Set<string>();

  constructor(deps: ReplicableTypeControllerDeps) {
    this.d = deps;
  }

  private now(): Date {
    return this.d.now?.() ?? new Date();
  }

  private inScope(site: GeoSite): boolean {
    return this.d.site === undefined || site.metadata.name === this.d.site;
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const [namespace, name] = key.split("/") as [string, string];
    const rt = this.d.types.get(name, namespace);
    if (!rt) return {};
    if (rt.metadata.deletionTimestamp) return this.finalize(rt);
    if (!(rt.metadata.finalizers ?? []).includes(FINALIZER)) {
      // Finalizer first, before anything that would need cleaning up; then carry on in this pass.
      await this.setFinalizers(rt, [...(rt.metadata.finalizers ?? []), FINALIZER]);
    }

    const now = this.now();
    let conditions: Condition[] = rt.status?.conditions ?? [];
    const set = (type: string, status: "True" | "False" | "Unknown", reason: string, message: string) => {
      conditions = setCondition(conditions, { type, status, reason, message, observedGeneration: rt.metadata.generation ?? 0 }, now);
    };
    const type = typeRuntimeConfig(rt.spec);
    const sites = this.d.sites.list(namespace);
    const topology = checkTopology(sites);
    const siteStatuses: SiteStatus[] = [];
    let requeueAfterMs = 60_000;
    const triggerValue = rt.metadata.annotations?.[TRIGGER_ANNOTATION];
    const triggered = !!triggerValue && triggerValue !== rt.status?.lastTrigger;
    const requestedRelease = rt.metadata.annotations?.[RELEASE_DELETIONS_ANNOTATION];
    const releaseValue = requestedRelease && requestedRelease !== rt.status?.lastDeletionRelease ? requestedRelease : undefined;

    const holder = duplicateTypeNames(this.d.types.list(namespace)).get(rt.metadata.name);
    if (holder) {
      const message = `spec.name ${rt.spec.name} is already used by ReplicableType ${holder} in this namespace; two types with one name would share (and delete each other's) registry tables. Nothing is scheduled for this one: rename spec.name or delete it`;
      set(ConditionType.Ready, "False", Reason.DuplicateName, message);
      if (rt.status?.conditions?.find((c) => c.type === ConditionType.Ready)?.reason !== Reason.DuplicateName) {
        await this.d.events.record(rt, "Warning", Reason.DuplicateName, message);
      }
      return this.writeStatus(rt, { conditions, siteStatuses, triggered: false, requeueAfterMs });
    }

    if (topology.problem || !topology.primary) {
      set(ConditionType.SitesValid, "False", topology.problem!.reason, topology.problem!.message);
      set(ConditionType.Ready, "False", topology.problem!.reason, topology.problem!.message);
      return this.writeStatus(rt, { conditions, siteStatuses, triggered: false, requeueAfterMs });
    }
    const primary = topology.primary;
    const invalid = [...topology.invalidSecondaries.values()];
    set(ConditionType.SitesValid, invalid.length ? "False" : "True", invalid.length ? Reason.PointsAtPrimary : Reason.Reconciled, invalid.length ? invalid.map((f) => f.message).join("; ") : "exactly one primary; secondaries use their own storage");

    const managed = sites.filter((s) => this.inScope(s));
    const source = await this.checkSource(primary, managed, type);
    if (source.problems.length) {
      const message = `${rt.spec.source.table}: ${source.problems.join("; ")}`;
      set(ConditionType.SourceValid, "False", Reason.SourceMissing, message);
      set(ConditionType.Ready, "False", Reason.SourceMissing, `nothing is scheduled: ${message}`);
      if (rt.status?.conditions?.find((c) => c.type === ConditionType.SourceValid)?.status !== "False") {
        await this.d.events.record(rt, "Warning", Reason.SourceMissing, message);
      }
      return this.writeStatus(rt, { conditions, siteStatuses, triggered: false, requeueAfterMs });
    }
    if (source.checked) set(ConditionType.SourceValid, "True", Reason.Reconciled, `${rt.spec.source.table} and its columns exist on the primary`);

    // Sites are independent (their own databases): prepare them concurrently.
    const perSite = await Promise.all(
      managed.map(async (site): Promise<{ status: SiteStatus; requeueAfterMs?: number }> => {
        const status: SiteStatus = { name: site.metadata.name, role: site.spec.role, ready: false };
        if (site.spec.enabled === false) return { status: { ...status, reason: Reason.SiteDisabled, message: "spec.enabled is false" } };
        const finding = topology.invalidSecondaries.get(site.metadata.name) ?? (await this.sharedDatabase(site, primary));
        if (finding) return { status: { ...status, reason: finding.reason, message: finding.message } };
        try {
          const version = await this.ensureSchema(rt, type, site);
          Object.assign(status, { ready: true, reason: Reason.Reconciled, message: "tables ready; worker runs scheduled", schemaVersion: version });
        } catch (err) {
          return { status: { ...status, reason: failureReason(err, Reason.SchemaFailed), message: err instanceof Error ? err.message : String(err) } };
        }
        if (site.spec.role === "secondary") {
          try {
            Object.assign(status, await this.observeHolds(rt, type, site, releaseValue));
          } catch (err) {
            // The GeoSite's health reports an unreachable tracking database; scheduling goes on.
            this.d.log.warn({ site: site.metadata.name, err: err instanceof Error ? err.message : String(err) }, "could not read held deletions");
          }
        }
        try {
          return { status, requeueAfterMs: await this.scheduleRuns(rt, type, site, primary, triggered) };
        } catch (err) {
          // A 403, a quota or an admission webhook: nothing runs, and status must say so.
          const message = `worker Jobs could not be created: ${describeError(err)}`;
          return { status: { ...status, ready: false, reason: failureReason(err, Reason.JobsNotCreated), message }, requeueAfterMs: 30_000 };
        }
      }),
    );
    for (const { status, requeueAfterMs: after } of perSite) {
      siteStatuses.push(status);
      if (after !== undefined) requeueAfterMs = Math.min(requeueAfterMs, after);
    }

    const notReady = siteStatuses.filter((s) => !s.ready && s.reason !== Reason.SiteDisabled);
    set(
      ConditionType.SchemaReady,
      notReady.some((s) => s.reason === Reason.SchemaFailed) ? "False" : "True",
      notReady.some((s) => s.reason === Reason.SchemaFailed) ? Reason.SchemaFailed : Reason.Reconciled,
      notReady.filter((s) => s.reason === Reason.SchemaFailed).map((s) => `${s.name}: ${s.message}`).join("; ") || "registry and verification-state tables are current",
    );
    const held = siteStatuses.filter((s) => (s.heldDeletions ?? 0) > 0);
    set(
      ConditionType.DeletionsHeld,
      held.length ? "True" : "False",
      held.length ? (held[0]!.holdReason ?? Reason.DeletionsHeld) : Reason.NothingHeld,
      held.length ? held.map((s) => `${s.name}: ${s.message}`).join("; ") : "no deletions are held",
    );
    set(
      ConditionType.Ready,
      notReady.length ? "False" : "True",
      notReady.length ? notReady[0]!.reason! : Reason.Reconciled,
      notReady.length ? notReady.map((s) => `${s.name}: ${s.message}`).join("; ") : `ready on ${siteStatuses.filter((s) => s.ready).length} site(s)`,
    );
    if (triggered) await this.d.events.record(rt, "Normal", Reason.ManualTrigger, `trigger ${triggerValue}: worker runs started now`);
    return this.writeStatus(rt, { conditions, siteStatuses, triggered, requeueAfterMs, ...(releaseValue ? { released: releaseValue } : {}) });
  }

  /**
   * Deletions held on a secondary (written by its consistency runs) become site status, an Event
   * when newly held and a metric; a new release annotation value releases them.
   */
  private async observeHolds(rt: ReplicableType, type: TypeRuntimeConfig, site: GeoSite, releaseValue: string | undefined): Promise<Partial<SiteStatus>> {
    const tracking = await this.d.access.pool(site, "tracking");
    let hold: DeletionHold | null = await deletionHold(tracking, type.name);
    if (hold && releaseValue) {
      await releaseDeletionHold(tracking, type.name, `annotation ${RELEASE_DELETIONS_ANNOTATION}=${releaseValue}`);
      await this.d.events.record(rt, "Normal", Reason.DeletionsReleased, `held deletions on site ${site.metadata.name} released (${hold.pending} copies, ${hold.reason}); the next complete consistency pass deletes what it still confirms`);
      hold = await deletionHold(tracking, type.name);
    }
    const released = !!hold?.releasedAt && hold.releasedAt.getTime() >= hold.heldAt.getTime();
    const pending = hold && !released ? hold.pending : 0;
    this.d.metrics?.deletionsHeld.set({ type: type.name, site: site.metadata.name }, pending);
    if (!hold || released) return {};
    const before = rt.status?.sites?.find((s) => s.name === site.metadata.name);
    if (before?.holdReason !== hold.reason) {
      await this.d.events.record(rt, "Warning", Reason.DeletionsHeld, `site ${site.metadata.name}: ${hold.message}`);
    }
    return { heldDeletions: hold.pending, holdReason: hold.reason, reason: hold.reason, message: hold.message };
  }

  /** Checks the model table through whichever connection to the primary's data this operator has. */
  private async checkSource(primary: GeoSite, managed: GeoSite[], type: TypeRuntimeConfig): Promise<{ checked: boolean; problems: string[] }> {
    const viaPrimary = managed.find((s) => s.metadata.name === primary.metadata.name);
    const viaReplica = managed.find((s) => s.spec.role === "secondary" && s.spec.database.primaryReplicaSecretRef);
    const site = viaPrimary ?? viaReplica;
    if (!site) return { checked: false, problems: [] };
    const pool = await this.d.access.pool(site, viaPrimary ? "main" : "primaryReplica");
    return { checked: true, problems: await sourceProblems(pool, type) };
  }

  /**
   * Two Secrets may name the same database: compare the resolved URLs (host, port, database) of a
   * secondary's tracking DB and the primary's main DB, where this operator can read both.
   */
  private async sharedDatabase(site: GeoSite, primary: GeoSite): Promise<{ reason: string; message: string } | undefined> {
    if (site.spec.role !== "secondary") return undefined;
    const [tracking, main] = await Promise.all([
      this.d.access.databaseURL(site, "tracking").catch(() => undefined),
      this.d.access.databaseURL(primary, "main").catch(() => undefined),
    ]);
    if (!tracking || !main || !sameDatabase(tracking, main)) return undefined;
    return {
      reason: Reason.PointsAtPrimary,
      message: `secondary ${site.metadata.name}: its tracking database ${describeDatabase(tracking)} is the primary's main database`,
    };
  }

  private async ensureSchema(rt: ReplicableType, type: TypeRuntimeConfig, site: GeoSite): Promise<number> {
    const role = site.spec.role;
    const doneKey = `${rt.metadata.uid}/${site.metadata.name}/${rt.metadata.generation}`;
    // Checked before the Secret is read: most reconciles find the schema already current.
    if (this.schemaDone.has(doneKey)) return 1;
    const pool = await this.d.access.pool(site, role === "primary" ? "main" : "tracking");
    let client;
    try {
      client = await pool.connect();
    } catch (err) {
      const url = await this.d.access.databaseURL(site, role === "primary" ? "main" : "tracking");
      throw new Error(`cannot reach the ${role === "primary" ? "primary database" : "tracking database"} at ${describeDatabase(url)}: ${(err as Error).message}`);
    }
    try {
      const result = await applySchema(client, type.schema, role);
      if (role === "secondary") await ensureTrackingSideTables(client);
      else await ensurePrimarySideTables(client);
      if (result.applied.length) {
        await this.d.events.record(rt, "Normal", Reason.SchemaApplied, `${role === "primary" ? `${type.name}_states` : `${type.name}_registry`} migrated to version ${Math.max(...result.applied)} on site ${site.metadata.name}`);
      }
      this.schemaDone.add(doneKey);
      return result.applied.length ? Math.max(...result.applied) : 1;
    } finally {
      client.release();
    }
  }

  private kindsFor(type: TypeRuntimeConfig, site: GeoSite): WorkerKind[] {
    if (site.spec.role === "primary") return [...PRIMARY_KINDS];
    return SECONDARY_KINDS.filter((k) => (k === "sync" ? type.replicationEnabled : k === "verify" ? type.verificationEnabled : type.replicationEnabled));
  }

  /** Starts the runs that are due for one site; returns when to look again. */
  private async scheduleRuns(rt: ReplicableType, type: TypeRuntimeConfig, site: GeoSite, primary: GeoSite, triggered: boolean): Promise<number> {
    const now = this.now();
    const runs = this.d.executor.runs(rt.metadata.namespace, rt.metadata.name).filter((r) => r.site === site.metadata.name);
    const decision = decideRuns({
      kinds: this.kindsFor(type, site),
      intervalsMs: {
        "verify-primary": type.intervalsMs.primaryVerification,
        sync: type.intervalsMs.sync,
        verify: type.intervalsMs.verification,
        consistency: type.intervalsMs.consistency,
      },
      runs,
      now,
      triggered,
    });
    for (const kind of decision.start) {
      await this.d.executor.start(buildWorkerRun({ type: rt, site, primary, kind, scheduledAt: now, maxRunSeconds: this.d.jobSettings.maxRunSeconds }));
    }
    return decision.requeueAfterMs;
  }

  private lastJobs(rt: ReplicableType): JobStatus[] {
    const runs = this.d.executor.runs(rt.metadata.namespace, rt.metadata.name);
    const out: JobStatus[] = [];
    for (const site of new Set(runs.map((r) => r.site))) {
      for (const kind of new Set(runs.filter((r) => r.site === site).map((r) => r.kind))) {
        const r = latestRun(runs.filter((x) => x.site === site), kind)!;
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

  private async writeStatus(
    rt: ReplicableType,
    p: { conditions: Condition[]; siteStatuses: SiteStatus[]; triggered: boolean; requeueAfterMs: number; released?: string },
  ): Promise<ReconcileResult> {
    const lastJobs = this.lastJobs(rt);
    const previous = new Map((rt.status?.lastJobs ?? []).map((j) => [`${j.site}/${j.kind}`, j]));
    for (const job of lastJobs) {
      const before = previous.get(`${job.site}/${job.kind}`);
      if (job.result === "Failed" && (before?.jobName !== job.jobName || before?.result !== "Failed")) {
        await this.d.events.record(rt, "Warning", Reason.JobFailed, `${job.kind} run ${job.jobName} on site ${job.site} failed${job.message ? `: ${job.message}` : ""}`);
      }
    }
    const status: ReplicableTypeStatus = {
      observedGeneration: rt.metadata.generation ?? 0,
      ...(p.triggered ? { lastTrigger: rt.metadata.annotations?.[TRIGGER_ANNOTATION] } : rt.status?.lastTrigger ? { lastTrigger: rt.status.lastTrigger } : {}),
      ...(p.released ? { lastDeletionRelease: p.released } : rt.status?.lastDeletionRelease ? { lastDeletionRelease: rt.status.lastDeletionRelease } : {}),
      sites: p.siteStatuses.sort((a, b) => a.name.localeCompare(b.name)),
      lastJobs,
      conditions: p.conditions,
    };
    if (canonicalJSON(status) !== canonicalJSON(rt.status ?? {})) {
      await patchStatus(this.d.custom, { plural: PLURALS.ReplicableType, namespace: rt.metadata.namespace, name: rt.metadata.name }, rt.status, status);
    }
    return { requeueAfterMs: p.requeueAfterMs };
  }

  private async setFinalizers(rt: ReplicableType, finalizers: string[]): Promise<void> {
    const { namespace, name, resourceVersion } = rt.metadata;
    await patchFinalizers(this.d.custom, { plural: PLURALS.ReplicableType, namespace, name, ...(resourceVersion ? { resourceVersion } : {}) }, finalizers);
  }

  /**
   * Deletion: stop and remove the type's runs, honour deletionPolicy on our sites, release the
   * finalizer. A site that cannot be reached does not hold the deletion forever: the condition
   * DeletionBlocked names it, and after the deletion timeout (or at once with the force-delete
   * annotation) the finalizer is released and that site's tables are left in place.
   */
  private async finalize(rt: ReplicableType): Promise<ReconcileResult> {
    if (!(rt.metadata.finalizers ?? []).includes(FINALIZER)) return {};
    await this.d.executor.deleteAll(rt.metadata.namespace, rt.metadata.name);
    const type = typeRuntimeConfig(rt.spec);
    const blocked: string[] = [];
    if (type.schema.deletionPolicy === "Delete") {
      for (const site of this.d.sites.list(rt.metadata.namespace).filter((s) => this.inScope(s))) {
        if (site.spec.enabled === false) {
          blocked.push(`${site.metadata.name}: the site is disabled, so its tables cannot be dropped`);
          continue;
        }
        try {
          const pool = await this.d.access.pool(site, site.spec.role === "primary" ? "main" : "tracking");
          const client = await pool.connect();
          try {
            const result = await dropSchemaForDeletedType(client, type.schema, site.spec.role);
            this.d.log.info({ type: type.name, site: site.metadata.name, dropped: result.dropped, reason: result.reason }, "deletion policy applied");
          } finally {
            client.release();
          }
        } catch (err) {
          blocked.push(`${site.metadata.name}: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
    }
    if (blocked.length) {
      const force = rt.metadata.annotations?.[FORCE_DELETE_ANNOTATION] === "true";
      const waitedMs = this.now().getTime() - new Date(rt.metadata.deletionTimestamp!).getTime();
      const timeoutMs = this.d.deletionTimeoutMs ?? 10 * 60_000;
      if (!force && waitedMs < timeoutMs) {
        const message =
          `deletionPolicy Delete is waiting for ${blocked.join("; ")}. It gives up after ${Math.round(timeoutMs / 60_000)} min and leaves those tables; ` +
          `to stop waiting now: kubectl annotate replicabletype ${rt.metadata.name} ${FORCE_DELETE_ANNOTATION}=true`;
        const conditions = setCondition(rt.status?.conditions ?? [], { type: ConditionType.DeletionBlocked, status: "True", reason: Reason.SiteUnreachable, message, observedGeneration: rt.metadata.generation ?? 0 }, this.now());
        if (canonicalJSON(conditions) !== canonicalJSON(rt.status?.conditions ?? [])) {
          await patchStatus(this.d.custom, { plural: PLURALS.ReplicableType, namespace: rt.metadata.namespace, name: rt.metadata.name }, rt.status, { ...(rt.status ?? {}), conditions });
          await this.d.events.record(rt, "Warning", Reason.SiteUnreachable, message);
        }
        return { requeueAfterMs: 30_000 };
      }
      await this.d.events.record(rt, "Warning", Reason.ForcedDeletion, `${force ? "force-delete annotation" : "deletion timeout"}: tables left in place on ${blocked.join("; ")}`);
    }
    try {
      await this.setFinalizers(rt, (rt.metadata.finalizers ?? []).filter((f) => f !== FINALIZER));
    } catch (err) {
      if (!(err instanceof ApiException && err.code === 404)) throw err;
    }
    return {};
  }
}
