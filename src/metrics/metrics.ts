/**
 * Prometheus metrics. Per type and site, GitLab's ten gauges named after the type's plural
 * (geo_<plural>, geo_<plural>_synced, ...) labelled with the site's name and url; plus the
 * operator's own counters. One registry per manager, passed in: no global state.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { ReplicableStatus } from "../registry/status.ts";

/** GitLab's per-type gauges: metric suffix → status field. */
export const TYPE_GAUGES: [suffix: string, field: keyof ReplicableStatus, help: string][] = [
  ["", "count", "Number of records on the primary"],
  ["_checksum_total", "checksumTotalCount", "Records the primary should checksum"],
  ["_checksummed", "checksummedCount", "Records the primary has checksummed"],
  ["_checksum_failed", "checksumFailedCount", "Records the primary failed to checksum"],
  ["_synced", "syncedCount", "Registry rows synced on this secondary"],
  ["_failed", "failedCount", "Registry rows whose sync failed on this secondary"],
  ["_registry", "registryCount", "Registry rows on this secondary"],
  ["_verification_total", "verificationTotalCount", "Registry rows to verify on this secondary"],
  ["_verified", "verifiedCount", "Registry rows verified on this secondary"],
  ["_verification_failed", "verificationFailedCount", "Registry rows whose verification failed on this secondary"],
];

export class OperatorMetrics {
  readonly registry = new Registry();
  private readonly typeGauges = new Map<string, Gauge<"site" | "url">>();
  readonly reconcileTotal: Counter<"controller" | "result">;
  readonly reconcileErrors: Counter<"controller">;
  readonly reconcileDuration: Histogram<"controller">;
  readonly jobOutcomes: Counter<"type" | "site" | "kind" | "result">;
  readonly bytesReplicated: Counter<"type" | "site">;
  readonly oldestPendingSeconds: Gauge<"type" | "site">;
  readonly siteHealthy: Gauge<"site">;
  /** Secondary: the FailoverReady condition as a number. */
  readonly siteFailoverReady: Gauge<"site">;
  readonly deletionsHeld: Gauge<"type" | "site">;
  readonly replicationLag: Gauge<"site" | "url">;
  /** The change event log on the primary and each secondary's cursor, GitLab's names where GitLab has them. */
  readonly lastEventId: Gauge<"site" | "url">;
  readonly lastEventTimestamp: Gauge<"site" | "url">;
  readonly oldestEventAge: Gauge<"site" | "url">;
  readonly cursorLastEventId: Gauge<"site" | "url">;
  readonly cursorLastEventTimestamp: Gauge<"site" | "url">;
  readonly cursorLag: Gauge<"site" | "url">;
  /** Requests to the aggregated registry API (`kubectl get <type>registries`, RegistryActions). */
  readonly registryApiRequests: Counter<"verb" | "code">;
  readonly registryApiDuration: Histogram<"verb">;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];
    this.reconcileTotal = new Counter({ name: "geo_operator_reconcile_total", help: "Reconciles by controller and result", labelNames: ["controller", "result"], registers });
    this.reconcileErrors = new Counter({ name: "geo_operator_reconcile_errors_total", help: "Reconciles that ended in an error", labelNames: ["controller"], registers });
    this.reconcileDuration = new Histogram({
      name: "geo_operator_reconcile_duration_seconds",
      help: "Reconcile duration",
      labelNames: ["controller"],
      buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.registryApiRequests = new Counter({
      name: "geo_operator_registry_api_requests_total",
      help: "Requests to the registry API by verb (get, list, create, discovery) and HTTP status code",
      labelNames: ["verb", "code"],
      registers,
    });
    this.registryApiDuration = new Histogram({
      name: "geo_operator_registry_api_request_duration_seconds",
      help: "Registry API request duration by verb",
      labelNames: ["verb"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.jobOutcomes = new Counter({ name: "geo_operator_jobs_total", help: "Worker runs by outcome", labelNames: ["type", "site", "kind", "result"], registers });
    this.bytesReplicated = new Counter({ name: "geo_operator_replicated_bytes_total", help: "Bytes copied to secondaries", labelNames: ["type", "site"], registers });
    this.oldestPendingSeconds = new Gauge({
      name: "geo_operator_oldest_pending_seconds",
      help: "Age of the oldest registry row not yet synced",
      labelNames: ["type", "site"],
      registers,
    });
    this.siteHealthy = new Gauge({ name: "geo_operator_site_healthy", help: "1 when the site is Healthy, else 0", labelNames: ["site"], registers });
    this.siteFailoverReady = new Gauge({
      name: "geo_operator_site_failover_ready",
      help: "Secondary: 1 when every failover check passes (the FailoverReady condition), else 0",
      labelNames: ["site"],
      registers,
    });
    this.deletionsHeld = new Gauge({
      name: "geo_operator_deletions_held",
      help: "Secondary copies whose deletion is held until a person releases it (0 when nothing is held)",
      labelNames: ["type", "site"],
      registers,
    });
    this.replicationLag = new Gauge({
      name: "geo_db_replication_lag_seconds",
      help: "Age of the primary's heartbeat read through this secondary's read replica",
      labelNames: ["site", "url"],
      registers,
    });
    const siteGauge = (name: string, help: string) => new Gauge({ name, help, labelNames: ["site", "url"], registers });
    this.lastEventId = siteGauge("geo_last_event_id", "Primary: id of the newest event in the change event log");
    this.lastEventTimestamp = siteGauge("geo_last_event_timestamp", "Primary: when the newest event in the change event log was written (Unix seconds)");
    this.oldestEventAge = siteGauge("geo_event_log_oldest_event_age_seconds", "Primary: age of the oldest event not yet pruned from the change event log");
    this.cursorLastEventId = siteGauge("geo_cursor_last_event_id", "Secondary: id of the newest event this site's log cursor has applied");
    this.cursorLastEventTimestamp = siteGauge("geo_cursor_last_event_timestamp", "Secondary: when the newest event this site's log cursor has applied was written on the primary (Unix seconds)");
    this.cursorLag = siteGauge("geo_cursor_event_lag_seconds", "Secondary: how far the log cursor is behind the primary's newest event, in seconds of event time (0 when caught up)");
  }

  private gauge(name: string, help: string): Gauge<"site" | "url"> {
    let g = this.typeGauges.get(name);
    if (!g) {
      g = new Gauge({ name, help, labelNames: ["site", "url"], registers: [this.registry] });
      this.typeGauges.set(name, g);
    }
    return g;
  }

  /** Publishes GitLab's gauges for one type on one site. */
  setTypeStatus(plural: string, site: { name: string; url: string }, status: ReplicableStatus): void {
    for (const [suffix, field, help] of TYPE_GAUGES) {
      const value = status[field];
      // null: the counter does not apply to this site's role (e.g. registry counts on the primary).
      if (value !== null && value !== undefined) this.gauge(`geo_${plural}${suffix}`, help).set({ site: site.name, url: site.url }, value);
    }
  }

  /** Drops a site's series for a type that no longer exists. */
  forgetType(plural: string, site: { name: string; url: string }): void {
    for (const [suffix] of TYPE_GAUGES) this.typeGauges.get(`geo_${plural}${suffix}`)?.remove({ site: site.name, url: site.url });
  }
}
