/**
 * Reconciles a GeoSite's status: per type GitLab's twelve counters, overall synced and verified
 * percentages, health with reasons, conditions; and publishes the same numbers as Prometheus
 * gauges. For the primary it also writes the heartbeat that proves to secondaries whose database
 * their replica is; for a secondary it reads that heartbeat through the replica as replication lag.
 *
 * It also keeps the site's servers running (site-servers.ts: the strategies' and the log cursor)
 * and shows the change event log (event-log-status.ts): on the primary its newest and oldest
 * events, after pruning what is older than the retention; on a secondary where its cursor stands.
 *
 * Health says what a person must know: databases or storage unreachable, a type's tables missing,
 * worker runs failing, verification failures rising, the registry far behind the primary's count,
 * deletions held, a replica that is not this primary's or lags behind, and a log cursor behind or
 * stuck. On a secondary, the FailoverReady condition says whether it could be promoted now
 * (failover-readiness.ts). Only sites this operator acts for are written. The status is written
 * when it changed, and otherwise at least every `heartbeatMs` (and every third of the site's
 * failover maxStatusAge) so that lastStatusTime shows the operator is alive.
 */
import type { CustomObjectsApi } from "@kubernetes/client-node";
import { ACCEPT_PRIMARY_IDENTITY_ANNOTATION, PLURALS, setCondition, type Condition, type GeoSite, type ReplicableType } from "../api/v1alpha1/resources.ts";
import { parseDuration } from "../api/v1alpha1/duration.ts";
import { selectiveSyncOf } from "../api/v1alpha1/runtime.ts";
import { strategyFor } from "../strategies/catalog.ts";
import { typeRuntimeConfig } from "../strategies/type-config.ts";
import type { GeoSiteStatus } from "../api/v1alpha1/types.generated.ts";
import type { EventRecorder } from "../k8s/events.ts";
import { patchStatus } from "../k8s/status.ts";
import { describeError } from "../k8s/api-errors.ts";
import type { Informer } from "../k8s/informer.ts";
import type { OperatorMetrics } from "../metrics/metrics.ts";
import { oldestUnsyncedAgeSeconds, primaryStatus, secondaryStatus, type ReplicableStatus } from "../registry/status.ts";
import { acceptPrimaryIdentity, proveReplica, writeHeartbeat } from "../registry/heartbeat.ts";
import { deletionHold } from "../registry/deletions.ts";
import { cursorMaxLagSecondsOf, eventLogRetentionSecondsOf, maxReplicationLagSecondsOf } from "../api/v1alpha1/runtime.ts";
import { capturesChanges, cursorWanted } from "../cursor/site-server.ts";
import { duplicateTypeNames } from "./validation.ts";
import { replicatedBytes } from "../registry/replicas.ts";
import { ping, type Queryable } from "../registry/db.ts";
import { canonicalJSON } from "../util/canonical.ts";
import type { Logger } from "../util/log.ts";
import type { ReconcileResult } from "./controller-loop.ts";
import { ConditionType, knownReason, Reason, type ReasonValue } from "./reasons.ts";
import { failoverCondition, failoverReadiness, statusRewriteSeconds } from "./failover-readiness.ts";
import { failureReason, type SiteAccess } from "./site-access.ts";
import { replicaIdentityChange } from "../workers/deletion-policy.ts";
import { checkTopology } from "./validation.ts";
import { desiredSiteServers, type SiteServerExecutor } from "./site-servers.ts";
import { observePrimaryEventLog, observeSecondaryEventLog, primaryEventLogStatus, secondaryEventLogStatus, type EventLogStatus } from "./event-log-status.ts";

type TypeStatus = NonNullable<GeoSiteStatus["types"]>[number];
/** One type as counted on a site; the last two on secondaries only. */
type CountedType = { type: ReplicableType; status: ReplicableStatus; oldestPendingAgeSeconds?: number; heldDeletions?: number };

export interface GeoSiteControllerDeps {
  custom: CustomObjectsApi;
  sites: Informer<GeoSite>;
  types: Informer<ReplicableType>;
  access: SiteAccess;
  events: EventRecorder<ReasonValue>;
  metrics: OperatorMetrics;
  /** Runs the servers strategies ask for on a site (e.g. file retrieval on a primary). */
  servers?: SiteServerExecutor;
  site?: string;
  log: Logger;
  heartbeatMs?: number;
  now?: () => Date;
}

const UNDEFINED_TABLE = "42P01";
const pct = (n: number) => `${(Math.floor(n * 10) / 10).toFixed(1)}%`;

export class GeoSiteController {
  private readonly d: GeoSiteControllerDeps;
  /** Replicated-bytes total already counted per type and site; the counter grows by the difference. */
  private readonly bytesSeen = new Map<string, number>();

  constructor(deps: GeoSiteControllerDeps) {
    this.d = deps;
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const [namespace, name] = key.split("/") as [string, string];
    if (this.d.site !== undefined && this.d.site !== name) return {};
    const site = this.d.sites.get(name, namespace);
    if (!site) {
      // Deleted: its servers stop (in-process ones here; the garbage collector also removes the
      // Deployments it owns, should no manager run when the site goes).
      await this.d.servers?.reconcile({ namespace, name }, []);
      return {};
    }
    const now = this.d.now?.() ?? new Date();
    const interval = parseDuration(site.spec.statusInterval ?? "1m");
    let conditions: Condition[] = site.status?.conditions ?? [];
    const set = (type: string, status: "True" | "False", reason: ReasonValue, message: string) => {
      conditions = setCondition(conditions, { type, status, reason, message, observedGeneration: site.metadata.generation ?? 0 }, now);
    };
    const reasons: string[] = [];

    const topology = checkTopology(this.d.sites.list(namespace));
    const finding = topology.problem ?? topology.invalidSecondaries.get(name);
    if (finding) {
      set(ConditionType.SitesValid, "False", finding.reason, finding.message);
      reasons.push(`${finding.reason}: ${finding.message}`);
    } else {
      set(ConditionType.SitesValid, "True", Reason.Reconciled, "site topology is valid");
    }

    const all = this.d.types.list(namespace);
    const refused = duplicateTypeNames(all);
    const types = all.filter((t) => !t.metadata.deletionTimestamp && !refused.has(t.metadata.name));
    const url = site.spec.url ?? "";
    const typeStatuses: TypeStatus[] = [];
    let complete = true;
    let replicationLagSeconds: number | undefined;
    let eventLog: EventLogStatus | undefined;
    if (site.spec.enabled !== false && !topology.problem) {
      // A secondary the topology check refuses runs no cursor (desiredSiteServers): nothing to show.
      const followsLog = site.spec.role === "primary" || (cursorWanted(site, types) && !topology.invalidSecondaries.has(name));
      const counted = await this.collect(site, types, reasons, now, followsLog);
      complete = counted.complete;
      replicationLagSeconds = counted.replicationLagSeconds;
      eventLog = counted.eventLog;
      for (const { type, status, oldestPendingAgeSeconds, heldDeletions } of counted.statuses) {
        typeStatuses.push({
          name: type.spec.name,
          ...status,
          ...(oldestPendingAgeSeconds === undefined ? {} : { oldestPendingAgeSeconds }),
          ...(heldDeletions ? { heldDeletions } : {}),
        } as TypeStatus);
        this.d.metrics.setTypeStatus(type.spec.plural ?? `${type.spec.name}s`, { name, url }, status);
        if (oldestPendingAgeSeconds !== undefined) this.d.metrics.oldestPendingSeconds.set({ type: type.spec.name, site: name }, oldestPendingAgeSeconds);
      }
      for (const strategy of new Set(types.map((t) => strategyFor(t.spec.strategy)))) {
        if (!strategy.probeStorage) continue;
        const problem = await strategy.probeStorage(site, this.d.access).then(
          (p) => (p ? `${Reason.StorageUnreachable}: ${p}` : undefined),
          (err: unknown) => `${failureReason(err, Reason.StorageUnreachable)}: ${strategy.name} storage check failed: ${(err as Error).message}`,
        );
        if (problem) reasons.push(problem);
      }
    }
    if (this.d.servers && !topology.problem) {
      const desired = desiredSiteServers(site, this.d.sites.list(namespace), types, { metricsRegistry: this.d.metrics.registry });
      await this.d.servers.reconcile({ namespace, name, ...(site.metadata.uid ? { uid: site.metadata.uid } : {}) }, desired).catch((err: unknown) => {
        reasons.push(`${failureReason(err, Reason.ServerNotRunning)}: ${desired.map((s) => s.name).join(", ") || "site servers"}: ${describeError(err)}`);
      });
    }
    for (const t of types) {
      for (const job of t.status?.lastJobs ?? []) {
        if (job.site === name && job.result === "Failed") reasons.push(`${Reason.JobsFailing}: ${t.metadata.name} ${job.kind} run ${job.jobName} failed`);
      }
    }

    const previous = site.status;
    const lastStatusTime = previous?.lastStatusTime ? new Date(previous.lastStatusTime) : undefined;
    if (!complete && lastStatusTime && now.getTime() - lastStatusTime.getTime() > 5 * interval) {
      reasons.push(`${Reason.StatusStale}: counters last refreshed at ${lastStatusTime.toISOString()}`);
    }
    const health = site.spec.enabled === false ? "Unknown" : reasons.length ? "Unhealthy" : "Healthy";
    set(ConditionType.Healthy, reasons.length ? "False" : "True", reasons.length ? Reason.Unhealthy : Reason.Healthy, reasons.length ? reasons.join("; ") : "databases, storage and worker runs are healthy");
    set(ConditionType.Ready, reasons.length ? "False" : "True", reasons.length ? Reason.Unhealthy : Reason.Reconciled, reasons.length ? reasons[0]! : "status is current");
    this.d.metrics.siteHealthy.set({ site: name }, health === "Healthy" ? 1 : 0);

    // When counting failed, keep the last good counters rather than showing zeros.
    const typeCounters = complete ? typeStatuses.sort((a, b) => a.name.localeCompare(b.name)) : (previous?.types ?? []);
    const summary = overall(site, typeCounters);
    const status: GeoSiteStatus = {
      observedGeneration: site.metadata.generation ?? 0,
      health,
      ...(reasons.length ? { healthReasons: reasons } : {}),
      ...summary,
      ...(replicationLagSeconds === undefined ? {} : { replicationLagSeconds: Math.round(replicationLagSeconds * 10) / 10 }),
      ...(eventLog ? { eventLog } : !complete && previous?.eventLog ? { eventLog: previous.eventLog } : {}),
      types: typeCounters,
      conditions,
    };
    if (site.spec.role === "secondary") {
      // Counters just refreshed are fresh whatever lastStatusTime the write below keeps.
      const observed = { ...site, status: { ...status, lastStatusTime: complete ? now.toISOString() : previous?.lastStatusTime } } as GeoSite;
      const primary = topology.primary;
      const readiness = failoverReadiness({
        site: observed,
        types,
        now,
        ...(primary ? { primaryHeartbeatSeconds: parseDuration(primary.spec.statusInterval ?? "1m") / 1000 } : {}),
      });
      const c = failoverCondition(readiness);
      set(ConditionType.FailoverReady, c.status, knownReason(c.reason, Reason.Unhealthy), c.message);
      status.conditions = conditions;
      this.d.metrics.siteFailoverReady.set({ site: name }, readiness.ready ? 1 : 0);
    }
    // Ages move every time they are read: on their own they only ride along with the heartbeat write.
    const changed = withoutAges(status) !== withoutAges(previous);
    // Rewritten often enough that a live operator's status never looks stale to the failover checks.
    const rewriteMs = Math.min(this.d.heartbeatMs ?? 5 * 60_000, statusRewriteSeconds(site.spec) * 1000);
    const heartbeatDue = !lastStatusTime || now.getTime() - lastStatusTime.getTime() >= rewriteMs;
    if (changed || (complete && heartbeatDue)) {
      status.lastStatusTime = complete || !previous?.lastStatusTime ? now.toISOString() : previous.lastStatusTime;
      if (previous?.health !== health && previous?.health) {
        await this.d.events.record(site, health === "Healthy" ? "Normal" : "Warning", health === "Healthy" ? Reason.Healthy : Reason.Unhealthy, reasons.join("; ") || "site is healthy again");
      }
      await patchStatus(this.d.custom, { plural: PLURALS.GeoSite, namespace, name }, previous, status);
    }
    return { requeueAfterMs: interval };
  }

  private async countReplicatedBytes(tracking: Queryable, typeName: string, site: string): Promise<void> {
    const total = await replicatedBytes(tracking, typeName, site).catch(() => undefined);
    if (total === undefined) return;
    // The counter starts at the recorded total when the manager starts (a new series to
    // Prometheus, so no spike in rate()), then grows by what later runs record.
    const key = `${typeName}/${site}`;
    const seen = this.bytesSeen.get(key) ?? 0;
    if (total > seen) {
      this.d.metrics.bytesReplicated.inc({ type: typeName, site }, total - seen);
      this.bytesSeen.set(key, total);
    }
  }

  private async collect(
    site: GeoSite,
    types: ReplicableType[],
    reasons: string[],
    now: Date,
    followsLog: boolean,
  ): Promise<{ complete: boolean; replicationLagSeconds?: number; eventLog?: EventLogStatus; statuses: CountedType[] }> {
    const statuses: CountedType[] = [];
    const primary = site.spec.role === "primary";
    let main, tracking;
    try {
      main = await this.d.access.pool(site, primary ? "main" : "primaryReplica");
      await ping(main);
      if (!primary) {
        tracking = await this.d.access.pool(site, "tracking");
        await ping(tracking);
      }
    } catch (err) {
      reasons.push(`${failureReason(err, Reason.DatabaseUnreachable)}: ${(err as Error).message}`);
      return { complete: false, statuses };
    }
    let replicationLagSeconds: number | undefined;
    try {
      if (primary) {
        await writeHeartbeat(main, site.metadata.name);
      } else {
        replicationLagSeconds = await this.replicaLag(site, main, tracking!, reasons);
      }
    } catch (err) {
      reasons.push(`${Reason.DatabaseUnreachable}: heartbeat: ${(err as Error).message}`);
    }
    let eventLog: EventLogStatus | undefined;
    try {
      if (primary) eventLog = await this.primaryEventLog(site, main, types, now);
      else if (followsLog) eventLog = await this.secondaryEventLog(site, main, tracking!, now, reasons);
      else this.forgetCursor(site);
    } catch (err) {
      reasons.push(`${Reason.DatabaseUnreachable}: event log: ${(err as Error).message}`);
    }
    const previous = new Map((site.status?.types ?? []).map((t) => [t.name, t]));
    for (const t of types) {
      const config = typeRuntimeConfig(t.spec).schema;
      try {
        if (primary) {
          statuses.push({ type: t, status: await primaryStatus(main, config) });
        } else {
          const status = await secondaryStatus(tracking!, main, config, selectiveSyncOf(site.spec));
          const oldestPendingAgeSeconds = await oldestUnsyncedAgeSeconds(tracking!, config);
          await this.countReplicatedBytes(tracking!, t.spec.name, site.metadata.name);
          reasons.push(...secondaryTypeFindings(t.spec.name, status, previous.get(t.spec.name)));
          const hold = await deletionHold(tracking!, t.spec.name);
          const held = hold && !(hold.releasedAt && hold.releasedAt.getTime() >= hold.heldAt.getTime());
          if (held) reasons.push(`${Reason.DeletionsHeld}: ${t.spec.name}: ${hold.pending} deletions held (${hold.reason})`);
          statuses.push({ type: t, status, oldestPendingAgeSeconds, ...(held ? { heldDeletions: hold.pending } : {}) });
        }
      } catch (err) {
        if ((err as { code?: string }).code === UNDEFINED_TABLE) {
          // The ReplicableType controller creates the tables; until it has, say so rather than hide the type.
          reasons.push(`${Reason.TablesMissing}: ${t.spec.name}: ${(err as Error).message}; see the ReplicableType's SchemaReady condition`);
          continue;
        }
        reasons.push(`${Reason.DatabaseUnreachable}: status of ${t.spec.name}: ${(err as Error).message}`);
        return { complete: false, ...(eventLog ? { eventLog } : {}), statuses };
      }
    }
    return { complete: true, ...(replicationLagSeconds === undefined ? {} : { replicationLagSeconds }), ...(eventLog ? { eventLog } : {}), statuses };
  }

  /** Prunes the primary's event log, then shows its bounds; undefined while no type captures changes and the log is empty. */
  private async primaryEventLog(site: GeoSite, main: Queryable, types: ReplicableType[], now: Date): Promise<EventLogStatus | undefined> {
    const { bounds, pruned } = await observePrimaryEventLog(main, eventLogRetentionSecondsOf(site.spec));
    if (pruned > 0) this.d.log.debug({ site: site.metadata.name, pruned }, "pruned the event log");
    const labels = { site: site.metadata.name, url: site.spec.url ?? "" };
    const status = primaryEventLogStatus(bounds, now);
    if (bounds.last) {
      this.d.metrics.lastEventId.set(labels, bounds.last.id);
      this.d.metrics.lastEventTimestamp.set(labels, bounds.last.createdAt.getTime() / 1000);
    }
    if (status.oldestEventAgeSeconds !== undefined) this.d.metrics.oldestEventAge.set(labels, status.oldestEventAgeSeconds);
    else this.d.metrics.oldestEventAge.remove(labels);
    return bounds.last || capturesChanges(types) ? status : undefined;
  }

  /** A secondary that runs no cursor (switched off, or no type captures changes) exports no cursor series: a last lag would keep alerting. */
  private forgetCursor(site: GeoSite): void {
    const labels = { site: site.metadata.name, url: site.spec.url ?? "" };
    for (const gauge of [this.d.metrics.cursorLastEventId, this.d.metrics.cursorLastEventTimestamp, this.d.metrics.cursorLag]) gauge.remove(labels);
  }

  /** Where the secondary's log cursor stands against the primary's newest event, read through `replica`. */
  private async secondaryEventLog(site: GeoSite, replica: Queryable, tracking: Queryable, now: Date, reasons: string[]): Promise<EventLogStatus> {
    const name = site.metadata.name;
    const { bounds, position } = await observeSecondaryEventLog(replica, tracking, name);
    const { status, finding } = secondaryEventLogStatus({ siteName: name, bounds, position, now, maxLagSeconds: cursorMaxLagSecondsOf(site.spec) });
    if (finding) reasons.push(finding);
    const labels = { site: name, url: site.spec.url ?? "" };
    if (position) {
      this.d.metrics.cursorLastEventId.set(labels, position.lastEventId);
      if (position.lastEventAt) this.d.metrics.cursorLastEventTimestamp.set(labels, position.lastEventAt.getTime() / 1000);
    }
    if (status.lagSeconds !== undefined) this.d.metrics.cursorLag.set(labels, status.lagSeconds);
    return status;
  }

  /** The primary's heartbeat read through the replica: its age, or a reason why it proves nothing. */
  private async replicaLag(site: GeoSite, replica: Queryable, tracking: Queryable, reasons: string[]): Promise<number | undefined> {
    const primary = checkTopology(this.d.sites.list(site.metadata.namespace)).primary;
    if (!primary) return undefined;
    let proof = await proveReplica(replica, tracking, primary.metadata.name);
    const accepted = site.metadata.annotations?.[ACCEPT_PRIMARY_IDENTITY_ANNOTATION];
    if (proof.state === "other-identity" && accepted === proof.identity) {
      // Only the identity the replica shows now is accepted: a value naming any other changes nothing.
      const previous = await acceptPrimaryIdentity(tracking, primary.metadata.name, proof.identity);
      const message = `accepted the primary database identity ${proof.identity} of ${primary.metadata.name} (was ${previous ?? proof.pinnedIdentity}) as annotated`;
      this.d.log.warn({ site: site.metadata.name, primary: primary.metadata.name, identity: proof.identity, previous: previous ?? proof.pinnedIdentity }, message);
      await this.d.events.record(site, "Normal", Reason.PrimaryIdentityAccepted, message);
      proof = await proveReplica(replica, tracking, primary.metadata.name);
    }
    if (proof.state === "other-identity") {
      reasons.push(`${Reason.ReplicaUnproven}: ${replicaIdentityChange(primary.metadata.name, proof).replace("<this secondary>", site.metadata.name)}; deletions are held meanwhile`);
      return undefined;
    }
    if (proof.state === "no-heartbeat") {
      reasons.push(`${Reason.ReplicaUnproven}: the primary's read replica has no heartbeat of primary ${primary.metadata.name}; check database.primaryReplicaSecretRef (deletions are held meanwhile)`);
      return undefined;
    }
    if (proof.state === "other-site") {
      reasons.push(`${Reason.ReplicaUnproven}: the primary's read replica carries the heartbeat of ${proof.siteNames.join(", ")}, not of primary ${primary.metadata.name}; check database.primaryReplicaSecretRef`);
      return undefined;
    }
    this.d.metrics.replicationLag.set({ site: site.metadata.name, url: site.spec.url ?? "" }, proof.lagSeconds);
    const limit = maxReplicationLagSecondsOf(site.spec);
    if (proof.lagSeconds > limit) {
      reasons.push(`${Reason.ReplicaLagging}: the primary's read replica is ${Math.round(proof.lagSeconds)} s behind (limit ${limit} s); deletions are held meanwhile`);
    }
    return proof.lagSeconds;
  }
}

/** The status as compared for "changed": without the ages that move on every read. */
function withoutAges(status: GeoSiteStatus | undefined): string {
  const s = status ?? {};
  return canonicalJSON({ ...s, lastStatusTime: undefined, replicationLagSeconds: undefined, eventLog: s.eventLog && { ...s.eventLog, oldestEventAgeSeconds: undefined } });
}

/** How far the registry may trail the primary's count before the site is called unhealthy. */
export function registryBehindLimit(count: number): number {
  return Math.max(100, Math.ceil(count * 0.05));
}

/** Health findings for one type on a secondary, from its counters and the previous status. Pure. */
export function secondaryTypeFindings(name: string, status: ReplicableStatus, previous: Partial<Record<keyof ReplicableStatus, unknown>> | undefined): string[] {
  const findings: string[] = [];
  const failedNow = status.verificationFailedCount ?? 0;
  const failedBefore = typeof previous?.verificationFailedCount === "number" ? previous.verificationFailedCount : 0;
  if (failedNow > failedBefore) {
    findings.push(`${Reason.VerificationFailuresRising}: ${name}: ${failedNow} rows failed verification (was ${failedBefore})`);
  }
  const behind = status.count - (status.registryCount ?? 0);
  if (behind > registryBehindLimit(status.count)) {
    findings.push(`${Reason.RegistryBehind}: ${name}: the registry has ${status.registryCount ?? 0} rows for ${status.count} records on the primary; the consistency runs have not caught up`);
  }
  return findings;
}

/** Overall percentages across types, as kubectl shows them. */
function overall(site: GeoSite, types: TypeStatus[]): Pick<GeoSiteStatus, "synced" | "verified" | "syncedInPercentage" | "verifiedInPercentage"> {
  if (site.spec.role === "primary") {
    const total = types.reduce((n, t) => n + (t.checksumTotalCount ?? 0), 0);
    const done = types.reduce((n, t) => n + (t.checksummedCount ?? 0), 0);
    const verified = total === 0 ? 0 : (done / total) * 100;
    return { synced: "-", verified: total === 0 ? "-" : pct(verified), verifiedInPercentage: verified };
  }
  const registry = types.reduce((n, t) => n + (t.registryCount ?? 0), 0);
  const synced = types.reduce((n, t) => n + (t.syncedCount ?? 0), 0);
  const verified = types.reduce((n, t) => n + (t.verifiedCount ?? 0), 0);
  const s = registry === 0 ? 0 : (synced / registry) * 100;
  const v = registry === 0 ? 0 : (verified / registry) * 100;
  return { synced: registry === 0 ? "-" : pct(s), verified: registry === 0 ? "-" : pct(v), syncedInPercentage: s, verifiedInPercentage: v };
}
