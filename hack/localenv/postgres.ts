/**
 * A throwaway PostgreSQL server on 127.0.0.1. As root it runs as the `postgres` user (the server
 * refuses to run as root) through setpriv, which execs in place so the PID we hold is the
 * postmaster's own.
 */
import { execFileSync } from "node:child_process";
import { chownSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { freePort } from "./ports.ts";
import { ManagedProcess, waitFor } from "./processes.ts";
import { postgresBinDir } from "./tools.ts";

export interface PostgresServer {
  name: string;
  port: number;
  /** Superuser URL of the `postgres` database. */
  url: string;
  process: ManagedProcess;
  /** URL of another database on this server. */
  urlFor(database: string): string;
  createDatabase(database: string): Promise<string>;
  stop(): Promise<void>;
}

function asPostgresUser(): { prefix: string[]; uid?: number; gid?: number } {
  if (process.getuid?.() !== 0) return { prefix: [] };
  const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
  const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
  return { prefix: ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"], uid, gid };
}

export async function startPostgres(opts: { name: string; stateDir: string; port?: number }): Promise<PostgresServer> {
  const bin = postgresBinDir();
  const dataDir = join(opts.stateDir, opts.name);
  mkdirSync(dataDir, { recursive: true });
  const user = asPostgresUser();
  if (user.uid !== undefined) chownSync(dataDir, user.uid, user.gid!);
  const run = (cmd: string, args: string[]): string[] => [...user.prefix, cmd, ...args];

  const [initCmd, ...initArgs] = run(join(bin, "initdb"), [
    "-D", dataDir, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8",
  ]);
  try {
    execFileSync(initCmd!, initArgs, { stdio: "pipe" });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString() ?? "";
    throw new Error(`initdb for ${opts.name} failed: ${stderr.trim() || String(err)}`);
  }

  const port = opts.port ?? (await freePort());
  const [cmd, ...args] = run(join(bin, "postgres"), [
    "-D", dataDir,
    "-p", String(port),
    "-c", "listen_addresses=127.0.0.1",
    "-c", "unix_socket_directories=",
    "-c", "max_connections=300",
    // A test server: durability is not what is being tested.
    "-c", "fsync=off",
    "-c", "synchronous_commit=off",
    "-c", "full_page_writes=off",
    "-c", "shared_buffers=256MB",
  ]);
  const proc = new ManagedProcess({ name: opts.name, command: cmd!, args, stateDir: opts.stateDir, stopSignal: "SIGINT" });
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  await waitFor(
    `PostgreSQL ${opts.name}`,
    async () => {
      const client = new pg.Client({ connectionString: url });
      try {
        await client.connect();
        await client.query("select 1");
        return true;
      } finally {
        await client.end().catch(() => undefined);
      }
    },
    { timeoutMs: 30_000, process: proc },
  );
  const urlFor = (database: string) => `postgres://postgres@127.0.0.1:${port}/${encodeURIComponent(database)}`;
  return {
    name: opts.name,
    port,
    url,
    process: proc,
    urlFor,
    async createDatabase(database: string) {
      await createDatabaseOn(url, database);
      return urlFor(database);
    },
    stop: () => proc.stop(),
  };
}

/** Creates `database` on the server a superuser URL points at. */
export async function createDatabaseOn(serverURL: string, database: string): Promise<void> {
  const client = new pg.Client({ connectionString: serverURL });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE "${database.replaceAll('"', '""')}"`);
  } finally {
    await client.end();
  }
}
