/**
 * Registry consistency for one secondary: every selected primary record gets a registry row, and
 * rows whose record is gone (deleted on the primary, or no longer selected) lose their copy and
 * then their row, but only on evidence:
 *
 * - a pass notes rows it finds gone; a copy goes only when a later pass, at least the type's
 *   deletion grace period after the first, still finds its record gone;
 * - a pass whose picture is implausible (replica unproven or lagging, the primary empty, too many
 *   gone at once) holds every deletion of the type and says why (deletion-policy.ts);
 * - a copy whose location another record still uses is kept.
 *
 * A complete pass also removes what interrupted writes left in the secondary's storage (a volume's
 * stale temporary files).
 *
 * A pass may span several runs: the walk stops claiming batches at --max-run or SIGTERM and the
 * next run resumes at the recorded cursor. Only secondary data is ever removed.
 */
import { deleteRegistryRows } from "../registry/consistency.ts";
import {
  clearDeletionHold,
  closePass,
  confirmedCandidates,
  deletionHold,
  finishPass,
  forgetCandidates,
  holdDeletions,
  walkConsistencyPass,
  type GoneInBatch,
} from "../registry/deletions.ts";
import { proveReplica } from "../registry/heartbeat.ts";
import { forgetReplicas, locationsOf, locationsStillUsed } from "../registry/replicas.ts";
import { tableRefs } from "../registry/tables.ts";
import { requireTracking, type WorkerContext } from "./context.ts";
import { decideDeletions } from "./deletion-policy.ts";
import { errorMessage, newSummary, type WorkerSummary } from "./summary.ts";

const DELETE_BATCH = 500;

export async function runConsistency(ctx: WorkerContext): Promise<WorkerSummary> {
  const tracking = requireTracking(ctx);
  const { type, log } = ctx;
  const summary = newSummary("consistency", type.name, ctx.siteName);
  const started = Date.now();
  const walk = await walkConsistencyPass(ctx.primaryDb, tracking, type.schema, ctx.selectiveSync, {
    batchSize: type.batchSizes.consistency,
    shouldStop: () => ctx.signal.aborted || Date.now() - started >= ctx.maxRunMs,
  });
  summary.claimed = walk.scanned;
  summary.succeeded = walk.inserted;
  if (!walk.complete) {
    log.info({ scanned: walk.passScanned }, "consistency pass continues in the next run");
  } else {
    summary.deleted = await settleDeletions(ctx, walk.pass, walk.passScanned, summary);
    await finishPass(tracking, type.name, walk.pass);
    // Once per pass, like the deletions: what crashed writes left in this site's storage.
    if (!ctx.signal.aborted && ctx.replicator.removeLeftovers) {
      const removed = await ctx.replicator.removeLeftovers(ctx.signal);
      if (removed > 0) log.info({ removed }, "removed temporary files that interrupted writes left behind");
    }
  }
  summary.seconds = (Date.now() - started) / 1000;
  return summary;
}

async function settleDeletions(ctx: WorkerContext, pass: { startedAt: string }, scanned: number, summary: WorkerSummary): Promise<number> {
  const tracking = requireTracking(ctx);
  const { type, log } = ctx;
  const settings = type.deletion;
  const outcome = await closePass(tracking, tableRefs(type.schema).registry, type.name, pass, settings.graceSeconds);
  const decision = decideDeletions({
    typeName: type.name,
    primarySiteName: ctx.primarySiteName,
    outcome,
    passScanned: scanned,
    replica: await proveReplica(ctx.primaryDb, tracking, ctx.primarySiteName),
    settings: { ...settings, maxReplicationLagSeconds: ctx.maxReplicationLagSeconds },
    hold: await deletionHold(tracking, type.name),
  });
  if (decision.action === "nothing") {
    await clearDeletionHold(tracking, type.name);
    return 0;
  }
  if (decision.action === "hold") {
    await holdDeletions(tracking, type.name, { reason: decision.reason, message: decision.message, pending: outcome.goneThisPass });
    summary.held = outcome.goneThisPass;
    log.warn({ reason: decision.reason, gone: outcome.goneThisPass, registry: outcome.registryRows }, decision.message);
    return 0;
  }
  if (decision.released) log.warn({ gone: outcome.goneThisPass }, "held deletions were released: deleting what two passes confirmed");
  let deleted = 0;
  let after = 0;
  for (;;) {
    const rows = await confirmedCandidates(tracking, type.name, pass, settings.graceSeconds, after, DELETE_BATCH);
    if (rows.length === 0) break;
    after = rows[rows.length - 1]!.modelId;
    deleted += await removeCopies(ctx, rows, summary);
  }
  await clearDeletionHold(tracking, type.name);
  return deleted;
}

/**
 * Removes the secondary copies of records whose deletion is confirmed, then their registry rows,
 * replica records and deletion candidates. A copy whose location another record still uses is
 * kept; a copy that cannot be removed keeps its registry row (tried again later). Only secondary
 * data is touched. Returns how many rows went. Used by consistency passes and the log cursor.
 */
export async function removeCopies(ctx: WorkerContext, rows: readonly GoneInBatch[], summary: WorkerSummary): Promise<number> {
  const tracking = requireTracking(ctx);
  const { type, log, replicator } = ctx;
  const modelIds = rows.map((r) => r.modelId);
  const locations = await locationsOf(tracking, type.name, modelIds);
  const shared = await locationsStillUsed(tracking, [...new Set([...locations.values()].filter((l): l is string => !!l))], { typeName: type.name, excludingModelIds: modelIds });
  const removed: GoneInBatch[] = [];
  for (const row of rows) {
    const location = locations.get(row.modelId);
    try {
      if (location && !shared.has(location)) await replicator.removeCopy(location);
      else if (location) log.info({ modelId: row.modelId, location }, "copy kept: another record still uses its location");
      removed.push(row);
    } catch (err) {
      summary.failed++;
      log.warn({ modelId: row.modelId, reason: errorMessage(err) }, "could not remove the secondary copy; keeping its registry row");
    }
  }
  if (removed.length === 0) return 0;
  await deleteRegistryRows(tracking, type.schema, removed.map((r) => r.id));
  await forgetReplicas(tracking, type.name, removed.map((r) => r.modelId));
  await forgetCandidates(tracking, type.name, removed.map((r) => r.modelId));
  return removed.length;
}
