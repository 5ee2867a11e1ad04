/**
 * The operator process: informers on GeoSites, ReplicableTypes and the Jobs it owns; one
 * controller loop per kind; leader election so only one replica acts; /healthz, /readyz and
 * /metrics; the aggregated registry API (every replica serves it, leader or not); an orderly stop
 * on SIGTERM.
 */
import { createServer, type Server } from "node:http";
import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import type { KubeConfig, KubernetesListObject, V1Job } from "@kubernetes/client-node";
import { GROUP, LABELS, PLURALS, VERSION, type GeoSite, type ReplicableType } from "./api/v1alpha1/resources.ts";
import { ControllerLoop } from "./controllers/controller-loop.ts";
import type { RunExecutor } from "./controllers/executor.ts";
import { GeoSiteController } from "./controllers/geosite-controller.ts";
import { InProcessExecutor } from "./controllers/in-process-executor.ts";
import { JobExecutor, MANAGED_JOBS_SELECTOR } from "./controllers/job-executor.ts";
import type { JobSettings } from "./controllers/job-spec.ts";
import { ReplicableTypeController } from "./controllers/replicabletype-controller.ts";
import { SiteAccess } from "./controllers/site-access.ts";
import type { ReasonValue } from "./controllers/reasons.ts";
import { DeploymentSiteServers, InProcessSiteServers, type SiteServerExecutor } from "./controllers/site-servers.ts";
import { createClients, type KubeClients } from "./k8s/client.ts";
import { EventRecorder } from "./k8s/events.ts";
import { changedBeyondStatus, Informer } from "./k8s/informer.ts";
import { Priority } from "./k8s/workqueue.ts";
import { LeaderElector } from "./k8s/leader-election.ts";
import { OperatorMetrics } from "./metrics/metrics.ts";
import { requestRun } from "./registry-api/run-requests.ts";
import { RegistryApiServer } from "./registry-api/server.ts";
import type { Logger } from "./util/log.ts";

function withoutManagedFields<T extends { metadata?: { managedFields?: unknown } }>(obj: T): T {
  if (!obj.metadata?.managedFields) return obj;
  const { managedFields: _dropped, ...metadata } = obj.metadata;
  return { ...obj, metadata } as T;
}

/** How long a stop waits for reconciles in flight before it releases the Lease anyway. */
const CONTROLLER_STOP_GRACE_MS = 10_000;

export interface ManagerOptions {
  kubeConfig: KubeConfig;
  log: Logger;
  /** The GeoSite this instance acts for; undefined: every site. */
  site?: string;
  /** Watch only this namespace; undefined: all namespaces. */
  namespace?: string;
  executor: "jobs" | "in-process";
  jobSettings: JobSettings;
  /** 0 picks a free port; undefined disables the server. */
  metricsPort?: number;
  healthPort?: number;
  bindAddress?: string;
  leaderElection?: { namespace: string; name: string; identity?: string; leaseDurationMs?: number; renewDeadlineMs?: number; retryPeriodMs?: number };
  relistIntervalMs?: number;
  /**
   * Serve the aggregated registry API (registry.geo.replication.dev) with this serving certificate;
   * undefined: not served. Port 0 picks a free port.
   */
  registryApi?: { port: number; bindAddress?: string; certFile: string; keyFile: string };
  /** false: only caches and the registry API, no controllers (a read/act-only replica). Default true. */
  controllers?: boolean;
  /** Called when leadership is lost (default: exit the process so a fresh one campaigns). */
  onLostLeadership?: () => void;
}

export class Manager {
  readonly metrics = new OperatorMetrics();
  readonly clients: KubeClients;
  readonly sites: Informer<GeoSite>;
  readonly types: Informer<ReplicableType>;
  readonly jobs?: Informer<V1Job>;
  readonly executor: RunExecutor;
  /** The long-running servers strategies ask for (Deployments, or in this process). */
  readonly siteServers: SiteServerExecutor;
  readonly typeLoop: ControllerLoop;
  readonly siteLoop: ControllerLoop;
  private readonly o: ManagerOptions;
  private readonly access: SiteAccess;
  private readonly elector?: LeaderElector;
  private readonly registryApi?: RegistryApiServer;
  private servers: Server[] = [];
  private readonly finishedJobs = new Set<string>();
  private controllersStarted = false;
  metricsURL?: string;
  healthURL?: string;
  registryApiURL?: string;

  constructor(opts: ManagerOptions) {
    this.o = opts;
    const log = opts.log;
    this.clients = createClients(opts.kubeConfig);
    const { custom, batch, core, apps } = this.clients;
    const relist = opts.relistIntervalMs ?? 5 * 60_000;
    const ns = opts.namespace;
    const scope = ns ? `/namespaces/${ns}` : "";
    const crInformer = <T extends GeoSite | ReplicableType>(plural: string) =>
      new Informer<T>({
        name: plural,
        kubeConfig: opts.kubeConfig,
        path: `/apis/${GROUP}/${VERSION}${scope}/${plural}`,
        list: () =>
          (ns
            ? custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural })
            : custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural })) as Promise<KubernetesListObject<T>>,
        relistIntervalMs: relist,
        log,
        transform: withoutManagedFields,
      });
    this.sites = crInformer<GeoSite>(PLURALS.GeoSite);
    this.types = crInformer<ReplicableType>(PLURALS.ReplicableType);
    this.access = new SiteAccess(core);
    const events = new EventRecorder<ReasonValue>(core, "geo-operator", log);
    if (opts.registryApi) {
      this.registryApi = new RegistryApiServer({
        sites: this.sites,
        types: this.types,
        core,
        access: this.access,
        authorization: this.clients.authorization,
        events,
        log,
        metrics: this.metrics,
        requestRun: (type, site, kind) => requestRun(custom, type.metadata, site, kind),
        ...opts.registryApi,
      });
    }

    if (opts.executor === "jobs") {
      this.jobs = new Informer<V1Job>({
        name: "jobs",
        kubeConfig: opts.kubeConfig,
        path: `/apis/batch/v1${scope}/jobs`,
        labelSelector: MANAGED_JOBS_SELECTOR,
        list: () =>
          ns
            ? batch.listNamespacedJob({ namespace: ns, labelSelector: MANAGED_JOBS_SELECTOR })
            : batch.listJobForAllNamespaces({ labelSelector: MANAGED_JOBS_SELECTOR }),
        relistIntervalMs: relist,
        log,
        // The executor reads a Job's labels, annotations and status only; its pod template (with
        // the type and site specs in env) would be most of the cache.
        transform: (job) => ({ apiVersion: job.apiVersion, kind: job.kind, metadata: withoutManagedFields(job).metadata, status: job.status }),
      });
      this.executor = new JobExecutor({ batch, core, jobs: this.jobs, settings: opts.jobSettings });
      this.siteServers = new DeploymentSiteServers({ apps, core, settings: opts.jobSettings });
    } else {
      this.siteServers = new InProcessSiteServers({ core, log });
      this.executor = new InProcessExecutor({
        core,
        log,
        onFinished: (namespace, typeName, run) => {
          this.metrics.jobOutcomes.inc({ type: this.typeNameOf(namespace, typeName), site: run.site, kind: run.kind, result: run.succeeded ? "succeeded" : "failed" });
          this.typeLoop.queue.add(`${namespace}/${typeName}`, Priority.Routine);
          this.enqueueSites(namespace, Priority.Routine);
        },
      });
    }

    const typeController = new ReplicableTypeController({
      custom,
      types: this.types,
      sites: this.sites,
      executor: this.executor,
      access: this.access,
      events,
      jobSettings: opts.jobSettings,
      metrics: this.metrics,
      ...(opts.site ? { site: opts.site } : {}),
      log,
    });
    const siteController = new GeoSiteController({
      custom,
      sites: this.sites,
      types: this.types,
      access: this.access,
      events,
      metrics: this.metrics,
      servers: this.siteServers,
      ...(opts.site ? { site: opts.site } : {}),
      log,
    });
    this.typeLoop = new ControllerLoop({ name: "replicabletype", reconcile: (k) => typeController.reconcile(k), log, metrics: this.metrics });
    this.siteLoop = new ControllerLoop({ name: "geosite", reconcile: (k) => siteController.reconcile(k), log, metrics: this.metrics });

    const key = (o: { metadata?: { namespace?: string; name?: string } }) => `${o.metadata?.namespace}/${o.metadata?.name}`;
    for (const ev of ["add", "update", "delete"] as const) {
      // A change to an object itself is urgent work for its controller; its own status writes
      // come back as updates and need no reconcile of it. Sites show the types' last runs, so
      // every type event reaches them, as routine work; types read only the sites' specs.
      this.types.on(ev, (t, old) => {
        if (changedBeyondStatus(t, old)) this.typeLoop.queue.add(key(t), Priority.Urgent);
        this.enqueueSites(t.metadata.namespace, Priority.Routine);
      });
      this.sites.on(ev, (s, old) => {
        if (!changedBeyondStatus(s, old)) return;
        this.siteLoop.queue.add(key(s), Priority.Urgent);
        this.enqueueTypes(s.metadata.namespace, Priority.Urgent);
      });
      this.jobs?.on(ev, (j) => {
        const ns = j.metadata?.namespace ?? "";
        const typeName = j.metadata?.labels?.[LABELS.type];
        if (typeName) this.typeLoop.queue.add(`${ns}/${typeName}`, Priority.Routine);
        const finished = j.status?.conditions?.find((c) => (c.type === "Complete" || c.type === "Failed") && c.status === "True");
        const uid = j.metadata?.uid ?? "";
        if (ev === "delete") this.finishedJobs.delete(uid);
        else if (finished && !this.finishedJobs.has(uid)) {
          this.finishedJobs.add(uid);
          // Jobs already finished when the cache first filled were counted by an earlier process.
          if (ev === "update") {
            const labels = j.metadata?.labels ?? {};
            this.metrics.jobOutcomes.inc({ type: this.typeNameOf(ns, labels[LABELS.type] ?? ""), site: labels[LABELS.site] ?? "", kind: labels[LABELS.kind] ?? "", result: finished.type === "Complete" ? "succeeded" : "failed" });
          }
          this.enqueueSites(ns, Priority.Routine);
        }
      });
    }

    if (opts.leaderElection && opts.controllers !== false) {
      const le = opts.leaderElection;
      this.elector = new LeaderElector({
        api: this.clients.coordination,
        namespace: le.namespace,
        name: le.name,
        identity: le.identity ?? `${hostname()}-${randomBytes(4).toString("hex")}`,
        ...(le.leaseDurationMs ? { leaseDurationMs: le.leaseDurationMs } : {}),
        ...(le.renewDeadlineMs ? { renewDeadlineMs: le.renewDeadlineMs } : {}),
        ...(le.retryPeriodMs ? { retryPeriodMs: le.retryPeriodMs } : {}),
        log,
        onStartedLeading: () => this.startControllers(),
        onStoppedLeading: () => {
          void this.stopControllers();
          (opts.onLostLeadership ?? (() => process.exit(1)))();
        },
      });
    }
  }

  get leading(): boolean {
    return this.controllersStarted;
  }

  /** Metrics label the type by spec.name (as the gauges do); Jobs carry the object's name. */
  private typeNameOf(namespace: string, objectName: string): string {
    return this.types.get(objectName, namespace)?.spec.name ?? objectName;
  }

  private enqueueSites(namespace: string, priority: Priority): void {
    for (const s of this.sites.list(namespace)) this.siteLoop.queue.add(`${namespace}/${s.metadata.name}`, priority);
  }

  private enqueueTypes(namespace: string, priority: Priority): void {
    for (const t of this.types.list(namespace)) this.typeLoop.queue.add(`${namespace}/${t.metadata.name}`, priority);
  }

  private get synced(): Promise<unknown> {
    return Promise.all([this.sites.synced, this.types.synced, this.jobs?.synced]);
  }

  private startControllers(): void {
    if (this.controllersStarted) return;
    this.controllersStarted = true;
    this.o.log.info({ site: this.o.site ?? "(all)" }, "starting controllers");
    this.typeLoop.start();
    this.siteLoop.start();
    for (const t of this.types.list()) this.typeLoop.queue.add(`${t.metadata.namespace}/${t.metadata.name}`, Priority.Routine);
    for (const s of this.sites.list()) this.siteLoop.queue.add(`${s.metadata.namespace}/${s.metadata.name}`, Priority.Routine);
  }

  private async stopControllers(): Promise<void> {
    if (!this.controllersStarted) return;
    this.controllersStarted = false;
    // A reconcile stuck on an unreachable database must not keep the Lease held past the Pod's
    // grace period: after CONTROLLER_STOP_GRACE_MS the stop goes on without it.
    let timer: NodeJS.Timeout | undefined;
    const finished = await Promise.race([
      Promise.all([this.typeLoop.stop(), this.siteLoop.stop()]).then(() => true),
      new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), CONTROLLER_STOP_GRACE_MS))),
    ]);
    clearTimeout(timer);
    if (!finished) this.o.log.warn({ graceMs: CONTROLLER_STOP_GRACE_MS }, "reconciles still running at shutdown; stopping without them");
  }

  private listen(port: number, handler: (path: string) => Promise<{ code: number; body: string; type?: string }>): Promise<string> {
    const server = createServer((req, res) => {
      void handler(new URL(req.url ?? "/", "http://x").pathname).then(
        ({ code, body, type }) => {
          res.writeHead(code, { "content-type": type ?? "text/plain; charset=utf-8" });
          res.end(body);
        },
        (err: unknown) => {
          res.writeHead(500);
          res.end(String(err));
        },
      );
    });
    this.servers.push(server);
    return new Promise((resolve) => {
      server.listen(port, this.o.bindAddress ?? "127.0.0.1", () => {
        const addr = server.address();
        resolve(`http://${this.o.bindAddress ?? "127.0.0.1"}:${typeof addr === "object" && addr ? addr.port : port}`);
      });
    });
  }

  async start(): Promise<void> {
    let ready = false;
    if (this.o.healthPort !== undefined) {
      this.healthURL = await this.listen(this.o.healthPort, async (path) => {
        if (path === "/healthz") return { code: 200, body: "ok" };
        if (path === "/readyz") return ready ? { code: 200, body: "ok" } : { code: 503, body: "caches not synced" };
        return { code: 404, body: "not found" };
      });
    }
    if (this.o.metricsPort !== undefined) {
      this.metricsURL = await this.listen(this.o.metricsPort, async (path) =>
        path === "/metrics" ? { code: 200, body: await this.metrics.registry.metrics(), type: this.metrics.registry.contentType } : { code: 404, body: "not found" },
      );
    }
    this.sites.start();
    this.types.start();
    this.jobs?.start();
    await this.synced;
    if (this.registryApi) this.registryApiURL = await this.registryApi.start();
    ready = true;
    this.o.log.info("caches synced");
    if (this.o.controllers === false) return;
    if (this.elector) this.elector.start();
    else this.startControllers();
  }

  async stop(): Promise<void> {
    // The work the Lease guards ends before the Lease is released (client-go's ReleaseOnCancel):
    // a successor starts at once, so it must not find this process still reconciling.
    await this.stopControllers();
    if (this.executor instanceof InProcessExecutor) this.executor.stopAll();
    await this.siteServers.stopAll();
    await this.elector?.stop();
    await this.registryApi?.stop();
    this.sites.stop();
    this.types.stop();
    this.jobs?.stop();
    await this.access.close();
    await Promise.all(this.servers.map((s) => new Promise((r) => s.close(r))));
    this.servers = [];
  }
}
