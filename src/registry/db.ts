import type { QueryResult, QueryResultRow } from "pg";

/**
 * Anything that runs a query: a pg Pool, Client or PoolClient. Functions that
 * need a transaction take a connected `pg.ClientBase` instead.
 */
export interface Queryable {
  query<R extends QueryResultRow = QueryResultRow>(text: string, values?: unknown[]): Promise<QueryResult<R>>;
}

/** Injected time: when set, SQL uses it instead of the database's now(). */
export interface ClockOption {
  now?: Date;
}

/** SQL for "the injected time if any, else now()"; `param` is e.g. "$2". */
export function nowSql(param: string): string {
  return `coalesce(${param}::timestamptz, now())`;
}

/** pg returns bigint as text; registry ids stay far below 2^53. */
export function toNumber(value: string | number): number {
  const n = typeof value === "number" ? value : Number(value);
  if (!Number.isSafeInteger(n)) throw new RangeError(`id ${String(value)} is not a safe integer`);
  return n;
}

/** Runs `select 1`: the connection works and the server answers. Throws pg's error otherwise. */
export async function ping(db: Queryable): Promise<void> {
  await db.query("select 1");
}
