/**
 * The operator's own tables as numbered migrations: recorded on a fresh database, adopted on a
 * database where the earlier IF NOT EXISTS code created them, safe when callers race, and
 * printed by `schema print` exactly as they are run.
 */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import type pg from "pg";
import { applyMigrations, applySchema, appliedVersions } from "../../../src/registry/schema-manager.ts";
import { schemaMigrations } from "../../../src/registry/ddl.ts";
import { resolveConfig } from "../../../src/registry/identifiers.ts";
import {
  ensurePrimarySideTables,
  ensureTrackingSideTables,
  OPERATOR_MIGRATION_SET,
  renderSideTablesDDL,
} from "../../../src/registry/side-tables.ts";
import { recordLocation, locationsOf } from "../../../src/registry/replicas.ts";
import { writeHeartbeat } from "../../../src/registry/heartbeat.ts";
import { REPO_ROOT } from "../../../hack/localenv/tools.ts";
import { createTestDatabases, withClient, type TestDatabases } from "./databases.ts";
import { widgetType } from "./fixtures.ts";

const TRACKING_TABLES = [
  "geo_operator_consistency_passes",
  "geo_operator_deletion_candidates",
  "geo_operator_deletion_holds",
  "geo_operator_event_cursors",
  "geo_operator_primary_identities",
  "geo_operator_replicas",
  "geo_operator_row_counts",
  "geo_operator_worker_runs",
];
const PRIMARY_TABLES = [
  "geo_operator_backfill_walks",
  "geo_operator_capture_types",
  "geo_operator_event_cursors",
  "geo_operator_events",
  "geo_operator_primary_heartbeat",
  "geo_operator_row_counts",
];

/** A rendered script's statements: split at the `;` ending a line, except inside a $tag$-quoted function body. */
function scriptStatements(script: string): string[] {
  const statements: string[] = [];
  let current: string[] = [];
  let inBody = false;
  for (const line of script.split("\n")) {
    if (!inBody && line.startsWith("--")) continue;
    current.push(line);
    if ((line.match(/\$[a-z_]*\$/g) ?? []).length % 2 === 1) inBody = !inBody;
    if (!inBody && line.endsWith(";")) {
      statements.push(current.join("\n").slice(0, -1).trim());
      current = [];
    }
  }
  return statements.filter((s) => s !== "");
}

const run = promisify(execFile);

const opened: TestDatabases[] = [];
async function freshDatabases(): Promise<TestDatabases> {
  const dbs = await createTestDatabases();
  opened.push(dbs);
  return dbs;
}
afterEach(async () => {
  await Promise.all(opened.splice(0).map((d) => d.drop()));
});

async function operatorTables(pool: pg.Pool): Promise<string[]> {
  const { rows } = await pool.query<{ tablename: string }>(
    `SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'geo_operator_%' AND tablename <> 'geo_operator_schema_migrations' ORDER BY tablename`,
  );
  return rows.map((r) => r.tablename);
}

/** The tables exactly as the code before the migrations created them (CREATE TABLE IF NOT EXISTS on every start). */
async function createTablesTheOldWay(tracking: pg.Pool, primary: pg.Pool): Promise<void> {
  await tracking.query(`CREATE TABLE IF NOT EXISTS public.geo_operator_replicas (
       type_name text NOT NULL, model_id bigint NOT NULL, location text, mismatch jsonb,
       updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (type_name, model_id))`);
  await tracking.query(`CREATE INDEX IF NOT EXISTS geo_operator_replicas_location ON public.geo_operator_replicas (location)`);
  await tracking.query(`CREATE TABLE IF NOT EXISTS public.geo_operator_worker_runs (
       id bigserial PRIMARY KEY, type_name text NOT NULL, site text NOT NULL, kind text NOT NULL,
       finished_at timestamptz NOT NULL DEFAULT now(), claimed integer NOT NULL, succeeded integer NOT NULL,
       failed integer NOT NULL, bytes bigint NOT NULL, seconds double precision NOT NULL)`);
  await tracking.query(`CREATE TABLE IF NOT EXISTS public.geo_operator_consistency_passes (
       type_name text PRIMARY KEY, started_at timestamptz NOT NULL, after_id bigint NOT NULL,
       scanned bigint NOT NULL DEFAULT 0, last_completed_at timestamptz, last_scanned bigint)`);
  await tracking.query(`CREATE TABLE IF NOT EXISTS public.geo_operator_deletion_candidates (
       type_name text NOT NULL, model_id bigint NOT NULL, registry_id bigint NOT NULL,
       first_seen_at timestamptz NOT NULL, last_seen_at timestamptz NOT NULL, PRIMARY KEY (type_name, model_id))`);
  await tracking.query(`CREATE TABLE IF NOT EXISTS public.geo_operator_deletion_holds (
       type_name text PRIMARY KEY, reason text NOT NULL, message text NOT NULL, pending bigint NOT NULL,
       held_at timestamptz NOT NULL, updated_at timestamptz NOT NULL, released_at timestamptz, released_by text)`);
  await primary.query(`CREATE TABLE IF NOT EXISTS public.geo_operator_backfill_walks (type_name text PRIMARY KEY, full_walk_at timestamptz NOT NULL)`);
  await primary.query(`CREATE TABLE IF NOT EXISTS public.geo_operator_primary_heartbeat (
       site_name text PRIMARY KEY, identity uuid NOT NULL DEFAULT gen_random_uuid(),
       database_name text NOT NULL DEFAULT current_database(), beat_at timestamptz NOT NULL)`);
}

describe("the operator's own tables as numbered migrations", () => {
  it("a fresh database gets the tables and every version recorded; a second call applies nothing", async () => {
    const dbs = await freshDatabases();
    expect(await ensureTrackingSideTables(dbs.tracking)).toEqual({ applied: [1, 2, 3, 4] });
    expect(await ensurePrimarySideTables(dbs.primary)).toEqual({ applied: [1, 2, 3] });
    expect(await operatorTables(dbs.tracking)).toEqual(TRACKING_TABLES);
    expect(await operatorTables(dbs.primary)).toEqual(PRIMARY_TABLES);
    expect(await appliedVersions(dbs.tracking, OPERATOR_MIGRATION_SET, "secondary")).toEqual([1, 2, 3, 4]);
    expect(await appliedVersions(dbs.primary, OPERATOR_MIGRATION_SET, "primary")).toEqual([1, 2, 3]);
    expect(await withClient(dbs.tracking, (c) => ensureTrackingSideTables(c))).toEqual({ applied: [] });
    expect(await ensurePrimarySideTables(dbs.primary)).toEqual({ applied: [] });
  });

  it("the first heartbeat on a fresh primary applies the primary's migration", async () => {
    const dbs = await freshDatabases();
    await writeHeartbeat(dbs.primary, "london");
    expect(await appliedVersions(dbs.primary, OPERATOR_MIGRATION_SET, "primary")).toEqual([1, 2, 3]);
  });

  it("a database where the earlier code created the tables records version 1 (and applies the later ones) and keeps its rows", async () => {
    const dbs = await freshDatabases();
    // A type's schema was applied too (its first version, as the earlier code did), so the versions
    // table exists without any operator row.
    await withClient(dbs.tracking, (c) => applyMigrations(c, "cool_widget", "secondary", schemaMigrations(resolveConfig(widgetType()), "secondary").slice(0, 1)));
    await createTablesTheOldWay(dbs.tracking, dbs.primary);
    await recordLocation(dbs.tracking, "cool_widget", 7, "bucket/key-7");
    await dbs.primary.query(`INSERT INTO geo_operator_primary_heartbeat (site_name, beat_at) VALUES ('london', now())`);

    expect(await withClient(dbs.tracking, (c) => ensureTrackingSideTables(c))).toEqual({ applied: [1, 2, 3, 4] });
    expect(await ensurePrimarySideTables(dbs.primary)).toEqual({ applied: [1, 2, 3] });
    expect(await appliedVersions(dbs.tracking, OPERATOR_MIGRATION_SET, "secondary")).toEqual([1, 2, 3, 4]);
    expect(await appliedVersions(dbs.tracking, "cool_widget", "secondary")).toEqual([1]);
    expect(await locationsOf(dbs.tracking, "cool_widget", [7])).toEqual(new Map([[7, "bucket/key-7"]]));
    expect((await dbs.primary.query(`SELECT site_name FROM geo_operator_primary_heartbeat`)).rows).toEqual([{ site_name: "london" }]);
  });

  it("callers racing on a fresh database all succeed, and exactly one applies each version", async () => {
    const dbs = await freshDatabases();
    const results = await Promise.all([
      ...Array.from({ length: 4 }, () => ensureTrackingSideTables(dbs.tracking)),
      ...Array.from({ length: 2 }, () => withClient(dbs.tracking, (c) => ensureTrackingSideTables(c))),
      ...Array.from({ length: 2 }, () => withClient(dbs.tracking, (c) => applySchema(c, widgetType(), "secondary"))),
    ]);
    // applySchema brings the operator's tables up to date first, so it may be the one that applies them.
    expect([[], [1, 2, 3, 4]]).toContainEqual(results.slice(0, 6).flatMap((r) => r.applied));
    expect(await appliedVersions(dbs.tracking, OPERATOR_MIGRATION_SET, "secondary")).toEqual([1, 2, 3, 4]);
    expect(await operatorTables(dbs.tracking)).toEqual(TRACKING_TABLES);
    const beats = await Promise.all(["london", "london", "paris", "paris"].map((site) => writeHeartbeat(dbs.primary, site)));
    expect(new Set(beats).size).toBe(2);
  });

  it.each([
    { role: "secondary", database: "tracking", ensure: ensureTrackingSideTables },
    { role: "primary", database: "primary", ensure: ensurePrimarySideTables },
  ] as const)("runs exactly the statements renderSideTablesDDL prints for role $role", async ({ role, database, ensure }) => {
    const dbs = await freshDatabases();
    const executed: string[] = [];
    await withClient(dbs[database], async (client) => {
      const original = client.query.bind(client) as (text: string, values?: unknown[]) => Promise<unknown>;
      const spy = client as unknown as { query: (text: string, values?: unknown[]) => Promise<unknown> };
      spy.query = (text, values) => {
        executed.push(text);
        return original(text, values);
      };
      try {
        await ensure(client);
      } finally {
        spy.query = original;
      }
    });
    const rendered = scriptStatements(renderSideTablesDDL(role));
    // The reads of which versions are recorded are not part of the script.
    const ran = executed.filter((s) => !s.startsWith("SELECT version FROM") && !s.startsWith("SELECT to_regclass"));
    expect(ran).toEqual(rendered);
  });

  it("`schema print --role primary` prints the primary's migrations, and a DBA running the script gets what the operator would apply", async () => {
    const { stdout } = await run(process.execPath, [
      join(REPO_ROOT, "bin/geo-operator.js"), "schema", "print", "-f", join(REPO_ROOT, "config/samples/replicabletype-cool-widget.yaml"), "--role", "primary",
    ]);
    // The operator's own tables first (the type's counting triggers call their functions), then the type's script.
    expect(stdout.startsWith(renderSideTablesDDL("primary"))).toBe(true);
    for (const created of [
      "CREATE TABLE IF NOT EXISTS public.geo_operator_events (",
      "CREATE TABLE IF NOT EXISTS public.geo_operator_capture_types (",
      "CREATE TABLE IF NOT EXISTS public.geo_operator_event_cursors (",
      "CREATE OR REPLACE FUNCTION public.geo_operator_publish_event(",
    ]) {
      expect(stdout).toContain(created);
    }

    const dbs = await freshDatabases();
    await dbs.primary.query(`CREATE TABLE cool_widgets (id bigserial PRIMARY KEY, namespace_id bigint, file_name text NOT NULL)`);
    await dbs.primary.query(stdout);
    expect(await operatorTables(dbs.primary)).toEqual(PRIMARY_TABLES);
    expect(await appliedVersions(dbs.primary, OPERATOR_MIGRATION_SET, "primary")).toEqual([1, 2, 3]);
    const { rows } = await dbs.primary.query<{ fn: string | null }>(`SELECT to_regprocedure('public.geo_operator_publish_event(text, bigint, text)')::text AS fn`);
    expect(rows[0]!.fn).toBe("geo_operator_publish_event(text,bigint,text)");
    // The printed versions are the operator's: it finds nothing left to apply.
    expect(await ensurePrimarySideTables(dbs.primary)).toEqual({ applied: [] });
  });
});
