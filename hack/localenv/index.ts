/**
 * The local environment: every real server geo-operator talks to, on 127.0.0.1, in one temp
 * directory. Used by the vitest globalSetup and by `make demo`.
 *
 *   kube      etcd + kube-apiserver (RBAC on), kubeconfig, and kubectl/helm paths
 *   postgres  two servers: the primary site's main DB and the secondary site's tracking DB
 *   s3        two MinIO servers: the primary's and the secondary's object storage
 *   git       a git daemon serving the primary's bare repositories
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startGitDaemon, type GitServer } from "./git-server.ts";
import { startKubeControlPlane, type KubeControlPlane } from "./kube.ts";
import { startMinio, type S3Endpoint } from "./minio.ts";
import { startPostgres, type PostgresServer } from "./postgres.ts";
import { reapLeftovers } from "./processes.ts";
import { ensureTools, type GoTool } from "./tools.ts";

export type Component = "kube" | "postgres" | "s3" | "git";
export const ALL_COMPONENTS: Component[] = ["kube", "postgres", "s3", "git"];

/** What a test or the demo needs to reach the servers; also written to `<dir>/env.json`. */
export interface LocalEnvironmentInfo {
  dir: string;
  kube?: { server: string; kubeconfig: string; kubectl: string; helm: string };
  postgres?: { primaryURL: string; secondaryURL: string };
  s3?: Record<"primary" | "secondary", { endpoint: string; region: string; bucket: string; accessKeyId: string; secretAccessKey: string }>;
  git?: { root: string; baseURL: string };
  minioBinary?: string;
}

export interface LocalEnvironment {
  info: LocalEnvironmentInfo;
  kube?: KubeControlPlane;
  postgres?: { primary: PostgresServer; secondary: PostgresServer };
  s3?: { primary: S3Endpoint; secondary: S3Endpoint };
  git?: GitServer;
  stop(): Promise<void>;
}

const SERVER_COMMANDS = ["kube-apiserver", "etcd", "postgres", "minio", "git-daemon", "git daemon"];

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

  const processes = () =>
    [env.kube?.apiserver, env.kube?.etcd, env.postgres?.primary.process, env.postgres?.secondary.process, env.s3?.primary.process, env.s3?.secondary.process, env.git?.process].filter(
      (p): p is NonNullable<typeof p> => p !== undefined,
    );
  // Last resort when the owner exits without calling stop() (a killed test runner, a timed-out
  // teardown): the servers must not outlive it.
  const killOnExit = () => {
    for (const p of processes()) if (p.running) p.kill("SIGKILL");
  };
  process.once("exit", killOnExit);
  const env: LocalEnvironment = {
    info: { dir },
    async stop() {
      await Promise.allSettled([
        env.kube?.stop(),
        env.postgres?.primary.stop(),
        env.postgres?.secondary.stop(),
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
        startKubeControlPlane({ stateDir: dir, etcdBinary: tools.etcd, apiserverBinary: tools["kube-apiserver"] }).then((k) => {
          env.kube = k;
          env.info.kube = { server: k.server, kubeconfig: k.kubeconfig, kubectl: tools.kubectl, helm: tools.helm };
          log(`kube-apiserver ready at ${k.server}`);
        }),
      );
    }
    if (components.has("postgres")) {
      tasks.push(
        Promise.all([startPostgres({ name: "pg-primary", stateDir: dir }), startPostgres({ name: "pg-secondary", stateDir: dir })]).then(
          ([primary, secondary]) => {
            env.postgres = { primary, secondary };
            env.info.postgres = { primaryURL: primary.url, secondaryURL: secondary.url };
            log(`PostgreSQL ready on ports ${primary.port} and ${secondary.port}`);
          },
        ),
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
