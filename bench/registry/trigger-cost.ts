/**
 * Where the counters' INSERT trigger spends its time (issue 15's backfill gap): the same batched
 * INSERT … SELECT generate_series into (a) a bare copy of the registry, (b) the counted registry,
 * (c) the registry with the INSERT trigger's function replaced by one that does nothing (the
 * transition table is still filled), (d) the same no-op trigger without a transition table, and
 * (e) the candidate under test. Rounds alternate; the best of each is printed against (a).
 *
 *   node bench/registry/trigger-cost.ts [--rows N] [--batch N] [--rounds N] [--only a,b]
 */
import { parseArgs } from "node:util";
import pg from "pg";
import { applySchema } from "../../src/registry/schema-manager.ts";
import { COUNT_TRIGGERS } from "../../src/registry/row-counts.ts";
import { startLocalServer } from "./cluster.ts";

const { values: args } = parseArgs({ options: { rows: { type: "string" }, batch: { type: "string" }, rounds: { type: "string" }, only: { type: "string" } } });
const ROWS = Number(args.rows ?? 1_000_000);
const BATCH = Number(args.batch ?? 10_000);
const ROUNDS = Number(args.rounds ?? 3);

const server = await startLocalServer();
const pool = new pg.Pool({ connectionString: server.url, max: 2 });
pool.on("error", () => undefined);
try {
  const type = { name: "cool_widget", statesLayout: "keyed-by-model-id", source: { table: "cool_widgets" }, deletionPolicy: "Delete" } as const;
  const client = await pool.connect();
  try {
    await applySchema(client, type as never, "secondary");
  } finally {
    client.release();
  }
  const triggerDef = (await pool.query<{ def: string }>(`SELECT pg_get_triggerdef(oid) AS def FROM pg_trigger WHERE tgname = $1`, [COUNT_TRIGGERS.insert])).rows[0]!.def;
  await pool.query(`CREATE FUNCTION public.nop_trigger() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$`);
  for (const name of ["bare", "nop_transition", "nop_plain", "cte_counted"]) {
    await pool.query(`CREATE TABLE public.${name} (LIKE public.cool_widget_registry INCLUDING ALL)`);
  }
  await pool.query(`CREATE TRIGGER nop_t AFTER INSERT ON public.nop_transition REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.nop_trigger()`);
  await pool.query(`CREATE TRIGGER nop_p AFTER INSERT ON public.nop_plain FOR EACH STATEMENT EXECUTE FUNCTION public.nop_trigger()`);
  console.error(`counted registry's INSERT trigger: ${triggerDef}`);

  await pool.query(`CREATE TABLE public.cte_counts (type_name text, counted text, state smallint, verification_state smallint, n bigint)`);
  const targets = ["bare", "cool_widget_registry", "nop_transition", "nop_plain", "cte_counted"].filter((t) => t === "bare" || !args.only || args.only.split(",").includes(t));
  const insert = (t: string) =>
    t === "cte_counted"
      ? `WITH ins AS (INSERT INTO public.cte_counted (cool_widget_id, created_at) SELECT g, now() FROM generate_series($1::bigint, $2::bigint) AS g RETURNING 1)
         INSERT INTO public.cte_counts SELECT 'cool_widget', 'registry', 0, 0, count(*) FROM ins HAVING count(*) > 0`
      : `INSERT INTO public.${t} (cool_widget_id, created_at) SELECT g, now() FROM generate_series($1::bigint, $2::bigint) AS g`;
  const best = new Map<string, number>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const t of round % 2 ? [...targets].reverse() : targets) {
      await pool.query(`TRUNCATE public.${t} RESTART IDENTITY`);
      await pool.query("CHECKPOINT");
      const start = performance.now();
      for (let from = 1; from <= ROWS; from += BATCH) {
        await pool.query(insert(t), [from, Math.min(ROWS, from + BATCH - 1)]);
      }
      const s = (performance.now() - start) / 1000;
      best.set(t, Math.min(best.get(t) ?? Infinity, s));
      console.error(`round ${round + 1} ${t}: ${s.toFixed(2)} s`);
    }
  }
  const bare = best.get("bare")!;
  console.log(`\n| ${ROWS} rows in batches of ${BATCH}, best of ${ROUNDS} | seconds | rate vs bare |\n|---|---:|---:|`);
  for (const t of targets) console.log(`| ${t} | ${best.get(t)!.toFixed(2)} | ${(bare / best.get(t)!).toFixed(2)}× |`);
} finally {
  await pool.end();
  await server.stop();
}
