/**
 * Registry consistency for one secondary: every selected primary record gets a registry row, and
 * rows whose record is gone (deleted on the primary, or no longer selected) lose their copy and
 * then their row. Only secondary data is ever removed.
 */
import { deleteRegistryRows, reconcileRegistry } from "../registry/consistency.ts";
import { forgetReplicas, locationsOf } from "../registry/replicas.ts";
import { requireTracking, type WorkerContext } from "./context.ts";
import { errorMessage, newSummary, type WorkerSummary } from "./summary.ts";

export async function runConsistency(ctx: WorkerContext): Promise<WorkerSummary> {
  const tracking = requireTracking(ctx);
  const { type, replicator, log } = ctx;
  const summary = newSummary("consistency", type.name, ctx.siteName);
  const started = Date.now();
  const result = await reconcileRegistry(ctx.primaryDb, tracking, type.schema, ctx.selectiveSync, {
    batchSize: type.batchSizes.consistency,
    onGone: async (gone) => {
      const locations = await locationsOf(tracking, type.name, gone.map((g) => g.modelId));
      const removed: typeof gone = [];
      for (const row of gone) {
        const location = locations.get(row.modelId);
        try {
          if (location) await replicator.removeCopy(location);
          removed.push(row);
        } catch (err) {
          summary.failed++;
          log.warn({ modelId: row.modelId, reason: errorMessage(err) }, "could not remove the secondary copy; keeping its registry row");
        }
      }
      if (removed.length) {
        await deleteRegistryRows(tracking, type.schema, removed.map((r) => r.id));
        await forgetReplicas(tracking, type.name, removed.map((r) => r.modelId));
        summary.deleted += removed.length;
      }
    },
  });
  summary.claimed = result.scanned;
  summary.succeeded = result.inserted;
  summary.seconds = (Date.now() - started) / 1000;
  return summary;
}
