import type { ReplicableTypeSchemaConfig } from "./config.ts";
import type { Queryable } from "./db.ts";
import { BACKFILL_WALKS_TABLE, ensurePrimarySideTables } from "./side-tables.ts";
import { tableRefs } from "./tables.ts";

/**
 * Creates the missing `<name>_states` rows on the primary, one keyset batch
 * of model ids per statement, entirely server-side. New rows start pending,
 * or disabled when the type has verification switched off.
 */

export const DEFAULT_BACKFILL_BATCH_SIZE = 10_000;
const MIN_BIGINT = "-9223372036854775808";
const FOREIGN_KEY_VIOLATION = "23503";
const UNIQUE_VIOLATION = "23505";
const RETRIES_PER_BATCH = 3;

export interface StatesBackfillSummary {
  scanned: number;
  inserted: number;
  batches: number;
}

function isRetryable(error: unknown): boolean {
  const code = typeof error === "object" && error !== null ? (error as { code?: unknown }).code : undefined;
  return code === FOREIGN_KEY_VIOLATION || code === UNIQUE_VIOLATION;
}

export async function backfillStates(
  primary: Queryable,
  config: ReplicableTypeSchemaConfig,
  options: { batchSize?: number; startAfter?: string } = {},
): Promise<StatesBackfillSummary> {
  const { states, modelId, source, resolved } = tableRefs(config);
  const batchSize = options.batchSize ?? DEFAULT_BACKFILL_BATCH_SIZE;
  const initialState = resolved.verificationEnabled ? 0 : 4;
  const text = (onConflict: string) => `WITH batch AS (
      SELECT m.${source.id} AS id FROM ${source.table} AS m WHERE m.${source.id} > $1::bigint ORDER BY m.${source.id} LIMIT $2::integer
    ), existing AS (
      -- Only this batch's id range of _states: an index range scan, never the whole table.
      SELECT s.${modelId} AS id FROM ${states} AS s
      WHERE s.${modelId} > $1::bigint AND s.${modelId} <= (SELECT max(id) FROM batch)
    ), inserted AS (
      INSERT INTO ${states} (${modelId}, verification_state)
      SELECT b.id, $3::smallint FROM batch AS b
      WHERE NOT EXISTS (SELECT 1 FROM existing AS e WHERE e.id = b.id)${onConflict}
      RETURNING 1
    )
    SELECT (SELECT count(*) FROM batch)::integer AS scanned,
           (SELECT max(id) FROM batch)::text AS last_id,
           (SELECT count(*) FROM inserted)::integer AS inserted`;

  const summary: StatesBackfillSummary = { scanned: 0, inserted: 0, batches: 0 };
  let after = options.startAfter ?? MIN_BIGINT;
  for (;;) {
    const row = await runBatch(primary, { fast: text(""), contended: text(`\n      ON CONFLICT (${modelId}) DO NOTHING`) }, [after, batchSize, initialState]);
    summary.scanned += row.scanned;
    summary.inserted += row.inserted;
    summary.batches += 1;
    if (row.scanned < batchSize || row.last_id === null) return summary;
    after = row.last_id;
  }
}

interface BatchRow {
  scanned: number;
  last_id: string | null;
  inserted: number;
}

/**
 * A record deleted between the batch read and the insert fails the FK check, and a state row
 * created concurrently (by the application, or another verify-primary run walking the same ids)
 * fails the unique check; either way the batch runs again. The first attempt has no ON CONFLICT
 * (speculative insertion slows every insert); once a batch met a concurrent writer it runs with
 * it, so several walks over the same ids cannot keep failing each other.
 */
async function runBatch(primary: Queryable, text: { fast: string; contended: string }, params: unknown[]): Promise<BatchRow> {
  for (let attempt = 1; ; attempt++) {
    try {
      const { rows } = await primary.query<BatchRow>(attempt === 1 ? text.fast : text.contended, params);
      return rows[0] ?? { scanned: 0, last_id: null, inserted: 0 };
    } catch (error) {
      if (!isRetryable(error) || attempt >= RETRIES_PER_BATCH) throw error;
    }
  }
}

export { BACKFILL_WALKS_TABLE } from "./side-tables.ts";

/**
 * The backfill a verify-primary run does: a whole walk when the last one is older than
 * `fullWalkEverySeconds` (ids that committed out of order), otherwise only ids above the highest
 * `_states` row less one batch. Re-walking a large model table every minute would cost more than
 * the checksums it feeds. The walk times live in the operator's own small table.
 */
export async function backfillStatesIncrementally(
  primary: Queryable,
  config: ReplicableTypeSchemaConfig,
  options: { typeName: string; batchSize?: number; fullWalkEverySeconds: number },
): Promise<StatesBackfillSummary & { full: boolean }> {
  const { states, modelId } = tableRefs(config);
  await ensurePrimarySideTables(primary);
  const { rows } = await primary.query<{ due: boolean; high: string | null }>(
    `SELECT coalesce((SELECT full_walk_at FROM public.${BACKFILL_WALKS_TABLE} WHERE type_name = $1::text) < now() - make_interval(secs => $2::double precision), true) AS due,
            (SELECT max(${modelId}) FROM ${states})::text AS high`,
    [options.typeName, options.fullWalkEverySeconds],
  );
  const batchSize = options.batchSize ?? DEFAULT_BACKFILL_BATCH_SIZE;
  const full = rows[0]!.due || rows[0]!.high === null;
  const startAfter = full ? MIN_BIGINT : (BigInt(rows[0]!.high!) - BigInt(batchSize)).toString();
  const summary = await backfillStates(primary, config, { batchSize, startAfter });
  if (full) {
    await primary.query(
      `INSERT INTO public.${BACKFILL_WALKS_TABLE} (type_name, full_walk_at) VALUES ($1::text, now())
       ON CONFLICT (type_name) DO UPDATE SET full_walk_at = now()`,
      [options.typeName],
    );
  }
  return { ...summary, full };
}
