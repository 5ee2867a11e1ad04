import { spawn, execFileSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { chownSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type pg from "pg";
import type { ReplicableTypeSchemaConfig } from "../../src/registry/config.ts";
import { applySchema } from "../../src/registry/schema-manager.ts";

/**
 * A throwaway PostgreSQL server for the benchmark when no URL is given.
 * PostgreSQL refuses to run as root, so as root it runs as the postgres user.
 */
export interface LocalServer {
  url: string;
  stop(): Promise<void>;
}

const BIN = process.env.GEO_BENCH_PG_BIN ?? "/usr/lib/postgresql/15/bin";

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function asPostgresUser(command: string, args: string[]): [string, string[]] {
  if (process.getuid?.() !== 0) return [command, args];
  return ["setpriv", ["--reuid=postgres", "--regid=postgres", "--init-groups", command, ...args]];
}

async function waitReady(port: number, socketDir: string, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`postgres exited with ${child.exitCode}`);
    try {
      const [cmd, args] = asPostgresUser(join(BIN, "pg_isready"), ["-h", "127.0.0.1", "-p", String(port), "-q"]);
      execFileSync(cmd, args, { stdio: "ignore" });
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`postgres on ${socketDir} did not become ready`);
}

export async function startLocalServer(): Promise<LocalServer> {
  const dir = mkdtempSync(join(tmpdir(), "geo-bench-pg-"));
  if (process.getuid?.() === 0) execFileSync("chown", ["postgres", dir]);
  else chownSync(dir, process.getuid?.() ?? 0, process.getgid?.() ?? 0);
  const data = join(dir, "data");
  const [initCmd, initArgs] = asPostgresUser(join(BIN, "initdb"), ["-D", data, "-U", "postgres", "-A", "trust"]);
  execFileSync(initCmd, initArgs, { stdio: "ignore" });
  const port = await freePort();
  const [cmd, args] = asPostgresUser(join(BIN, "postgres"), [
    "-D", data, "-p", String(port), "-k", dir, "-c", "listen_addresses=127.0.0.1",
    // As the local environment's servers: a throwaway server, durability is not measured.
    "-c", "fsync=off", "-c", "max_connections=200",
  ]);
  const child = spawn(cmd, args, { stdio: "ignore" });
  await waitReady(port, dir, child);
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async stop() {
      // SIGINT is PostgreSQL's fast shutdown; the child is the server we started.
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGINT");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A model table of ids 1..`count` (those `keep` admits) on the primary, then the type's schema on both sides. */
export async function setUpBenchType(
  primary: pg.Pool,
  tracking: pg.Pool,
  type: ReplicableTypeSchemaConfig,
  count: number,
  keep = "true",
): Promise<void> {
  const table = type.source.table;
  await primary.query(`CREATE TABLE ${table} (id bigint PRIMARY KEY)`);
  await primary.query(`INSERT INTO ${table} (id) SELECT g FROM generate_series(1, $1::integer) AS g WHERE ${keep}`, [count]);
  await primary.query(`VACUUM ANALYZE ${table}`);
  for (const [pool, role] of [[primary, "primary"], [tracking, "secondary"]] as const) {
    const client = await pool.connect();
    try {
      await applySchema(client, type, role);
    } finally {
      client.release();
    }
  }
}
