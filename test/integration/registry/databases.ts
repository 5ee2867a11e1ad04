import { randomBytes } from "node:crypto";
import pg from "pg";
import { HEARTBEAT_TABLE, OPERATOR_MIGRATION_SET } from "../../../src/registry/side-tables.ts";

/**
 * A fresh database on each of the two test servers (primary main DB and
 * secondary tracking DB), so test files can run in parallel. The servers come
 * from GEO_TEST_PRIMARY_DB_URL / GEO_TEST_SECONDARY_DB_URL (superuser URLs).
 */
export interface TestDatabases {
  primary: pg.Pool;
  tracking: pg.Pool;
  primaryUrl: string;
  trackingUrl: string;
  drop(): Promise<void>;
}

function serverUrl(variable: string): string {
  const value = process.env[variable];
  if (!value) throw new Error(`${variable} is not set; the registry integration tests need two PostgreSQL servers`);
  return value;
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

async function onServer<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

export async function createTestDatabases(): Promise<TestDatabases> {
  const primaryServer = serverUrl("GEO_TEST_PRIMARY_DB_URL");
  const trackingServer = serverUrl("GEO_TEST_SECONDARY_DB_URL");
  const name = `geo_registry_${randomBytes(6).toString("hex")}`;
  await onServer(primaryServer, (c) => c.query(`CREATE DATABASE "${name}"`));
  await onServer(trackingServer, (c) => c.query(`CREATE DATABASE "${name}"`));
  const primaryUrl = withDatabase(primaryServer, name);
  const trackingUrl = withDatabase(trackingServer, name);
  const primary = new pg.Pool({ connectionString: primaryUrl, max: 8 });
  const tracking = new pg.Pool({ connectionString: trackingUrl, max: 8 });
  return {
    primary,
    tracking,
    primaryUrl,
    trackingUrl,
    async drop() {
      // Errors of connections being closed (the FORCE below ends any that linger) are expected.
      primary.on("error", () => undefined);
      tracking.on("error", () => undefined);
      await Promise.all([primary.end(), tracking.end()]);
      // pool.end() resolves before every backend has gone; wait for them so FORCE ends nothing
      // whose error no one would handle.
      for (const server of [primaryServer, trackingServer]) {
        await onServer(server, async (c) => {
          for (let i = 0; i < 50; i++) {
            const { rows } = await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1`, [name]);
            if (rows[0]!.n === 0) return;
            await new Promise((r) => setTimeout(r, 100));
          }
        });
      }
      await onServer(primaryServer, (c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
      await onServer(trackingServer, (c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
    },
  };
}

/** Runs `work` on one pooled connection. */
export async function withClient<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    return await work(client);
  } finally {
    client.release();
  }
}

/**
 * Removes the primary's heartbeat table and the record of its migration, as on a database the
 * operator never beat on: the next writeHeartbeat creates it again.
 */
export async function dropHeartbeat(primary: pg.Pool): Promise<void> {
  await primary.query(`DROP TABLE IF EXISTS public.${HEARTBEAT_TABLE}`);
  const { rows } = await primary.query<{ present: boolean }>(`SELECT to_regclass('public.geo_operator_schema_migrations') IS NOT NULL AS present`);
  if (rows[0]?.present) {
    await primary.query(`DELETE FROM public.geo_operator_schema_migrations WHERE type_name = $1::text AND role = 'primary'`, [OPERATOR_MIGRATION_SET]);
  }
}
