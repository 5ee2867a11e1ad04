/**
 * A list-then-watch cache of one resource that keeps itself alive.
 *
 * The client library's ListWatch stops for good on most errors (API server restarts, network
 * loss, expired credentials). This informer instead relists after every failure with capped
 * exponential backoff, relists on a timer so a hung watch cannot leave the cache stale forever,
 * and reports adds, updates and deletes by diffing each relist against what it holds.
 */
import { Watch, type KubeConfig, type KubernetesListObject, type KubernetesObject } from "@kubernetes/client-node";
import type { Logger } from "../util/log.ts";

export type InformerEvent = "add" | "update" | "delete";

type Meta = { metadata?: { generation?: number; labels?: Record<string, string>; annotations?: Record<string, string>; deletionTimestamp?: Date | string; finalizers?: string[] } };

/**
 * Whether an update changed more than status: the spec (its generation), labels, annotations,
 * finalizers or deletion. A controller's own status writes come back as updates; most of them need
 * no reconcile of anything.
 */
export function changedBeyondStatus(obj: Meta, old: Meta | undefined): boolean {
  if (!old) return true;
  const a = obj.metadata ?? {};
  const b = old.metadata ?? {};
  const same = (x: unknown, y: unknown) => JSON.stringify(x ?? null) === JSON.stringify(y ?? null);
  return a.generation !== b.generation || !same(a.labels, b.labels) || !same(a.annotations, b.annotations) || !same(a.finalizers, b.finalizers) || String(a.deletionTimestamp ?? "") !== String(b.deletionTimestamp ?? "");
}
/** `old` is the cached object an update replaced (undefined for add and delete). */
type Handler<T> = (obj: T, old?: T) => void;

export interface InformerOptions<T extends KubernetesObject> {
  name: string;
  kubeConfig: KubeConfig;
  /** Collection path for watches, e.g. /apis/geo.replication.dev/v1alpha1/geosites. */
  path: string;
  list: () => Promise<KubernetesListObject<T>>;
  labelSelector?: string;
  /** Full relist period (default 5 minutes). */
  relistIntervalMs?: number;
  log: Logger;
  /** Backoff after a failure: min(maxMs, baseMs · 2^attempt). */
  backoff?: { baseMs: number; maxMs: number };
  /**
   * Applied to every object before it is cached (client-go's SetTransform): drop what the
   * controllers never read, such as managedFields or a Job's pod template, to keep memory flat.
   */
  transform?: (obj: T) => T;
}

const keyOf = (o: KubernetesObject) => `${o.metadata?.namespace ?? ""}/${o.metadata?.name ?? ""}`;

export class Informer<T extends KubernetesObject> {
  private readonly opts: InformerOptions<T>;
  private readonly watch: Watch;
  private readonly handlers: Record<InformerEvent, Handler<T>[]> = { add: [], update: [], delete: [] };
  private readonly cache = new Map<string, T>();
  private resourceVersion = "";
  private abort: AbortController | undefined;
  private stopped = true;
  private failures = 0;
  private relistTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private generation = 0;
  private syncedResolve: (() => void) | undefined;
  /** Resolves after the first successful list. */
  readonly synced: Promise<void>;
  /** Times the informer recovered from a failure or a closed watch (for tests and metrics). */
  restarts = 0;

  constructor(opts: InformerOptions<T>) {
    this.opts = opts;
    this.watch = new Watch(opts.kubeConfig);
    this.synced = new Promise((resolve) => (this.syncedResolve = resolve));
  }

  on(event: InformerEvent, handler: Handler<T>): void {
    this.handlers[event].push(handler);
  }

  list(namespace?: string): T[] {
    const all = [...this.cache.values()];
    return namespace === undefined ? all : all.filter((o) => o.metadata?.namespace === namespace);
  }

  get(name: string, namespace?: string): T | undefined {
    return this.cache.get(`${namespace ?? ""}/${name}`);
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    const interval = this.opts.relistIntervalMs ?? 5 * 60_000;
    this.relistTimer = setInterval(() => this.restart("periodic relist", true), interval);
    this.relistTimer.unref();
    void this.run(true);
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.relistTimer);
    clearTimeout(this.retryTimer);
    this.generation++;
    this.abort?.abort();
  }

  private emit(event: InformerEvent, obj: T, old?: T): void {
    for (const h of this.handlers[event]) {
      try {
        h(obj, old);
      } catch (err) {
        this.opts.log.error({ err, informer: this.opts.name, event }, "informer handler threw");
      }
    }
  }

  private restart(reason: string, relist: boolean): void {
    if (this.stopped) return;
    this.opts.log.debug({ informer: this.opts.name, reason }, "informer restarting");
    this.restarts++;
    this.generation++;
    this.abort?.abort();
    if (relist) this.resourceVersion = "";
    void this.run(relist);
  }

  private scheduleRetry(err: unknown): void {
    if (this.stopped) return;
    const { baseMs, maxMs } = this.opts.backoff ?? { baseMs: 500, maxMs: 30_000 };
    const delay = Math.min(maxMs, baseMs * 2 ** this.failures);
    this.failures++;
    this.opts.log.warn(
      { informer: this.opts.name, err: err instanceof Error ? err.message : String(err), retryInMs: delay },
      "watch failed; relisting after backoff",
    );
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.restart("error recovery", true), delay);
  }

  private async run(relist: boolean): Promise<void> {
    const generation = ++this.generation;
    try {
      if (relist || !this.resourceVersion) await this.relist();
      if (generation !== this.generation || this.stopped) return;
      const query: Record<string, string | boolean> = { resourceVersion: this.resourceVersion, allowWatchBookmarks: true };
      if (this.opts.labelSelector) query.labelSelector = this.opts.labelSelector;
      this.abort = await this.watch.watch(
        this.opts.path,
        query,
        (phase, obj: T & { code?: number }) => this.onWatchEvent(phase, obj),
        (err: unknown) => {
          if (generation !== this.generation || this.stopped) return;
          if (err) this.scheduleRetry(err);
          // A watch the server closed normally continues from the last resource version.
          else this.restart("watch closed", !this.resourceVersion);
        },
      );
    } catch (err) {
      if (generation === this.generation) this.scheduleRetry(err);
    }
  }

  private async relist(): Promise<void> {
    const list = await this.opts.list();
    const seen = new Set<string>();
    for (const item of list.items) {
      const obj = this.opts.transform ? this.opts.transform(item) : item;
      const key = keyOf(obj);
      seen.add(key);
      const old = this.cache.get(key);
      this.cache.set(key, obj);
      if (!old) this.emit("add", obj);
      else if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion) this.emit("update", obj, old);
    }
    for (const [key, obj] of this.cache) {
      if (!seen.has(key)) {
        this.cache.delete(key);
        this.emit("delete", obj);
      }
    }
    this.resourceVersion = list.metadata?.resourceVersion ?? "";
    this.failures = 0;
    this.syncedResolve?.();
  }

  private onWatchEvent(phase: string, raw: T & { code?: number }): void {
    if (phase === "ERROR") {
      const obj = raw;
      // 410 Gone: our resource version is too old; the next round relists.
      if (obj.code === 410) this.resourceVersion = "";
      return;
    }
    const obj = this.opts.transform && phase !== "BOOKMARK" ? this.opts.transform(raw) : raw;
    if (obj.metadata?.resourceVersion) this.resourceVersion = obj.metadata.resourceVersion;
    if (phase === "BOOKMARK") return;
    const key = keyOf(obj);
    if (phase === "DELETED") {
      this.cache.delete(key);
      this.emit("delete", obj);
      return;
    }
    const old = this.cache.get(key);
    this.cache.set(key, obj);
    if (old) this.emit("update", obj, old);
    else this.emit("add", obj);
  }
}
