/**
 * How long the log cursor waits before its next read (log-cursor.ts). Reads on secondaries go
 * through a read replica, which delivers no NOTIFY, so the wait adapts: none while a read comes
 * back full (more is waiting), the minimum again once events flow, doubling up to the maximum
 * while the log is quiet. While ids the cursor stepped over are still open gaps it looks again
 * after at most twice the minimum: a late commit is usually milliseconds late.
 */
export interface PollStep {
  /** The read returned a whole batch of new events: more are waiting. */
  fullBatch: boolean;
  /** Events the read handed to the handler. */
  applied: number;
  /** Gaps still open after the read. */
  openGaps: number;
}

export class PollDelay {
  private readonly minMs: number;
  private readonly maxMs: number;
  private idleMs: number;

  constructor(minMs: number, maxMs: number) {
    this.minMs = minMs;
    this.maxMs = maxMs;
    this.idleMs = minMs;
  }

  /** The wait in ms before the next read, after the read described by `step`; 0 to read on at once. */
  after(step: PollStep): number {
    // A full batch leaves the quiet-time backoff where it was: it says nothing about idleness.
    if (step.fullBatch) return 0;
    this.idleMs = step.applied > 0 ? this.minMs : Math.min(this.idleMs * 2, this.maxMs);
    return step.openGaps > 0 ? Math.min(this.idleMs, this.minMs * 2) : this.idleMs;
  }
}
