/**
 * One run of one worker: what `geo-operator worker <kind> --type <name> --site <site>` executes,
 * in a Job's pod or in-process. Configuration comes from env (see src/workers/environment.ts). Prints one summary line on stdout; logs are JSON on stderr.
 * Exit codes: 0 done (per-row failures are recorded in the registry, not fatal), 1 fatal error
 * (unreachable database, bad credentials, missing bucket), 2 invalid configuration.
 */
import { maxReplicationLagSecondsOf, selectiveSyncOf, verificationCapacityOf } from "../api/v1alpha1/runtime.ts";
import { parseDuration } from "../api/v1alpha1/duration.ts";
import { recordWorkerRun } from "../registry/replicas.ts";
import { ensureTrackingSideTables } from "../registry/side-tables.ts";
import { strategyFor } from "../strategies/catalog.ts";
import { typeRuntimeConfig } from "../strategies/type-config.ts";
import { checkDatabase, createPool, type Pool } from "../util/database.ts";
import { createLogger } from "../util/log.ts";
import type { WorkerContext } from "./context.ts";
import { runConsistency } from "./consistency.ts";
import {
  ConfigurationError,
  requireSecret,
  siteSpecFromEnv,
  typeSpecFromEnv,
  type Env,
} from "./environment.ts";
import { formatSummary, type WorkerSummary } from "./summary.ts";
import { runSync } from "./sync.ts";
import { runVerifyPrimary } from "./verify-primary.ts";
import { runVerifySecondary } from "./verify-secondary.ts";

import { WORKER_KINDS, type WorkerKind } from "./kinds.ts";

export { WORKER_KINDS, type WorkerKind };

const RUNNERS: Record<WorkerKind, (ctx: WorkerContext) => Promise<WorkerSummary>> = {
  "verify-primary": runVerifyPrimary,
  sync: runSync,
  verify: runVerifySecondary,
  consistency: runConsistency,
};

export interface WorkerOptions {
  type: string;
  site: string;
  maxRun: string;
  logLevel: string;
}

export interface WorkerIO {
  /** Aborting it stops the run like SIGTERM does; without it the process's SIGTERM is used. */
  signal?: AbortSignal;
  /** Receives the summary line (default: stdout). */
  out?: (line: string) => void;
}

/** Runs one worker to completion; returns the process exit code. */
export async function runWorker(kind: WorkerKind, opts: WorkerOptions, env: Env = process.env, io: WorkerIO = {}): Promise<number> {
  const log = createLogger({ name: `worker-${kind}`, level: opts.logLevel }).child({ type: opts.type, site: opts.site });
  const out = io.out ?? ((line: string) => process.stdout.write(line + "\n"));
  const pools: Pool[] = [];
  const abort = new AbortController();
  // Where a run's time goes, in seconds, logged with its summary: in a Job's Pod the work itself
  // is often the smallest part (process start, connections, schema check, storage probes).
  // (processStart only for a process of its own: in-process runs share the manager's.)
  const phases: Record<string, number> = io.signal ? {} : { processStart: round2(process.uptime()) };
  let phaseStart = performance.now();
  const phaseDone = (name: string) => {
    const now = performance.now();
    phases[name] = round2((now - phaseStart) / 1000);
    phaseStart = now;
  };
  const onTerm = () => {
    log.warn("SIGTERM: stopping; unfinished items stay claimed until their timeout");
    abort.abort();
  };
  if (io.signal) io.signal.addEventListener("abort", onTerm, { once: true });
  else process.once("SIGTERM", onTerm);
  try {
    const typeSpec = typeSpecFromEnv(env);
    if (typeSpec.name !== opts.type) throw new ConfigurationError(`--type ${opts.type} does not match GEO_TYPE_SPEC (name ${typeSpec.name})`);
    const type = typeRuntimeConfig(typeSpec);
    const site = siteSpecFromEnv(env, "GEO_SITE_SPEC");
    if (!site) throw new ConfigurationError("GEO_SITE_SPEC is required: the GeoSite spec of --site");
    const primary = site.role === "primary" ? site : siteSpecFromEnv(env, "GEO_PRIMARY_SITE_SPEC");
    if (!primary) throw new ConfigurationError("GEO_PRIMARY_SITE_SPEC is required on a secondary: the primary GeoSite's spec");
    const primarySiteName = site.role === "primary" ? opts.site : env.GEO_PRIMARY_SITE_NAME;
    if (!primarySiteName) throw new ConfigurationError("GEO_PRIMARY_SITE_NAME is required on a secondary: the primary GeoSite's name, whose heartbeat proves the replica is its database");
    if (kind === "verify-primary" && site.role !== "primary") throw new ConfigurationError(`verify-primary runs on the primary site; ${opts.site} is a secondary`);
    if (kind !== "verify-primary" && site.role !== "secondary") throw new ConfigurationError(`${kind} runs on a secondary site; ${opts.site} is the primary`);

    const primaryURL = requireSecret(env, "GEO_PRIMARY_DB_URL", site.role === "primary" ? "the primary's main database" : "a read replica of the primary's main database");
    const primaryDb = createPool(primaryURL, { applicationName: `geo-operator worker ${kind}` });
    pools.push(primaryDb);
    await checkDatabase(primaryDb, primaryURL, site.role === "primary" ? "primary database" : "primary's read replica");
    let trackingDb: Pool | undefined;
    if (site.role === "secondary") {
      const trackingURL = requireSecret(env, "GEO_TRACKING_DB_URL", "the secondary's tracking database");
      trackingDb = createPool(trackingURL, { applicationName: `geo-operator worker ${kind}` });
      pools.push(trackingDb);
      await checkDatabase(trackingDb, trackingURL, "tracking database");
      phaseDone("databases");
      await ensureTrackingSideTables(trackingDb);
      phaseDone("sideTables");
    } else {
      phaseDone("databases");
    }
    const strategy = strategyFor(type.strategy);
    const endpoints = strategy.endpointsFromEnv(env, site, primary, type.settings, opts.site);
    const concurrency = kind === "sync" ? (site.capacities?.[strategy.syncCapacity.field] ?? strategy.syncCapacity.default) : verificationCapacityOf(site);
    const replicator = await strategy.createReplicator({ type, siteName: opts.site, role: site.role, endpoints, log });
    try {
      // A sync reads the primary's data: it waits a little for a store that is only starting.
      await replicator.preflight(abort.signal, kind === "sync" ? { waitForUnreachableMs: retrievalWaitSeconds(env) * 1000 } : {});
      phaseDone("storage");
      const ctx: WorkerContext = {
        type,
        siteName: opts.site,
        primarySiteName,
        maxReplicationLagSeconds: maxReplicationLagSecondsOf(site),
        selectiveSync: selectiveSyncOf(site),
        concurrency,
        primaryDb,
        ...(trackingDb ? { trackingDb } : {}),
        replicator,
        log,
        maxRunMs: parseDuration(opts.maxRun),
        signal: abort.signal,
      };
      const skip = kind === "sync" && !type.replicationEnabled;
      const summary = skip ? null : await RUNNERS[kind](ctx);
      phaseDone("run");
      if (summary) {
        if (trackingDb) {
          await recordWorkerRun(trackingDb, { typeName: type.name, site: opts.site, kind, claimed: summary.claimed, succeeded: summary.succeeded, failed: summary.failed, bytes: summary.bytes, seconds: summary.seconds });
        }
        phaseDone("record");
        log.info({ summary, phases }, "worker finished");
        out(formatSummary(summary));
      } else {
        out(`${kind} ${type.name}@${opts.site}: replication is disabled for this type; nothing to do`);
      }
    } finally {
      await replicator.close();
    }
    return abort.signal.aborted ? 143 : 0;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    log.error({ err: message }, "worker failed");
    process.stderr.write(`geo-operator worker ${kind}: ${message}\n`);
    return err instanceof ConfigurationError ? 2 : 1;
  } finally {
    if (io.signal) io.signal.removeEventListener("abort", onTerm);
    else process.off("SIGTERM", onTerm);
    await Promise.allSettled(pools.map((p) => p.end()));
  }
}

const round2 = (n: number) => Math.round(n * 100) / 100;

/** GEO_RETRIEVAL_WAIT_SECONDS: how long a sync waits for the primary's retrieval server at start (default 30). */
function retrievalWaitSeconds(env: Env): number {
  const raw = env.GEO_RETRIEVAL_WAIT_SECONDS;
  if (raw === undefined || raw === "") return 30;
  const seconds = Number(raw);
  if (!Number.isFinite(seconds) || seconds < 0) throw new ConfigurationError(`GEO_RETRIEVAL_WAIT_SECONDS must be a number of seconds, 0 or more; got ${JSON.stringify(raw)}`);
  return seconds;
}
