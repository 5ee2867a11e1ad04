import { createHash } from "node:crypto";
import { STATES_LAYOUTS, type ReplicableTypeSchemaConfig, type ResolvedTypeConfig } from "./config.ts";

/** PostgreSQL truncates identifiers longer than NAMEDATALEN - 1 bytes. */
export const MAX_IDENTIFIER_BYTES = 63;
/** Longest type name for which `index_<name>_registry_on_<name>_id` still fits 63 bytes. */
export const MAX_TYPE_NAME_LENGTH = 20;

const SNAKE_CASE = /^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$/;
// Source identifiers name existing objects on the primary; we quote them, but
// still refuse anything that could not come from a sane Rails schema.
const PLAIN_IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Thrown when a ReplicableType would produce an unusable or unsafe identifier. */
export class InvalidIdentifierError extends Error {
  readonly field: string;
  constructor(field: string, message: string) {
    super(`${field}: ${message}`);
    this.name = "InvalidIdentifierError";
    this.field = field;
  }
}

/** Double-quotes an identifier for SQL; embedded quotes are doubled. */
export function quoteIdent(identifier: string): string {
  return `"${identifier.replaceAll('"', '""')}"`;
}

/** Quotes `schema.table`. */
export function qualify(schema: string, table: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(table)}`;
}

/** Quotes a string literal (only ever used on validated names). */
export function quoteLiteral(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

function byteLength(s: string): number {
  return Buffer.byteLength(s, "utf8");
}

function checkSnakeCase(field: string, value: string): void {
  if (!SNAKE_CASE.test(value)) {
    throw new InvalidIdentifierError(
      field,
      `${JSON.stringify(value)} is not snake_case (lowercase letters, digits and single underscores, starting with a letter)`,
    );
  }
}

function checkPlain(field: string, value: string): void {
  if (!PLAIN_IDENTIFIER.test(value)) {
    throw new InvalidIdentifierError(
      field,
      `${JSON.stringify(value)} is not a plain SQL identifier (letters, digits and underscores, not starting with a digit)`,
    );
  }
  if (byteLength(value) > MAX_IDENTIFIER_BYTES) {
    throw new InvalidIdentifierError(field, `${JSON.stringify(value)} exceeds PostgreSQL's ${MAX_IDENTIFIER_BYTES}-byte identifier limit`);
  }
}

/** Rails' name for the CHECK constraint GitLab adds for `text ... limit: 255`. */
export function textLimitConstraintName(table: string, column: string): string {
  const digest = createHash("sha256").update(`${table}_${column}_check_max_length`).digest("hex");
  return `check_${digest.slice(0, 10)}`;
}

/** Rails' name for a foreign key created by `t.references ..., foreign_key: true`. */
export function foreignKeyName(table: string, column: string): string {
  const digest = createHash("sha256").update(`${table}_${column}_fk`).digest("hex");
  return `fk_rails_${digest.slice(0, 10)}`;
}

/** Every identifier the registry layer derives from a type name (unquoted). */
export interface DerivedIdentifiers {
  registryTable: string;
  modelIdColumn: string;
  registryIndexes: {
    modelId: string;
    retryAt: string;
    state: string;
    failedVerification: string;
    needsVerification: string;
    pendingVerification: string;
  };
  statesTable: string;
  statesIndexes: {
    modelId: string;
    verificationState: string;
    pendingVerification: string;
    failedVerification: string;
    needsVerification: string;
  };
  /** The trigger function that writes this type's events, in the event log's schema. */
  captureFunction: string;
  /** Statement-level triggers on the model table, one per operation. */
  captureTriggers: { insert: string; update: string; delete: string };
}

export function deriveIdentifiers(name: string): DerivedIdentifiers {
  const registryTable = `${name}_registry`;
  const statesTable = `${name}_states`;
  const modelIdColumn = `${name}_id`;
  return {
    registryTable,
    modelIdColumn,
    registryIndexes: {
      modelId: `index_${registryTable}_on_${modelIdColumn}`,
      retryAt: `index_${registryTable}_on_retry_at`,
      state: `index_${registryTable}_on_state`,
      failedVerification: `${registryTable}_failed_verification`,
      needsVerification: `${registryTable}_needs_verification`,
      pendingVerification: `${registryTable}_pending_verification`,
    },
    captureFunction: `geo_operator_capture_${name}`,
    captureTriggers: {
      insert: `geo_operator_${name}_inserted`,
      update: `geo_operator_${name}_updated`,
      delete: `geo_operator_${name}_deleted`,
    },
    statesTable,
    statesIndexes: {
      modelId: `index_${statesTable}_on_${modelIdColumn}`,
      verificationState: `index_${statesTable}_on_verification_state`,
      pendingVerification: `index_${statesTable}_pending_verification`,
      failedVerification: `index_${statesTable}_failed_verification`,
      needsVerification: `index_${statesTable}_needs_verification`,
    },
  };
}

function allDerived(ids: DerivedIdentifiers): string[] {
  return [
    ids.registryTable,
    ids.modelIdColumn,
    ids.statesTable,
    `${ids.registryTable}_id_seq`,
    `${ids.statesTable}_id_seq`,
    ...Object.values(ids.registryIndexes),
    ...Object.values(ids.statesIndexes),
    ids.captureFunction,
    ...Object.values(ids.captureTriggers),
  ];
}

/**
 * Fills in defaults and validates every identifier. Throws
 * InvalidIdentifierError naming the offending field and the limit it breaks.
 */
export function resolveConfig(config: ReplicableTypeSchemaConfig): ResolvedTypeConfig {
  checkSnakeCase("name", config.name);
  if (config.name.length > MAX_TYPE_NAME_LENGTH) {
    throw new InvalidIdentifierError(
      "name",
      `${JSON.stringify(config.name)} is ${config.name.length} characters; the limit is ${MAX_TYPE_NAME_LENGTH} so that ` +
        `"index_<name>_registry_on_<name>_id" fits PostgreSQL's ${MAX_IDENTIFIER_BYTES}-byte identifier limit`,
    );
  }
  for (const identifier of allDerived(deriveIdentifiers(config.name))) {
    if (byteLength(identifier) > MAX_IDENTIFIER_BYTES) {
      throw new InvalidIdentifierError("name", `derived identifier "${identifier}" exceeds ${MAX_IDENTIFIER_BYTES} bytes`);
    }
  }
  const plural = config.plural ?? `${config.name}s`;
  checkSnakeCase("plural", plural);
  if (!STATES_LAYOUTS.includes(config.statesLayout)) {
    throw new InvalidIdentifierError("statesLayout", `must be one of ${STATES_LAYOUTS.map((l) => JSON.stringify(l)).join(", ")}, got ${JSON.stringify(config.statesLayout)}`);
  }
  if (config.deletionPolicy !== "Retain" && config.deletionPolicy !== "Delete") {
    throw new InvalidIdentifierError("deletionPolicy", `must be "Retain" or "Delete", got ${JSON.stringify(config.deletionPolicy)}`);
  }

  const src = config.source;
  const source: ResolvedTypeConfig["source"] = {
    schema: src.schema ?? "public",
    table: src.table,
    idColumn: src.idColumn ?? "id",
  };
  checkPlain("source.schema", source.schema);
  checkPlain("source.table", source.table);
  checkPlain("source.idColumn", source.idColumn);
  const optional = ["namespaceColumn", "namespaceTable", "namespaceParentColumn", "shardColumn"] as const;
  for (const key of optional) {
    const value = src[key];
    if (value !== undefined) {
      checkPlain(`source.${key}`, value);
      source[key] = value;
    }
  }
  if (source.namespaceParentColumn !== undefined && source.namespaceTable === undefined) {
    throw new InvalidIdentifierError("source.namespaceParentColumn", "needs source.namespaceTable");
  }
  if (source.namespaceTable !== undefined && source.namespaceColumn === undefined) {
    throw new InvalidIdentifierError("source.namespaceTable", "needs source.namespaceColumn");
  }
  const changeCapture = config.changeCapture ?? "trigger";
  if (changeCapture !== "trigger" && changeCapture !== "none") {
    throw new InvalidIdentifierError("changeCapture", `must be "trigger" or "none", got ${JSON.stringify(changeCapture)}`);
  }
  const captureColumns = [...new Set(config.captureColumns ?? [])].filter((c) => c !== source.idColumn).sort();
  for (const column of captureColumns) checkPlain("captureColumns", column);
  return {
    name: config.name,
    plural,
    statesLayout: config.statesLayout,
    source,
    deletionPolicy: config.deletionPolicy,
    verificationEnabled: config.verificationEnabled ?? true,
    changeCapture,
    captureColumns,
  };
}
