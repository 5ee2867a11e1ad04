/** Runs the real kubectl against the test API server, as a user would. */
import { spawnSync } from "node:child_process";
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
