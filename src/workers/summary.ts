/** The one-line account every worker prints when it ends, and the tally it is built from. */
export interface WorkerSummary {
  worker: string;
  type: string;
  site: string;
  claimed: number;
  succeeded: number;
  failed: number;
  /** Rows left pending because the primary changed mid-copy (their resync is still due). */
  requeued: number;
  deleted: number;
  /** Copies whose deletion a consistency pass held (see deletion-policy.ts). */
  held: number;
  bytes: number;
  seconds: number;
}

export function newSummary(worker: string, type: string, site: string): WorkerSummary {
  return { worker, type, site, claimed: 0, succeeded: 0, failed: 0, requeued: 0, deleted: 0, held: 0, bytes: 0, seconds: 0 };
}

export function formatSummary(s: WorkerSummary): string {
  const verb = s.worker === "sync" ? "synced" : s.worker === "consistency" ? "added" : "verified";
  return (
    `${s.worker} ${s.type}@${s.site}: claimed=${s.claimed} ${verb}=${s.succeeded} failed=${s.failed}` +
    (s.requeued ? ` requeued=${s.requeued}` : "") +
    (s.deleted ? ` deleted=${s.deleted}` : "") +
    (s.held ? ` held=${s.held}` : "") +
    ` bytes=${s.bytes} seconds=${s.seconds.toFixed(2)}`
  );
}

/** Runs `fn` over `items` with at most `concurrency` at once. */
export async function forEachBounded<T>(items: readonly T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, async () => {
    while (next < items.length) {
      const item = items[next++]!;
      await fn(item);
    }
  });
  await Promise.all(lanes);
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
