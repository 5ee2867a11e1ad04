/**
 * Primary verification: makes sure every model record has a `_states` row (new ids every run, a
 * whole walk once per consistency interval, for ids that committed late), then checksums
 * pending records, failed ones whose retry is due and succeeded ones older than the
 * re-verification interval. Reads from primary storage only; writes only `_states`.
 */
import { markChecksumFailed, markChecksumSucceeded, claimChecksumWork, failStuckChecksums, setVerificationEnabled } from "../registry/checksum-state.ts";
import type { ChecksumStateRow } from "../registry/checksum-state.ts";
import { backfillStatesIncrementally } from "../registry/states-backfill.ts";
import { loadModelRecords } from "../strategies/model-records.ts";
import { clockOption, itemSignal, type WorkerContext } from "./context.ts";
import { markPrimaryReverificationDue } from "../registry/reverification.ts";
import { errorMessage, forEachBounded, newSummary, type WorkerSummary } from "./summary.ts";

export async function runVerifyPrimary(ctx: WorkerContext): Promise<WorkerSummary> {
  const { type, log, primaryDb } = ctx;
  const summary = newSummary("verify-primary", type.name, ctx.siteName);
  const started = Date.now();
  const backfill = await backfillStatesIncrementally(primaryDb, type.schema, {
    typeName: type.name,
    batchSize: type.batchSizes.backfill,
    fullWalkEverySeconds: type.intervalsMs.consistency / 1000,
  });
  if (backfill.inserted) log.info({ inserted: backfill.inserted }, "created missing verification state rows");
  // Follow the switch both ways, so rows created while it was off are checksummed once it is on.
  const switched = await setVerificationEnabled(primaryDb, type.schema, "primary", type.verificationEnabled);
  if (switched) log.info({ rows: switched, enabled: type.verificationEnabled }, "verification state rows follow the type's verification switch");
  if (!type.verificationEnabled) {
    summary.seconds = (Date.now() - started) / 1000;
    return summary;
  }
  await failStuckChecksums(primaryDb, type.schema, { timeoutSeconds: type.timeoutsMs.stuckStarted / 1000, ...clockOption(ctx) });
  await markPrimaryReverificationDue(primaryDb, type.schema, type.minimumReverificationIntervalMs, clockOption(ctx));

  while (!ctx.signal.aborted && Date.now() - started < ctx.maxRunMs) {
    const rows = await claimChecksumWork(primaryDb, type.schema, { limit: ctx.concurrency, ...clockOption(ctx) });
    if (rows.length === 0) break;
    await checksumClaimedRows(ctx, rows, summary);
  }
  summary.seconds = (Date.now() - started) / 1000;
  return summary;
}

/**
 * Checksums records this caller has claimed in `_states` and records each result fenced by its
 * claim (a record changed meanwhile keeps its reset). Used by the verify-primary Job and by the
 * primary's log cursor for records its events name.
 */
export async function checksumClaimedRows(
  ctx: WorkerContext,
  rows: readonly ChecksumStateRow[],
  summary: WorkerSummary,
  hooks: { onChecksummed?(modelId: number): void; onFailed?(modelId: number): void } = {},
): Promise<void> {
  const { type, replicator, log, primaryDb } = ctx;
  summary.claimed += rows.length;
  const records = await loadModelRecords(primaryDb, type, rows.map((r) => r.modelId), replicator.columns);
  await forEachBounded(rows, ctx.concurrency, async (row) => {
    const record = records.get(row.modelId);
    try {
      // The _states row cascades away with its record; a missing record here is a race with a delete.
      if (!record) throw new Error(`record ${row.modelId} no longer exists`);
      const result = await replicator.checksumPrimary(record, itemSignal(ctx, type.timeoutsMs.sync));
      if (ctx.signal.aborted) return;
      if (await markChecksumSucceeded(primaryDb, type.schema, row.modelId, { claim: row.claim!, checksum: result.checksum, ...clockOption(ctx) })) {
        summary.succeeded++;
        hooks.onChecksummed?.(row.modelId);
      }
      summary.bytes += result.bytes;
    } catch (err) {
      if (ctx.signal.aborted) return;
      summary.failed++;
      if (await markChecksumFailed(primaryDb, type.schema, row.modelId, { claim: row.claim!, message: errorMessage(err), ...clockOption(ctx) })) hooks.onFailed?.(row.modelId);
      log.warn({ modelId: row.modelId, reason: errorMessage(err) }, "primary checksum failed");
    }
  });
}
