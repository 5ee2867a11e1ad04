/**
 * Throwaway PostgreSQL servers on 127.0.0.1: independent servers (`startPostgres`) and a hot
 * standby streaming a server's WAL (`startStandby`), the physical read replica a secondary site
 * reads the primary's database through. As root they run as the `postgres` user (the server
 * refuses to run as root) through setpriv, which execs in place so the PID we hold is the
 * postmaster's own.
 */
import { execFile, execFileSync } from "node:child_process";
import { chownSync, mkdirSync } from "node:fs";
import { basename, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
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

/** A hot standby of another server: read-only, its WAL replay can be paused to produce lag. */
export interface StandbyServer extends PostgresServer {
  pauseReplay(): Promise<void>;
  resumeReplay(): Promise<void>;
  /** Resolves once the standby has replayed everything committed on its primary before the call. */
  waitForCatchUp(timeoutMs?: number): Promise<void>;
}

function asPostgresUser(): { prefix: string[]; uid?: number; gid?: number } {
  if (process.getuid?.() !== 0) return { prefix: [] };
  const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
  const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
  return { prefix: ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"], uid, gid };
}

/** An empty data directory the server's user owns, and a runner of its tools as that user. */
function prepareDataDir(stateDir: string, name: string) {
  const dataDir = join(stateDir, name);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const user = asPostgresUser();
  if (user.uid !== undefined) chownSync(dataDir, user.uid, user.gid!);
  const command = (cmd: string, args: string[]): [string, string[]] => {
    const [first, ...rest] = [...user.prefix, cmd, ...args];
    return [first!, rest];
  };
  const runTool = async (cmd: string, args: string[]): Promise<void> => {
    try {
      await promisify(execFile)(...command(cmd, args));
    } catch (err) {
      const stderr = (err as { stderr?: string }).stderr ?? "";
      throw new Error(`${basename(cmd)} for ${name} failed: ${stderr.trim() || String(err)}`);
    }
  };
  return { dataDir, command, runTool };
}

/** The server's command line; a standby takes the same settings (hot standby needs max_connections ≥ the primary's). */
function serverArgs(dataDir: string, port: number): string[] {
  return [
    "-D", dataDir,
    "-p", String(port),
    "-c", "listen_addresses=127.0.0.1",
    "-c", "unix_socket_directories=",
    "-c", "max_connections=300",
    // A test server: durability is not what is being tested. (Streaming replication works without
    // fsync, and base backups force full-page writes while they run.)
    "-c", "fsync=off",
    "-c", "synchronous_commit=off",
    "-c", "full_page_writes=off",
    "-c", "shared_buffers=256MB",
  ];
}

const urlOf = (port: number, database: string) => `postgres://postgres@127.0.0.1:${port}/${encodeURIComponent(database)}`;

/** Runs `probe` on a fresh connection to `url` until it returns true. */
async function waitForServer(what: string, url: string, proc: ManagedProcess, probe: (c: pg.Client) => Promise<boolean>): Promise<void> {
  await waitFor(what, () => withClient(url, probe), { timeoutMs: 30_000, process: proc });
}

/**
 * An independent server. Standbys can stream from it as initdb sets it up: wal_level=replica and
 * max_wal_senders=10 by default, and `host replication all 127.0.0.1/32 trust` in pg_hba.conf.
 */
export async function startPostgres(opts: { name: string; stateDir: string; port?: number }): Promise<PostgresServer> {
  const bin = postgresBinDir();
  const { dataDir, command, runTool } = prepareDataDir(opts.stateDir, opts.name);
  await runTool(join(bin, "initdb"), ["-D", dataDir, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"]);

  const port = opts.port ?? (await freePort());
  const [cmd, args] = command(join(bin, "postgres"), serverArgs(dataDir, port));
  const proc = new ManagedProcess({ name: opts.name, command: cmd, args, stateDir: opts.stateDir, stopSignal: "SIGINT" });
  const url = urlOf(port, "postgres");
  await waitForServer(`PostgreSQL ${opts.name}`, url, proc, async (c) => (await c.query("select 1")).rowCount === 1);
  return {
    name: opts.name,
    port,
    url,
    process: proc,
    urlFor: (database) => urlOf(port, database),
    async createDatabase(database: string) {
      await createDatabaseOn(url, database);
      return urlOf(port, database);
    },
    stop: () => proc.stop(),
  };
}

/**
 * A hot standby of `primary`: a base backup streamed with its WAL (`pg_basebackup -R -X stream`),
 * then a server on its own port replaying the primary's WAL as it streams in. Read-only: writes,
 * `CREATE DATABASE` and `LISTEN` are refused; databases created on the primary appear here.
 */
export async function startStandby(
  primary: Pick<PostgresServer, "name" | "port" | "url">,
  opts: { name: string; stateDir: string; port?: number },
): Promise<StandbyServer> {
  const bin = postgresBinDir();
  const { dataDir, command, runTool } = prepareDataDir(opts.stateDir, opts.name);
  // -c fast: checkpoint at once rather than spread over minutes; -R writes primary_conninfo and
  // standby.signal; -N and --no-manifest skip work a throwaway copy does not need.
  await runTool(join(bin, "pg_basebackup"), [
    "-D", dataDir, "-R", "-X", "stream", "-c", "fast", "-N", "--no-manifest",
    "-h", "127.0.0.1", "-p", String(primary.port), "-U", "postgres",
  ]);

  const port = opts.port ?? (await freePort());
  const [cmd, args] = command(join(bin, "postgres"), [...serverArgs(dataDir, port), "-c", "hot_standby=on"]);
  const proc = new ManagedProcess({ name: opts.name, command: cmd, args, stateDir: opts.stateDir, stopSignal: "SIGINT" });
  const url = urlOf(port, "postgres");
  await waitForServer(`PostgreSQL standby ${opts.name}`, url, proc, async (c) => {
    const { rows } = await c.query<{ status: string | null }>("SELECT (SELECT status FROM pg_stat_wal_receiver) AS status");
    return rows[0]?.status === "streaming";
  });
  return {
    name: opts.name,
    port,
    url,
    process: proc,
    urlFor: (database) => urlOf(port, database),
    createDatabase(database: string) {
      return Promise.reject(
        new Error(`${opts.name} is a read-only standby of ${primary.name}: create database "${database}" on the primary; it appears here once replayed`),
      );
    },
    stop: () => proc.stop(),
    pauseReplay: () => pauseReplay(url),
    resumeReplay: () => resumeReplay(url),
    waitForCatchUp: (timeoutMs) => waitForCatchUp(primary.url, url, timeoutMs),
  };
}

/** Creates `database` on the server a superuser URL points at. */
export async function createDatabaseOn(serverURL: string, database: string): Promise<void> {
  await withClient(serverURL, (c) => c.query(`CREATE DATABASE "${database.replaceAll('"', '""')}"`));
}

/**
 * Stops WAL replay on the standby a superuser URL points at, and returns once it has stopped:
 * WAL still streams in, nothing new becomes visible. Affects every reader of that standby.
 */
export async function pauseReplay(standbyURL: string, timeoutMs = 10_000): Promise<void> {
  await withClient(standbyURL, async (c) => {
    await c.query("SELECT pg_wal_replay_pause()");
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { rows } = await c.query<{ state: string }>("SELECT pg_get_wal_replay_pause_state() AS state");
      if (rows[0]!.state === "paused") return;
      if (Date.now() > deadline) throw new Error(`replay on ${standbyURL} was still "${rows[0]!.state}" after ${timeoutMs} ms`);
      await sleep(20);
    }
  });
}

export async function resumeReplay(standbyURL: string): Promise<void> {
  await withClient(standbyURL, (c) => c.query("SELECT pg_wal_replay_resume()"));
}

/**
 * Resolves once the standby has replayed the primary's WAL up to where it was inserting when
 * called, so everything committed on the primary before the call is visible on the standby.
 * Commits on the primary are asynchronous (synchronous_commit=off) and only flushed WAL streams:
 * a synchronous commit after reading the target flushes every record before it. Fails after
 * `timeoutMs`, saying whether replay is paused.
 */
export async function waitForCatchUp(primaryURL: string, standbyURL: string, timeoutMs = 10_000): Promise<void> {
  const target = await withClient(primaryURL, async (c) => {
    await c.query("BEGIN");
    try {
      await c.query("SET LOCAL synchronous_commit = on");
      const { rows } = await c.query<{ lsn: string }>("SELECT pg_current_wal_insert_lsn()::text AS lsn");
      // A commit flushes only if its transaction wrote WAL: a transactional message is a record
      // of its own, touching no table.
      await c.query("SELECT pg_logical_emit_message(true, 'geo-localenv', 'catch-up')");
      await c.query("COMMIT");
      return rows[0]!.lsn;
    } catch (err) {
      await c.query("ROLLBACK").catch(() => undefined);
      throw err;
    }
  });
  await withClient(standbyURL, async (c) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { rows } = await c.query<{ caught_up: boolean; replayed: string | null; pause: string }>(
        `SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS caught_up, pg_last_wal_replay_lsn()::text AS replayed,
                pg_get_wal_replay_pause_state() AS pause`,
        [target],
      );
      const row = rows[0]!;
      if (row.caught_up) return;
      if (Date.now() > deadline) {
        throw new Error(`standby ${standbyURL} had replayed WAL up to ${row.replayed}, not ${target}, after ${timeoutMs} ms (replay: ${row.pause})`);
      }
      await sleep(20);
    }
  });
}

async function withClient<T>(url: string, work: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  try {
    await client.connect();
    return await work(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}
