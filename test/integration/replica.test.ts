/**
 * The primary's read replica is a real hot standby streaming the primary's WAL: each check here
 * would fail if GEO_TEST_PRIMARY_REPLICA_URL pointed at the primary itself or at an independent
 * server.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startStandby } from "../../hack/localenv/postgres.ts";
import { replicaControl, replicaURLFor } from "../support/replica.ts";

const READ_ONLY_SQL_TRANSACTION = "25006";

const primaryServerURL = process.env.GEO_TEST_PRIMARY_DB_URL!;
const database = `geo_replica_${randomBytes(6).toString("hex")}`;
const primaryDatabaseURL = (() => {
  const url = new URL(primaryServerURL);
  url.pathname = `/${database}`;
  return url.toString();
})();
const replica = replicaControl();
let primary: pg.Client;
let standby: pg.Client;

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  return client;
}

async function count(client: pg.Client): Promise<number> {
  const { rows } = await client.query<{ n: number }>("SELECT count(*)::int AS n FROM events");
  return rows[0]!.n;
}

beforeAll(async () => {
  const server = await connect(primaryServerURL);
  await server.query(`CREATE DATABASE ${database}`);
  await server.end();
  primary = await connect(primaryDatabaseURL);
  await primary.query("CREATE TABLE events (id bigint PRIMARY KEY, note text NOT NULL)");
  await replica.waitForCatchUp();
  standby = await connect(replicaURLFor(primaryDatabaseURL));
});

afterAll(async () => {
  await replica.resumeReplay();
  await Promise.all([primary?.end(), standby?.end()]);
  const server = await connect(primaryServerURL);
  await server.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  await server.end();
});

describe("the primary's read replica", () => {
  it("is a hot standby streaming from the primary: the same cluster (system identifier) on its own port, in recovery", async () => {
    const identity = "SELECT system_identifier::text AS id, pg_is_in_recovery() AS recovering, inet_server_port() AS port FROM pg_control_system()";
    const onPrimary = (await primary.query(identity)).rows[0];
    const onStandby = (await standby.query(identity)).rows[0];
    expect(onStandby.id).toBe(onPrimary.id);
    expect(onStandby.port).not.toBe(onPrimary.port);
    expect(onPrimary.recovering).toBe(false);
    expect(onStandby.recovering).toBe(true);
    const receiver = await standby.query("SELECT status, sender_port FROM pg_stat_wal_receiver");
    expect(receiver.rows).toEqual([{ status: "streaming", sender_port: onPrimary.port }]);
  });

  it("shows a database, a table and rows created on the primary once it has caught up", async () => {
    await primary.query("INSERT INTO events (id, note) SELECT i, 'row ' || i FROM generate_series(1, 100) AS i");
    await replica.waitForCatchUp();
    expect(await count(standby)).toBe(100);
    const { rows } = await standby.query("SELECT note FROM events WHERE id = 42");
    expect(rows).toEqual([{ note: "row 42" }]);
  });

  it("while replay is paused, a row committed on the primary stays invisible (WAL still streams in); it appears after resume", async () => {
    await replica.waitForCatchUp();
    const before = await count(standby);
    await replica.pauseReplay();
    try {
      await primary.query("INSERT INTO events (id, note) VALUES (1000, 'during the pause')");
      await expect(replica.waitForCatchUp(300)).rejects.toThrow(/replay: paused/);
      await expect
        .poll(async () => (await standby.query("SELECT pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn() AS behind")).rows[0].behind, { timeout: 5_000 })
        .toBe(true);
      expect(await count(standby)).toBe(before);
      expect((await standby.query("SELECT 1 FROM events WHERE id = 1000")).rows).toEqual([]);
    } finally {
      await replica.resumeReplay();
    }
    await replica.waitForCatchUp();
    expect((await standby.query("SELECT note FROM events WHERE id = 1000")).rows).toEqual([{ note: "during the pause" }]);
  });

  it("refuses writes with SQLSTATE 25006 (read-only)", async () => {
    await expect(standby.query("INSERT INTO events (id, note) VALUES (2000, 'on the standby')")).rejects.toMatchObject({ code: READ_ONLY_SQL_TRANSACTION });
    await expect(standby.query("CREATE TABLE elsewhere (id int)")).rejects.toMatchObject({ code: READ_ONLY_SQL_TRANSACTION });
  });

  it("refuses LISTEN (25006): a NOTIFY on the primary never reaches a connection to the standby, so readers of the replica must poll", async () => {
    // The same LISTEN works on the primary, where the NOTIFY is delivered.
    const delivered = new Promise<string | undefined>((resolve) => primary.once("notification", (n) => resolve(n.payload)));
    await primary.query("LISTEN geo_events");
    const notifier = await connect(primaryDatabaseURL);
    await notifier.query("SELECT pg_notify('geo_events', 'event 1')");
    await notifier.end();
    expect(await delivered).toBe("event 1");
    await primary.query("UNLISTEN geo_events");

    await expect(standby.query("LISTEN geo_events")).rejects.toMatchObject({
      code: READ_ONLY_SQL_TRANSACTION,
      message: "cannot execute LISTEN during recovery",
    });
  });

  it("startStandby gives a standby of its own: pause, resume and catch-up through its handle; createDatabase is refused", async () => {
    const started = await startStandby(
      { name: "pg-primary", port: Number(new URL(primaryServerURL).port), url: primaryServerURL },
      { name: `pg-replica-${randomBytes(4).toString("hex")}`, stateDir: process.env.GEO_TEST_ENV_DIR! },
    );
    // A test worker that dies must not leave the server behind.
    const killOnExit = () => started.process.kill("SIGKILL");
    process.once("exit", killOnExit);
    try {
      await expect(started.createDatabase("not_here")).rejects.toThrow(/read-only standby of pg-primary: create database "not_here" on the primary/);
      const own = await connect(started.urlFor(database));
      try {
        await started.waitForCatchUp();
        const before = await count(own);
        await started.pauseReplay();
        await primary.query("INSERT INTO events (id, note) VALUES (3000, 'for the second standby')");
        await expect(started.waitForCatchUp(300)).rejects.toThrow(/replay: paused/);
        expect(await count(own)).toBe(before);
        await started.resumeReplay();
        await started.waitForCatchUp();
        expect(await count(own)).toBe(before + 1);
      } finally {
        await own.end();
      }
    } finally {
      await started.stop();
      process.off("exit", killOnExit);
    }
  });
});
