/**
 * Reconciles a ReplicableType: validates it against the sites, prepares the tables on the primary
 * and on each secondary this operator acts for, starts the worker runs that are due, and reports
 * per-site readiness, the schema version read from each database and the last run of each kind in
 * status.
 *
 * One pass reads as observe → plan → apply → settle → write:
 *   observe  the informers, the executor's runs and the databases (source table, shared databases,
 *            held deletions), plus the schema version this operator last read per site;
 *   plan     planReconcile (pure, replicabletype-plan.ts): refusals, per site the schema step, a
 *            release of held deletions and the runs due (schedule.ts);
 *   apply    per site: schema first (nothing else happens there if it fails), release, start runs;
 *   settle   settleStatus (pure): status, conditions, Events and requeue from what was observed,
 *            planned and done, including a schema or Job failure;
 *   write    record the Events, set the held-deletions gauge, patch status only when it changed.
 * The finalizer is added before anything else; deletion (finalize) drops tables where it can and
 * lets planDeletion decide whether to wait or release the finalizer.
 */
import { ApiException, type CustomObjectsApi } from "@kubernetes/client-node";
import { patchFinalizers, patchStatus } from "../k8s/status.ts";
import { FINALIZER, PLURALS, type GeoSite, type ReplicableType } from "../api/v1alpha1/resources.ts";
import type { TypeRuntimeConfig } from "../api/v1alpha1/runtime.ts";
import { typeRuntimeConfig } from "../strategies/type-config.ts";
import type { EventRecorder } from "../k8s/events.ts";
import type { Informer } from "../k8s/informer.ts";
import { deletionHold, releaseDeletionHold, type DeletionHold } from "../registry/deletions.ts";
import { copiesAwaitVerification } from "../registry/verification-state.ts";
import { ensurePrimarySideTables, ensureTrackingSideTables } from "../registry/side-tables.ts";
import type { OperatorMetrics } from "../metrics/metrics.ts";
import { appliedSchemaVersions, applySchema, dropSchemaForDeletedType } from "../registry/schema-manager.ts";
import { describeDatabase } from "../util/database.ts";
import type { Logger } from "../util/log.ts";
import type { WorkerKind } from "../workers/kinds.ts";
import type { ReconcileResult } from "./controller-loop.ts";
import type { RunExecutor } from "./executor.ts";
import type { JobSettings } from "./job-spec.ts";
import { buildWorkerRun } from "./worker-run.ts";
import { Reason, type ReasonValue } from "./reasons.ts";
import {
  planDeletion,
  planReconcile,
  settleStatus,
  type Observation,
  type Outcome,
  type Plan,
  type PlannedEvent,
  type SiteObservation,
  type SiteOutcome,
  type Settled,
} from "./replicabletype-plan.ts";
import { latestRun, syncFinishedSinceVerify, type RunRecord } from "./schedule.ts";
import type { SiteAccess } from "./site-access.ts";
import { sourceProblems } from "./source-check.ts";
import { checkTopology, duplicateTypeNames, sameDatabase, type Finding } from "./validation.ts";

export interface ReplicableTypeControllerDeps {
  custom: CustomObjectsApi;
  types: Informer<ReplicableType>;
  sites: Informer<GeoSite>;
  executor: RunExecutor;
  access: SiteAccess;
  events: EventRecorder<ReasonValue>;
  jobSettings: JobSettings;
  metrics?: OperatorMetrics;
  /** How long a type being deleted waits for unreachable sites before it gives up on their tables. */
  deletionTimeoutMs?: number;
  /** The one site this operator acts for; undefined acts for every site. */
  site?: string;
  log: Logger;
  now?: () => Date;
}

const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));

export class ReplicableTypeController {
  private readonly d: ReplicableTypeControllerDeps;
  /**
   * The schema version read from the database once this operator brought a (type uid, site,
   * generation) up to date: later passes skip the DDL round trip and report this version.
   */
  private readonly schemaVersions = new Map<string, number>();
  /**
   * Per type and site, the sync run (its completion time) after which no copies were waiting for
   * verification: that answer stands until another sync finishes, so it is not asked again on
   * every reconcile.
   */
  private readonly nothingAwaitedAfter = new Map<string, number>();

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
    const observation = await this.observe(rt);
    const plan = planReconcile(observation, now);
    const outcome = await this.apply(observation, plan, now);
    return this.write(rt, settleStatus(observation, plan, outcome, now));
  }

  // ── observe ──────────────────────────────────────────────────────────────────────────────

  /**
   * Everything the plan needs. Databases are read only for a type the plan can act on: a refused
   * type (duplicate name, no single primary, model table missing) touches no further database.
   */
  private async observe(rt: ReplicableType): Promise<Observation> {
    const { namespace, name } = rt.metadata;
    const type = typeRuntimeConfig(rt.spec);
    const sites = this.d.sites.list(namespace);
    const topology = checkTopology(sites);
    const duplicateOf = duplicateTypeNames(this.d.types.list(namespace)).get(name);
    const seen: Observation = { rt, type, topology, sites: [], runs: this.d.executor.runs(namespace, name), ...(duplicateOf ? { duplicateOf } : {}) };
    const primary = topology.primary;
    if (duplicateOf || topology.problem || !primary) return seen;
    const managed = sites.filter((s) => this.inScope(s));
    const source = await this.checkSource(primary, managed, type);
    if (source.problems.length) return { ...seen, source };
    // Sites are independent (their own databases): read them concurrently.
    const observed = await Promise.all(
      managed.map((site) => this.observeSite(rt, type, site, primary, topology.invalidSecondaries.has(site.metadata.name), seen.runs.filter((r) => r.site === site.metadata.name))),
    );
    return { ...seen, source, sites: observed };
  }

  private async observeSite(rt: ReplicableType, type: TypeRuntimeConfig, site: GeoSite, primary: GeoSite, invalid: boolean, runs: RunRecord[]): Promise<SiteObservation> {
    if (site.spec.enabled === false || invalid) return { site };
    const sharedDatabase = await this.sharedDatabase(site, primary);
    if (sharedDatabase) return { site, sharedDatabase };
    const schemaVersion = this.schemaVersions.get(schemaKey(rt, site));
    let hold: DeletionHold | null | undefined;
    let awaiting: boolean | undefined;
    if (site.spec.role === "secondary") {
      try {
        const tracking = await this.d.access.pool(site, "tracking");
        hold = await deletionHold(tracking, type.name);
        // Once per finished sync run: does verification have copies to look at now?
        const syncDone = latestRun(runs, "sync")?.completionTime?.getTime();
        const key = `${rt.metadata.uid}/${site.metadata.name}`;
        if (type.verificationEnabled && schemaVersion !== undefined && syncFinishedSinceVerify(runs) && this.nothingAwaitedAfter.get(key) !== syncDone) {
          awaiting = await copiesAwaitVerification(tracking, type.schema);
          if (!awaiting && syncDone !== undefined) this.nothingAwaitedAfter.set(key, syncDone);
        }
      } catch (err) {
        // The GeoSite's health reports an unreachable tracking database; scheduling goes on.
        this.d.log.warn({ site: site.metadata.name, err: errorText(err) }, "could not read held deletions or copies awaiting verification");
      }
    }
    return {
      site,
      ...(schemaVersion === undefined ? {} : { schemaVersion }),
      ...(hold === undefined ? {} : { hold }),
      ...(awaiting === undefined ? {} : { copiesAwaitVerification: awaiting }),
    };
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
  private async sharedDatabase(site: GeoSite, primary: GeoSite): Promise<Finding | undefined> {
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

  // ── apply ────────────────────────────────────────────────────────────────────────────────

  /**
   * Carries out the plan, site by site (concurrently: each has its own database). On a site the
   * schema comes first, and a schema failure stops that site; every failure is reported in the
   * outcome for settleStatus to put into status.
   */
  private async apply(observation: Observation, plan: Plan, now: Date): Promise<Outcome> {
    const { rt, type, topology } = observation;
    const sites = new Map<string, SiteOutcome>();
    await Promise.all(
      plan.sites
        .filter((p) => !p.skipped)
        .map(async (p) => {
          const done: SiteOutcome = {};
          sites.set(p.site.metadata.name, done);
          if (p.applySchema) {
            try {
              done.schema = await this.applySchema(rt, type, p.site);
            } catch (err) {
              done.schema = { error: err };
              return;
            }
          }
          if (p.release) {
            try {
              await releaseDeletionHold(await this.d.access.pool(p.site, "tracking"), type.name, p.release.by);
              done.release = {};
            } catch (err) {
              this.d.log.warn({ site: p.site.metadata.name, err: errorText(err) }, "could not release held deletions");
              done.release = { error: err };
            }
          }
          try {
            // A 403, a quota or an admission webhook: nothing more runs, and status must say so.
            for (const kind of p.start) await this.startRun(rt, p.site, topology.primary!, kind, now);
          } catch (err) {
            done.startError = err;
          }
        }),
    );
    return { sites, runs: this.d.executor.runs(rt.metadata.namespace, rt.metadata.name) };
  }

  /** Brings a site's tables up to date and reads back the version its database now records. */
  private async applySchema(rt: ReplicableType, type: TypeRuntimeConfig, site: GeoSite): Promise<{ version: number; applied: number[] }> {
    const role = site.spec.role;
    const database = role === "primary" ? "main" : "tracking";
    const pool = await this.d.access.pool(site, database);
    let client;
    try {
      client = await pool.connect();
    } catch (err) {
      const url = await this.d.access.databaseURL(site, database);
      throw new Error(`cannot reach the ${role === "primary" ? "primary database" : "tracking database"} at ${describeDatabase(url)}: ${errorText(err)}`);
    }
    try {
      const { applied } = await applySchema(client, type.schema, role);
      if (role === "secondary") await ensureTrackingSideTables(client);
      else await ensurePrimarySideTables(client);
      const versions = await appliedSchemaVersions(client, type.schema, role);
      if (!versions.length) throw new Error(`no schema version is recorded for ${type.name} (${role}) after applying it`);
      const version = Math.max(...versions);
      this.schemaVersions.set(schemaKey(rt, site), version);
      return { version, applied };
    } finally {
      client.release();
    }
  }

  /** Starts one worker run. */
  private async startRun(rt: ReplicableType, site: GeoSite, primary: GeoSite, kind: WorkerKind, scheduledAt: Date): Promise<void> {
    await this.d.executor.start(buildWorkerRun({ type: rt, site, primary, kind, scheduledAt, maxRunSeconds: this.d.jobSettings.maxRunSeconds }));
  }

  // ── write ────────────────────────────────────────────────────────────────────────────────

  private async write(rt: ReplicableType, settled: Settled): Promise<ReconcileResult> {
    for (const { site, pending } of settled.heldDeletions) this.d.metrics?.deletionsHeld.set({ type: rt.spec.name, site }, pending);
    await this.record(rt, settled.events);
    if (settled.changed) {
      await patchStatus(this.d.custom, { plural: PLURALS.ReplicableType, namespace: rt.metadata.namespace, name: rt.metadata.name }, rt.status, settled.status);
    }
    return { requeueAfterMs: settled.requeueAfterMs };
  }

  private async record(rt: ReplicableType, events: PlannedEvent[]): Promise<void> {
    for (const e of events) await this.d.events.record(rt, e.type, e.reason, e.message);
  }

  private async setFinalizers(rt: ReplicableType, finalizers: string[]): Promise<void> {
    const { namespace, name, resourceVersion } = rt.metadata;
    await patchFinalizers(this.d.custom, { plural: PLURALS.ReplicableType, namespace, name, ...(resourceVersion ? { resourceVersion } : {}) }, finalizers);
  }

  // ── deletion ─────────────────────────────────────────────────────────────────────────────

  /**
   * Deletion: stop and remove the type's runs, honour deletionPolicy on our sites, then let
   * planDeletion decide: a site that could not be cleaned up holds the finalizer (condition
   * DeletionBlocked names it) until the deletion timeout or the force-delete annotation, after
   * which the finalizer goes and that site's tables stay.
   */
  private async finalize(rt: ReplicableType): Promise<ReconcileResult> {
    if (!(rt.metadata.finalizers ?? []).includes(FINALIZER)) return {};
    await this.d.executor.deleteAll(rt.metadata.namespace, rt.metadata.name);
    const blocked = await this.dropTables(rt);
    const plan = planDeletion({ rt, blocked, now: this.now(), timeoutMs: this.d.deletionTimeoutMs ?? 10 * 60_000 });
    if (plan.action === "wait") {
      if (plan.changed) {
        await patchStatus(this.d.custom, { plural: PLURALS.ReplicableType, namespace: rt.metadata.namespace, name: rt.metadata.name }, rt.status, { ...(rt.status ?? {}), conditions: plan.conditions });
      }
      await this.record(rt, plan.event ? [plan.event] : []);
      return { requeueAfterMs: plan.requeueAfterMs };
    }
    await this.record(rt, plan.event ? [plan.event] : []);
    try {
      await this.setFinalizers(rt, (rt.metadata.finalizers ?? []).filter((f) => f !== FINALIZER));
    } catch (err) {
      if (!(err instanceof ApiException && err.code === 404)) throw err;
    }
    return {};
  }

  /** With deletionPolicy Delete, drops the type's tables on our sites; returns "site: why" for each it could not. */
  private async dropTables(rt: ReplicableType): Promise<string[]> {
    const type = typeRuntimeConfig(rt.spec);
    const blocked: string[] = [];
    if (type.schema.deletionPolicy !== "Delete") return blocked;
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
        blocked.push(`${site.metadata.name}: ${errorText(err)}`);
      }
    }
    return blocked;
  }
}

/** The schema cache key: a new generation (or a re-created type) runs the schema step again. */
function schemaKey(rt: ReplicableType, site: GeoSite): string {
  return `${rt.metadata.uid}/${site.metadata.name}/${rt.metadata.generation}`;
}
