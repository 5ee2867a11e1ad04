/**
 * A level-based controller: events only put keys in the work queue; workers take keys and call
 * `reconcile(key)`, which re-reads the world. An error requeues the key with backoff; a result
 * may ask to look again later. Reconcile metrics are recorded here, once for every controller.
 */
import type { OperatorMetrics } from "../metrics/metrics.ts";
import type { Logger } from "../util/log.ts";
import { WorkQueue } from "../k8s/workqueue.ts";

export interface ReconcileResult {
  requeueAfterMs?: number;
}

export class ControllerLoop {
  readonly name: string;
  readonly queue = new WorkQueue();
  private readonly reconcile: (key: string) => Promise<ReconcileResult>;
  private readonly log: Logger;
  private readonly metrics: OperatorMetrics;
  private readonly workers: number;
  private running: Promise<void>[] = [];

  constructor(opts: { name: string; reconcile: (key: string) => Promise<ReconcileResult>; log: Logger; metrics: OperatorMetrics; workers?: number }) {
    this.name = opts.name;
    this.reconcile = opts.reconcile;
    this.log = opts.log;
    this.metrics = opts.metrics;
    this.workers = opts.workers ?? 2;
  }

  start(): void {
    for (let i = 0; i < this.workers; i++) this.running.push(this.work());
  }

  async stop(): Promise<void> {
    this.queue.shutDown();
    await Promise.allSettled(this.running);
    this.running = [];
  }

  private async work(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      const end = this.metrics.reconcileDuration.startTimer({ controller: this.name });
      try {
        const result = await this.reconcile(key);
        this.queue.forget(key);
        this.metrics.reconcileTotal.inc({ controller: this.name, result: "success" });
        if (result.requeueAfterMs !== undefined) this.queue.addAfter(key, result.requeueAfterMs);
      } catch (err) {
        const delay = this.queue.addRateLimited(key);
        this.metrics.reconcileTotal.inc({ controller: this.name, result: "error" });
        this.metrics.reconcileErrors.inc({ controller: this.name });
        this.log.error({ controller: this.name, key, err: err instanceof Error ? err.message : String(err), retryInMs: delay }, "reconcile failed");
      } finally {
        end();
        this.queue.done(key);
      }
    }
  }
}
