/**
 * Change capture on the primary's main database (ReplicableType `changeCapture: trigger`): three
 * statement-level triggers on the model table write one event per inserted, deleted or updated
 * record into the operator's event log (`geo_operator_events`), in the application's own
 * transaction, so an event exists exactly when its change committed. Updates count only when a
 * column the type reads changed (`captureColumns`); such an update also drops the record's primary
 * checksum in the same transaction (the primary re-checksums, secondaries never compare a new copy
 * with the old checksum). Application rows are only read, never written.
 *
 * Statement-level triggers with transition tables: a bulk write of N rows runs the trigger once
 * and writes its N events with one INSERT … SELECT. PostgreSQL does not allow transition tables on
 * a trigger limited to columns (`UPDATE OF`), so the column test is in the function.
 *
 * The same triggers keep the exact count of model records (row-counts.ts) that the status reads.
 *
 * Pure: returns statement text. The schema manager applies it when the stored definition hash
 * differs, so a reconcile does not lock the application's table for nothing.
 */
import { createHash } from "node:crypto";
import type { ResolvedTypeConfig } from "./config.ts";
import { deriveIdentifiers, qualify, quoteIdent, quoteLiteral } from "./identifiers.ts";
import { CAPTURE_TYPES_TABLE, EVENTS_TABLE } from "./side-tables.ts";
import { baselineStatements, Counted, forgetCountsStatement, modelCountDeltaStatement } from "./row-counts.ts";
import { EVENTS_CHANNEL, EventKind, VerificationState } from "./states.ts";

export interface CaptureDefinition {
  /** Statements that bring triggers and function to the wanted state (idempotent). */
  statements: string[];
  /** Identifies `statements`: stored with the type, compared before re-applying. */
  hash: string;
}

function resetChecksums(config: ResolvedTypeConfig, idsQuery: string): string {
  const ids = deriveIdentifiers(config.name);
  return (
    `UPDATE ${qualify(config.source.schema, ids.statesTable)} SET verification_state = ${VerificationState.pending}, ` +
    `verification_checksum = NULL, verification_retry_count = 0, verification_retry_at = NULL, verification_failure = NULL, verification_started_at = NULL ` +
    `WHERE ${quoteIdent(ids.modelIdColumn)} IN (${idsQuery}) AND verification_state <> ${VerificationState.disabled}`
  );
}

function triggerFunction(config: ResolvedTypeConfig): string {
  const ids = deriveIdentifiers(config.name);
  const id = quoteIdent(config.source.idColumn);
  const type = quoteLiteral(config.name);
  const events = `public.${EVENTS_TABLE}`;
  const columns = config.captureColumns.map(quoteIdent);
  const changedColumns =
    columns.length === 0
      ? ""
      : `SELECT n.${id} AS id, ${EventKind.updated} AS event FROM new_rows AS n JOIN old_rows AS o ON o.${id} = n.${id}
        WHERE ROW(${columns.map((c) => `n.${c}`).join(", ")}) IS DISTINCT FROM ROW(${columns.map((c) => `o.${c}`).join(", ")})
        UNION ALL
        `;
  return `CREATE OR REPLACE FUNCTION public.${quoteIdent(ids.captureFunction)}() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $capture$
BEGIN
  IF TG_OP = 'INSERT' THEN
    ${modelCountDeltaStatement(config.name, "new_rows", 1)};
    INSERT INTO ${events} (type_name, model_id, event) SELECT ${type}, n.${id}, ${EventKind.created} FROM new_rows AS n ORDER BY n.${id};
  ELSIF TG_OP = 'DELETE' THEN
    ${modelCountDeltaStatement(config.name, "old_rows", -1)};
    INSERT INTO ${events} (type_name, model_id, event) SELECT ${type}, o.${id}, ${EventKind.deleted} FROM old_rows AS o ORDER BY o.${id};
  ELSE
    -- An id that changed is the old record deleted and a new one created.
    WITH changed AS (
        ${changedColumns}SELECT o.${id}, ${EventKind.deleted} FROM old_rows AS o WHERE NOT EXISTS (SELECT 1 FROM new_rows AS n WHERE n.${id} = o.${id})
        UNION ALL
        SELECT n.${id}, ${EventKind.created} FROM new_rows AS n WHERE NOT EXISTS (SELECT 1 FROM old_rows AS o WHERE o.${id} = n.${id})
      ), reset AS (
        ${resetChecksums(config, `SELECT id FROM changed WHERE event = ${EventKind.updated}`)}
        RETURNING 1
      )
    INSERT INTO ${events} (type_name, model_id, event) SELECT ${type}, id, event FROM changed ORDER BY id, event DESC;
  END IF;
  IF FOUND THEN
    PERFORM pg_notify(${quoteLiteral(EVENTS_CHANNEL)}, '');
  END IF;
  RETURN NULL;
END
$capture$`;
}

function modelTable(config: ResolvedTypeConfig): string {
  return qualify(config.source.schema, config.source.table);
}

function dropTriggers(config: ResolvedTypeConfig): string[] {
  const t = deriveIdentifiers(config.name).captureTriggers;
  return [t.insert, t.update, t.delete].map((name) => `DROP TRIGGER IF EXISTS ${quoteIdent(name)} ON ${modelTable(config)}`);
}

function createTriggers(config: ResolvedTypeConfig): string[] {
  const ids = deriveIdentifiers(config.name);
  const fn = `public.${quoteIdent(ids.captureFunction)}()`;
  const table = modelTable(config);
  const t = ids.captureTriggers;
  return [
    `CREATE TRIGGER ${quoteIdent(t.insert)} AFTER INSERT ON ${table} REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ${fn}`,
    `CREATE TRIGGER ${quoteIdent(t.update)} AFTER UPDATE ON ${table} REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ${fn}`,
    `CREATE TRIGGER ${quoteIdent(t.delete)} AFTER DELETE ON ${table} REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ${fn}`,
  ];
}

function register(config: ResolvedTypeConfig, hash: string): string {
  const ids = deriveIdentifiers(config.name);
  return `INSERT INTO public.${CAPTURE_TYPES_TABLE} (type_name, states_table, model_id_column, capture, definition_hash, updated_at)
VALUES (${quoteLiteral(config.name)}, ${quoteLiteral(qualify(config.source.schema, ids.statesTable))}, ${quoteLiteral(ids.modelIdColumn)}, ${quoteLiteral(config.changeCapture)}, ${quoteLiteral(hash)}, now())
ON CONFLICT (type_name) DO UPDATE SET states_table = EXCLUDED.states_table, model_id_column = EXCLUDED.model_id_column,
  capture = EXCLUDED.capture, definition_hash = EXCLUDED.definition_hash, updated_at = now()`;
}

/**
 * The statements that make the type's capture what its config says: triggers and their function
 * for `trigger`, none of them for `none`; either way the type is registered, so
 * geo_operator_publish_event() knows its `_states` table.
 */
export function captureDefinition(config: ResolvedTypeConfig): CaptureDefinition {
  const ids = deriveIdentifiers(config.name);
  // With triggers the model records are also counted (row-counts.ts), from a baseline taken once the
  // triggers hold their lock on the model table; without them the status counts the table.
  const body =
    config.changeCapture === "trigger"
      ? [
          triggerFunction(config),
          ...dropTriggers(config),
          ...createTriggers(config),
          ...baselineStatements(config.name, Counted.model, `SELECT count(*) FROM ${modelTable(config)}`),
        ]
      : [...dropTriggers(config), `DROP FUNCTION IF EXISTS public.${quoteIdent(ids.captureFunction)}()`, forgetCountsStatement(config.name, Counted.model)];
  const hash = createHash("sha256").update(body.join(";\n")).digest("hex").slice(0, 16);
  return { statements: [...body, register(config, hash)], hash };
}

/** Removes the type's capture entirely (the type is being deleted): triggers, function, registration. */
export function removeCaptureStatements(config: ResolvedTypeConfig): string[] {
  const ids = deriveIdentifiers(config.name);
  return [
    ...dropTriggers(config),
    `DROP FUNCTION IF EXISTS public.${quoteIdent(ids.captureFunction)}()`,
    forgetCountsStatement(config.name, Counted.model),
    `DELETE FROM public.${CAPTURE_TYPES_TABLE} WHERE type_name = ${quoteLiteral(config.name)}`,
  ];
}

/** The stored definition hash of a type (null when it was never applied). */
export function captureHashQuery(): string {
  return `SELECT definition_hash FROM public.${CAPTURE_TYPES_TABLE} WHERE type_name = $1::text`;
}
