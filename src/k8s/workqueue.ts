/**
 * A work queue keyed by object ("namespace/name"), in the manner of client-go's rate-limited
 * queue: a key waiting to be processed is held once however many events arrive for it; a key being
 * processed is never handed to a second worker, and events during processing mark it dirty so it
 * runs once more afterwards; failures requeue with per-key exponential backoff.
 *
 * Two priorities, like controller-runtime's priority queue: a change to the object itself (a new
 * ReplicableType, an edited spec) is served before routine work (periodic requeues, backoff
 * retries, fan-out from related objects). With hundreds of types the routine reconciles alone can
 * keep the workers busy; a new type must not wait behind all of them.
 */
export const Priority = { Routine: 0, Urgent: 1 } as const;
export type Priority = (typeof Priority)[keyof typeof Priority];

export interface WorkQueueOptions {
  /** Backoff after the n-th consecutive failure of a key: min(maxMs, baseMs · 2^(n-1)). */
  baseDelayMs?: number;
  maxDelayMs?: number;
  clock?: { now(): number; setTimeout(fn: () => void, ms: number): unknown; clearTimeout(handle: unknown): void };
}

const realClock = {
  now: () => Date.now(),
  setTimeout: (fn: () => void, ms: number) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h: unknown) => clearTimeout(h as NodeJS.Timeout),
};

export class WorkQueue {
  /** Waiting keys per priority, each in arrival order. */
  private readonly urgent: string[] = [];
  private readonly routine: string[] = [];
  private readonly queued = new Map<string, Priority>();
  private readonly processing = new Set<string>();
  /** Keys that had events while being processed, with the highest priority asked for. */
  private readonly dirty = new Map<string, Priority>();
  private readonly failures = new Map<string, number>();
  private readonly delayed = new Map<string, { at: number; handle: unknown }>();
  private readonly waiters: ((key: string | undefined) => void)[] = [];
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly clock: NonNullable<WorkQueueOptions["clock"]>;
  private shuttingDown = false;

  constructor(opts: WorkQueueOptions = {}) {
    this.baseDelayMs = opts.baseDelayMs ?? 500;
    this.maxDelayMs = opts.maxDelayMs ?? 5 * 60_000;
    this.clock = opts.clock ?? realClock;
  }

  get length(): number {
    return this.urgent.length + this.routine.length;
  }

  /**
   * Adds a key now. A key already waiting is held once, at the higher of its priorities: a
   * routine key that becomes urgent moves to the urgent line.
   */
  add(key: string, priority: Priority = Priority.Urgent): void {
    if (this.shuttingDown) return;
    if (this.processing.has(key)) {
      this.dirty.set(key, Math.max(priority, this.dirty.get(key) ?? Priority.Routine) as Priority);
      return;
    }
    const waiting = this.queued.get(key);
    if (waiting !== undefined) {
      if (waiting === Priority.Routine && priority === Priority.Urgent) {
        this.routine.splice(this.routine.indexOf(key), 1);
        this.urgent.push(key);
        this.queued.set(key, priority);
      }
      return;
    }
    const waiter = this.waiters.shift();
    if (waiter) {
      this.processing.add(key);
      waiter(key);
      return;
    }
    this.queued.set(key, priority);
    (priority === Priority.Urgent ? this.urgent : this.routine).push(key);
  }

  /** Adds a key after `ms` as routine work; an earlier pending delay for the same key wins. */
  addAfter(key: string, ms: number, priority: Priority = Priority.Routine): void {
    if (this.shuttingDown) return;
    if (ms <= 0) return this.add(key, priority);
    const at = this.clock.now() + ms;
    const existing = this.delayed.get(key);
    if (existing && existing.at <= at) return;
    if (existing) this.clock.clearTimeout(existing.handle);
    const handle = this.clock.setTimeout(() => {
      this.delayed.delete(key);
      this.add(key, priority);
    }, ms);
    this.delayed.set(key, { at, handle });
  }

  /** Requeues a failed key with backoff; returns the delay used. */
  addRateLimited(key: string): number {
    const n = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, n);
    const delay = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** (n - 1));
    this.addAfter(key, delay);
    return delay;
  }

  /** Clears a key's failure count after it succeeded. */
  forget(key: string): void {
    this.failures.delete(key);
  }

  failuresOf(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** Next key to process, urgent ones first, waiting for one; undefined once shut down. */
  get(): Promise<string | undefined> {
    if (this.shuttingDown) return Promise.resolve(undefined);
    const key = this.urgent.shift() ?? this.routine.shift();
    if (key !== undefined) {
      this.queued.delete(key);
      this.processing.add(key);
      return Promise.resolve(key);
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Marks a key finished; if events arrived meanwhile it is queued again. */
  done(key: string): void {
    this.processing.delete(key);
    const priority = this.dirty.get(key);
    if (priority !== undefined) {
      this.dirty.delete(key);
      this.add(key, priority);
    }
  }

  shutDown(): void {
    this.shuttingDown = true;
    for (const { handle } of this.delayed.values()) this.clock.clearTimeout(handle);
    this.delayed.clear();
    for (const w of this.waiters.splice(0)) w(undefined);
  }
}
