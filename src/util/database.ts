/**
 * PostgreSQL pools for the operator and its workers, and errors that name the database without
 * ever repeating its password.
 */
import pg from "pg";

export type Pool = pg.Pool;

/** "host:port/database" of a connection URL, for messages. */
export function describeDatabase(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || "5432"}${u.pathname}`;
  } catch {
    return "(unparseable connection URL)";
  }
}

export function createPool(url: string, options: { max?: number; applicationName?: string } = {}): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.max ?? 10,
    connectionTimeoutMillis: 10_000,
    idleTimeoutMillis: 30_000,
    application_name: options.applicationName ?? "geo-operator",
  });
  // An idle client's error (server restart) must not crash the process; the next query reconnects.
  pool.on("error", () => undefined);
  return pool;
}

/** Connects once and runs `select 1`, turning failures into a readable message. */
export async function checkDatabase(pool: pg.Pool, url: string, role: string): Promise<void> {
  try {
    await pool.query("select 1");
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { code?: string };
    const reason =
      e.code === "ECONNREFUSED" ? "connection refused"
      : e.code === "ENOTFOUND" ? "host not found"
      : e.code === "28P01" || e.code === "28000" ? "authentication failed (check the Secret's credentials)"
      : e.code === "3D000" ? "database does not exist"
      : e.message;
    throw new Error(`cannot reach the ${role} at ${describeDatabase(url)}: ${reason}`);
  }
}
