/**
 * A git server on 127.0.0.1 serving bare repositories under one root with `git daemon`
 * (read and push, no authentication).
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "./ports.ts";
import { ManagedProcess, waitFor } from "./processes.ts";
import { createConnection } from "node:net";

export interface GitServer {
  root: string;
  port: number;
  /** Base URL repositories are addressed under: `${baseURL}/<path>.git`. */
  baseURL: string;
  process: ManagedProcess;
  stop(): Promise<void>;
}

export async function startGitDaemon(opts: { name: string; stateDir: string; port?: number }): Promise<GitServer> {
  const root = join(opts.stateDir, opts.name);
  mkdirSync(root, { recursive: true });
  const port = opts.port ?? (await freePort());
  const proc = new ManagedProcess({
    name: opts.name,
    command: "git",
    args: [
      "daemon",
      "--reuseaddr",
      "--export-all",
      "--enable=receive-pack",
      `--base-path=${root}`,
      "--listen=127.0.0.1",
      `--port=${port}`,
      root,
    ],
    stateDir: opts.stateDir,
  });
  await waitFor(
    `git daemon ${opts.name}`,
    () =>
      new Promise<boolean>((resolve) => {
        const socket = createConnection({ host: "127.0.0.1", port }, () => {
          socket.end();
          resolve(true);
        });
        socket.once("error", () => resolve(false));
      }),
    { timeoutMs: 15_000, process: proc },
  );
  return { root, port, baseURL: `git://127.0.0.1:${port}`, process: proc, stop: () => proc.stop() };
}
