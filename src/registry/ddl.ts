import type { ReplicableTypeSchemaConfig, ResolvedTypeConfig, SchemaRole } from "./config.ts";
import {
  deriveIdentifiers,
  foreignKeyName,
  qualify,
  quoteIdent,
  quoteLiteral,
  resolveConfig,
  textLimitConstraintName,
} from "./identifiers.ts";
import { FAILURE_TEXT_LIMIT, SyncState, VerificationState } from "./states.ts";
import { captureDefinition } from "./change-capture.ts";
import { Counted, forgetCountsStatement, typeCountStatements } from "./row-counts.ts";

/**
 * Schema text for the registry (secondary tracking DB) and `<name>_states`
 * (primary main DB). Everything here is pure: the schema manager executes
 * exactly the statements `planSchemaStatements` returns, and
 * `renderSchemaDDL` prints the same list for `geo-operator schema print`.
 */

/** Registry tables always live in the tracking DB's public schema. */
export const TRACKING_SCHEMA = "public";
export const MIGRATIONS_TABLE = qualify("public", "geo_operator_schema_migrations");
/** One lock per database for all schema work: cheap, and it also guards creating MIGRATIONS_TABLE. */
export const SCHEMA_LOCK_KEY = "geo-operator/schema";

export interface SchemaMigration {
  version: number;
  description: string;
  statements: string[];
}

const TIMESTAMPTZ = "timestamp with time zone";

function textLimit(table: string, column: string): string {
  return `CONSTRAINT ${quoteIdent(textLimitConstraintName(table, column))} CHECK ((char_length(${quoteIdent(column)}) <= ${FAILURE_TEXT_LIMIT}))`;
}

// GitLab's partial index predicates, written with the state constants; the text PostgreSQL stores
// (and the template shows) is the same as with the numbers written out.
const SYNCED = `(state = ${SyncState.synced})`;
const V_PENDING = `(verification_state = ${VerificationState.pending})`;
const V_FAILED = `(verification_state = ${VerificationState.failed})`;
const V_PENDING_OR_FAILED = `(verification_state = ANY (ARRAY[${VerificationState.pending}, ${VerificationState.failed}]))`;

function createIndex(name: string, table: string, columns: string, where?: string, unique = false): string {
  const predicate = where === undefined ? "" : ` WHERE ${where}`;
  return `CREATE ${unique ? "UNIQUE " : ""}INDEX ${quoteIdent(name)} ON ${table} USING btree (${columns})${predicate}`;
}

/** The registry migration of GitLab's repository template (it has missing_on_primary), used for both strategies. */
function registryStatements(config: ResolvedTypeConfig): string[] {
  const ids = deriveIdentifiers(config.name);
  const raw = ids.registryTable;
  const table = qualify(TRACKING_SCHEMA, raw);
  const modelId = quoteIdent(ids.modelIdColumn);
  const ix = ids.registryIndexes;
  const create = [
    `CREATE TABLE ${table} (`,
    `  id bigserial PRIMARY KEY,`,
    `  ${modelId} bigint NOT NULL,`,
    `  created_at ${TIMESTAMPTZ} NOT NULL,`,
    `  last_synced_at ${TIMESTAMPTZ},`,
    `  retry_at ${TIMESTAMPTZ},`,
    `  verified_at ${TIMESTAMPTZ},`,
    `  verification_started_at ${TIMESTAMPTZ},`,
    `  verification_retry_at ${TIMESTAMPTZ},`,
    `  state smallint DEFAULT ${SyncState.pending} NOT NULL,`,
    `  verification_state smallint DEFAULT ${VerificationState.pending} NOT NULL,`,
    `  retry_count smallint DEFAULT 0 NOT NULL,`,
    `  verification_retry_count smallint DEFAULT 0 NOT NULL,`,
    `  checksum_mismatch boolean DEFAULT false NOT NULL,`,
    `  missing_on_primary boolean DEFAULT false NOT NULL,`,
    `  verification_checksum bytea,`,
    `  verification_checksum_mismatched bytea,`,
    `  verification_failure text,`,
    `  last_sync_failure text,`,
    `  ${textLimit(raw, "verification_failure")},`,
    `  ${textLimit(raw, "last_sync_failure")}`,
    `)`,
  ].join("\n");
  return [
    create,
    createIndex(ix.modelId, table, modelId, undefined, true),
    createIndex(ix.retryAt, table, "retry_at"),
    createIndex(ix.state, table, "state"),
    createIndex(ix.failedVerification, table, "verification_retry_at NULLS FIRST", `(${SYNCED} AND ${V_FAILED})`),
    createIndex(ix.needsVerification, table, "verification_state", `(${SYNCED} AND ${V_PENDING_OR_FAILED})`),
    createIndex(ix.pendingVerification, table, "verified_at NULLS FIRST", `(${SYNCED} AND ${V_PENDING})`),
  ];
}

/**
 * `<name>_states` in the layout the type's strategy uses: `keyed-by-model-id` keys it by the
 * model id (GitLab's blob template); `serial-id` adds a bigserial id and a unique index on the
 * model id (GitLab's repository template).
 */
function statesStatements(config: ResolvedTypeConfig): string[] {
  const ids = deriveIdentifiers(config.name);
  const raw = ids.statesTable;
  const table = qualify(config.source.schema, raw);
  const modelId = quoteIdent(ids.modelIdColumn);
  const ix = ids.statesIndexes;
  const serial = config.statesLayout === "serial-id";
  const columns = [
    ...(serial ? [`  id bigserial PRIMARY KEY,`] : []),
    `  verification_started_at ${TIMESTAMPTZ},`,
    `  verification_retry_at ${TIMESTAMPTZ},`,
    `  verified_at ${TIMESTAMPTZ},`,
    `  ${modelId} bigint NOT NULL,`,
    `  verification_state smallint DEFAULT ${VerificationState.pending} NOT NULL,`,
    serial ? `  verification_retry_count smallint DEFAULT 0 NOT NULL,` : `  verification_retry_count smallint,`,
    `  verification_checksum bytea,`,
    `  verification_failure text,`,
    ...(serial ? [] : [`  CONSTRAINT ${quoteIdent(`${raw}_pkey`)} PRIMARY KEY (${modelId}),`]),
    `  ${textLimit(raw, "verification_failure")},`,
    `  CONSTRAINT ${quoteIdent(foreignKeyName(raw, ids.modelIdColumn))} FOREIGN KEY (${modelId}) ` +
      `REFERENCES ${qualify(config.source.schema, config.source.table)}(${quoteIdent(config.source.idColumn)}) ON DELETE CASCADE`,
  ];
  return [
    [`CREATE TABLE ${table} (`, ...columns, `)`].join("\n"),
    ...(serial ? [createIndex(ix.modelId, table, modelId, undefined, true)] : []),
    createIndex(ix.verificationState, table, "verification_state"),
    createIndex(ix.pendingVerification, table, "verified_at NULLS FIRST", V_PENDING),
    createIndex(ix.failedVerification, table, "verification_retry_at NULLS FIRST", V_FAILED),
    createIndex(ix.needsVerification, table, "verification_state", `(${V_PENDING} OR ${V_FAILED})`),
  ];
}

/**
 * Numbered migrations for one type and role. Later schema changes are
 * appended as new versions; a released version is never edited.
 */
export function schemaMigrations(config: ResolvedTypeConfig, role: SchemaRole): SchemaMigration[] {
  const ids = deriveIdentifiers(config.name);
  if (role === "secondary") {
    const registry = qualify(TRACKING_SCHEMA, ids.registryTable);
    return [
      { version: 1, description: `create ${ids.registryTable}`, statements: registryStatements(config) },
      { version: 2, description: `count ${ids.registryTable} rows by state (row-counts.ts)`, statements: typeCountStatements(config, role, registry) },
    ];
  }
  const states = qualify(config.source.schema, ids.statesTable);
  return [
    { version: 1, description: `create ${ids.statesTable}`, statements: statesStatements(config) },
    { version: 2, description: `count ${ids.statesTable} rows by verification state (row-counts.ts)`, statements: typeCountStatements(config, role, states) },
  ];
}

export function lockStatement(): string {
  return `SELECT pg_advisory_xact_lock(hashtext(${quoteLiteral(SCHEMA_LOCK_KEY)}))`;
}

export function createMigrationsTableStatement(): string {
  return [
    `CREATE TABLE IF NOT EXISTS ${MIGRATIONS_TABLE} (`,
    `  type_name text NOT NULL,`,
    `  role text NOT NULL,`,
    `  version integer NOT NULL,`,
    `  applied_at ${TIMESTAMPTZ} DEFAULT now() NOT NULL,`,
    `  PRIMARY KEY (type_name, role, version)`,
    `)`,
  ].join("\n");
}

/** Reads the applied versions; the only statement of a schema run that is not in the rendered DDL. */
export function appliedVersionsQuery(): string {
  return `SELECT version FROM ${MIGRATIONS_TABLE} WHERE type_name = $1::text AND role = $2::text ORDER BY version`;
}

/**
 * Records one applied version. `set` names the migration set: a ReplicableType's name, or
 * OPERATOR_MIGRATION_SET for the operator's own tables (see side-tables.ts).
 */
export function recordVersionStatement(set: string, role: SchemaRole, version: number): string {
  return `INSERT INTO ${MIGRATIONS_TABLE} (type_name, role, version) VALUES (${quoteLiteral(set)}, ${quoteLiteral(role)}, ${version})`;
}

/** The statements applied inside the lock: every migration not yet recorded, each followed by its record. */
export function pendingStatements(set: string, role: SchemaRole, migrations: readonly SchemaMigration[], applied: ReadonlySet<number>): string[] {
  return migrations.filter((m) => !applied.has(m.version)).flatMap((m) => [...m.statements, recordVersionStatement(set, role, m.version)]);
}

/** pendingStatements for one type's schema. */
export function pendingMigrationStatements(config: ResolvedTypeConfig, role: SchemaRole, applied: ReadonlySet<number>): string[] {
  return pendingStatements(config.name, role, schemaMigrations(config, role), applied);
}

/** Statements that remove a deleted type's table (only for deletionPolicy Delete). */
export function dropStatements(config: ResolvedTypeConfig, role: SchemaRole): string[] {
  const ids = deriveIdentifiers(config.name);
  const table = role === "secondary" ? qualify(TRACKING_SCHEMA, ids.registryTable) : qualify(config.source.schema, ids.statesTable);
  return [
    `DROP TABLE IF EXISTS ${table}`,
    forgetCountsStatement(config.name, role === "secondary" ? Counted.registry : Counted.states),
    `DELETE FROM ${MIGRATIONS_TABLE} WHERE type_name = ${quoteLiteral(config.name)} AND role = ${quoteLiteral(role)}`,
  ];
}

/**
 * The SQL the schema manager runs against an empty database for this type and
 * role, as one script. Pure: touches no database. Throws
 * InvalidIdentifierError for names the manager would refuse.
 */
export function renderSchemaDDL(config: ReplicableTypeSchemaConfig, role: SchemaRole): string {
  const resolved = resolveConfig(config);
  const database = role === "secondary" ? "secondary tracking database" : "primary main database";
  const capture =
    role === "primary"
      ? {
          comment: `change capture (changeCapture: ${resolved.changeCapture}); applied when its definition hash differs from the one stored, after geo-operator's own tables exist`,
          statements: captureDefinition(resolved).statements,
        }
      : undefined;
  return renderMigrationScript(
    `-- geo-operator schema for ReplicableType ${resolved.name} (states ${resolved.statesLayout}), ${database}`,
    resolved.name,
    role,
    schemaMigrations(resolved, role),
    capture,
  );
}

/**
 * A migration set as the one script the schema manager runs against an empty database: the
 * lock, the versions table, then each migration followed by its record. `title` is the first
 * comment line.
 */
export function renderMigrationScript(
  title: string,
  set: string,
  role: SchemaRole,
  migrations: readonly SchemaMigration[],
  after?: { comment: string; statements: readonly string[] },
): string {
  const lines = [
    title,
    `-- Applied in one transaction; migrations already recorded in ${MIGRATIONS_TABLE} are skipped.`,
    "BEGIN;",
    `${lockStatement()};`,
    `${createMigrationsTableStatement()};`,
  ];
  for (const migration of migrations) {
    lines.push(`-- migration ${migration.version}: ${migration.description}`);
    for (const statement of [...migration.statements, recordVersionStatement(set, role, migration.version)]) {
      lines.push(`${statement};`);
    }
  }
  if (after) {
    lines.push(`-- ${after.comment}`);
    for (const statement of after.statements) lines.push(`${statement};`);
  }
  lines.push("COMMIT;");
  return `${lines.join("\n")}\n`;
}
