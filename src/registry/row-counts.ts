/**
 * Exact row counts per type, kept by the database itself so a status is read in constant time:
 * registry rows per (state, verification_state) in a secondary's tracking database, `_states` rows
 * per verification_state and model records in the primary's main database.
 *
 * Statement-level triggers with transition tables (one run per statement, not per row) append
 * signed delta rows to `geo_operator_row_counts` in the writer's own transaction: a count changes
 * exactly when the change commits, whoever writes (our workers, the backfills, GitLab itself, a
 * foreign key cascade, TRUNCATE). Delta rows are only ever inserted, never updated, so concurrent
 * writers never wait on a shared counter row (no hot row, no lock order, no deadlock); an UPDATE
 * that moves no row between states writes nothing. A reader sums the rows of one (type, counted)
 * pair, and `compactRowCounts` folds them into one row per group with one DELETE … RETURNING and
 * INSERT, which stays exact next to concurrent writers and other compactions (each delta row is
 * deleted, hence folded, by one statement only).
 *
 * Every counted pair has a marker row (state and verification_state NULL, n 0) written with its
 * baseline, so "no rows" means "not counted here" (a table not yet migrated, a model table
 * without change capture) and readers fall back to COUNT.
 */
import type { ResolvedTypeConfig } from "./config.ts";
import type { Queryable } from "./db.ts";
import { quoteIdent, quoteLiteral } from "./identifiers.ts";

export const ROW_COUNTS_TABLE = "geo_operator_row_counts";
export const COUNT_REGISTRY_FUNCTION = "geo_operator_count_registry_rows";
export const COUNT_STATES_FUNCTION = "geo_operator_count_states_rows";

/** What a group of counter rows counts. */
export const Counted = {
  registry: "registry",
  states: "states",
  model: "model",
} as const;
export type CountedValue = (typeof Counted)[keyof typeof Counted];

const counts = `public.${ROW_COUNTS_TABLE}`;

/** Trigger names on the registry and `_states` tables (trigger names are per table). */
export const COUNT_TRIGGERS = {
  insert: "geo_operator_count_inserted",
  update: "geo_operator_count_updated",
  delete: "geo_operator_count_deleted",
  truncate: "geo_operator_count_truncated",
} as const;

/** Counter rows of one pair above this number are compacted after a read. */
export const COMPACT_ABOVE_ROWS = 100;

/** The counters table: the same in the tracking DB and the primary's main DB. */
export function rowCountsTableStatements(): string[] {
  return [
    `CREATE TABLE IF NOT EXISTS ${counts} (
  type_name text NOT NULL,
  counted text NOT NULL,
  state smallint,
  verification_state smallint,
  n bigint NOT NULL
)`,
    `CREATE INDEX IF NOT EXISTS ${ROW_COUNTS_TABLE}_type ON ${counts} (type_name, counted)`,
  ];
}

/**
 * The trigger function for one table shape: `columns` are the state columns of the counted table
 * (registry: state and verification_state; `_states`: verification_state). The type's name and
 * what it counts come as trigger arguments. SECURITY DEFINER: on the primary the application's
 * role writes `_states` and needs no rights on the operator's table.
 */
function countFunction(name: string, counted: CountedValue, columns: ["state", "verification_state"] | ["verification_state"]): string {
  const list = columns.join(", ");
  const target = `INSERT INTO ${counts} (type_name, counted, ${list}, n)`;
  const label = quoteLiteral(counted);
  return `CREATE OR REPLACE FUNCTION public.${name}() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $count$
BEGIN
  IF TG_OP = 'INSERT' THEN
    ${target} SELECT TG_ARGV[0], ${label}, ${list}, count(*) FROM new_rows GROUP BY ${list};
  ELSIF TG_OP = 'UPDATE' THEN
    ${target} SELECT TG_ARGV[0], ${label}, ${list}, sum(d.n) FROM (
        SELECT ${list}, 1 AS n FROM new_rows UNION ALL SELECT ${list}, -1 AS n FROM old_rows) AS d
      GROUP BY ${list} HAVING sum(d.n) <> 0;
  ELSIF TG_OP = 'DELETE' THEN
    ${target} SELECT TG_ARGV[0], ${label}, ${list}, -count(*) FROM old_rows GROUP BY ${list};
  ELSE
    -- TRUNCATE holds the table exclusively: every earlier write is committed and counted.
    ${target} SELECT TG_ARGV[0], ${label}, ${list}, -sum(c.n) FROM ${counts} AS c
      WHERE c.type_name = TG_ARGV[0] AND c.counted = ${label} AND c.verification_state IS NOT NULL
      GROUP BY ${list} HAVING sum(c.n) <> 0;
  END IF;
  RETURN NULL;
END
$count$`;
}

/** Tracking DB: the table and the registry's trigger function (a side-tables migration). */
export function trackingRowCountsStatements(): string[] {
  return [...rowCountsTableStatements(), countFunction(COUNT_REGISTRY_FUNCTION, Counted.registry, ["state", "verification_state"])];
}

/** Primary main DB: the table and the `_states` trigger function (a side-tables migration). */
export function primaryRowCountsStatements(): string[] {
  return [...rowCountsTableStatements(), countFunction(COUNT_STATES_FUNCTION, Counted.states, ["verification_state"])];
}

/**
 * The triggers on one type's registry (role secondary) or `_states` (role primary), then the
 * baseline: its rows counted once, after the triggers exist. CREATE TRIGGER holds a lock that
 * stops writes to the table until the migration commits, so nothing is counted twice or missed.
 * Re-running it changes nothing.
 */
export function typeCountStatements(config: ResolvedTypeConfig, role: "secondary" | "primary", table: string): string[] {
  const fn = role === "secondary" ? COUNT_REGISTRY_FUNCTION : COUNT_STATES_FUNCTION;
  const counted = role === "secondary" ? Counted.registry : Counted.states;
  const columns = role === "secondary" ? "state, verification_state" : "verification_state";
  const args = `${quoteLiteral(config.name)}`;
  const t = COUNT_TRIGGERS;
  const call = `EXECUTE FUNCTION public.${fn}(${args})`;
  return [
    ...Object.values(t).map((name) => `DROP TRIGGER IF EXISTS ${quoteIdent(name)} ON ${table}`),
    `CREATE TRIGGER ${quoteIdent(t.insert)} AFTER INSERT ON ${table} REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT ${call}`,
    `CREATE TRIGGER ${quoteIdent(t.update)} AFTER UPDATE ON ${table} REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT ${call}`,
    `CREATE TRIGGER ${quoteIdent(t.delete)} AFTER DELETE ON ${table} REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT ${call}`,
    `CREATE TRIGGER ${quoteIdent(t.truncate)} AFTER TRUNCATE ON ${table} FOR EACH STATEMENT ${call}`,
    ...baselineStatements(config.name, counted, `SELECT ${columns}, count(*) FROM ${table} GROUP BY ${columns}`, columns),
  ];
}

/**
 * Brings a pair's counters to what `select` counts (its group columns, then the count): a marker
 * row, and one correcting delta row per group whose counters differ. It never deletes, so a
 * compaction running at the same time cannot make it count anything twice (the counters' sum it
 * reads is the same before and after a compaction).
 */
export function baselineStatements(typeName: string, counted: CountedValue, select: string, columns = ""): string[] {
  const type = quoteLiteral(typeName);
  const label = quoteLiteral(counted);
  const list = columns === "" ? "" : `${columns}, `;
  const group = columns === "" ? "" : ` GROUP BY ${columns}`;
  return [
    `INSERT INTO ${counts} (type_name, counted, n) VALUES (${type}, ${label}, 0)`,
    `INSERT INTO ${counts} (type_name, counted, ${list}n)
SELECT ${type}, ${label}, ${list}sum(d.n) FROM (
  ${select}
  UNION ALL SELECT ${list}-c.n FROM ${counts} AS c WHERE c.type_name = ${type} AND c.counted = ${label}
) AS d(${list}n)${group} HAVING sum(d.n) <> 0`,
  ];
}

/** Removes a pair's counter rows (its table is dropped, or no longer counted). */
export function forgetCountsStatement(typeName: string, counted: CountedValue): string {
  // Guarded: a database whose operator tables predate the counters has nothing to forget.
  return `DO $forget$ BEGIN IF to_regclass(${quoteLiteral(counts)}) IS NOT NULL THEN
  DELETE FROM ${counts} WHERE type_name = ${quoteLiteral(typeName)} AND counted = ${quoteLiteral(counted)};
END IF; END $forget$`;
}

/** Statement text a model-table trigger function runs to count `rows` (a transition table) with `sign`. */
export function modelCountDeltaStatement(typeName: string, rows: string, sign: 1 | -1): string {
  return `INSERT INTO ${counts} (type_name, counted, n) SELECT ${quoteLiteral(typeName)}, ${quoteLiteral(Counted.model)}, ${sign === 1 ? "" : "-"}count(*) FROM ${rows}`;
}

/** One group of counted rows; state / verificationState are null where the table has no such column. */
export interface CountGroup {
  state: number | null;
  verificationState: number | null;
  n: number;
}

export interface CountsRead {
  groups: CountGroup[];
  /** Counter rows read (compaction is due when many). */
  rows: number;
}

/** Reads one pair's counts; null when the pair is not counted in this database (no marker row). */
export async function readRowCounts(db: Queryable, typeName: string, counted: CountedValue): Promise<CountsRead | null> {
  const { rows } = await db.query<{ state: number | null; verification_state: number | null; n: string; rows: number }>(
    `SELECT state, verification_state, sum(n)::bigint AS n, count(*)::integer AS rows FROM ${counts}
     WHERE type_name = $1::text AND counted = $2::text GROUP BY state, verification_state`,
    [typeName, counted],
  );
  if (rows.length === 0) return null;
  let read = 0;
  const groups: CountGroup[] = [];
  for (const r of rows) {
    read += r.rows;
    groups.push({ state: r.state, verificationState: r.verification_state, n: Number(r.n) });
  }
  return { groups, rows: read };
}

const READ_ONLY_TRANSACTION = "25006";

/**
 * Folds one pair's counter rows into one row per group. Exact next to concurrent writers and
 * compactions. On a read-only replica it does nothing (the primary compacts its own).
 */
export async function compactRowCounts(db: Queryable, typeName: string, counted: CountedValue): Promise<void> {
  try {
    await db.query(
      `WITH folded AS (DELETE FROM ${counts} WHERE type_name = $1::text AND counted = $2::text RETURNING state, verification_state, n)
       INSERT INTO ${counts} (type_name, counted, state, verification_state, n)
       SELECT $1::text, $2::text, state, verification_state, sum(n) FROM folded GROUP BY state, verification_state`,
      [typeName, counted],
    );
  } catch (error) {
    if ((error as { code?: string }).code !== READ_ONLY_TRANSACTION) throw error;
  }
}

/**
 * readRowCounts, then, when the pair has many rows, a compaction the caller does not wait for (the
 * next read is short again). Compaction is only an optimisation: if it fails (the connection
 * ends, the database is read-only), the rows stay and the next read tries again.
 */
export async function readAndCompactRowCounts(db: Queryable, typeName: string, counted: CountedValue): Promise<CountsRead | null> {
  const read = await readRowCounts(db, typeName, counted);
  if (read !== null && read.rows > COMPACT_ABOVE_ROWS) void compactRowCounts(db, typeName, counted).catch(() => undefined);
  return read;
}
