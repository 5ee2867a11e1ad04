/**
 * What a secondary's log cursor does with events, per type (each with the WorkerContext a Job of
 * that type would have):
 *
 * - created / updated: the registry row is made pending (created if missing, resynced if it
 *   existed: a copy in flight is then fenced out and the new content copied), durably, before
 *   the cursor's position moves; then the row is claimed and copied at once, within the site's
 *   capacity for the strategy, and verified as soon as the primary's new checksum is readable.
 * - deleted: the record's registry row becomes a deletion candidate (first sighting). The copy
 *   goes only on a second sighting at least the type's grace period later, under the same
 *   plausibility rules as consistency passes (replica proven and fresh, no hold, not too many at
 *   once); otherwise it waits or the type's deletions are held.
 *
 * Events of types this site does not replicate (unknown, replication disabled) are passed over.
 * Everything the cursor does not finish (a failure, a stop) stays in the registry for the Jobs.
 */
import { SYNC_EVERYTHING } from "../registry/config.ts";
import { ensureRegistryRows } from "../registry/consistency.ts";
import { clearDeletionHold, deletionHold, holdDeletions } from "../registry/deletions.ts";
import type { ChangeEvent } from "../registry/event-log.ts";
import {
  claimSyncFor,
  clearDeletionCandidates,
  dueDeletionCandidates,
  noteDeletionCandidates,
  registryRowCount,
  selectedModelIds,
} from "../registry/event-targets.ts";
import { proveReplica } from "../registry/heartbeat.ts";
import { requestResync } from "../registry/sync-state.ts";
import { claimVerificationWork, readPrimaryChecksums } from "../registry/verification-state.ts";
import type { CursorMetrics } from "../metrics/cursor-metrics.ts";
import { requireTracking, type WorkerContext } from "../workers/context.ts";
import { removeCopies } from "../workers/consistency.ts";
import { decideDeletions } from "../workers/deletion-policy.ts";
import { errorMessage, newSummary } from "../workers/summary.ts";
import { syncClaimedRows } from "../workers/sync.ts";
import { verifyClaimedRows } from "../workers/verify-secondary.ts";
import { IdPump } from "./id-pump.ts";

/** How long a synced row waits for the primary's new checksum before verification is left to the Job. */
export const VERIFY_WAIT_MS = 60_000;
const VERIFY_POLL_MS = 200;
/** How long after its change a failed event-driven sync is retried by the cursor itself. */
export const FRESH_RETRY_WINDOW_MS = 60_000;
/** How often due deletion candidates are looked at again. */
export const DELETION_CHECK_MS = 5_000;

/** The last event per record decides what to do with it. */
export function lastEventPerRecord(events: readonly ChangeEvent[]): Map<number, ChangeEvent> {
  const last = new Map<number, ChangeEvent>();
  for (const e of [...events].sort((a, b) => a.id - b.id)) {
    const before = last.get(e.modelId);
    // created then updated in one batch is still a new record; the earliest change time counts for latency.
    last.set(e.modelId, before && e.event !== "deleted" && before.event !== "deleted" ? { ...e, event: before.event === "created" ? "created" : e.event, createdAt: before.createdAt } : e);
  }
  return last;
}

class TypeFollower {
  private readonly syncs: IdPump;
  private readonly verifying = new Map<number, number>();
  /** Earliest unsynced change per record, for the change-to-synced histogram. */
  private readonly changedAt = new Map<number, Date>();
  /** Retries so far of records whose event-driven sync failed (retrySoonIfFresh). */
  private readonly missingSince = new Map<number, number>();
  private verifyTimer: NodeJS.Timeout | undefined;
  private deletionTimer: NodeJS.Timeout | undefined;
  private deletionCheck: Promise<void> = Promise.resolve();

  readonly ctx: WorkerContext;
  private readonly metrics: CursorMetrics | undefined;

  constructor(ctx: WorkerContext, metrics: CursorMetrics | undefined) {
    this.ctx = ctx;
    this.metrics = metrics;
    this.syncs = new IdPump(ctx.concurrency, (ids) => this.syncNow(ids));
    this.deletionTimer = setInterval(() => this.checkDeletions(), Math.min(DELETION_CHECK_MS, Math.max(1_000, ctx.type.deletion.graceSeconds * 1000)));
    this.deletionTimer.unref();
  }

  async apply(events: readonly ChangeEvent[]): Promise<void> {
    const { type, log } = this.ctx;
    const tracking = requireTracking(this.ctx);
    const last = lastEventPerRecord(events);
    const upserts = [...last.values()].filter((e) => e.event !== "deleted").map((e) => e.modelId);
    const deletes = [...last.values()].filter((e) => e.event === "deleted").map((e) => e.modelId);
    for (const e of events) this.metrics?.events.inc({ type: type.name, site: this.ctx.siteName, event: e.event });

    const selected = await selectedModelIds(this.ctx.primaryDb, type.schema, this.ctx.selectiveSync, upserts);
    const wanted = upserts.filter((id) => selected.has(id));
    if (wanted.length > 0) {
      await ensureRegistryRows(tracking, type.schema, wanted);
      const updated = wanted.filter((id) => last.get(id)!.event === "updated");
      if (updated.length > 0) await requestResync(tracking, type.schema, updated);
      await clearDeletionCandidates(tracking, type.schema, wanted);
    }
    let gone: number[] = [];
    if (deletes.length > 0) {
      const present = await selectedModelIds(this.ctx.primaryDb, type.schema, SYNC_EVERYTHING, deletes);
      gone = deletes.filter((id) => !present.has(id));
      await noteDeletionCandidates(tracking, type.schema, gone);
    }
    log.debug({ synced: wanted.length, gone: gone.length }, "events applied to the registry");
    if (!type.replicationEnabled) return;
    for (const id of wanted) {
      const at = last.get(id)!.createdAt;
      const earlier = this.changedAt.get(id);
      if (!earlier || at < earlier) this.changedAt.set(id, at);
    }
    this.syncs.add(wanted);
    if (gone.length > 0 && type.deletion.graceSeconds === 0) this.checkDeletions();
  }

  private async syncNow(ids: number[]): Promise<void> {
    const { type, log } = this.ctx;
    try {
      const rows = await claimSyncFor(requireTracking(this.ctx), type.schema, ids);
      if (rows.length === 0) return;
      const summary = newSummary("sync", type.name, this.ctx.siteName);
      await syncClaimedRows({ ...this.ctx, concurrency: rows.length }, rows, summary, undefined, {
        onSynced: (row) => {
          const at = this.changedAt.get(row.modelId);
          this.changedAt.delete(row.modelId);
          this.missingSince.delete(row.modelId);
          if (at) this.metrics?.changeToSynced.observe({ type: type.name, site: this.ctx.siteName }, Math.max(0, (Date.now() - at.getTime()) / 1000));
          if (type.verificationEnabled) this.verifySoon(row.modelId);
        },
        onFailed: (row, why) => this.retrySoonIfFresh(row.modelId, why.missingOnPrimary),
        // Another claim overtook this copy and the row is pending again: copy it once more now
        // (the pump runs an id again after its run in flight) rather than wait for the sync Job.
        onRequeued: (row) => this.syncs.add([row.modelId]),
      });
    } catch (err) {
      // The rows stay claimed or pending; the stuck timeout and the sync Job take them from here.
      log.warn({ err: errorMessage(err), ids: ids.length }, "event-driven sync failed; the sync Job will retry");
    }
  }

  /**
   * A record whose data is not on the primary yet (an application that commits the row before its
   * upload finishes, a push still in flight) is tried again within the next minute, from 0.5 s
   * doubling, before it is left to the sync Job's backoff: the event said the data is coming.
   */
  private retrySoonIfFresh(modelId: number, missingOnPrimary: boolean): void {
    const changed = this.changedAt.get(modelId);
    if (!changed || Date.now() - changed.getTime() > FRESH_RETRY_WINDOW_MS || this.ctx.signal.aborted) {
      this.missingSince.delete(modelId);
      return;
    }
    const attempt = (this.missingSince.get(modelId) ?? 0) + 1;
    this.missingSince.set(modelId, attempt);
    const delay = Math.min(500 * 2 ** (attempt - 1), 16_000) * (missingOnPrimary ? 1 : 2);
    const timer = setTimeout(() => this.syncs.add([modelId]), delay);
    timer.unref();
  }

  private verifySoon(modelId: number): void {
    if (!this.verifying.has(modelId)) this.verifying.set(modelId, Date.now() + VERIFY_WAIT_MS);
    this.verifyTimer ??= setTimeout(() => void this.verifyDue(), VERIFY_POLL_MS);
  }

  private async verifyDue(): Promise<void> {
    const { type, log } = this.ctx;
    try {
      const ids = [...this.verifying.keys()];
      const checksums = await readPrimaryChecksums(this.ctx.primaryDb, type.schema, ids);
      if (checksums.size > 0) {
        const rows = await claimVerificationWork(requireTracking(this.ctx), type.schema, { limit: checksums.size, primaryChecksums: checksums });
        for (const id of checksums.keys()) this.verifying.delete(id);
        if (rows.length > 0) await verifyClaimedRows({ ...this.ctx, concurrency: Math.min(rows.length, this.ctx.concurrency) }, rows, newSummary("verify", type.name, this.ctx.siteName));
      }
      const now = Date.now();
      for (const [id, until] of this.verifying) if (until <= now) this.verifying.delete(id);
    } catch (err) {
      log.warn({ err: errorMessage(err) }, "event-driven verification failed; the verify Job will retry");
    } finally {
      this.verifyTimer = undefined;
      if (this.verifying.size > 0 && !this.ctx.signal.aborted) this.verifyTimer = setTimeout(() => void this.verifyDue(), VERIFY_POLL_MS);
    }
  }

  /** Second sightings of due candidates, one check at a time. */
  checkDeletions(): void {
    this.deletionCheck = this.deletionCheck.then(() => this.settleDeletions()).catch((err: unknown) => {
      this.ctx.log.warn({ err: errorMessage(err) }, "event-driven deletion check failed; consistency passes still apply");
    });
  }

  private async settleDeletions(): Promise<void> {
    const { type, log } = this.ctx;
    const tracking = requireTracking(this.ctx);
    if (this.ctx.signal.aborted) return;
    const settings = type.deletion;
    const due = await dueDeletionCandidates(tracking, type.schema, settings.graceSeconds, settings.maxPerPass + 1);
    if (due.length === 0) return;
    const back = await selectedModelIds(this.ctx.primaryDb, type.schema, this.ctx.selectiveSync, due.map((d) => d.modelId));
    await clearDeletionCandidates(tracking, type.schema, [...back]);
    const confirmed = due.filter((d) => !back.has(d.modelId));
    if (confirmed.length === 0) return;
    const hold = await deletionHold(tracking, type.name);
    const decision = decideDeletions({
      typeName: type.name,
      primarySiteName: this.ctx.primarySiteName,
      outcome: { goneThisPass: confirmed.length, confirmed: confirmed.length, registryRows: await registryRowCount(tracking, type.schema) },
      // Not a walk of the whole table: the "primary returned no rows" rule belongs to passes.
      passScanned: 1,
      replica: await proveReplica(this.ctx.primaryDb, tracking, this.ctx.primarySiteName),
      settings: { ...settings, maxReplicationLagSeconds: this.ctx.maxReplicationLagSeconds },
      hold,
    });
    if (decision.action === "hold") {
      await holdDeletions(tracking, type.name, { reason: decision.reason, message: decision.message, pending: confirmed.length });
      log.warn({ reason: decision.reason, gone: confirmed.length }, decision.message);
      return;
    }
    if (decision.action !== "delete") return;
    const deleted = await removeCopies(this.ctx, confirmed, newSummary("consistency", type.name, this.ctx.siteName));
    if (hold && decision.released) await clearDeletionHold(tracking, type.name);
    log.info({ deleted }, "copies of records deleted on the primary were removed (two sightings, grace period apart)");
  }

  /** Resolves once the syncs started so far are done (tests, shutdown). */
  async drain(): Promise<void> {
    await this.syncs.idle();
    await this.deletionCheck;
  }

  get pendingSyncs(): number {
    return this.syncs.size;
  }

  stop(): void {
    clearInterval(this.deletionTimer);
    clearTimeout(this.verifyTimer);
  }
}

/** The secondary's handler for runLogCursor: one follower per replicated type. */
export class SecondaryEventHandler {
  private readonly followers = new Map<string, TypeFollower>();

  constructor(types: readonly WorkerContext[], metrics?: CursorMetrics) {
    for (const ctx of types) this.followers.set(ctx.type.name, new TypeFollower(ctx, metrics));
  }

  async handle(events: readonly ChangeEvent[]): Promise<void> {
    const byType = new Map<string, ChangeEvent[]>();
    for (const e of events) if (this.followers.has(e.typeName)) byType.set(e.typeName, [...(byType.get(e.typeName) ?? []), e]);
    for (const [name, typeEvents] of byType) await this.followers.get(name)!.apply(typeEvents);
    // Backpressure: a cursor far ahead of its copies only piles up claims in memory.
    for (const follower of this.followers.values()) {
      while (follower.pendingSyncs > follower.ctx.concurrency * 20 && !follower.ctx.signal.aborted) await new Promise((r) => setTimeout(r, 50));
    }
  }

  async drain(): Promise<void> {
    await Promise.all([...this.followers.values()].map((f) => f.drain()));
  }

  stop(): void {
    for (const f of this.followers.values()) f.stop();
  }
}
