/**
 * Secondary sync: claims rows that need a copy (pending, or failed and due), copies each from the
 * primary through the type's Replicator and records the outcome in the registry.
 *
 * A row becomes synced only through the conditional started → synced update, after the copy is
 * complete: a crash, a timeout or a SIGTERM leaves it started (the stuck-started timeout returns
 * it to failed), never synced with partial data.
 */
import { failStuckSyncs, claimSyncWork, markSynced, markSyncFailed } from "../registry/sync-state.ts";
import { recordLocation } from "../registry/replicas.ts";
import { loadModelRecords } from "../strategies/model-records.ts";
import { InvalidLocationError, MissingOnPrimaryError } from "../strategies/replicator.ts";
import { clockOption, itemSignal, requireTracking, type WorkerContext } from "./context.ts";
import { errorMessage, forEachBounded, newSummary, type WorkerSummary } from "./summary.ts";

export async function runSync(ctx: WorkerContext): Promise<WorkerSummary> {
  const tracking = requireTracking(ctx);
  const { type, replicator, log } = ctx;
  const summary = newSummary("sync", type.name, ctx.siteName);
  const started = Date.now();
  const stuck = await failStuckSyncs(tracking, type.schema, { timeoutSeconds: type.timeoutsMs.stuckStarted / 1000, ...clockOption(ctx) });
  if (stuck.length) log.warn({ rows: stuck.length }, "rows stuck in started returned to failed");

  while (!ctx.signal.aborted && Date.now() - started < ctx.maxRunMs) {
    const rows = await claimSyncWork(tracking, type.schema, { limit: ctx.concurrency, ...clockOption(ctx) });
    if (rows.length === 0) break;
    summary.claimed += rows.length;
    const records = await loadModelRecords(ctx.primaryDb, type, rows.map((r) => r.modelId), replicator.columns);

    await forEachBounded(rows, ctx.concurrency, async (row) => {
      const record = records.get(row.modelId);
      const fail = async (message: string, missingOnPrimary = false) => {
        summary.failed++;
        await markSyncFailed(tracking, type.schema, row.id, { message, missingOnPrimary, ...clockOption(ctx) });
        log.warn({ modelId: row.modelId, missingOnPrimary, reason: message }, "sync failed");
      };
      if (!record) {
        // Deleted on the primary since the registry row was made; consistency removes the row.
        return fail(`record ${row.modelId} no longer exists on the primary`, true);
      }
      try {
        const result = await replicator.sync(record, itemSignal(ctx, type.timeoutsMs.sync));
        if (ctx.signal.aborted) return; // stopping: leave the row started rather than guess
        await recordLocation(tracking, type.name, row.modelId, result.location);
        const marked = await markSynced(tracking, type.schema, row.id, { missingOnPrimary: result.missingOnPrimary, ...clockOption(ctx) });
        if (marked) {
          summary.succeeded++;
          summary.bytes += result.bytes;
        } else {
          summary.requeued++;
          log.info({ modelId: row.modelId }, "resync requested during the copy; the row stays pending");
        }
      } catch (err) {
        if (ctx.signal.aborted) return;
        if (err instanceof MissingOnPrimaryError) return fail(err.message, true);
        if (err instanceof InvalidLocationError) return fail(err.message);
        return fail(errorMessage(err));
      }
    });
  }
  summary.seconds = (Date.now() - started) / 1000;
  return summary;
}
