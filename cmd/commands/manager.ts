/** `geo-operator manager`: runs the operator (controllers, leader election, health and metrics). */
import { join } from "node:path";
import { Option, type Command } from "commander";
import { DEFAULT_JOB_SETTINGS } from "../../src/controllers/job-spec.ts";
import { createLogger } from "../../src/util/log.ts";

interface ManagerCliOptions {
  kubeconfig?: string;
  site?: string;
  namespace?: string;
  executor: "jobs" | "in-process";
  image: string;
  imagePullPolicy?: string;
  jobServiceAccount?: string;
  maxRun: string;
  metricsBindAddress: string;
  healthProbeBindAddress: string;
  leaderElect: boolean;
  leaderElectionNamespace: string;
  logLevel: string;
  registryApiBindAddress?: string;
  registryApiCertDir?: string;
  controllers: boolean;
}

function splitAddress(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(":");
  return { host: address.slice(0, i) || "0.0.0.0", port: Number(address.slice(i + 1)) };
}

export function registerManagerCommand(program: Command): void {
  program
    .command("manager")
    .description("run the operator: reconcile GeoSites and ReplicableTypes, schedule workers, serve /metrics")
    .option("--kubeconfig <path>", "kubeconfig file (default: in-cluster, then KUBECONFIG, then ~/.kube/config)")
    .option("--site <name>", "act for this GeoSite only (default: every site)")
    .option("--namespace <ns>", "watch only this namespace (default: all namespaces)", process.env.WATCH_NAMESPACE || undefined)
    .addOption(new Option("--executor <executor>", "how worker runs are carried out").choices(["jobs", "in-process"]).default("jobs"))
    .option("--image <image>", "worker image for Jobs", process.env.GEO_OPERATOR_IMAGE ?? DEFAULT_JOB_SETTINGS.image)
    .option("--image-pull-policy <policy>", "imagePullPolicy of worker Jobs")
    .option("--job-service-account <name>", "ServiceAccount of worker pods (they need no API access)")
    .option("--max-run <seconds>", "seconds one worker run keeps claiming work", String(DEFAULT_JOB_SETTINGS.maxRunSeconds))
    .option("--metrics-bind-address <addr>", "host:port for /metrics", ":9090")
    .option("--health-probe-bind-address <addr>", "host:port for /healthz and /readyz", ":8081")
    .option("--leader-elect", "elect a leader through a Lease (run several replicas)", false)
    .option("--leader-election-namespace <ns>", "namespace of the Lease", process.env.POD_NAMESPACE ?? "default")
    .addOption(new Option("--log-level <level>").choices(["debug", "info", "warn", "error"]).default("info"))
    .option("--registry-api-bind-address <addr>", "host:port of the aggregated registry API (registry.geo.replication.dev); unset: not served")
    .option("--registry-api-cert-dir <dir>", "directory with tls.crt and tls.key, the registry API's serving certificate", "/tls")
    .option("--no-controllers", "run only the caches and the registry API (no reconciling, no leader election)")
    .action(async (opts: ManagerCliOptions) => {
      // Loaded here, not at start-up: every command shares this binary, and the Kubernetes client
      // and the controllers cost each worker Pod about a second of start-up they never use.
      const [{ loadKubeConfig }, { Manager }] = await Promise.all([import("../../src/k8s/client.ts"), import("../../src/manager.ts")]);
      const log = createLogger({ name: "geo-operator", level: opts.logLevel });
      const metrics = splitAddress(opts.metricsBindAddress);
      const health = splitAddress(opts.healthProbeBindAddress);
      const registryApi = opts.registryApiBindAddress ? splitAddress(opts.registryApiBindAddress) : undefined;
      const manager = new Manager({
        kubeConfig: loadKubeConfig(opts.kubeconfig),
        log,
        ...(opts.site ? { site: opts.site } : {}),
        ...(opts.namespace ? { namespace: opts.namespace } : {}),
        executor: opts.executor,
        jobSettings: {
          ...DEFAULT_JOB_SETTINGS,
          image: opts.image,
          maxRunSeconds: Number(opts.maxRun),
          ...(opts.imagePullPolicy ? { imagePullPolicy: opts.imagePullPolicy } : {}),
          ...(opts.jobServiceAccount ? { serviceAccountName: opts.jobServiceAccount } : {}),
        },
        metricsPort: metrics.port,
        healthPort: health.port,
        bindAddress: metrics.host,
        controllers: opts.controllers,
        ...(registryApi
          ? {
              registryApi: {
                port: registryApi.port,
                bindAddress: registryApi.host,
                certFile: join(opts.registryApiCertDir ?? "/tls", "tls.crt"),
                keyFile: join(opts.registryApiCertDir ?? "/tls", "tls.key"),
              },
            }
          : {}),
        ...(opts.leaderElect ? { leaderElection: { namespace: opts.leaderElectionNamespace, name: "geo-operator-leader" } } : {}),
      });
      const shutdown = (signal: string) => {
        log.info({ signal }, "shutting down");
        void manager.stop().then(() => process.exit(0));
      };
      process.once("SIGTERM", () => shutdown("SIGTERM"));
      process.once("SIGINT", () => shutdown("SIGINT"));
      await manager.start();
      log.info({ metrics: manager.metricsURL, health: manager.healthURL, registryApi: manager.registryApiURL }, "manager started");
    });
}
