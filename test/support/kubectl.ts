/** Runs the real kubectl against the test API server, as a user would. */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { REPO_ROOT } from "../../hack/localenv/tools.ts";
import { commandAsync, type CommandResult } from "./command.ts";

export type { CommandResult };

function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run integration tests through vitest's integration project (test/global-setup.ts)`);
  return value;
}

export function kubectl(args: string[], input?: string): CommandResult {
  const res = spawnSync(requireEnv("GEO_TEST_KUBECTL"), ["--kubeconfig", requireEnv("KUBECONFIG"), ...args], {
    input,
    encoding: "utf8",
    timeout: 60_000,
  });
  return { code: res.status ?? -1, stdout: res.stdout ?? "", stderr: res.stderr ?? "" };
}

/** kubectl that must succeed; throws with its stderr otherwise. */
export function kubectlOk(args: string[], input?: string): string {
  const res = kubectl(args, input);
  if (res.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed (${res.code}): ${res.stderr}`);
  return res.stdout;
}

/** A fresh namespace with a random suffix, so test files never see each other's objects. */
export function createNamespace(prefix: string): string {
  const name = `${prefix}-${Math.random().toString(36).slice(2, 8)}`;
  kubectlOk(["create", "namespace", name]);
  return name;
}

/**
 * kubectl without blocking the event loop: for tests that run the manager in the same process,
 * where a synchronous kubectl would freeze the operator it is waiting for.
 */
export function kubectlAsync(args: string[], input?: string): Promise<CommandResult> {
  return commandAsync(requireEnv("GEO_TEST_KUBECTL"), ["--kubeconfig", requireEnv("KUBECONFIG"), ...args], input === undefined ? {} : { input });
}

/** kubectlAsync that must succeed; throws with its stderr otherwise. */
export async function kubectlAsyncOk(args: string[], input?: string): Promise<string> {
  const res = await kubectlAsync(args, input);
  if (res.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed (${res.code}): ${res.stderr}`);
  return res.stdout;
}

/** Applies the project's CRDs and waits until the API server serves them, without blocking the event loop. */
export async function installCrdsAsync(): Promise<void> {
  await kubectlAsyncOk(["apply", "--server-side", "-f", join(REPO_ROOT, "crds")]);
  await kubectlAsyncOk(["wait", "--for=condition=Established", "--timeout=60s", "crd/geosites.geo.replication.dev", "crd/replicabletypes.geo.replication.dev"]);
}

/** The object's `type` condition, if it has one. */
export const conditionOf = (obj: any, type: string) => obj.status?.conditions?.find((c: any) => c.type === type);

/** The first sample of metric `name` at `metricsURL` whose labels contain `labels`. */
export async function metricLine(metricsURL: string, name: string, labels: string): Promise<string | undefined> {
  return (await (await fetch(`${metricsURL}/metrics`)).text()).split("\n").find((l) => l.startsWith(`${name}{`) && l.includes(labels));
}
