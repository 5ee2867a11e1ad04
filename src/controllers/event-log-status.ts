/**
 * A GeoSite's view of the change event log (status.eventLog, its gauges, its health finding).
 *
 * On the primary: events older than the retention are pruned (in bounded batches, a few per
 * status pass, so a backlog goes in short transactions), then the newest and oldest events are
 * read. On a secondary: where its log cursor stands (its position in the tracking database, named
 * after the site) against the primary's newest event read through the site's replica, as the
 * cursor itself reads it. Observing is here; deciding is pure (unit tested).
 */
import type { GeoSiteStatus } from "../api/v1alpha1/types.generated.ts";
import type { Queryable } from "../registry/db.ts";
import { cursorPositions, eventLogBounds, pruneEvents, type CursorPosition, type EventLogBounds } from "../registry/event-log.ts";
import { Reason } from "./reasons.ts";

export type EventLogStatus = NonNullable<GeoSiteStatus["eventLog"]>;
export type SavedCursorPosition = CursorPosition & { updatedAt: Date };

/** Events deleted per pruning statement, and statements per status pass. */
export const PRUNE_BATCH = 10_000;
export const PRUNE_BATCHES_PER_PASS = 10;

/** Prunes what is older than `retentionSeconds`, then reads the log's bounds. Primary only. */
export async function observePrimaryEventLog(main: Queryable, retentionSeconds: number): Promise<{ bounds: EventLogBounds; pruned: number }> {
  let pruned = 0;
  for (let i = 0; i < PRUNE_BATCHES_PER_PASS; i++) {
    const n = await pruneEvents(main, retentionSeconds, PRUNE_BATCH);
    pruned += n;
    if (n < PRUNE_BATCH) break;
  }
  return { bounds: await eventLogBounds(main), pruned };
}

/** The primary's log through `replica`, and the cursor position of `siteName` in `tracking`. */
export async function observeSecondaryEventLog(replica: Queryable, tracking: Queryable, siteName: string): Promise<{ bounds: EventLogBounds; position: SavedCursorPosition | undefined }> {
  const [bounds, positions] = await Promise.all([eventLogBounds(replica), cursorPositions(tracking)]);
  return { bounds, position: positions.get(siteName) };
}

const seconds = (ms: number) => Math.max(0, ms / 1000);

/** The primary's status.eventLog. Pure. */
export function primaryEventLogStatus(bounds: EventLogBounds, now: Date): EventLogStatus {
  return {
    ...(bounds.last ? { lastEventId: bounds.last.id, lastEventTime: bounds.last.createdAt.toISOString() } : {}),
    ...(bounds.oldest ? { oldestEventAgeSeconds: Math.round(seconds(now.getTime() - bounds.oldest.createdAt.getTime())) } : {}),
  };
}

/**
 * A secondary's status.eventLog and, when its cursor is behind by more than `maxLagSeconds`, or
 * has not moved for twice that while newer events wait, or never ran while the log has had events
 * that long, the health finding that says so. Lag is in event time: the primary's newest event
 * time minus the time of the newest event the cursor applied (0 when caught up). Pure.
 */
export function secondaryEventLogStatus(p: {
  siteName: string;
  bounds: EventLogBounds;
  position: SavedCursorPosition | undefined;
  now: Date;
  maxLagSeconds: number;
}): { status: EventLogStatus; finding?: string } {
  const { siteName, bounds, position, now, maxLagSeconds } = p;
  const check = `check the log cursor (Deployment geo-cursor-${siteName}, or the manager's log with the in-process executor) and the primary's read replica; consistency passes still replicate meanwhile`;
  if (!position) {
    const waiting = bounds.oldest ? seconds(now.getTime() - bounds.oldest.createdAt.getTime()) : 0;
    return {
      status: {},
      ...(waiting > 2 * maxLagSeconds
        ? { finding: `${Reason.EventCursorBehind}: the log cursor of ${siteName} has never run (no position in the tracking database) while the primary's event log has had events for ${Math.round(waiting)} s; ${check}` }
        : {}),
    };
  }
  const newest = bounds.last;
  const behind = !!newest && newest.id > position.lastEventId;
  const appliedAt = position.lastEventAt ?? position.updatedAt;
  const lag = behind ? seconds(newest.createdAt.getTime() - appliedAt.getTime()) : 0;
  const still = behind ? seconds(now.getTime() - position.updatedAt.getTime()) : 0;
  const status: EventLogStatus = {
    cursorLastEventId: position.lastEventId,
    ...(position.lastEventAt ? { cursorLastEventTime: position.lastEventAt.toISOString() } : {}),
    lagSeconds: Math.round(lag * 10) / 10,
    pendingGaps: position.gaps.length,
  };
  if (lag > maxLagSeconds) {
    return { status, finding: `${Reason.EventCursorBehind}: the log cursor of ${siteName} is ${Math.round(lag)} s behind the primary's newest event ${newest!.id} (limit ${maxLagSeconds} s); ${check}` };
  }
  if (still > 2 * maxLagSeconds) {
    return {
      status,
      finding: `${Reason.EventCursorBehind}: the log cursor of ${siteName} has not moved for ${Math.round(still)} s (at event ${position.lastEventId}, the primary's newest is ${newest!.id}); ${check}`,
    };
  }
  return { status };
}
