/**
 * What a log cursor process measures itself. The positions (geo_cursor_last_event_id and
 * _timestamp, geo_last_event_id on the primary) are exported by the manager from the databases
 * (metrics.ts), so they are right even while a cursor is down; this is what only the cursor sees.
 *
 * Several cursors may share one registry (the in-process executor runs one per site in the
 * manager, on the manager's registry): a metric already registered there is reused, and the
 * `site` label keeps their series apart.
 */
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

export class CursorMetrics {
  readonly changeToSynced: Histogram<"type" | "site">;
  readonly changeToChecksummed: Histogram<"type" | "site">;
  readonly events: Counter<"type" | "site" | "event">;
  readonly abandoned: Counter<"site">;
  readonly gaps: Gauge<"site">;
  readonly position: Gauge<"site">;

  constructor(registry: Registry) {
    const registers = [registry];
    const existing = <T>(name: string, create: () => T): T => (registry.getSingleMetric(name) as T | undefined) ?? create();
    const buckets = [0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 300, 900];
    this.changeToSynced = existing("geo_event_sync_latency_seconds", () => new Histogram({
      name: "geo_event_sync_latency_seconds",
      help: "Secondary: time from a change's event on the primary to its registry row synced with that change in place, for rows the log cursor synced",
      labelNames: ["type", "site"],
      buckets,
      registers,
    }));
    this.changeToChecksummed = existing("geo_event_checksum_latency_seconds", () => new Histogram({
      name: "geo_event_checksum_latency_seconds",
      help: "Primary: time from a change's event to its new primary checksum, for records the primary's log cursor checksummed",
      labelNames: ["type", "site"],
      buckets,
      registers,
    }));
    this.events = existing("geo_cursor_events_total", () => new Counter({ name: "geo_cursor_events_total", help: "Events the log cursor applied, by type and kind", labelNames: ["type", "site", "event"], registers }));
    this.abandoned = existing("geo_cursor_events_abandoned_total", () => new Counter({
      name: "geo_cursor_events_abandoned_total",
      help: "Event ids the cursor gave up waiting for (rolled back, or committed later than the gap timeout); scanning covers them",
      labelNames: ["site"],
      registers,
    }));
    this.gaps = existing("geo_cursor_gaps", () => new Gauge({ name: "geo_cursor_gaps", help: "Event ids skipped by the cursor and still awaited", labelNames: ["site"], registers }));
    this.position = existing("geo_cursor_process_last_event_id", () => new Gauge({ name: "geo_cursor_process_last_event_id", help: "The newest event id this cursor process has applied", labelNames: ["site"], registers }));
  }
}
