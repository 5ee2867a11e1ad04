import type { ClientBase } from "pg";
import type { ReplicableTypeSchemaConfig, SchemaRole } from "./config.ts";
import type { Queryable } from "./db.ts";
import {
  appliedVersionsQuery,
  createMigrationsTableStatement,
  dropStatements,
  lockStatement,
  pendingStatements,
  schemaMigrations,
  type SchemaMigration,
} from "./ddl.ts";
import { resolveConfig } from "./identifiers.ts";
import { captureDefinition, captureHashQuery, removeCaptureStatements } from "./change-capture.ts";
import { CAPTURE_TYPES_TABLE, ensurePrimarySideTables, ensureTrackingSideTables, OPERATOR_MIGRATION_SET } from "./side-tables.ts";

const INSUFFICIENT_PRIVILEGE = "42501";
const captureTypesTable = () => `public.${CAPTURE_TYPES_TABLE}`;

export interface ApplySchemaResult {
  /** Versions applied by this call (empty when the schema was already current). */
  applied: number[];
  /** Primary: whether this call changed the type's change capture (triggers created or removed). */
  captureChanged?: boolean;
}

async function inTransaction<T>(client: ClientBase, work: () => Promise<T>): Promise<T> {
  await client.query("BEGIN");
  try {
    const result = await work();
    await client.query("COMMIT");
    return result;
  } catch (error) {
    await client.query("ROLLBACK");
    throw error;
  }
}

/**
 * Brings one type's schema in one database up to date: the registry table for
 * role "secondary" (tracking DB), `<name>_states` for role "primary" (main DB).
 *
 * On the primary it also makes the type's change capture match `changeCapture` (change-capture.ts):
 * the operator's tables come first (the triggers write its event log), and the triggers are
 * replaced only when their definition changed, since that briefly locks the model table.
 *
 * Idempotent, and safe when several operators run it at once (see applyMigrations).
 * It never drops a table. `client` must be connected and not inside a transaction.
 */
export async function applySchema(client: ClientBase, config: ReplicableTypeSchemaConfig, role: SchemaRole): Promise<ApplySchemaResult> {
  const resolved = resolveConfig(config);
  if (role === "secondary") {
    // The registry's counting triggers call a function of the operator's tables.
    await ensureTrackingSideTables(client);
    return applyMigrations(client, resolved.name, role, schemaMigrations(resolved, role));
  }
  await ensurePrimarySideTables(client);
  let captureChanged = false;
  const result = await applyMigrations(client, resolved.name, role, schemaMigrations(resolved, role), async () => {
    const capture = captureDefinition(resolved);
    const { rows } = await client.query<{ definition_hash: string }>(captureHashQuery(), [resolved.name]);
    if (rows[0]?.definition_hash === capture.hash) return;
    try {
      for (const statement of capture.statements) await client.query(statement);
    } catch (err) {
      if ((err as { code?: string }).code !== INSUFFICIENT_PRIVILEGE) throw err;
      throw new Error(
        `changeCapture: ${resolved.changeCapture} needs the operator's database role to own the model table ` +
          `${resolved.source.schema}.${resolved.source.table} (PostgreSQL lets only the owner add or drop triggers): ` +
          `grant that role membership in the owner's role, or set changeCapture: none to rely on scanning (${(err as Error).message})`,
        { cause: err },
      );
    }
    captureChanged = true;
  });
  return { ...result, captureChanged };
}

/**
 * Applies the versions of a migration set not yet recorded for `role` in this database. Everything
 * happens in one transaction behind a transaction-scoped advisory lock (one lock per database for
 * all schema work), and each version is recorded in geo_operator_schema_migrations as it is
 * applied, so two callers at once serialize and the second applies nothing. `set` is a type's
 * name or OPERATOR_MIGRATION_SET. `client` must be connected and not inside a transaction.
 */
export async function applyMigrations(
  client: ClientBase,
  set: string,
  role: SchemaRole,
  migrations: readonly SchemaMigration[],
  /** More work in the same transaction and lock, after the migrations. */
  andThen?: () => Promise<void>,
): Promise<ApplySchemaResult> {
  return inTransaction(client, async () => {
    await client.query(lockStatement());
    await client.query(createMigrationsTableStatement());
    const { rows } = await client.query<{ version: number }>(appliedVersionsQuery(), [set, role]);
    const appliedBefore = new Set(rows.map((r) => r.version));
    for (const statement of pendingStatements(set, role, migrations, appliedBefore)) {
      await client.query(statement);
    }
    await andThen?.();
    const versionsNow = await client.query<{ version: number }>(appliedVersionsQuery(), [set, role]);
    return { applied: versionsNow.rows.map((r) => r.version).filter((v) => !appliedBefore.has(v)) };
  });
}

/** Versions recorded for a type and role, ascending (empty when never applied). */
export async function appliedSchemaVersions(client: Queryable, config: ReplicableTypeSchemaConfig, role: SchemaRole): Promise<number[]> {
  return appliedVersions(client, resolveConfig(config).name, role);
}

/** Versions recorded for a migration set and role, ascending; takes no lock (empty when none). */
export async function appliedVersions(db: Queryable, set: string, role: SchemaRole): Promise<number[]> {
  const exists = await db.query<{ present: boolean }>(
    "SELECT to_regclass('public.geo_operator_schema_migrations') IS NOT NULL AS present",
  );
  if (exists.rows[0]?.present !== true) return [];
  const { rows } = await db.query<{ version: number }>(appliedVersionsQuery(), [set, role]);
  return rows.map((r) => r.version);
}

export interface DropSchemaResult {
  dropped: boolean;
  /** Why nothing was dropped, when `dropped` is false. */
  reason?: string;
}

/**
 * Called only when a ReplicableType is being deleted. On the primary its change capture goes in
 * any case (triggers must not keep writing events nobody reads). Drops its table in this
 * database if, and only if, the type says `deletionPolicy: Delete`; with
 * Retain it leaves the table in place (a re-created type picks the data up).
 */
export async function dropSchemaForDeletedType(
  client: ClientBase,
  config: ReplicableTypeSchemaConfig,
  role: SchemaRole,
): Promise<DropSchemaResult> {
  const resolved = resolveConfig(config);
  if (role === "primary" && (await appliedVersions(client, OPERATOR_MIGRATION_SET, "primary")).length > 0) {
    await inTransaction(client, async () => {
      await client.query(lockStatement());
      const present = await client.query<{ present: boolean }>(`SELECT to_regclass($1::text) IS NOT NULL AS present`, [captureTypesTable()]);
      if (!present.rows[0]?.present) return;
      for (const statement of removeCaptureStatements(resolved)) await client.query(statement);
    });
  }
  if (resolved.deletionPolicy !== "Delete") {
    return { dropped: false, reason: `deletionPolicy is ${resolved.deletionPolicy}` };
  }
  await inTransaction(client, async () => {
    await client.query(lockStatement());
    await client.query(createMigrationsTableStatement());
    for (const statement of dropStatements(resolved, role)) {
      await client.query(statement);
    }
  });
  return { dropped: true };
}
