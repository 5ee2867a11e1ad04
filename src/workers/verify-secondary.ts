/**
 * Secondary verification: for synced rows whose primary checksum is known, checksums the local
 * copy and compares. Equal → verification succeeded. Different → checksum mismatch: the row is
 * failed for both verification and sync, so it is copied again with growing backoff, and the
 * strategy's account of the difference is kept for operators.
 *
 * No copy, or a copy that is not whole (MissingCopyError, CopyDamagedError), puts the row back
 * into sync at once with repair: leaving it "synced" would hide the loss until someone looked.
 * Every completion is fenced by the verification claim, so a hash of a copy that was replaced
 * meanwhile (a resync) never marks the new copy verified.
 *
 * For strategies whose primary data may change (repositories) it also notices primaries whose
 * checksum changed since the copy was verified (a push) and asks for a resync.
 */
import { requestResync } from "../registry/sync-state.ts";
import { recordMismatch } from "../registry/replicas.ts";
import {
  readPrimaryChecksums,
  claimVerificationWorkFromPrimary,
  failStuckVerifications,
  markChecksumMismatch,
  markCopyUnusable,
  markVerificationFailed,
  markVerificationSucceeded,
  verifiedChecksumsAfter,
} from "../registry/verification-state.ts";
import { setVerificationEnabled } from "../registry/checksum-state.ts";
import { strategyFor } from "../strategies/catalog.ts";
import { CopyDamagedError, MissingCopyError } from "../strategies/replicator.ts";
import type { Queryable } from "../registry/db.ts";
import { loadModelRecords } from "../strategies/model-records.ts";
import { clockOption, itemSignal, requireTracking, type WorkerContext } from "./context.ts";
import { markSecondaryReverificationDue } from "../registry/reverification.ts";
import type { ClaimedVerification } from "../registry/verification-state.ts";
import { errorMessage, forEachBounded, newSummary, type WorkerSummary } from "./summary.ts";

export async function runVerifySecondary(ctx: WorkerContext): Promise<WorkerSummary> {
  const tracking = requireTracking(ctx);
  const { type, log } = ctx;
  const summary = newSummary("verify", type.name, ctx.siteName);
  const started = Date.now();
  if (!type.verificationEnabled) {
    summary.seconds = (Date.now() - started) / 1000;
    return summary;
  }
  // Rows disabled while verification was off are verified again now that it is on.
  const reenabled = await setVerificationEnabled(tracking, type.schema, "secondary", true);
  if (reenabled) log.info({ rows: reenabled }, "verification is on again: disabled rows are pending");
  await failStuckVerifications(tracking, type.schema, { timeoutSeconds: type.timeoutsMs.stuckStarted / 1000, ...clockOption(ctx) });
  // A changed primary (a push) is a reason to resync, not a mismatch: look for it before
  // re-verification would compare the old copy with the new checksum.
  if (strategyFor(type.strategy).primaryDataMayChange) {
    const changed = await resyncChangedOnPrimary(tracking, ctx.primaryDb, ctx);
    if (changed) log.info({ rows: changed }, "primary checksum changed since the last verification; resync requested");
  }
  await markSecondaryReverificationDue(tracking, type.schema, type.minimumReverificationIntervalMs, clockOption(ctx));

  let afterId = 0;
  while (!ctx.signal.aborted && Date.now() - started < ctx.maxRunMs) {
    const batch = await claimVerificationWorkFromPrimary(tracking, ctx.primaryDb, type.schema, { limit: ctx.concurrency, afterId, ...clockOption(ctx) });
    afterId = batch.afterId;
    const rows = batch.rows;
    if (rows.length === 0) break;
    await verifyClaimedRows(ctx, rows, summary);
  }
  summary.seconds = (Date.now() - started) / 1000;
  return summary;
}

/** Verified rows whose primary checksum is no longer the one they were verified against. */
async function resyncChangedOnPrimary(tracking: Queryable, primary: Queryable, ctx: WorkerContext, batchSize = 1000): Promise<number> {
  let after = 0;
  let changed = 0;
  for (;;) {
    const rows = await verifiedChecksumsAfter(tracking, ctx.type.schema, after, batchSize);
    if (rows.length === 0) return changed;
    after = rows[rows.length - 1]!.modelId;
    const primarySums = await readPrimaryChecksums(primary, ctx.type.schema, rows.map((r) => r.modelId));
    const stale = rows.filter((r) => {
      const p = primarySums.get(r.modelId);
      return p !== undefined && !p.equals(r.checksum);
    });
    if (stale.length) changed += await requestResync(tracking, ctx.type.schema, stale.map((r) => r.modelId));
  }
}

/**
 * Whether the row's copy has not been verified since its last sync wrote it, and nothing about it
 * has failed since: no earlier mismatch and no failed attempt. Only then may a strategy use a
 * checksum its store checked at write time (Replicator ChecksumOptions); re-verification of a
 * copy verified before, and every retry, read the copy.
 */
export function firstVerificationSinceWrite(row: Pick<ClaimedVerification, "verifiedAt" | "lastSyncedAt" | "verificationRetryCount" | "checksumMismatch">): boolean {
  if (row.checksumMismatch || row.verificationRetryCount > 0) return false;
  if (row.verifiedAt === null) return true;
  return row.lastSyncedAt !== null && row.verifiedAt < row.lastSyncedAt;
}

/**
 * Checksums the copies of rows this caller has claimed for verification (each with its primary
 * checksum) and records each outcome fenced by its claim. Used by the verify Job and by the log
 * cursor right after it synced a row.
 */
export async function verifyClaimedRows(ctx: WorkerContext, rows: readonly ClaimedVerification[], summary: WorkerSummary): Promise<void> {
  const tracking = requireTracking(ctx);
  const { type, replicator, log } = ctx;
  summary.claimed += rows.length;
  const records = await loadModelRecords(ctx.primaryDb, type, rows.map((r) => r.modelId), replicator.columns);
  await forEachBounded(rows, ctx.concurrency, async (row) => {
    const record = records.get(row.modelId) ?? { id: row.modelId, columns: {} };
    const claim = row.verificationClaim!;
    try {
      const result = await replicator.checksumSecondary(record, itemSignal(ctx, type.timeoutsMs.sync), { firstSinceWrite: firstVerificationSinceWrite(row) });
      if (ctx.signal.aborted) return;
      summary.bytes += result.bytes;
      if (result.checksum.equals(row.primaryChecksum)) {
        if (await markVerificationSucceeded(tracking, type.schema, row.id, { claim, checksum: result.checksum, ...clockOption(ctx) })) summary.succeeded++;
        return;
      }
      summary.failed++;
      if (!(await markChecksumMismatch(tracking, type.schema, row.id, { claim, checksum: result.checksum, ...clockOption(ctx) }))) return;
      const details = await replicator.describeMismatch?.(record, ctx.signal).catch((err: unknown) => ({ error: errorMessage(err) }));
      await recordMismatch(tracking, type.name, row.modelId, {
        primaryChecksum: row.primaryChecksum.toString("hex"),
        secondaryChecksum: result.checksum.toString("hex"),
        ...(details === undefined ? {} : { details }),
      });
      log.warn({ modelId: row.modelId }, "checksum mismatch: the copy will be synced again");
    } catch (err) {
      if (ctx.signal.aborted) return;
      summary.failed++;
      if (err instanceof MissingCopyError || err instanceof CopyDamagedError) {
        if (await markCopyUnusable(tracking, type.schema, row.id, { claim, message: errorMessage(err), ...clockOption(ctx) })) {
          log.warn({ modelId: row.modelId, reason: errorMessage(err) }, "the copy is missing or damaged: the row is synced again");
        }
        return;
      }
      await markVerificationFailed(tracking, type.schema, row.id, { claim, message: errorMessage(err), ...clockOption(ctx) });
      log.warn({ modelId: row.modelId, reason: errorMessage(err) }, "secondary checksum failed");
    }
  });
}
