/**
 * Secondary sync: claims rows that need a copy (pending, or failed and due), copies each from the
 * primary through the type's Replicator and records the outcome in the registry.
 *
 * A row becomes synced only through the started → synced update fenced by its claim, after the
 * copy is complete: a crash, a timeout or a SIGTERM leaves it started (the stuck-started timeout
 * returns it to failed), never synced with partial data, and a worker whose claim was superseded
 * (a resync, a re-claim after the timeout, another pod) cannot finish the newer claim.
 *
 * A run in which nearly every item is "not found" on the primary stops: that is a wrong bucket,
 * base URL, prefix or token far more often than data that is really gone.
 */
import { strategyFor } from "../strategies/catalog.ts";
import {
  failStuckSyncs,
  claimSyncWork,
  markSynced,
  markSyncFailed,
  requeueMissingOnPrimary,
  requestResync,
  requestResyncOfOldest,
} from "../registry/sync-state.ts";
import { recordLocation } from "../registry/replicas.ts";
import { loadModelRecords } from "../strategies/model-records.ts";
import { AmbiguousNotFoundError, InvalidLocationError, MissingOnPrimaryError } from "../strategies/replicator.ts";
import type { RegistryRow } from "../registry/registry-row.ts";
import { clockOption, itemSignal, requireTracking, type WorkerContext } from "./context.ts";
import { errorMessage, forEachBounded, newSummary, type WorkerSummary } from "./summary.ts";

/** A run stops once at least this many items were tried and nearly all of them were not found. */
export const NOT_FOUND_MIN_ITEMS = 20;
export const NOT_FOUND_SHARE = 0.9;

/** The run stopped because its outcome says the configuration, not the data, is wrong. */
export class SuspiciousRunError extends Error {
  override readonly name = "SuspiciousRunError";
}

export async function runSync(ctx: WorkerContext): Promise<WorkerSummary> {
  const tracking = requireTracking(ctx);
  const { type, log } = ctx;
  const summary = newSummary("sync", type.name, ctx.siteName);
  const started = Date.now();
  const stuck = await failStuckSyncs(tracking, type.schema, { timeoutSeconds: type.timeoutsMs.stuckStarted / 1000, ...clockOption(ctx) });
  if (stuck.length) log.warn({ rows: stuck.length }, "rows stuck in started returned to failed");
  const recheck = await requeueMissingOnPrimary(tracking, type.schema, clockOption(ctx));
  if (recheck) log.info({ rows: recheck }, "rows missing on the primary are looked at again");
  if (strategyFor(type.strategy).primaryDataMayChange && !type.verificationEnabled) {
    // No primary checksums to notice a change (a push) by: refresh the longest-unrefreshed mirrors instead
    // (a fetch of an unchanged repository is one ls-remote).
    const refreshed = await requestResyncOfOldest(tracking, type.schema, type.intervalsMs.verification / 1000, { limit: ctx.concurrency * 10, ...clockOption(ctx) });
    if (refreshed) log.info({ rows: refreshed }, "verification is off: copies refreshed to follow changes on the primary");
  }

  const outcome = { tried: 0, notFound: 0 };
  while (!ctx.signal.aborted && Date.now() - started < ctx.maxRunMs) {
    const rows = await claimSyncWork(tracking, type.schema, { limit: ctx.concurrency, ...clockOption(ctx) });
    if (rows.length === 0) break;
    await syncClaimedRows(ctx, rows, summary, outcome);
    if (outcome.tried >= NOT_FOUND_MIN_ITEMS && outcome.notFound >= outcome.tried * NOT_FOUND_SHARE) {
      summary.seconds = (Date.now() - started) / 1000;
      throw new SuspiciousRunError(
        `${outcome.notFound} of ${outcome.tried} items were not found on the primary: the configuration is probably wrong ` +
          `(check ${strategyFor(type.strategy).notFoundSuspects}); ` +
          `stopping this run. The rows are failed with backoff, not deleted or marked synced.`,
      );
    }
  }
  summary.seconds = (Date.now() - started) / 1000;
  return summary;
}

export interface SyncHooks {
  onSynced?(row: RegistryRow): void | Promise<void>;
  /** The copy was not this claim's to complete, and the row was asked to be copied once more. */
  onRequeued?(row: RegistryRow): void;
  onFailed?(row: RegistryRow, why: { missingOnPrimary: boolean }): void;
}

/** How many items a run tried and how many of them the primary did not have. */
export interface NotFoundTally {
  tried: number;
  notFound: number;
}

/**
 * Copies rows this caller has claimed (sync started, RegistryRow.syncClaim set), at most
 * `ctx.concurrency` at once, and records each outcome fenced by its claim. Used by the sync Job
 * and by the log cursor, which claims the rows its events name. `hooks.onSynced` is called for
 * each row that became synced under its claim, `hooks.onFailed` for each that failed.
 */
export async function syncClaimedRows(
  ctx: WorkerContext,
  rows: readonly RegistryRow[],
  summary: WorkerSummary,
  tally: NotFoundTally = { tried: 0, notFound: 0 },
  hooks: SyncHooks = {},
): Promise<void> {
  const tracking = requireTracking(ctx);
  const { type, replicator, log } = ctx;
  summary.claimed += rows.length;
  const records = await loadModelRecords(ctx.primaryDb, type, rows.map((r) => r.modelId), replicator.columns);
  await forEachBounded(rows, ctx.concurrency, async (row) => {
    const claim = row.syncClaim!;
    const fail = async (message: string, missingOnPrimary = false) => {
      summary.failed++;
      const failed = await markSyncFailed(tracking, type.schema, row.id, { claim, message, missingOnPrimary, ...clockOption(ctx) });
      log.warn({ modelId: row.modelId, missingOnPrimary, reason: message }, "sync failed");
      if (failed) hooks.onFailed?.(row, { missingOnPrimary });
    };
    const record = records.get(row.modelId);
    if (!record) {
      // Deleted on the primary since the registry row was made; consistency removes the row.
      return fail(`record ${row.modelId} no longer exists on the primary`, true);
    }
    tally.tried++;
    try {
      const result = await replicator.sync(record, itemSignal(ctx, type.timeoutsMs.sync), { repair: row.checksumMismatch });
      if (ctx.signal.aborted) return; // stopping: leave the row started rather than guess
      await recordLocation(tracking, type.name, row.modelId, result.location);
      if (result.missingOnPrimary) tally.notFound++;
      const marked = await markSynced(tracking, type.schema, row.id, {
        claim,
        missingOnPrimary: result.missingOnPrimary,
        recheckAfterSeconds: type.timeoutsMs.missingOnPrimaryRecheck / 1000,
        ...clockOption(ctx),
      });
      if (marked) {
        summary.succeeded++;
        summary.bytes += result.bytes;
        await hooks.onSynced?.(row);
      } else {
        // A newer claim owns the row (a resync, a re-claim after the stuck timeout, another Pod),
        // and it may already have written the newer data and marked the row synced before this
        // older copy landed on top of it. The row must not stay synced over a copy nobody vouches
        // for: ask for one more copy (pending again; a claim still in flight is thereby fenced
        // out too and asks the same), which then copies the primary's current data.
        summary.requeued++;
        await requestResync(tracking, type.schema, [row.modelId]);
        hooks.onRequeued?.(row);
        log.info({ modelId: row.modelId }, "the row was resynced or claimed again during the copy; asked for one more copy, as this one may have landed over the newer claim's");
      }
    } catch (err) {
      if (ctx.signal.aborted) return;
      if (err instanceof MissingOnPrimaryError) {
        tally.notFound++;
        return fail(err.message, true);
      }
      if (err instanceof AmbiguousNotFoundError) {
        tally.notFound++;
        return fail(err.message);
      }
      if (err instanceof InvalidLocationError) return fail(err.message);
      return fail(errorMessage(err));
    }
  });
}
