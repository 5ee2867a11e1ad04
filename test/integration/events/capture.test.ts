/**
 * Change capture on a real PostgreSQL: the triggers the schema manager installs write one event
 * per changed record, only for the columns the type reads, reset the primary checksum of an
 * updated record in the writer's transaction, never touch application rows, and go away with
 * `changeCapture: none` or the type's deletion.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applySchema, dropSchemaForDeletedType } from "../../../src/registry/schema-manager.ts";
import { eventLogBounds, publishEvent, pruneEvents, readEvents } from "../../../src/registry/event-log.ts";
import { VerificationState } from "../../../src/registry/states.ts";
import type { ReplicableTypeSchemaConfig } from "../../../src/registry/config.ts";
import { createTestDatabases, withClient, type TestDatabases } from "../registry/databases.ts";

let dbs: TestDatabases;
const config: ReplicableTypeSchemaConfig = {
  name: "upload",
  statesLayout: "keyed-by-model-id",
  source: { table: "uploads" },
  deletionPolicy: "Retain",
  captureColumns: ["path", "size"],
};

async function events(afterId = 0) {
  return (await readEvents(dbs.primary, afterId, 1000)).map((e) => `${e.event} ${e.modelId}`);
}

async function lastId(): Promise<number> {
  return (await eventLogBounds(dbs.primary)).last?.id ?? 0;
}

beforeAll(async () => {
  dbs = await createTestDatabases();
  await dbs.primary.query(`CREATE TABLE uploads (id bigserial PRIMARY KEY, path text NOT NULL, size bigint, note text)`);
  const result = await withClient(dbs.primary, (c) => applySchema(c, config, "primary"));
  expect(result.captureChanged).toBe(true);
});
afterAll(async () => {
  await dbs?.drop();
});

describe("change capture triggers", () => {
  it("writes one created event per inserted row, also for a bulk insert (one statement)", async () => {
    const before = await lastId();
    await dbs.primary.query(`INSERT INTO uploads (path, size) SELECT 'f' || g, g FROM generate_series(1, 5) AS g`);
    expect(await events(before)).toEqual(["created 1", "created 2", "created 3", "created 4", "created 5"]);
  });

  it("an update of a column the type reads is an updated event and drops the primary checksum in the same transaction", async () => {
    await dbs.primary.query(`INSERT INTO upload_states (upload_id, verification_state, verification_checksum) VALUES (1, ${VerificationState.succeeded}, '\\x01'), (2, ${VerificationState.succeeded}, '\\x02')`);
    const before = await lastId();
    await dbs.primary.query(`UPDATE uploads SET note = 'irrelevant' WHERE id IN (1, 2)`);
    expect(await events(before)).toEqual([]);
    await dbs.primary.query(`UPDATE uploads SET size = size + 1 WHERE id = 1`);
    expect(await events(before)).toEqual(["updated 1"]);
    const { rows } = await dbs.primary.query<{ upload_id: string; verification_state: number; verification_checksum: Buffer | null }>(
      `SELECT upload_id, verification_state, verification_checksum FROM upload_states ORDER BY upload_id`,
    );
    expect(rows.map((r) => [Number(r.upload_id), r.verification_state, r.verification_checksum])).toEqual([
      [1, VerificationState.pending, null],
      [2, VerificationState.succeeded, Buffer.from([2])],
    ]);
    // The application's row is exactly what the application wrote.
    const app = await dbs.primary.query(`SELECT path, size, note FROM uploads WHERE id = 1`);
    expect(app.rows[0]).toEqual({ path: "f1", size: "2", note: "irrelevant" });
  });

  it("a rolled back write leaves no event; a changed id is a deletion and a creation", async () => {
    const before = await lastId();
    await withClient(dbs.primary, async (c) => {
      await c.query("BEGIN");
      await c.query(`INSERT INTO uploads (path) VALUES ('gone')`);
      await c.query("ROLLBACK");
    });
    expect(await events(before)).toEqual([]);
    await dbs.primary.query(`UPDATE uploads SET id = 100 WHERE id = 5`);
    expect(await events(before)).toEqual(["deleted 5", "created 100"]);
  });

  it("writes deleted events for deleted rows", async () => {
    const before = await lastId();
    await dbs.primary.query(`DELETE FROM uploads WHERE id IN (3, 4)`);
    expect(await events(before)).toEqual(["deleted 3", "deleted 4"]);
  });

  it("the publish function records a change the database cannot see and drops the checksum; refuses unknown types and kinds", async () => {
    await dbs.primary.query(`UPDATE upload_states SET verification_state = ${VerificationState.succeeded}, verification_checksum = '\\x09' WHERE upload_id = 2`);
    const id = await publishEvent(dbs.primary, "upload", 2, "updated");
    expect((await readEvents(dbs.primary, id - 1, 1)).map((e) => [e.id, e.event, e.modelId])).toEqual([[id, "updated", 2]]);
    const { rows } = await dbs.primary.query(`SELECT verification_state, verification_checksum FROM upload_states WHERE upload_id = 2`);
    expect(rows[0]).toEqual({ verification_state: VerificationState.pending, verification_checksum: null });
    await expect(publishEvent(dbs.primary, "nope", 1, "updated")).rejects.toMatchObject({ code: "42704" });
    await expect(publishEvent(dbs.primary, "upload", 1, "moved" as never)).rejects.toMatchObject({ code: "22023" });
  });

  it("an application role without rights on the operator's tables can still write (SECURITY DEFINER)", async () => {
    await dbs.primary.query(`DROP ROLE IF EXISTS geo_app_test; CREATE ROLE geo_app_test`);
    await dbs.primary.query(`GRANT INSERT, UPDATE, DELETE, SELECT ON uploads TO geo_app_test; GRANT USAGE ON SEQUENCE uploads_id_seq TO geo_app_test`);
    const before = await lastId();
    await withClient(dbs.primary, async (c) => {
      await c.query("SET ROLE geo_app_test");
      await c.query(`INSERT INTO uploads (path) VALUES ('as-app')`);
      await expect(c.query(`SELECT * FROM geo_operator_events`)).rejects.toMatchObject({ code: "42501" });
      await c.query("RESET ROLE");
    });
    expect(await events(before)).toHaveLength(1);
    await dbs.primary.query(`DROP OWNED BY geo_app_test; DROP ROLE geo_app_test`);
  });

  it("re-applying an unchanged schema does not touch the triggers; changeCapture none removes them", async () => {
    expect((await withClient(dbs.primary, (c) => applySchema(c, config, "primary"))).captureChanged).toBe(false);
    const none = await withClient(dbs.primary, (c) => applySchema(c, { ...config, changeCapture: "none" }, "primary"));
    expect(none.captureChanged).toBe(true);
    const before = await lastId();
    await dbs.primary.query(`INSERT INTO uploads (path) VALUES ('unseen')`);
    expect(await events(before)).toEqual([]);
    // publish still works: the type stays registered
    expect(await publishEvent(dbs.primary, "upload", 1, "updated")).toBeGreaterThan(before);
    await withClient(dbs.primary, (c) => applySchema(c, config, "primary"));
    const again = await lastId();
    await dbs.primary.query(`INSERT INTO uploads (path) VALUES ('seen')`);
    expect(await events(again)).toHaveLength(1);
  });

  it("deleting the type removes its triggers even with deletionPolicy Retain, and keeps its _states table", async () => {
    await withClient(dbs.primary, (c) => dropSchemaForDeletedType(c, config, "primary"));
    const { rows } = await dbs.primary.query(`SELECT tgname FROM pg_trigger WHERE tgrelid = 'uploads'::regclass AND NOT tgisinternal`);
    expect(rows).toEqual([]);
    expect((await dbs.primary.query(`SELECT to_regclass('upload_states') IS NOT NULL AS present`)).rows[0]).toEqual({ present: true });
    await expect(publishEvent(dbs.primary, "upload", 1, "updated")).rejects.toMatchObject({ code: "42704" });
  });

  it("prunes events older than the retention, oldest first, and reports the oldest left", async () => {
    const bounds = await eventLogBounds(dbs.primary);
    await dbs.primary.query(`UPDATE geo_operator_events SET created_at = now() - interval '2 days' WHERE id < $1`, [bounds.last!.id]);
    expect(await pruneEvents(dbs.primary, 24 * 3600)).toBeGreaterThan(0);
    const after = await eventLogBounds(dbs.primary);
    expect(after.oldest!.id).toBe(bounds.last!.id);
    expect(after.last!.id).toBe(bounds.last!.id);
  });
});

describe("change capture without the rights it needs", () => {
  it("says the operator's role must own the model table, or changeCapture: none", async () => {
    const other = await createTestDatabases();
    try {
      await other.primary.query(`DROP ROLE IF EXISTS geo_op_test; CREATE ROLE geo_op_test LOGIN`);
      await other.primary.query(`CREATE TABLE uploads (id bigserial PRIMARY KEY, path text NOT NULL)`);
      await other.primary.query(`GRANT CREATE, USAGE ON SCHEMA public TO geo_op_test; GRANT SELECT, REFERENCES ON uploads TO geo_op_test`);
      await withClient(other.primary, async (c) => {
        await c.query("SET ROLE geo_op_test");
        await expect(applySchema(c, config, "primary")).rejects.toThrow(/needs the operator's database role to own the model table public\.uploads.*changeCapture: none/);
        // With scanning only, the same role manages the schema.
        await expect(applySchema(c, { ...config, changeCapture: "none" }, "primary")).resolves.toMatchObject({ captureChanged: true });
        await c.query("RESET ROLE");
      });
    } finally {
      await other.primary.query(`DROP OWNED BY geo_op_test; DROP ROLE geo_op_test`).catch(() => undefined);
      await other.drop();
    }
  });
});
