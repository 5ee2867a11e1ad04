/**
 * A site's log cursor as a server the operator keeps running (strategies/site-server.ts): with
 * the Jobs executor a Deployment and Service `geo-cursor-<site>` running
 * `geo-operator cursor --site S --metrics-port 9090` (/metrics and /healthz over plain HTTP); with
 * the in-process executor, runSiteCursor inside the manager, its metrics on the manager's registry.
 *
 * Its env is the worker contract (workers/environment.ts) for every type that captures changes at
 * once: GEO_TYPE_SPECS in place of GEO_TYPE_SPEC, the site part a worker gets, and the union of
 * those types' strategy storage (env and volumes de-duplicated by name, mounts by volume and path:
 * types of one strategy on one site ask for the same credentials). Secrets by reference only.
 */
import type { V1EnvVar, V1Volume, V1VolumeMount } from "@kubernetes/client-node";
import { Registry } from "prom-client";
import type { GeoSite, ReplicableType } from "../api/v1alpha1/resources.ts";
import { cursorEnabledOf } from "../api/v1alpha1/runtime.ts";
import { strategyFor } from "../strategies/catalog.ts";
import type { RunningSiteServer, SiteServer } from "../strategies/site-server.ts";
import { typeRuntimeConfig } from "../strategies/type-config.ts";
import type { Logger } from "../util/log.ts";
import { siteRunEnv, TYPE_SPECS_ENV } from "../workers/environment.ts";
import { CURSOR_HEALTH_PATH } from "./endpoints.ts";

/** Port of the cursor's /metrics and /healthz in its pod. */
export const CURSOR_PORT = 9090;
/** `app.kubernetes.io/component` of the cursor's Deployment, pods and Service (the chart's ServiceMonitor selects it). */
export const CURSOR_COMPONENT = "log-cursor";
const COMPONENT_LABEL = "app.kubernetes.io/component";

/** First restart delay of an in-process cursor that stopped on an error; doubles up to the maximum. */
const RESTART_MS = 5_000;
const MAX_RESTART_MS = 5 * 60_000;

/** `geo-cursor-<site>`, the cursor's Deployment and Service name. */
export function cursorServerName(site: string): string {
  return `geo-cursor-${site}`;
}

interface FollowedType {
  type: ReplicableType;
  settings: unknown;
}

/**
 * The types a cursor follows: those whose changes are captured (changeCapture other than none),
 * by spec name. A spec that cannot be parsed is left out (its own status says why).
 */
function followedTypes(types: readonly ReplicableType[]): FollowedType[] {
  const followed: FollowedType[] = [];
  for (const type of types) {
    try {
      const config = typeRuntimeConfig(type.spec);
      if (config.schema.changeCapture !== "none") followed.push({ type, settings: config.settings });
    } catch {
      continue;
    }
  }
  return followed.sort((a, b) => a.type.spec.name.localeCompare(b.type.spec.name));
}

/** Whether some of `types` captures changes into the event log. */
export function capturesChanges(types: readonly ReplicableType[]): boolean {
  return followedTypes(types).length > 0;
}

/** Whether `site` runs a log cursor: enabled, its cursor not switched off, and some type captures changes. */
export function cursorWanted(site: GeoSite, types: readonly ReplicableType[]): boolean {
  return site.spec.enabled !== false && cursorEnabledOf(site.spec) && capturesChanges(types);
}

function addByKey<T>(into: T[], items: readonly T[], key: (item: T) => string): void {
  const seen = new Set(into.map(key));
  for (const item of items) {
    if (seen.has(key(item))) continue;
    seen.add(key(item));
    into.push(item);
  }
}

/**
 * The cursor server of `site` (the primary or a valid secondary; `primary` is the namespace's
 * primary), or undefined when the site runs none (see cursorWanted). `metricsRegistry` receives
 * the in-process cursor's metrics. Pure apart from parsing the specs.
 */
export function cursorSiteServer(p: { site: GeoSite; primary: GeoSite; types: readonly ReplicableType[]; metricsRegistry?: Registry }): SiteServer | undefined {
  const { site, primary } = p;
  if (!cursorWanted(site, p.types)) return undefined;
  const followed = followedTypes(p.types);
  const siteName = site.metadata.name;
  const env: V1EnvVar[] = [{ name: TYPE_SPECS_ENV, value: JSON.stringify(followed.map((f) => f.type.spec)) }, ...siteRunEnv(site, primary)];
  const volumes: V1Volume[] = [];
  const mounts: V1VolumeMount[] = [];
  for (const { type, settings } of followed) {
    const storage = strategyFor(type.spec.strategy).workerStorage(settings, site, primary);
    addByKey(env, storage.env, (e) => e.name);
    addByKey(volumes, storage.volumes, (v) => v.name);
    addByKey(mounts, storage.mounts, (m) => `${m.name}:${m.mountPath}`);
  }
  const name = cursorServerName(siteName);
  return {
    name,
    namespace: site.metadata.namespace,
    site: siteName,
    args: ["cursor", "--site", siteName, "--metrics-port", String(CURSOR_PORT)],
    env,
    volumes,
    mounts,
    port: CURSOR_PORT,
    scheme: "HTTP",
    readinessPath: CURSOR_HEALTH_PATH,
    labels: { [COMPONENT_LABEL]: CURSOR_COMPONENT },
    start: (values, log) => startInProcess(siteName, values, log, p.metricsRegistry),
  };
}

/**
 * Runs the cursor in this process until closed, restarting it after an error with a growing
 * delay as the kubelet would restart its pod; /metrics and /healthz listen on 127.0.0.1.
 */
async function startInProcess(site: string, env: Record<string, string | undefined>, log: Logger, metricsRegistry: Registry | undefined): Promise<RunningSiteServer> {
  // The worker code (storage SDKs, git) loads only when a cursor starts in this process.
  const { runSiteCursor } = await import("./site-cursor.ts");
  const { serveCursorEndpoints } = await import("./endpoints.ts");
  const { CursorMetrics } = await import("../metrics/cursor-metrics.ts");
  const registry = metricsRegistry ?? new Registry();
  const metrics = new CursorMetrics(registry);
  const abort = new AbortController();
  let lastStep = 0;
  const endpoints = await serveCursorEndpoints({ registry, host: "127.0.0.1", port: 0, lastStepAt: () => lastStep });
  const running = (async () => {
    let delay = RESTART_MS;
    while (!abort.signal.aborted) {
      try {
        await runSiteCursor(env, { site, log, signal: abort.signal, metrics, onPosition: () => (lastStep = Date.now()) });
        delay = RESTART_MS;
      } catch (err) {
        log.error({ err: (err as Error).message, restartInMs: delay }, "log cursor stopped");
      }
      if (abort.signal.aborted) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        abort.signal.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
      });
      delay = Math.min(delay * 2, MAX_RESTART_MS);
    }
  })();
  return {
    url: endpoints.url,
    async close() {
      abort.abort();
      await running;
      await endpoints.close();
    },
  };
}
