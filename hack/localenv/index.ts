/**
 * The local environment: every real server geo-operator talks to, on 127.0.0.1, in one temp
 * directory. Used by the vitest globalSetup and by `make demo`.
 *
 *   kube      etcd + kube-apiserver (RBAC and the aggregation layer on), kubeconfig, kubectl/helm
 *             paths, and geo-operator's registry API registered as an APIService
 *   postgres  two servers: the primary site's main DB and the secondary site's tracking DB, and a
 *             hot standby streaming the primary's WAL (the primary's read replica)
 *   s3        two MinIO servers: the primary's and the secondary's object storage
 *   git       a git daemon serving the primary's bare repositories
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startGitDaemon, type GitServer } from "./git-server.ts";
import { startKubeControlPlane, type KubeControlPlane } from "./kube.ts";
import { startMinio, type S3Endpoint } from "./minio.ts";
import { startRegistryApi, type RegistryApi } from "./registry-api.ts";
import { startPostgres, startStandby, type PostgresServer, type StandbyServer } from "./postgres.ts";
import { reapLeftovers } from "./processes.ts";
import { ensureTools, type GoTool } from "./tools.ts";

export type Component = "kube" | "postgres" | "s3" | "git";
export const ALL_COMPONENTS: Component[] = ["kube", "postgres", "s3", "git"];

/** What a test or the demo needs to reach the servers; also written to `<dir>/env.json`. */
export interface LocalEnvironmentInfo {
  dir: string;
  kube?: { server: string; kubeconfig: string; kubectl: string; helm: string; certDir: string; registryApiURL: string; registryApiMetricsURL: string };
  /** Superuser URLs of the `postgres` database on each server. */
  postgres?: { primaryURL: string; secondaryURL: string; primaryReplicaURL: string };
  s3?: Record<"primary" | "secondary", { endpoint: string; region: string; bucket: string; accessKeyId: string; secretAccessKey: string }>;
  git?: { root: string; baseURL: string };
  minioBinary?: string;
}

export interface LocalEnvironment {
  info: LocalEnvironmentInfo;
  kube?: KubeControlPlane;
  registryApi?: RegistryApi;
  postgres?: PostgresServers;
  s3?: { primary: S3Endpoint; secondary: S3Endpoint };
  git?: GitServer;
  stop(): Promise<void>;
}

export interface PostgresServers {
  primary: PostgresServer;
  secondary: PostgresServer;
  /** Read-only, replays the primary's WAL as it streams in; see `startStandby`. */
  primaryReplica: StandbyServer;
}

const SERVER_COMMANDS = ["kube-apiserver", "etcd", "postgres", "minio", "git-daemon", "git daemon", "cmd/geo-operator.ts"];

export async function startLocalEnvironment(opts: {
  components?: Component[];
  dir?: string;
  log?: (msg: string) => void;
} = {}): Promise<LocalEnvironment> {
  const components = new Set(opts.components ?? ALL_COMPONENTS);
  const log = opts.log ?? (() => undefined);
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), "geo-operator-env-"));
  mkdirSync(dir, { recursive: true });
  // PostgreSQL runs as another user and must be able to reach its data directory below this one.
  chmodSync(dir, 0o755);
  reapLeftovers(dir, SERVER_COMMANDS);

  const needed: GoTool[] = [];
  if (components.has("kube")) needed.push("etcd", "kube-apiserver", "kubectl", "helm");
  if (components.has("s3")) needed.push("minio");
  const started = Date.now();
  const tools = needed.length ? ensureTools(needed) : ({} as Record<GoTool, string>);
  log(`tools ready in ${Date.now() - started} ms`);

  // Each PostgreSQL server as soon as it runs, so that one failing to start leaves none behind.
  const postgres: Partial<PostgresServers> = {};
  const processes = () =>
    [
      env.registryApi?.process,
      env.kube?.apiserver,
      env.kube?.etcd,
      postgres.primaryReplica?.process,
      postgres.primary?.process,
      postgres.secondary?.process,
      env.s3?.primary.process,
      env.s3?.secondary.process,
      env.git?.process,
    ].filter((p): p is NonNullable<typeof p> => p !== undefined);
  // Last resort when the owner exits without calling stop() (a killed test runner, a timed-out
  // teardown): the servers must not outlive it.
  const killOnExit = () => {
    for (const p of processes()) if (p.running) p.kill("SIGKILL");
  };
  process.once("exit", killOnExit);
  // A primary shutting down waits for its standbys to receive its last WAL: the standby goes first.
  const stopPrimaryAndReplica = async () => {
    await postgres.primaryReplica?.stop().catch(() => undefined);
    await postgres.primary?.stop();
  };
  const env: LocalEnvironment = {
    info: { dir },
    async stop() {
      await Promise.allSettled([
        env.registryApi
          ? env.registryApi.stop().then(() => env.kube?.stop())
          : env.kube?.stop(),
        stopPrimaryAndReplica(),
        postgres.secondary?.stop(),
        env.s3?.primary.stop(),
        env.s3?.secondary.stop(),
        env.git?.stop(),
      ]);
      process.off("exit", killOnExit);
      // A directory we created is ours to remove; one the caller passed is left for them.
      if (!opts.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    const tasks: Promise<void>[] = [];
    if (components.has("kube")) {
      tasks.push(
        startKubeControlPlane({ stateDir: dir, etcdBinary: tools.etcd, apiserverBinary: tools["kube-apiserver"] }).then(async (k) => {
          env.kube = k;
          log(`kube-apiserver ready at ${k.server}`);
          const api = (env.registryApi = await startRegistryApi({ stateDir: dir, kubeconfig: k.kubeconfig, kubectl: tools.kubectl }));
          env.info.kube = { server: k.server, kubeconfig: k.kubeconfig, kubectl: tools.kubectl, helm: tools.helm, certDir: k.certDir, registryApiURL: api.url, registryApiMetricsURL: api.metricsURL };
          log(`registry API ready at ${api.url} (APIService registered)`);
        }),
      );
    }
    if (components.has("postgres")) {
      const primaryAndReplica = async () => {
        const primary = (postgres.primary = await startPostgres({ name: "pg-primary", stateDir: dir }));
        const replicaStarted = Date.now();
        const replica = (postgres.primaryReplica = await startStandby(primary, { name: "pg-primary-replica", stateDir: dir }));
        log(`PostgreSQL standby of the primary ready on port ${replica.port} in ${Date.now() - replicaStarted} ms`);
      };
      const secondary = async () => {
        postgres.secondary = await startPostgres({ name: "pg-secondary", stateDir: dir });
      };
      tasks.push(
        Promise.all([primaryAndReplica(), secondary()]).then(() => {
          const servers = postgres as PostgresServers;
          env.postgres = servers;
          env.info.postgres = { primaryURL: servers.primary.url, secondaryURL: servers.secondary.url, primaryReplicaURL: servers.primaryReplica.url };
          log(`PostgreSQL ready on ports ${servers.primary.port} (primary) and ${servers.secondary.port} (secondary)`);
        }),
      );
    }
    if (components.has("s3")) {
      env.info.minioBinary = tools.minio;
      tasks.push(
        Promise.all([
          startMinio({ name: "s3-primary", stateDir: dir, binary: tools.minio, buckets: ["geo-primary"] }),
          startMinio({ name: "s3-secondary", stateDir: dir, binary: tools.minio, buckets: ["geo-secondary"] }),
        ]).then(([primary, secondary]) => {
          env.s3 = { primary, secondary };
          const info = (e: S3Endpoint) => ({
            endpoint: e.endpoint,
            region: e.region,
            bucket: e.buckets[0]!,
            accessKeyId: e.accessKeyId,
            secretAccessKey: e.secretAccessKey,
          });
          env.info.s3 = { primary: info(primary), secondary: info(secondary) };
          log(`MinIO ready at ${primary.endpoint} and ${secondary.endpoint}`);
        }),
      );
    }
    if (components.has("git")) {
      tasks.push(
        startGitDaemon({ name: "git-primary", stateDir: dir }).then((g) => {
          env.git = g;
          env.info.git = { root: g.root, baseURL: g.baseURL };
          log(`git daemon ready at ${g.baseURL}`);
        }),
      );
    }
    const results = await Promise.allSettled(tasks);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
  } catch (err) {
    await env.stop();
    throw err;
  }
  writeFileSync(join(dir, "env.json"), JSON.stringify(env.info, null, 2));
  return env;
}
