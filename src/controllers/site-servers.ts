/**
 * Keeps the long-running servers of a site (src/strategies/site-server.ts) running, and nothing
 * else: those strategies ask for and the site's log cursor (src/cursor/site-server.ts). A server
 * no longer wanted is removed. Two executors, as for worker
 * runs: Deployments + Services in the cluster, or the server started inside this process.
 *
 * Desired state is given per (namespace, site); each reconcile passes the whole list for that
 * site, so a server whose type or site went away stops on the next pass.
 */
import { restrictedContainerSecurityContext, restrictedPodSecurityContext } from "../k8s/pod-security.ts";
import { createHash } from "node:crypto";
import { ApiException, type AppsV1Api, type CoreV1Api, type V1Deployment, type V1OwnerReference, type V1Service } from "@kubernetes/client-node";
import type { Registry } from "prom-client";
import { API_VERSION, LABELS } from "../api/v1alpha1/resources.ts";
import { resolveEnv } from "../k8s/env.ts";
import { assertPodSecretsOptedIn } from "../k8s/secrets.ts";
import type { GeoSite, ReplicableType } from "../api/v1alpha1/resources.ts";
import { cursorSiteServer } from "../cursor/site-server.ts";
import { strategyFor } from "../strategies/catalog.ts";
import type { RunningSiteServer, SiteServer } from "../strategies/site-server.ts";
import type { Logger } from "../util/log.ts";
import type { JobSettings } from "./job-spec.ts";
import { checkTopology } from "./validation.ts";

/** Label naming the server a Deployment or Service belongs to. */
export const SERVER_LABEL = "geo.replication.dev/server";
const HASH_ANNOTATION = "geo.replication.dev/server-spec-hash";

/** The GeoSite whose servers are reconciled; with `uid`, the servers' objects are owned by it. */
export interface ServedSite {
  namespace: string;
  name: string;
  uid?: string;
}

export interface SiteServerExecutor {
  /** Makes `desired` the complete set of servers of `site` (empty: the site is gone or needs none). */
  reconcile(site: ServedSite, desired: SiteServer[]): Promise<void>;
  /** Stops everything (manager shutdown); Deployments are left to the cluster. */
  stopAll(): Promise<void>;
}

/**
 * The servers `site` needs: each strategy used by `types` is asked with the settings of its types,
 * and the site's log cursor is added when some type captures changes (unless the site's
 * `eventLog.cursor.enabled` is false, or it is a secondary the topology check refuses). A disabled
 * site runs none. `metricsRegistry` receives the metrics of cursors run in this process. Pure
 * apart from parsing the specs.
 */
export function desiredSiteServers(site: GeoSite, sites: readonly GeoSite[], types: readonly ReplicableType[], opts: { metricsRegistry?: Registry } = {}): SiteServer[] {
  if (site.spec.enabled === false) return [];
  const byStrategy = new Map<string, unknown[]>();
  for (const t of types) {
    const strategy = strategyFor(t.spec.strategy);
    if (!strategy.siteServers) continue;
    let settings: unknown;
    try {
      settings = strategy.parseSettings(t.spec);
    } catch {
      continue; // a spec the CRD should have refused: its own status says so; the site's servers go on
    }
    byStrategy.set(strategy.name, [...(byStrategy.get(strategy.name) ?? []), settings]);
  }
  const servers = new Map<string, SiteServer>();
  for (const [name, settings] of byStrategy) {
    for (const server of strategyFor(name).siteServers!(site, sites, settings)) servers.set(server.name, server);
  }
  const topology = checkTopology(sites.filter((s) => s.metadata.namespace === site.metadata.namespace));
  if (topology.primary && !topology.invalidSecondaries.has(site.metadata.name)) {
    const cursor = cursorSiteServer({ site, primary: topology.primary, types, ...(opts.metricsRegistry ? { metricsRegistry: opts.metricsRegistry } : {}) });
    if (cursor) servers.set(cursor.name, cursor);
  }
  return [...servers.values()];
}

/** What distinguishes one version of a server from another: a change replaces it. */
export function serverSpecHash(server: SiteServer): string {
  const { name, namespace, site, args, env, volumes, mounts, port, readinessPath, scheme, labels } = server;
  // scheme and labels only when set, so servers without them keep the hash they had before both existed.
  const spec = { name, namespace, site, args, env, volumes, mounts, port, readinessPath, ...(scheme ? { scheme } : {}), ...(labels ? { labels } : {}) };
  return createHash("sha256").update(JSON.stringify(spec)).digest("hex").slice(0, 16);
}

function labelsOf(server: SiteServer): Record<string, string> {
  return { ...server.labels, [LABELS.managedBy]: "geo-operator", [LABELS.site]: server.site, [SERVER_LABEL]: server.name };
}

const schemeOf = (server: SiteServer) => server.scheme ?? "HTTPS";
/** The container's and the Service's port name: what the port speaks. */
const portNameOf = (server: SiteServer) => schemeOf(server).toLowerCase();

/**
 * The GeoSite as owner: the garbage collector removes a server's Deployment and Service when
 * the site is deleted, even while no manager runs (uninstall deletes the sites, then the chart).
 */
function ownedBy(site: ServedSite | undefined): { ownerReferences?: V1OwnerReference[] } {
  return site?.uid ? { ownerReferences: [{ apiVersion: API_VERSION, kind: "GeoSite", name: site.name, uid: site.uid, controller: true }] } : {};
}

/** The Deployment that runs `server` (one replica, restricted Pod Security profile). Pure. */
export function renderServerDeployment(server: SiteServer, settings: Pick<JobSettings, "image" | "imagePullPolicy" | "serviceAccountName" | "resources">, site?: ServedSite): V1Deployment {
  const labels = labelsOf(server);
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: server.name, namespace: server.namespace, labels, annotations: { [HASH_ANNOTATION]: serverSpecHash(server) }, ...ownedBy(site) },
    spec: {
      replicas: 1,
      selector: { matchLabels: { [SERVER_LABEL]: server.name } },
      template: {
        metadata: { labels },
        spec: {
          ...(settings.serviceAccountName ? { serviceAccountName: settings.serviceAccountName } : {}),
          automountServiceAccountToken: false,
          securityContext: restrictedPodSecurityContext(),
          volumes: [{ name: "tmp", emptyDir: {} }, ...server.volumes],
          containers: [
            {
              name: "server",
              image: settings.image,
              ...(settings.imagePullPolicy ? { imagePullPolicy: settings.imagePullPolicy } : {}),
              command: ["geo-operator"],
              args: server.args,
              env: [...server.env, { name: "HOME", value: "/tmp" }],
              ports: [{ name: portNameOf(server), containerPort: server.port }],
              // Ready a few seconds after start; a 3 s period adds at most that much before the
              // Service sends it work (the manager's own probe: the same).
              readinessProbe: { httpGet: { path: server.readinessPath, port: server.port, scheme: schemeOf(server) }, periodSeconds: 3 },
              resources: settings.resources,
              volumeMounts: [{ name: "tmp", mountPath: "/tmp" }, ...server.mounts],
              securityContext: restrictedContainerSecurityContext(),
            },
          ],
        },
      },
    },
  };
}

/** The Service in front of the server's Deployment, same name and port. Pure. */
export function renderServerService(server: SiteServer, site?: ServedSite): V1Service {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: server.name, namespace: server.namespace, labels: labelsOf(server), annotations: { [HASH_ANNOTATION]: serverSpecHash(server) }, ...ownedBy(site) },
    spec: { selector: { [SERVER_LABEL]: server.name }, ports: [{ name: portNameOf(server), port: server.port, targetPort: server.port }] },
  };
}

const notFound = (err: unknown) => err instanceof ApiException && err.code === 404;

export class DeploymentSiteServers implements SiteServerExecutor {
  private readonly apps: AppsV1Api;
  private readonly core: CoreV1Api;
  private readonly settings: Pick<JobSettings, "image" | "imagePullPolicy" | "serviceAccountName" | "resources">;

  constructor(opts: { apps: AppsV1Api; core: CoreV1Api; settings: Pick<JobSettings, "image" | "imagePullPolicy" | "serviceAccountName" | "resources"> }) {
    this.apps = opts.apps;
    this.core = opts.core;
    this.settings = opts.settings;
  }

  async reconcile(site: ServedSite, desired: SiteServer[]): Promise<void> {
    const namespace = site.namespace;
    const selector = `${LABELS.managedBy}=geo-operator,${LABELS.site}=${site.name},${SERVER_LABEL}`;
    const existing = (await this.apps.listNamespacedDeployment({ namespace, labelSelector: selector })).items;
    const services = (await this.core.listNamespacedService({ namespace, labelSelector: selector })).items;
    for (const server of desired) {
      const deployment = renderServerDeployment(server, this.settings, site);
      const current = existing.find((d) => d.metadata?.name === server.name);
      if (current?.metadata?.annotations?.[HASH_ANNOTATION] !== deployment.metadata!.annotations![HASH_ANNOTATION]) {
        // The kubelet would hand the pod any Secret it names: only opted-in ones are allowed.
        await assertPodSecretsOptedIn(this.core, namespace, deployment.spec!.template.spec!);
        if (current) await this.apps.replaceNamespacedDeployment({ name: server.name, namespace, body: { ...deployment, metadata: { ...deployment.metadata!, resourceVersion: current.metadata!.resourceVersion! } } });
        else await this.apps.createNamespacedDeployment({ namespace, body: deployment });
      }
      const service = renderServerService(server, site);
      const currentService = services.find((s) => s.metadata?.name === server.name);
      if (currentService?.metadata?.annotations?.[HASH_ANNOTATION] !== service.metadata!.annotations![HASH_ANNOTATION]) {
        if (currentService) await this.core.deleteNamespacedService({ name: server.name, namespace }).catch((err: unknown) => { if (!notFound(err)) throw err; });
        await this.core.createNamespacedService({ namespace, body: service });
      }
    }
    const wanted = new Set(desired.map((s) => s.name));
    for (const d of existing.filter((d) => !wanted.has(d.metadata!.name!))) {
      await this.apps.deleteNamespacedDeployment({ name: d.metadata!.name!, namespace }).catch((err: unknown) => { if (!notFound(err)) throw err; });
    }
    for (const s of services.filter((s) => !wanted.has(s.metadata!.name!))) {
      await this.core.deleteNamespacedService({ name: s.metadata!.name!, namespace }).catch((err: unknown) => { if (!notFound(err)) throw err; });
    }
  }

  async stopAll(): Promise<void> {}
}

/** Runs servers inside this process (`make demo`, small installs). */
export class InProcessSiteServers implements SiteServerExecutor {
  private readonly core: CoreV1Api;
  private readonly log: Logger;
  private readonly running = new Map<string, { hash: string; site: string; server: Promise<RunningSiteServer> }>();

  constructor(opts: { core: CoreV1Api; log: Logger }) {
    this.core = opts.core;
    this.log = opts.log;
  }

  /** The running server's URL, once started (tests and the demo use it). */
  async url(namespace: string, name: string): Promise<string | undefined> {
    return (await this.running.get(`${namespace}/${name}`)?.server.catch(() => undefined))?.url;
  }

  async reconcile(site: ServedSite, desired: SiteServer[]): Promise<void> {
    const namespace = site.namespace;
    const wanted = new Set(desired.map((s) => `${namespace}/${s.name}`));
    for (const [key, entry] of this.running) {
      if (key.startsWith(`${namespace}/`) && entry.site === site.name && !wanted.has(key)) await this.stop(key);
    }
    for (const server of desired) {
      const key = `${namespace}/${server.name}`;
      const hash = serverSpecHash(server);
      const current = this.running.get(key);
      if (current?.hash === hash) {
        // A server that failed to start is tried again on the next pass.
        if (await current.server.then(() => true, () => false)) continue;
        this.running.delete(key);
      } else if (current) {
        await this.stop(key);
      }
      const env = { ...(await resolveEnv(this.core, namespace, server.env)) };
      const log = this.log.child({ server: server.name });
      const started = server.start(env, log);
      this.running.set(key, { hash, site: site.name, server: started });
      const result = await started.catch((err: unknown) => {
        log.error({ err: err instanceof Error ? err.message : String(err) }, "server failed to start");
        return undefined;
      });
      if (result) log.info({ url: result.url }, "server started in-process");
    }
  }

  private async stop(key: string): Promise<void> {
    const entry = this.running.get(key);
    this.running.delete(key);
    const server = await entry?.server.catch(() => undefined);
    await server?.close();
  }

  async stopAll(): Promise<void> {
    await Promise.allSettled([...this.running.keys()].map((k) => this.stop(k)));
  }
}
