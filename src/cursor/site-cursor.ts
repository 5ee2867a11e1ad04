/**
 * One site's log cursor process: what `geo-operator cursor --site S` runs in the operator's
 * Deployment, and what the in-process executor runs inside the manager. Configuration is the
 * worker's contract (src/workers/environment.ts) with every type of the site at once:
 *
 *   GEO_TYPE_SPECS   JSON array of the ReplicableType specs the cursor follows   not secret
 *   (GEO_SITE_SPEC, GEO_PRIMARY_SITE_SPEC, GEO_PRIMARY_SITE_NAME, GEO_PRIMARY_DB_URL,
 *    GEO_TRACKING_DB_URL and each strategy's storage variables, as for a worker)
 *
 * On the primary it checksums changed records (primary-handler.ts); on a secondary it syncs,
 * verifies and removes (secondary-handler.ts). It keeps running through database outages: a
 * failed step is retried with backoff from the saved position, so nothing is skipped.
 */
import { parse } from "yaml";
import { maxReplicationLagSecondsOf, selectiveSyncOf, verificationCapacityOf, type TypeRuntimeConfig } from "../api/v1alpha1/runtime.ts";
import type { GeoSiteSpec, ReplicableTypeSpec } from "../api/v1alpha1/types.generated.ts";
import type { CursorMetrics } from "../metrics/cursor-metrics.ts";
import { isPrimaryServer, type CursorPosition } from "../registry/event-log.ts";
import { ensurePrimarySideTables, ensureTrackingSideTables } from "../registry/side-tables.ts";
import { strategyFor } from "../strategies/catalog.ts";
import type { Replicator } from "../strategies/replicator.ts";
import { typeRuntimeConfig } from "../strategies/type-config.ts";
import { ConfigurationError, requireSecret, type Env } from "../util/config-env.ts";
import { checkDatabase, createPool, type Pool } from "../util/database.ts";
import type { Logger } from "../util/log.ts";
import type { WorkerContext } from "../workers/context.ts";
import { siteSpecFromEnv, TYPE_SPECS_ENV } from "../workers/environment.ts";
import { runLogCursor, type LogCursorOptions } from "./log-cursor.ts";
import { PrimaryEventHandler } from "./primary-handler.ts";
import { SecondaryEventHandler } from "./secondary-handler.ts";
import pg from "pg";

export { TYPE_SPECS_ENV };

export interface SiteCursorOptions {
  site: string;
  log: Logger;
  signal: AbortSignal;
  metrics?: CursorMetrics;
  /** Told after every step (health, tests). */
  onPosition?(position: CursorPosition): void;
  /** Poll settings, for tests. */
  tuning?: Pick<LogCursorOptions, "minPollMs" | "maxPollMs" | "batchSize" | "gaps">;
}

/** The type specs a cursor follows, from GEO_TYPE_SPECS. */
export function typeSpecsFromEnv(env: Env): ReplicableTypeSpec[] {
  const text = env[TYPE_SPECS_ENV];
  if (!text) throw new ConfigurationError(`${TYPE_SPECS_ENV} is required: a JSON array of the ReplicableType specs this cursor follows`);
  let specs: unknown;
  try {
    specs = parse(text);
  } catch (err) {
    throw new ConfigurationError(`${TYPE_SPECS_ENV} is not valid JSON or YAML: ${(err as Error).message}`);
  }
  if (!Array.isArray(specs) || specs.some((s) => !s || typeof s !== "object" || !(s as ReplicableTypeSpec).name || !(s as ReplicableTypeSpec).strategy)) {
    throw new ConfigurationError(`${TYPE_SPECS_ENV} must be an array of ReplicableType specs with name and strategy`);
  }
  return specs as ReplicableTypeSpec[];
}

/**
 * Runs the site's cursor until `signal` aborts. Throws ConfigurationError for a configuration that
 * cannot work (exit 2 from the CLI); anything else is retried.
 */
export async function runSiteCursor(env: Env, opts: SiteCursorOptions): Promise<void> {
  const { log } = opts;
  const site = siteSpecFromEnv(env, "GEO_SITE_SPEC");
  if (!site) throw new ConfigurationError("GEO_SITE_SPEC is required: the GeoSite spec of --site");
  const primary = site.role === "primary" ? site : siteSpecFromEnv(env, "GEO_PRIMARY_SITE_SPEC");
  if (!primary) throw new ConfigurationError("GEO_PRIMARY_SITE_SPEC is required on a secondary");
  const primarySiteName = site.role === "primary" ? opts.site : env.GEO_PRIMARY_SITE_NAME;
  if (!primarySiteName) throw new ConfigurationError("GEO_PRIMARY_SITE_NAME is required on a secondary");
  const types = typeSpecsFromEnv(env).map((spec) => typeRuntimeConfig(spec)).filter((t) => t.schema.changeCapture !== "none");
  const primaryURL = requireSecret(env, "GEO_PRIMARY_DB_URL", site.role === "primary" ? "the primary's main database" : "a read replica of the primary's main database");
  const trackingURL = site.role === "secondary" ? requireSecret(env, "GEO_TRACKING_DB_URL", "the secondary's tracking database") : undefined;

  const pools: Pool[] = [];
  const replicators: Replicator[] = [];
  let backoffMs = 500;
  try {
    const primaryDb = createPool(primaryURL, { applicationName: "geo-operator cursor" });
    pools.push(primaryDb);
    const trackingDb = trackingURL ? createPool(trackingURL, { applicationName: "geo-operator cursor" }) : undefined;
    if (trackingDb) pools.push(trackingDb);
    const contexts = await buildContexts({ env, site, primary, siteName: opts.site, primarySiteName, types, primaryDb, trackingDb, log, signal: opts.signal, replicators });
    while (!opts.signal.aborted) {
      const handler = site.role === "primary" ? new PrimaryEventHandler(contexts, opts.metrics) : new SecondaryEventHandler(contexts, opts.metrics);
      try {
        await checkDatabase(primaryDb, primaryURL, site.role === "primary" ? "primary database" : "primary's read replica");
        if (trackingDb) {
          await checkDatabase(trackingDb, trackingURL!, "tracking database");
          await ensureTrackingSideTables(trackingDb);
        } else {
          await ensurePrimarySideTables(primaryDb);
        }
        const notify = await isPrimaryServer(primaryDb);
        log.info({ types: contexts.map((c) => c.type.name), listen: notify }, "log cursor running");
        await runLogCursor({
          name: opts.site,
          source: primaryDb,
          positionDb: trackingDb ?? primaryDb,
          handle: (events) => handler.handle(events),
          ...(notify ? { listen: () => connectListener(primaryURL) } : {}),
          log,
          signal: opts.signal,
          onPosition: (position, step) => {
            opts.metrics?.gaps.set({ site: opts.site }, position.gaps.length);
            opts.metrics?.position.set({ site: opts.site }, position.lastEventId);
            if (step.abandoned) opts.metrics?.abandoned.inc({ site: opts.site }, step.abandoned);
            opts.onPosition?.(position);
            backoffMs = 500;
          },
          ...opts.tuning,
        });
      } catch (err) {
        if (err instanceof ConfigurationError) throw err;
        if (opts.signal.aborted) break;
        log.warn({ err: (err as Error).message, retryInMs: backoffMs }, "log cursor step failed; resuming from the saved position");
        await sleep(backoffMs, opts.signal);
        backoffMs = Math.min(backoffMs * 2, 30_000);
      } finally {
        await handler.drain().catch(() => undefined);
        handler.stop();
      }
    }
  } finally {
    await Promise.allSettled(replicators.map((r) => r.close()));
    await Promise.allSettled(pools.map((p) => p.end()));
  }
}

async function buildContexts(p: {
  env: Env;
  site: GeoSiteSpec;
  primary: GeoSiteSpec;
  siteName: string;
  primarySiteName: string;
  types: TypeRuntimeConfig[];
  primaryDb: Pool;
  trackingDb: Pool | undefined;
  log: Logger;
  signal: AbortSignal;
  replicators: Replicator[];
}): Promise<WorkerContext[]> {
  const contexts: WorkerContext[] = [];
  for (const type of p.types) {
    const strategy = strategyFor(type.strategy);
    const log = p.log.child({ type: type.name });
    const endpoints = strategy.endpointsFromEnv(p.env, p.site, p.primary, type.settings, p.siteName);
    const replicator = await strategy.createReplicator({ type, siteName: p.siteName, role: p.site.role, endpoints, log });
    p.replicators.push(replicator);
    try {
      await replicator.preflight(p.signal);
    } catch (err) {
      // The Jobs report the same problem on the type's status; the cursor follows the other types.
      log.error({ err: (err as Error).message }, "storage preflight failed: this type's events are left to the Jobs");
      continue;
    }
    contexts.push({
      type,
      siteName: p.siteName,
      primarySiteName: p.primarySiteName,
      maxReplicationLagSeconds: maxReplicationLagSecondsOf(p.site),
      selectiveSync: selectiveSyncOf(p.site),
      concurrency: p.site.role === "primary" ? verificationCapacityOf(p.site) : (p.site.capacities?.[strategy.syncCapacity.field] ?? strategy.syncCapacity.default),
      primaryDb: p.primaryDb,
      ...(p.trackingDb ? { trackingDb: p.trackingDb } : {}),
      replicator,
      log,
      maxRunMs: Number.POSITIVE_INFINITY,
      signal: p.signal,
    });
  }
  return contexts;
}

async function connectListener(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, application_name: "geo-operator cursor listen" });
  await client.connect();
  return client;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}
