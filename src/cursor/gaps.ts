/**
 * Gap tracking for the log cursor. Event ids come from a sequence when the change is written, not
 * when it commits, so a reader can see id 7 before id 6 commits (a longer transaction, or one
 * that commits later on a busy primary). Moving past 6 for good would lose it. The cursor
 * therefore remembers every id it stepped over as a gap, asks for the gaps again on every poll and
 * applies them when they appear. An id that never appears (its transaction rolled back; the
 * sequence does not reuse it) is given up after `gapTimeoutMs`: a transaction open that long is
 * left to the safety net (consistency passes find the record, verification finds changed data).
 *
 * Pure: positions in, positions out; the clock is an argument.
 */
import type { ChangeEvent, CursorGap, CursorPosition } from "../registry/event-log.ts";

export interface GapSettings {
  /** An id not seen for this long is given up. */
  gapTimeoutMs: number;
  /** At most this many gaps are kept (the oldest are given up first), bounding each poll's query. */
  maxGaps: number;
}

export const DEFAULT_GAP_SETTINGS: GapSettings = { gapTimeoutMs: 10 * 60 * 1000, maxGaps: 10_000 };

export interface Advance {
  position: CursorPosition;
  /** The events to apply, in id order: new ones and gaps that filled. */
  apply: ChangeEvent[];
  /** How many ids were given up this step (timed out, over the limit, or a jump wider than the limit). */
  abandoned: number;
}

/**
 * Where the cursor stands after reading `events` (any order; may repeat ids already applied,
 * which are ignored unless they fill a gap).
 */
export function advance(position: CursorPosition, events: readonly ChangeEvent[], nowMs: number, settings: GapSettings = DEFAULT_GAP_SETTINGS): Advance {
  const gaps = new Map<number, number>(position.gaps.map((g) => [g.id, g.since]));
  const apply: ChangeEvent[] = [];
  let last = position.lastEventId;
  let lastEventAt = position.lastEventAt;
  let abandoned = 0;
  for (const event of [...events].sort((a, b) => a.id - b.id)) {
    if (event.id <= last) {
      if (gaps.delete(event.id)) apply.push(event);
      continue;
    }
    const firstGap = Math.max(last + 1, event.id - settings.maxGaps);
    abandoned += firstGap - (last + 1);
    for (let id = firstGap; id < event.id; id++) gaps.set(id, nowMs);
    apply.push(event);
    last = event.id;
    lastEventAt = event.createdAt;
  }
  for (const [id, since] of gaps) {
    if (nowMs - since >= settings.gapTimeoutMs) {
      gaps.delete(id);
      abandoned++;
    }
  }
  if (gaps.size > settings.maxGaps) {
    const oldest = [...gaps.keys()].sort((a, b) => a - b).slice(0, gaps.size - settings.maxGaps);
    for (const id of oldest) gaps.delete(id);
    abandoned += oldest.length;
  }
  const kept: CursorGap[] = [...gaps].map(([id, since]) => ({ id, since })).sort((a, b) => a.id - b.id);
  return { position: { lastEventId: last, lastEventAt, gaps: kept }, apply, abandoned };
}
