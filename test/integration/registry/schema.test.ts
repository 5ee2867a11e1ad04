import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type pg from "pg";
import { renderSchemaDDL } from "../../../src/registry/ddl.ts";
import { InvalidIdentifierError } from "../../../src/registry/identifiers.ts";
import { applySchema, appliedSchemaVersions, dropSchemaForDeletedType } from "../../../src/registry/schema-manager.ts";
import { ensureTrackingSideTables } from "../../../src/registry/side-tables.ts";
import { createTestDatabases, withClient } from "./databases.ts";
import type { TestDatabases } from "./databases.ts";
import { createModelTables, widgetType } from "./fixtures.ts";

let dbs: TestDatabases;

beforeAll(async () => {
  dbs = await createTestDatabases();
  await createModelTables(dbs.primary, "cool_widgets");
  await createModelTables(dbs.primary, "snippet_repositories");
});
afterAll(async () => {
  await dbs?.drop();
});

const TSTZ = "timestamp with time zone";

async function columnsOf(pool: pg.Pool, table: string): Promise<string[]> {
  const { rows } = await pool.query<{ column_name: string; data_type: string; column_default: string | null; is_nullable: string }>(
    `SELECT column_name, data_type, column_default, is_nullable FROM information_schema.columns
     WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position`,
    [table],
  );
  return rows.map((r) => `${r.column_name} ${r.data_type}${r.column_default ? ` DEFAULT ${r.column_default}` : ""}${r.is_nullable === "NO" ? " NOT NULL" : ""}`);
}

async function indexesOf(pool: pg.Pool, table: string): Promise<string[]> {
  const { rows } = await pool.query<{ indexdef: string }>(`SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = $1 ORDER BY indexname`, [table]);
  return rows.map((r) => r.indexdef);
}

async function constraintsOf(pool: pg.Pool, table: string): Promise<string[]> {
  const { rows } = await pool.query<{ conname: string; def: string }>(
    `SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = $1::regclass ORDER BY conname`,
    [`public.${table}`],
  );
  return rows.map((r) => `${r.conname}: ${r.def}`);
}

describe("registry table (secondary tracking DB)", () => {
  const type = widgetType();

  beforeAll(async () => {
    await withClient(dbs.tracking, (c) => applySchema(c, type, "secondary"));
  });

  it("has every column of the template with its type, default and NOT NULL", async () => {
    expect(await columnsOf(dbs.tracking, "cool_widget_registry")).toEqual([
      "id bigint DEFAULT nextval('cool_widget_registry_id_seq'::regclass) NOT NULL",
      "cool_widget_id bigint NOT NULL",
      `created_at ${TSTZ} NOT NULL`,
      `last_synced_at ${TSTZ}`,
      `retry_at ${TSTZ}`,
      `verified_at ${TSTZ}`,
      `verification_started_at ${TSTZ}`,
      `verification_retry_at ${TSTZ}`,
      "state smallint DEFAULT 0 NOT NULL",
      "verification_state smallint DEFAULT 0 NOT NULL",
      "retry_count smallint DEFAULT 0 NOT NULL",
      "verification_retry_count smallint DEFAULT 0 NOT NULL",
      "checksum_mismatch boolean DEFAULT false NOT NULL",
      "missing_on_primary boolean DEFAULT false NOT NULL",
      "verification_checksum bytea",
      "verification_checksum_mismatched bytea",
      "verification_failure text",
      "last_sync_failure text",
    ]);
  });

  it("limits both failure texts to 255 characters and has the primary key", async () => {
    expect(await constraintsOf(dbs.tracking, "cool_widget_registry")).toEqual([
      "check_39fb66da50: CHECK ((char_length(last_sync_failure) <= 255))",
      "check_5621d0d23f: CHECK ((char_length(verification_failure) <= 255))",
      "cool_widget_registry_pkey: PRIMARY KEY (id)",
    ]);
  });

  it("has the template's indexes, partial predicates and NULLS FIRST ordering", async () => {
    const on = "ON public.cool_widget_registry USING btree";
    expect(await indexesOf(dbs.tracking, "cool_widget_registry")).toEqual([
      `CREATE INDEX cool_widget_registry_failed_verification ${on} (verification_retry_at NULLS FIRST) WHERE ((state = 2) AND (verification_state = 3))`,
      `CREATE INDEX cool_widget_registry_needs_verification ${on} (verification_state) WHERE ((state = 2) AND (verification_state = ANY (ARRAY[0, 3])))`,
      `CREATE INDEX cool_widget_registry_pending_verification ${on} (verified_at NULLS FIRST) WHERE ((state = 2) AND (verification_state = 0))`,
      `CREATE UNIQUE INDEX cool_widget_registry_pkey ${on} (id)`,
      `CREATE UNIQUE INDEX index_cool_widget_registry_on_cool_widget_id ${on} (cool_widget_id)`,
      `CREATE INDEX index_cool_widget_registry_on_retry_at ${on} (retry_at)`,
      `CREATE INDEX index_cool_widget_registry_on_state ${on} (state)`,
    ]);
  });

  it("is idempotent and records each version once", async () => {
    const again = await withClient(dbs.tracking, (c) => applySchema(c, type, "secondary"));
    expect(again.applied).toEqual([]);
    expect(await withClient(dbs.tracking, (c) => appliedSchemaVersions(c, type, "secondary"))).toEqual([1, 2]);
  });
});

describe("_states table (primary main DB)", () => {
  it("blob: keyed by the model id, nullable retry count, cascading FK, four verification indexes", async () => {
    const type = widgetType();
    await withClient(dbs.primary, (c) => applySchema(c, type, "primary"));
    expect(await columnsOf(dbs.primary, "cool_widget_states")).toEqual([
      `verification_started_at ${TSTZ}`,
      `verification_retry_at ${TSTZ}`,
      `verified_at ${TSTZ}`,
      "cool_widget_id bigint NOT NULL",
      "verification_state smallint DEFAULT 0 NOT NULL",
      "verification_retry_count smallint",
      "verification_checksum bytea",
      "verification_failure text",
    ]);
    expect(await constraintsOf(dbs.primary, "cool_widget_states")).toEqual([
      "check_cdcb6708de: CHECK ((char_length(verification_failure) <= 255))",
      "cool_widget_states_pkey: PRIMARY KEY (cool_widget_id)",
      "fk_rails_6f045fea17: FOREIGN KEY (cool_widget_id) REFERENCES cool_widgets(id) ON DELETE CASCADE",
    ]);
    const on = "ON public.cool_widget_states USING btree";
    expect(await indexesOf(dbs.primary, "cool_widget_states")).toEqual([
      `CREATE UNIQUE INDEX cool_widget_states_pkey ${on} (cool_widget_id)`,
      `CREATE INDEX index_cool_widget_states_failed_verification ${on} (verification_retry_at NULLS FIRST) WHERE (verification_state = 3)`,
      `CREATE INDEX index_cool_widget_states_needs_verification ${on} (verification_state) WHERE ((verification_state = 0) OR (verification_state = 3))`,
      `CREATE INDEX index_cool_widget_states_on_verification_state ${on} (verification_state)`,
      `CREATE INDEX index_cool_widget_states_pending_verification ${on} (verified_at NULLS FIRST) WHERE (verification_state = 0)`,
    ]);
  });

  it("repository: bigserial id, unique model id, NOT NULL retry count", async () => {
    const type = widgetType({ name: "snippet_repository", plural: "snippet_repositories", statesLayout: "serial-id", source: { table: "snippet_repositories" } });
    await withClient(dbs.primary, (c) => applySchema(c, type, "primary"));
    expect(await columnsOf(dbs.primary, "snippet_repository_states")).toEqual([
      "id bigint DEFAULT nextval('snippet_repository_states_id_seq'::regclass) NOT NULL",
      `verification_started_at ${TSTZ}`,
      `verification_retry_at ${TSTZ}`,
      `verified_at ${TSTZ}`,
      "snippet_repository_id bigint NOT NULL",
      "verification_state smallint DEFAULT 0 NOT NULL",
      "verification_retry_count smallint DEFAULT 0 NOT NULL",
      "verification_checksum bytea",
      "verification_failure text",
    ]);
    const indexes = await indexesOf(dbs.primary, "snippet_repository_states");
    expect(indexes).toContain(
      "CREATE UNIQUE INDEX index_snippet_repository_states_on_snippet_repository_id ON public.snippet_repository_states USING btree (snippet_repository_id)",
    );
    expect(indexes).toHaveLength(6);
    const fk = await dbs.primary.query<{ confdeltype: string }>(
      `SELECT confdeltype FROM pg_constraint WHERE conrelid = 'snippet_repository_states'::regclass AND contype = 'f'`,
    );
    expect(fk.rows).toEqual([{ confdeltype: "c" }]);
  });

  it("cascades model deletes to the state row", async () => {
    const { rows } = await dbs.primary.query<{ id: string }>("INSERT INTO cool_widgets DEFAULT VALUES RETURNING id");
    const id = rows[0]?.id;
    await dbs.primary.query("INSERT INTO cool_widget_states (cool_widget_id) VALUES ($1)", [id]);
    await dbs.primary.query("DELETE FROM cool_widgets WHERE id = $1", [id]);
    const left = await dbs.primary.query("SELECT 1 FROM cool_widget_states WHERE cool_widget_id = $1", [id]);
    expect(left.rowCount).toBe(0);
  });
});

describe("schema manager", () => {
  it("runs exactly the statements renderSchemaDDL prints", async () => {
    const type = widgetType({ name: "printed_widget" });
    await ensureTrackingSideTables(dbs.tracking);
    const executed: string[] = [];
    await withClient(dbs.tracking, async (client) => {
      const original = client.query.bind(client) as (text: string, values?: unknown[]) => Promise<unknown>;
      const spy = client as unknown as { query: (text: string, values?: unknown[]) => Promise<unknown> };
      spy.query = (text, values) => {
        executed.push(text);
        return original(text, values);
      };
      try {
        await applySchema(client, type, "secondary");
      } finally {
        spy.query = original;
      }
    });
    const rendered = renderSchemaDDL(type, "secondary")
      .split(";\n")
      .map((s) => s.split("\n").filter((line) => !line.startsWith("--")).join("\n").trim())
      .filter((s) => s !== "");
    // Reads of recorded versions, and those of the operator's own tables applySchema brings up to date first, are not part of the script.
    const ran = executed.filter((s) => !s.startsWith("SELECT version FROM") && !s.startsWith("SELECT to_regclass"));
    expect(ran).toEqual(rendered);
  });

  it("survives many managers applying many types at once", async () => {
    const types = ["alpha_widget", "beta_widget", "gamma_widget"].map((name) => widgetType({ name }));
    const runs = Array.from({ length: 6 }, (_, i) => withClient(dbs.tracking, (c) => applySchema(c, types[i % types.length]!, "secondary")));
    const results = await Promise.all(runs);
    expect(results.flatMap((r) => r.applied)).toEqual([1, 2, 1, 2, 1, 2]);
    const { rows } = await dbs.tracking.query<{ type_name: string; n: string }>(
      `SELECT type_name, count(*) AS n FROM geo_operator_schema_migrations WHERE type_name LIKE '%_widget' AND role = 'secondary' GROUP BY type_name`,
    );
    for (const name of ["alpha_widget", "beta_widget", "gamma_widget"]) expect(rows).toContainEqual({ type_name: name, n: "2" });
  });

  it("keeps the table on delete unless deletionPolicy is Delete", async () => {
    const retained = widgetType({ name: "kept_widget" });
    await withClient(dbs.tracking, (c) => applySchema(c, retained, "secondary"));
    await dbs.tracking.query("INSERT INTO kept_widget_registry (kept_widget_id, created_at) VALUES (1, now())");
    const kept = await withClient(dbs.tracking, (c) => dropSchemaForDeletedType(c, retained, "secondary"));
    expect(kept.dropped).toBe(false);
    expect((await dbs.tracking.query("SELECT * FROM kept_widget_registry")).rowCount).toBe(1);

    const deleted = { ...retained, deletionPolicy: "Delete" as const };
    expect((await withClient(dbs.tracking, (c) => dropSchemaForDeletedType(c, deleted, "secondary"))).dropped).toBe(true);
    const gone = await dbs.tracking.query<{ t: string | null }>("SELECT to_regclass('public.kept_widget_registry')::text AS t");
    expect(gone.rows[0]?.t).toBeNull();
    expect(await withClient(dbs.tracking, (c) => appliedSchemaVersions(c, deleted, "secondary"))).toEqual([]);
  });

  it.each([
    ["not snake_case", 'x"; DROP TABLE cool_widgets; --', /snake_case/],
    ["upper case", "CoolWidget", /snake_case/],
    ["too long", "a_very_long_widget_name", /limit is 20.*63-byte/],
    ["unicode", "widgét", /snake_case/],
    ["empty", "", /snake_case/],
  ])("refuses a hostile or over-long name (%s) before touching the database", async (_label, name, message) => {
    const type = widgetType({ name });
    await expect(withClient(dbs.tracking, (c) => applySchema(c, type, "secondary"))).rejects.toThrow(InvalidIdentifierError);
    await expect(withClient(dbs.tracking, (c) => applySchema(c, type, "secondary"))).rejects.toThrow(message);
    const { rows } = await dbs.primary.query<{ t: string | null }>("SELECT to_regclass('public.cool_widgets')::text AS t");
    expect(rows[0]?.t).toBe("cool_widgets");
  });

  it("refuses a hostile source table name", async () => {
    const type = widgetType({ name: "evil_widget", source: { table: 'cool_widgets"; DROP TABLE namespaces; --' } });
    await expect(withClient(dbs.primary, (c) => applySchema(c, type, "primary"))).rejects.toThrow(/source\.table/);
  });

  it("accepts a 20-character name (its longest index name, 62 bytes, fits the 63-byte limit)", async () => {
    const name = "abcdefghij_klmnopqrs"; // 20 characters
    await createModelTables(dbs.primary, "long_name_models");
    const type = widgetType({ name, source: { table: "long_name_models" } });
    await withClient(dbs.tracking, (c) => applySchema(c, type, "secondary"));
    await withClient(dbs.primary, (c) => applySchema(c, type, "primary"));
    const { rows } = await dbs.tracking.query<{ indexname: string }>("SELECT indexname FROM pg_indexes WHERE tablename = $1", [`${name}_registry`]);
    expect(rows.map((r) => r.indexname)).toContain(`index_${name}_registry_on_${name}_id`);
    expect(`index_${name}_registry_on_${name}_id`).toHaveLength(62);
  });
});
