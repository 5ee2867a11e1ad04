/**
 * Starts the real servers once per integration run and stops them (by PID) when it ends, whether
 * tests passed or not. Tests reach the servers through environment variables (GEO_TEST_*) and
 * `inject("env")`.
 */
import type { TestProject } from "vitest/node";
import { startLocalEnvironment, type LocalEnvironment, type LocalEnvironmentInfo } from "../hack/localenv/index.ts";

declare module "vitest" {
  export interface ProvidedContext {
    env: LocalEnvironmentInfo;
  }
}

let env: LocalEnvironment | undefined;

export async function setup(project: TestProject): Promise<() => Promise<void>> {
  const started = Date.now();
  env = await startLocalEnvironment({ log: (m) => console.log(`[localenv] ${m}`) });
  console.log(`[localenv] all servers up in ${((Date.now() - started) / 1000).toFixed(1)} s (state in ${env.info.dir})`);
  const { info } = env;
  const vars: Record<string, string | undefined> = {
    GEO_TEST_ENV_DIR: info.dir,
    KUBECONFIG: info.kube?.kubeconfig,
    GEO_TEST_KUBECTL: info.kube?.kubectl,
    GEO_TEST_HELM: info.kube?.helm,
    GEO_TEST_PRIMARY_DB_URL: info.postgres?.primaryURL,
    GEO_TEST_SECONDARY_DB_URL: info.postgres?.secondaryURL,
    GEO_TEST_PRIMARY_REPLICA_URL: info.postgres?.primaryReplicaURL,
    GEO_TEST_GIT_BASE_URL: info.git?.baseURL,
    GEO_TEST_GIT_ROOT: info.git?.root,
    GEO_TEST_MINIO: info.minioBinary,
  };
  for (const [k, v] of Object.entries(vars)) if (v !== undefined) process.env[k] = v;
  project.provide("env", info);

  const stop = async () => {
    const e = env;
    env = undefined;
    await e?.stop();
  };
  // Stop the servers even if the run is interrupted.
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => void stop().finally(() => process.exit(130)));
  }
  return stop;
}
