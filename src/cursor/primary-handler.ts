/**
 * What the primary's own log cursor does with events: a created or updated record gets its
 * `_states` row (if missing) and a new checksum at once, so secondaries can verify their new copy
 * within seconds instead of waiting for the verify-primary Job. An update's old checksum was
 * already dropped by the capture trigger (or geo_operator_publish_event) in the writer's
 * transaction; a checksum of older content computed meanwhile is fenced out by its claim.
 * Deleted records need nothing: their `_states` row cascades away with them.
 */
import type { ChangeEvent } from "../registry/event-log.ts";
import { claimChecksumFor, ensureStatesRows } from "../registry/event-targets.ts";
import type { CursorMetrics } from "../metrics/cursor-metrics.ts";
import type { WorkerContext } from "../workers/context.ts";
import { errorMessage, newSummary } from "../workers/summary.ts";
import { checksumClaimedRows } from "../workers/verify-primary.ts";
import { IdPump } from "./id-pump.ts";
import { FRESH_RETRY_WINDOW_MS, lastEventPerRecord } from "./secondary-handler.ts";

class TypeChecksummer {
  readonly ctx: WorkerContext;
  private readonly metrics: CursorMetrics | undefined;
  private readonly pump: IdPump;
  private readonly changedAt = new Map<number, Date>();
  private readonly retries = new Map<number, number>();

  constructor(ctx: WorkerContext, metrics: CursorMetrics | undefined) {
    this.ctx = ctx;
    this.metrics = metrics;
    this.pump = new IdPump(ctx.concurrency, (ids) => this.checksumNow(ids));
  }

  async apply(events: readonly ChangeEvent[]): Promise<void> {
    const { type } = this.ctx;
    for (const e of events) this.metrics?.events.inc({ type: type.name, site: this.ctx.siteName, event: e.event });
    if (!type.verificationEnabled) return;
    const changed = [...lastEventPerRecord(events).values()].filter((e) => e.event !== "deleted");
    if (changed.length === 0) return;
    await ensureStatesRows(this.ctx.primaryDb, type.schema, changed.map((e) => e.modelId));
    for (const e of changed) if (!this.changedAt.has(e.modelId)) this.changedAt.set(e.modelId, e.createdAt);
    this.pump.add(changed.map((e) => e.modelId));
  }

  private async checksumNow(ids: number[]): Promise<void> {
    const { type, log } = this.ctx;
    try {
      const rows = await claimChecksumFor(this.ctx.primaryDb, type.schema, ids);
      if (rows.length === 0) return;
      await checksumClaimedRows({ ...this.ctx, concurrency: rows.length }, rows, newSummary("verify-primary", type.name, this.ctx.siteName), {
        onChecksummed: (id) => {
          const at = this.changedAt.get(id);
          this.changedAt.delete(id);
          this.retries.delete(id);
          if (at) this.metrics?.changeToChecksummed.observe({ type: type.name, site: this.ctx.siteName }, Math.max(0, (Date.now() - at.getTime()) / 1000));
        },
        onFailed: (id) => this.retrySoonIfFresh(id),
      });
    } catch (err) {
      log.warn({ err: errorMessage(err), ids: ids.length }, "event-driven checksum failed; the verify-primary Job will retry");
    }
  }

  /** Like the secondary's: data not readable yet (a row committed before its upload) is tried again for a minute. */
  private retrySoonIfFresh(modelId: number): void {
    const changed = this.changedAt.get(modelId);
    if (!changed || Date.now() - changed.getTime() > FRESH_RETRY_WINDOW_MS || this.ctx.signal.aborted) {
      this.changedAt.delete(modelId);
      this.retries.delete(modelId);
      return;
    }
    const attempt = (this.retries.get(modelId) ?? 0) + 1;
    this.retries.set(modelId, attempt);
    setTimeout(() => this.pump.add([modelId]), Math.min(500 * 2 ** (attempt - 1), 16_000)).unref();
  }

  drain(): Promise<void> {
    return this.pump.idle();
  }
}

/** The primary's handler for runLogCursor: one checksummer per type. */
export class PrimaryEventHandler {
  private readonly types = new Map<string, TypeChecksummer>();

  constructor(types: readonly WorkerContext[], metrics?: CursorMetrics) {
    for (const ctx of types) this.types.set(ctx.type.name, new TypeChecksummer(ctx, metrics));
  }

  async handle(events: readonly ChangeEvent[]): Promise<void> {
    const byType = new Map<string, ChangeEvent[]>();
    for (const e of events) if (this.types.has(e.typeName)) byType.set(e.typeName, [...(byType.get(e.typeName) ?? []), e]);
    for (const [name, typeEvents] of byType) await this.types.get(name)!.apply(typeEvents);
  }

  async drain(): Promise<void> {
    await Promise.all([...this.types.values()].map((t) => t.drain()));
  }

  stop(): void {}
}
