/**
 * Where each secondary copy lives, and what an operator needs to know about a mismatch.
 *
 * The registry tables match GitLab's schema exactly, and they carry no location: GitLab learns the
 * blob path of a deleted record from the deletion event. geo-operator also finds deletions by
 * consistency scans, when the model row (and so its key) is already gone from the primary, so the
 * sync worker records each copy's location here, in the tracking database, keyed by type and
 * model id. Mismatch details (e.g. which git refs differ) are kept beside it for `kubectl geo`.
 */
import type { Queryable } from "./db.ts";
import { toNumber } from "./db.ts";
import { REPLICAS_TABLE, WORKER_RUNS_TABLE } from "./side-tables.ts";
import { quoteIdent } from "./identifiers.ts";
import { tableExists } from "./tables.ts";

export { REPLICAS_TABLE, WORKER_RUNS_TABLE } from "./side-tables.ts";

export async function recordLocation(db: Queryable, typeName: string, modelId: number, location: string | null): Promise<void> {
  await db.query(
    `INSERT INTO public.${REPLICAS_TABLE} (type_name, model_id, location, updated_at)
     VALUES ($1::text, $2::bigint, $3::text, now())
     ON CONFLICT (type_name, model_id) DO UPDATE SET location = EXCLUDED.location, mismatch = NULL, updated_at = now()`,
    [typeName, modelId, location],
  );
}

export async function recordMismatch(db: Queryable, typeName: string, modelId: number, details: unknown): Promise<void> {
  await db.query(
    `INSERT INTO public.${REPLICAS_TABLE} (type_name, model_id, mismatch, updated_at)
     VALUES ($1::text, $2::bigint, $3::jsonb, now())
     ON CONFLICT (type_name, model_id) DO UPDATE SET mismatch = EXCLUDED.mismatch, updated_at = now()`,
    [typeName, modelId, JSON.stringify(details)],
  );
}

export async function locationsOf(db: Queryable, typeName: string, modelIds: readonly number[]): Promise<Map<number, string | null>> {
  const { rows } = await db.query<{ model_id: string; location: string | null }>(
    `SELECT model_id, location FROM public.${REPLICAS_TABLE} WHERE type_name = $1::text AND model_id = ANY($2::bigint[])`,
    [typeName, modelIds],
  );
  return new Map(rows.map((r) => [toNumber(r.model_id), r.location]));
}

export async function mismatchesOf(db: Queryable, typeName: string, modelIds: readonly number[]): Promise<Map<number, unknown>> {
  const { rows } = await db.query<{ model_id: string; mismatch: unknown }>(
    `SELECT model_id, mismatch FROM public.${REPLICAS_TABLE}
     WHERE type_name = $1::text AND model_id = ANY($2::bigint[]) AND mismatch IS NOT NULL`,
    [typeName, modelIds],
  );
  return new Map(rows.map((r) => [toNumber(r.model_id), r.mismatch]));
}

/** Mismatch details the verify worker recorded (empty when none, or when no worker ever ran). */
export async function mismatchDetails(db: Queryable, typeName: string, modelIds: readonly number[]): Promise<Map<number, unknown>> {
  if (modelIds.length === 0 || !(await tableExists(db, `public.${quoteIdent(REPLICAS_TABLE)}`))) return new Map();
  return mismatchesOf(db, typeName, modelIds);
}

/**
 * Of these locations, those another record still uses (any type, other than `excludingModelIds`
 * of `typeName`): a key shared by two records must outlive the first record's deletion.
 */
export async function locationsStillUsed(
  db: Queryable,
  locations: readonly string[],
  exclude: { typeName: string; excludingModelIds: readonly number[] },
): Promise<Set<string>> {
  if (locations.length === 0) return new Set();
  const { rows } = await db.query<{ location: string }>(
    `SELECT DISTINCT location FROM public.${REPLICAS_TABLE}
     WHERE location = ANY($1::text[]) AND NOT (type_name = $2::text AND model_id = ANY($3::bigint[]))`,
    [locations, exclude.typeName, exclude.excludingModelIds],
  );
  return new Set(rows.map((r) => r.location));
}

export async function forgetReplicas(db: Queryable, typeName: string, modelIds: readonly number[]): Promise<void> {
  await db.query(`DELETE FROM public.${REPLICAS_TABLE} WHERE type_name = $1::text AND model_id = ANY($2::bigint[])`, [typeName, modelIds]);
}

/**
 * One row per finished worker run on a secondary: the run's summary, so the operator can export
 * bytes replicated and outcomes without reading pod logs. Rows older than 30 days are pruned by
 * the run that records a new one.
 */
export interface WorkerRunRecord {
  typeName: string;
  site: string;
  kind: string;
  claimed: number;
  succeeded: number;
  failed: number;
  bytes: number;
  seconds: number;
}

export async function recordWorkerRun(db: Queryable, run: WorkerRunRecord): Promise<void> {
  await db.query(
    `INSERT INTO public.${WORKER_RUNS_TABLE} (type_name, site, kind, claimed, succeeded, failed, bytes, seconds)
     VALUES ($1::text, $2::text, $3::text, $4::integer, $5::integer, $6::integer, $7::bigint, $8::double precision)`,
    [run.typeName, run.site, run.kind, run.claimed, run.succeeded, run.failed, run.bytes, run.seconds],
  );
  await db.query(`DELETE FROM public.${WORKER_RUNS_TABLE} WHERE finished_at < now() - interval '30 days'`);
}

/** Bytes copied by sync runs of a type on a site, over the retained history. */
export async function replicatedBytes(db: Queryable, typeName: string, site: string): Promise<number> {
  const { rows } = await db.query<{ total: string | null }>(
    `SELECT sum(bytes)::text AS total FROM public.${WORKER_RUNS_TABLE} WHERE type_name = $1::text AND site = $2::text AND kind = 'sync'`,
    [typeName, site],
  );
  return Number(rows[0]?.total ?? 0);
}
