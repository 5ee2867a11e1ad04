/** Everything one worker run needs, built by runWorker (workers/run.ts) from its env. */
import type { TypeRuntimeConfig } from "../api/v1alpha1/runtime.ts";
import type { SelectiveSync } from "../registry/config.ts";
import type { Queryable } from "../registry/db.ts";
import type { Replicator } from "../strategies/replicator.ts";
import type { Logger } from "../util/log.ts";

export interface WorkerContext {
  type: TypeRuntimeConfig;
  siteName: string;
  /** The primary GeoSite's name: the identity its heartbeat must carry on the replica. */
  primarySiteName: string;
  /** Deletions wait while the primary's heartbeat on the replica is older than this. */
  maxReplicationLagSeconds: number;
  selectiveSync: SelectiveSync;
  /** Items handled at once: the site's capacity for the strategy's syncs (e.g. `capacities.blobs`), its verification capacity otherwise. */
  concurrency: number;
  /** The primary's main database; for a secondary, its read replica. */
  primaryDb: Queryable;
  /** The secondary's tracking database (secondary workers only). */
  trackingDb?: Queryable;
  replicator: Replicator;
  log: Logger;
  /** A run stops claiming new work after this long and exits; the next Job continues. */
  maxRunMs: number;
  /** Aborted on SIGTERM: in-flight items are abandoned (never marked done) and the run ends. */
  signal: AbortSignal;
  /** Injected time for tests; defaults to the database clock. */
  now?: () => Date;
}

export function requireTracking(ctx: WorkerContext): Queryable {
  if (!ctx.trackingDb) throw new Error("this worker runs on a secondary and needs its tracking database (GEO_TRACKING_DB_URL)");
  return ctx.trackingDb;
}

/** An AbortSignal that fires on the run's signal or after `timeoutMs`, whichever is first. */
export function itemSignal(ctx: WorkerContext, timeoutMs: number): AbortSignal {
  return AbortSignal.any([ctx.signal, AbortSignal.timeout(timeoutMs)]);
}

export function clockOption(ctx: WorkerContext): { now?: Date } {
  return ctx.now ? { now: ctx.now() } : {};
}
