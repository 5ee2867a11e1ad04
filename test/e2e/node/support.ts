/**
 * What the real-node end-to-end test needs around the cluster hack/node/run.sh provides: the
 * binaries it hands over (KUBECTL, HELM), the node IP, and the test servers' ports re-opened on
 * the node IP so Pods can reach them (the servers listen on 127.0.0.1 of the node's network
 * namespace, which Pods cannot reach).
 */
import { spawnSync } from "node:child_process";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { commandAsync as runAsync, type CommandResult } from "../../support/command.ts";
export { until } from "../../support/until.ts";

export function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this test through hack/node/run.sh (make e2e)`);
  return value;
}

export type { CommandResult };

/** kubectl, blocking: for the set-up steps, which run before any Pod uses the forwarders. */
function kubectl(args: string[], input?: string): CommandResult {
  const res = spawnSync(requireEnv("KUBECTL"), args, { input, encoding: "utf8", timeout: 120_000 });
  return { code: res.status ?? -1, stdout: res.stdout ?? "", stderr: (res.stderr ?? "") + (res.error ? String(res.error) : "") };
}

export function kubectlOk(args: string[], input?: string): string {
  const res = kubectl(args, input);
  if (res.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed (${res.code}): ${res.stderr}`);
  return res.stdout;
}

/** helm without blocking the event loop: the install runs while the test servers start, and the forwarders serve Pods throughout. */
export async function helmAsyncOk(args: string[]): Promise<string> {
  const res = await commandAsync(requireEnv("HELM"), args);
  if (res.code !== 0) throw new Error(`helm ${args.join(" ")} failed (${res.code}): ${res.stderr}`);
  return res.stdout;
}

/** kubectl without blocking the event loop (the test's TCP forwarders run on it). */
export function kubectlAsync(args: string[], input?: string): Promise<CommandResult> {
  return commandAsync(requireEnv("KUBECTL"), args, input);
}

/** Any command without blocking the event loop (the plugin, whose requests reach the forwarders). */
export function commandAsync(command: string, args: string[], input?: string): Promise<CommandResult> {
  return runAsync(command, args, input === undefined ? {} : { input });
}

export async function kubectlAsyncOk(args: string[], input?: string): Promise<string> {
  const res = await kubectlAsync(args, input);
  if (res.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed (${res.code}): ${res.stderr}`);
  return res.stdout;
}


export interface Forwarder {
  port: number;
  close(): Promise<void>;
}

/** Listens on host:0 and forwards every connection to 127.0.0.1:targetPort. */
export function forward(host: string, targetPort: number): Promise<Forwarder> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = createConnection({ host: "127.0.0.1", port: targetPort });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
    }
    const drop = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, () => {
      // Once listening, a failed accept is the connecting Pod's problem (it retries), not the test's.
      server.off("error", reject).on("error", (err) => console.error(`[e2e] forwarder ${host} -> ${targetPort}: ${err.message}`));
      const address = server.address();
      if (address === null || typeof address === "string") return reject(new Error("no port"));
      resolve({
        port: address.port,
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}
