/**
 * Runs work for model ids as they arrive, at most `capacity` ids at once, and never two runs for
 * one id at the same time: an id that arrives again while its run is in flight waits for that run
 * and then runs once more. Without that, two copies of one object could race and the older
 * content could land last (the registry's claim fences the state, not the bytes).
 */
export class IdPump {
  private readonly queued = new Set<number>();
  private readonly running = new Set<number>();
  private readonly again = new Set<number>();
  private active = 0;
  private idleWaiters: (() => void)[] = [];

  private readonly capacity: number;
  private readonly work: (ids: number[]) => Promise<void>;

  /** `work` handles a batch of ids (at most the free capacity) and must not reject. */
  constructor(capacity: number, work: (ids: number[]) => Promise<void>) {
    this.capacity = capacity;
    this.work = work;
  }

  add(ids: Iterable<number>): void {
    for (const id of ids) {
      if (this.running.has(id)) this.again.add(id);
      else this.queued.add(id);
    }
    this.pump();
  }

  /** Ids waiting or in flight. */
  get size(): number {
    return this.queued.size + this.running.size + this.again.size;
  }

  /** Resolves when nothing is queued or running. */
  idle(): Promise<void> {
    if (this.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private pump(): void {
    while (this.active < this.capacity && this.queued.size > 0) {
      const batch: number[] = [];
      for (const id of this.queued) {
        if (batch.length >= this.capacity - this.active) break;
        batch.push(id);
      }
      for (const id of batch) {
        this.queued.delete(id);
        this.running.add(id);
      }
      this.active += batch.length;
      void this.work(batch).finally(() => {
        this.active -= batch.length;
        for (const id of batch) {
          this.running.delete(id);
          if (this.again.delete(id)) this.queued.add(id);
        }
        this.pump();
        if (this.size === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
      });
    }
  }
}
