/**
 * The operator's own tables beside GitLab's: on a secondary's tracking database the copy locations,
 * worker runs, deletion evidence and the log cursor's position; on the primary's main database the
 * heartbeat, the times of the last whole `_states` backfill walks, the change event log with the
 * types that write it and the function that publishes to it, and the primary's own log cursor.
 *
 * They are numbered migrations like each type's schema (same versions table, same advisory lock),
 * recorded under the set name OPERATOR_MIGRATION_SET, which no ReplicableType can have (type names
 * are snake_case). Role "secondary" is the tracking database, "primary" the main database.
 * Version 1 is the tables as the operator created them before they were migrations, with IF NOT
 * EXISTS, so a database that already has them records version 1 without change. Later versions
 * are written the same way, so re-applying one whose record was lost changes nothing. A released
 * version is never edited; later changes are new versions. Version 3 (both roles) adds the exact
 * row counters of row-counts.ts, which each type's schema version 2 then wires to its table.
 * Tracking version 4 pins the identity of the primary's database a secondary replicates from
 * (heartbeat.ts).
 */
import pg from "pg";
import type { SchemaRole } from "./config.ts";
import type { Queryable } from "./db.ts";
import { renderMigrationScript, type SchemaMigration } from "./ddl.ts";
import { applyMigrations, appliedVersions, type ApplySchemaResult } from "./schema-manager.ts";
import { primaryRowCountsStatements, ROW_COUNTS_TABLE, trackingRowCountsStatements } from "./row-counts.ts";
import { EVENT_KIND_NAMES, EVENTS_CHANNEL, EventKind, VerificationState } from "./states.ts";

/** The `type_name` under which geo_operator_schema_migrations records these migrations. */
export const OPERATOR_MIGRATION_SET = "geo-operator";

export const REPLICAS_TABLE = "geo_operator_replicas";
export const WORKER_RUNS_TABLE = "geo_operator_worker_runs";
export const CONSISTENCY_PASSES_TABLE = "geo_operator_consistency_passes";
export const DELETION_CANDIDATES_TABLE = "geo_operator_deletion_candidates";
export const DELETION_HOLDS_TABLE = "geo_operator_deletion_holds";
export const HEARTBEAT_TABLE = "geo_operator_primary_heartbeat";
export const PRIMARY_IDENTITIES_TABLE = "geo_operator_primary_identities";
export const BACKFILL_WALKS_TABLE = "geo_operator_backfill_walks";
export const EVENTS_TABLE = "geo_operator_events";
export const CAPTURE_TYPES_TABLE = "geo_operator_capture_types";
export const EVENT_CURSORS_TABLE = "geo_operator_event_cursors";
export const PUBLISH_FUNCTION = "geo_operator_publish_event";

/** Where a log cursor stands; the same table on the primary (its own cursor) and in a tracking DB. */
const EVENT_CURSORS_DDL = `CREATE TABLE IF NOT EXISTS public.${EVENT_CURSORS_TABLE} (
  cursor_name text PRIMARY KEY,
  last_event_id bigint NOT NULL,
  last_event_at timestamptz,
  gaps jsonb NOT NULL DEFAULT '[]'::jsonb,
  updated_at timestamptz NOT NULL DEFAULT now()
)`;

const RESET_STATES = [
  `verification_state = ${VerificationState.pending}`,
  "verification_checksum = NULL",
  "verification_retry_count = 0",
  "verification_retry_at = NULL",
  "verification_failure = NULL",
  "verification_started_at = NULL",
].join(", ");

/**
 * Publishes a change the database cannot see (a blob rewritten in place, a git push). An
 * "updated" event also drops the record's primary checksum in the same transaction, so no
 * secondary verifies a new copy against the old checksum. SECURITY DEFINER: the application's
 * role needs EXECUTE on this function only, not rights on the operator's tables.
 */
const PUBLISH_FUNCTION_DDL = `CREATE OR REPLACE FUNCTION public.${PUBLISH_FUNCTION}(p_type text, p_model_id bigint, p_event text DEFAULT 'updated')
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $publish$
DECLARE
  kind smallint;
  target record;
  event_id bigint;
BEGIN
  kind := CASE p_event ${EVENT_KIND_NAMES.map((n) => `WHEN '${n}' THEN ${EventKind[n]}`).join(" ")} END;
  IF kind IS NULL THEN
    RAISE EXCEPTION 'geo-operator: event must be one of ${EVENT_KIND_NAMES.join(", ")}, not %', p_event USING ERRCODE = '22023';
  END IF;
  SELECT states_table, model_id_column INTO target FROM public.${CAPTURE_TYPES_TABLE} WHERE type_name = p_type;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'geo-operator: no ReplicableType named % has its schema in this database', p_type USING ERRCODE = '42704';
  END IF;
  IF kind = ${EventKind.updated} THEN
    EXECUTE format('UPDATE %s SET ${RESET_STATES} WHERE %I = $1 AND verification_state <> ${VerificationState.disabled}', target.states_table, target.model_id_column)
      USING p_model_id;
  END IF;
  INSERT INTO public.${EVENTS_TABLE} (type_name, model_id, event) VALUES (p_type, p_model_id, kind) RETURNING id INTO event_id;
  PERFORM pg_notify('${EVENTS_CHANNEL}', '');
  RETURN event_id;
END
$publish$`;

const TRACKING_MIGRATIONS: readonly SchemaMigration[] = [
  {
    version: 1,
    description: `create ${REPLICAS_TABLE}, ${WORKER_RUNS_TABLE}, ${CONSISTENCY_PASSES_TABLE}, ${DELETION_CANDIDATES_TABLE}, ${DELETION_HOLDS_TABLE}`,
    statements: [
      `CREATE TABLE IF NOT EXISTS public.${REPLICAS_TABLE} (
  type_name text NOT NULL,
  model_id bigint NOT NULL,
  location text,
  mismatch jsonb,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (type_name, model_id)
)`,
      `CREATE INDEX IF NOT EXISTS ${REPLICAS_TABLE}_location ON public.${REPLICAS_TABLE} (location)`,
      `CREATE TABLE IF NOT EXISTS public.${WORKER_RUNS_TABLE} (
  id bigserial PRIMARY KEY,
  type_name text NOT NULL,
  site text NOT NULL,
  kind text NOT NULL,
  finished_at timestamptz NOT NULL DEFAULT now(),
  claimed integer NOT NULL,
  succeeded integer NOT NULL,
  failed integer NOT NULL,
  bytes bigint NOT NULL,
  seconds double precision NOT NULL
)`,
      `CREATE TABLE IF NOT EXISTS public.${CONSISTENCY_PASSES_TABLE} (
  type_name text PRIMARY KEY,
  started_at timestamptz NOT NULL,
  after_id bigint NOT NULL,
  scanned bigint NOT NULL DEFAULT 0,
  last_completed_at timestamptz,
  last_scanned bigint
)`,
      `CREATE TABLE IF NOT EXISTS public.${DELETION_CANDIDATES_TABLE} (
  type_name text NOT NULL,
  model_id bigint NOT NULL,
  registry_id bigint NOT NULL,
  first_seen_at timestamptz NOT NULL,
  last_seen_at timestamptz NOT NULL,
  PRIMARY KEY (type_name, model_id)
)`,
      `CREATE TABLE IF NOT EXISTS public.${DELETION_HOLDS_TABLE} (
  type_name text PRIMARY KEY,
  reason text NOT NULL,
  message text NOT NULL,
  pending bigint NOT NULL,
  held_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  released_at timestamptz,
  released_by text
)`,
    ],
  },
  {
    version: 2,
    description: `create ${EVENT_CURSORS_TABLE}`,
    statements: [EVENT_CURSORS_DDL],
  },
  {
    version: 3,
    description: `create ${ROW_COUNTS_TABLE} and the registry's counting trigger function (row-counts.ts)`,
    statements: trackingRowCountsStatements(),
  },
  {
    version: 4,
    description: `create ${PRIMARY_IDENTITIES_TABLE}`,
    statements: [
      `CREATE TABLE IF NOT EXISTS public.${PRIMARY_IDENTITIES_TABLE} (
  primary_site_name text PRIMARY KEY,
  identity uuid NOT NULL,
  pinned_at timestamptz NOT NULL DEFAULT now(),
  accepted_from uuid
)`,
    ],
  },
];

const PRIMARY_MIGRATIONS: readonly SchemaMigration[] = [
  {
    version: 1,
    description: `create ${HEARTBEAT_TABLE}, ${BACKFILL_WALKS_TABLE}`,
    statements: [
      `CREATE TABLE IF NOT EXISTS public.${HEARTBEAT_TABLE} (
  site_name text PRIMARY KEY,
  identity uuid NOT NULL DEFAULT gen_random_uuid(),
  database_name text NOT NULL DEFAULT current_database(),
  beat_at timestamptz NOT NULL
)`,
      `CREATE TABLE IF NOT EXISTS public.${BACKFILL_WALKS_TABLE} (type_name text PRIMARY KEY, full_walk_at timestamptz NOT NULL)`,
    ],
  },
  {
    version: 2,
    description: `create ${EVENTS_TABLE}, ${CAPTURE_TYPES_TABLE}, ${EVENT_CURSORS_TABLE}, ${PUBLISH_FUNCTION}()`,
    statements: [
      // clock_timestamp(): the time of the write itself, not of its transaction's start, so
      // change-to-synced latency is measured from the change.
      `CREATE TABLE IF NOT EXISTS public.${EVENTS_TABLE} (
  id bigserial PRIMARY KEY,
  type_name text NOT NULL,
  model_id bigint NOT NULL,
  event smallint NOT NULL,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp()
)`,
      `CREATE INDEX IF NOT EXISTS ${EVENTS_TABLE}_created_at ON public.${EVENTS_TABLE} (created_at)`,
      `CREATE TABLE IF NOT EXISTS public.${CAPTURE_TYPES_TABLE} (
  type_name text PRIMARY KEY,
  states_table text NOT NULL,
  model_id_column text NOT NULL,
  capture text NOT NULL,
  definition_hash text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
)`,
      EVENT_CURSORS_DDL,
      PUBLISH_FUNCTION_DDL,
    ],
  },
  {
    version: 3,
    description: `create ${ROW_COUNTS_TABLE} and the _states counting trigger function (row-counts.ts)`,
    statements: primaryRowCountsStatements(),
  },
];

/** The operator's own migrations for one database role. */
export function sideTableMigrations(role: SchemaRole): readonly SchemaMigration[] {
  return role === "secondary" ? TRACKING_MIGRATIONS : PRIMARY_MIGRATIONS;
}

/** The script `ensure*SideTables` runs against an empty database, for `geo-operator schema print`. */
export function renderSideTablesDDL(role: SchemaRole): string {
  const database = role === "secondary" ? "secondary tracking database" : "primary main database";
  return renderMigrationScript(`-- geo-operator's own tables, ${database}`, OPERATOR_MIGRATION_SET, role, sideTableMigrations(role));
}

/**
 * `db` must be a pg Pool (a client is checked out for the transaction) or a connected pg Client
 * not inside a transaction; the work needs one connection, which a bare Queryable does not promise.
 */
async function ensureSideTables(db: Queryable, role: SchemaRole): Promise<ApplySchemaResult> {
  const migrations = sideTableMigrations(role);
  // Every worker run calls this: when all versions are recorded, two reads and no lock.
  const recorded = new Set(await appliedVersions(db, OPERATOR_MIGRATION_SET, role));
  if (migrations.every((m) => recorded.has(m.version))) return { applied: [] };
  if (db instanceof pg.Client) return applyMigrations(db, OPERATOR_MIGRATION_SET, role, migrations);
  if (!(db instanceof pg.Pool)) throw new TypeError("the operator's tables are migrated through a pg Pool or Client");
  const client = await db.connect();
  try {
    return await applyMigrations(client, OPERATOR_MIGRATION_SET, role, migrations);
  } finally {
    client.release();
  }
}

/**
 * Brings the operator's tables in a secondary's tracking database up to date (the reconciler and
 * every secondary worker run call it). Safe to run from several processes at once.
 */
export function ensureTrackingSideTables(db: Queryable): Promise<ApplySchemaResult> {
  return ensureSideTables(db, "secondary");
}

/**
 * Brings the operator's tables in the primary's main database up to date (the reconciler, the
 * first heartbeat and each verify-primary run call it). Safe to run from several processes at once.
 */
export function ensurePrimarySideTables(db: Queryable): Promise<ApplySchemaResult> {
  return ensureSideTables(db, "primary");
}
