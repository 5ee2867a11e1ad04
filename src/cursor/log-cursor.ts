/**
 * Follows the primary's change event log (registry/event-log.ts) and hands each event to a
 * handler exactly in id order per read, never skipping one that commits late (gaps.ts), and
 * saving its position only after the handler has made the events' effects durable. A crash
 * between the two repeats some events on restart; every handler action is idempotent.
 *
 * Reads go through the primary's read replica on secondaries, which delivers no NOTIFY: the poll
 * is adaptive instead (poll-delay.ts), immediate while events keep coming, then doubling from
 * `minPollMs` to `maxPollMs` while the log is quiet. Where the connection is to the primary
 * itself (the primary site's own cursor, or a secondary configured with the primary's URL) it
 * also LISTENs and wakes as soon as a capture trigger signals.
 *
 * A cursor that has never run starts at the oldest event still in the log: applying an event
 * twice is harmless, skipping one costs a wait for the next consistency pass (records created
 * between a type's first pass and its cursor's first start). A cursor whose position fell behind
 * the oldest event still in the log (pruned after the retention) says so and goes on; scanning
 * and verification cover what it missed.
 */
import type pg from "pg";
import type { Queryable } from "../registry/db.ts";
import { eventLogBounds, listenForEvents, loadCursorPosition, readEvents, saveCursorPosition, type ChangeEvent, type CursorPosition } from "../registry/event-log.ts";
import type { Logger } from "../util/log.ts";
import { advance, DEFAULT_GAP_SETTINGS, type GapSettings } from "./gaps.ts";
import { PollDelay } from "./poll-delay.ts";

export interface LogCursorOptions {
  /** The position's key in `positionDb` (the site's name). */
  name: string;
  /** Where events are read: the primary's database, or its read replica. */
  source: Queryable;
  /** Where the position is kept: the secondary's tracking database, or the primary's database. */
  positionDb: Queryable;
  /** Applies a batch of events; must have made their effects durable when it resolves. */
  handle(events: readonly ChangeEvent[]): Promise<void>;
  /** A dedicated connection to LISTEN on, when the source can deliver NOTIFY. */
  listen?: () => Promise<pg.Client>;
  log: Logger;
  signal: AbortSignal;
  /** After each step (metrics, tests). */
  onPosition?(position: CursorPosition, step: { applied: number; abandoned: number }): void;
  batchSize?: number;
  minPollMs?: number;
  maxPollMs?: number;
  gaps?: GapSettings;
  now?: () => number;
}

export const DEFAULT_BATCH_SIZE = 500;
export const DEFAULT_MIN_POLL_MS = 100;
export const DEFAULT_MAX_POLL_MS = 2_000;

/** Runs until `signal` aborts; rejects on an error the caller should restart after (a lost connection). */
export async function runLogCursor(opts: LogCursorOptions): Promise<void> {
  const now = opts.now ?? Date.now;
  const batchSize = opts.batchSize ?? DEFAULT_BATCH_SIZE;
  const wake = new Wakeup(opts.signal);
  const listener = opts.listen ? await listenFor(opts.listen, wake, opts.log) : undefined;
  try {
    let position = await startingPosition(opts);
    opts.onPosition?.(position, { applied: 0, abandoned: 0 });
    const pollDelay = new PollDelay(opts.minPollMs ?? DEFAULT_MIN_POLL_MS, opts.maxPollMs ?? DEFAULT_MAX_POLL_MS);
    while (!opts.signal.aborted) {
      const previousLast = position.lastEventId;
      const events = await readEvents(opts.source, previousLast, batchSize, position.gaps.map((g) => g.id));
      const step = advance(position, events, now(), opts.gaps ?? DEFAULT_GAP_SETTINGS);
      if (step.apply.length > 0) await opts.handle(step.apply);
      if (step.abandoned > 0) opts.log.warn({ ids: step.abandoned }, "event ids never appeared within the gap timeout and were given up; scanning covers them");
      if (step.apply.length > 0 || step.abandoned > 0 || gapsChanged(position, step.position)) {
        await saveCursorPosition(opts.positionDb, opts.name, step.position);
      }
      position = step.position;
      opts.onPosition?.(position, { applied: step.apply.length, abandoned: step.abandoned });
      const delay = pollDelay.after({
        fullBatch: events.filter((e) => e.id > previousLast).length >= batchSize,
        applied: step.apply.length,
        openGaps: position.gaps.length,
      });
      if (delay > 0) await wake.sleep(delay);
    }
  } finally {
    await listener?.end().catch(() => undefined);
  }
}

async function startingPosition(opts: LogCursorOptions): Promise<CursorPosition> {
  const saved = await loadCursorPosition(opts.positionDb, opts.name);
  const bounds = await eventLogBounds(opts.source);
  if (!saved) {
    const start: CursorPosition = { lastEventId: bounds.oldest ? bounds.oldest.id - 1 : 0, lastEventAt: null, gaps: [] };
    await saveCursorPosition(opts.positionDb, opts.name, start);
    opts.log.info({ firstEventId: start.lastEventId + 1 }, "log cursor starts at the oldest event in the log");
    return start;
  }
  if (bounds.oldest && saved.lastEventId + 1 < bounds.oldest.id) {
    opts.log.warn(
      { lastEventId: saved.lastEventId, oldestEventId: bounds.oldest.id, missed: bounds.oldest.id - saved.lastEventId - 1 },
      "events were pruned before this cursor read them (it was stopped longer than the retention); consistency passes and verification cover what it missed",
    );
  }
  opts.log.info({ lastEventId: saved.lastEventId, gaps: saved.gaps.length }, "log cursor resumes");
  return saved;
}

function gapsChanged(before: CursorPosition, after: CursorPosition): boolean {
  return before.gaps.length !== after.gaps.length || before.gaps.some((g, i) => g.id !== after.gaps[i]!.id);
}

async function listenFor(connect: () => Promise<pg.Client>, wake: Wakeup, log: Logger): Promise<pg.Client | undefined> {
  try {
    const client = await connect();
    client.on("error", (err: Error) => log.warn({ err: err.message }, "LISTEN connection lost; polling goes on"));
    await listenForEvents(client, () => wake.now());
    return client;
  } catch (err) {
    log.warn({ err: (err as Error).message }, "cannot LISTEN for events; polling only");
    return undefined;
  }
}

/** A sleep that a NOTIFY or the stop signal cuts short. */
class Wakeup {
  private pending: (() => void) | undefined;
  private signalled = false;

  constructor(signal: AbortSignal) {
    signal.addEventListener("abort", () => this.now(), { once: true });
  }

  now(): void {
    this.signalled = true;
    this.pending?.();
  }

  sleep(ms: number): Promise<void> {
    if (this.signalled) {
      this.signalled = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.pending = undefined;
        this.signalled = false;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.pending = done;
    });
  }
}
