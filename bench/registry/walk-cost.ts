/**
 * Where the consistency walk's backfill spends its time (issue 15's backfill gap): two PostgreSQL
 * servers as in bench/registry/run.ts (primary model table, tracking registry with the counters),
 * and for N ids, rounds alternating:
 *   insert   batched INSERT … SELECT generate_series into the counted registry, on the tracking
 *            server alone (what the walk writes, without reading the primary);
 *   read     the walk's primary-side batch queries alone, nothing written;
 *   walk     reconcileRegistry, the backfill as the registry module runs it;
 *   pass     walkConsistencyPass + closePass + finishPass, the backfill as the sync worker runs it
 *            (deletion evidence and the pass cursor recorded per batch).
 * The best of each round is printed against `insert`.
 *
 *   node bench/registry/walk-cost.ts [--rows N] [--batch N] [--rounds N] [--gaps]
 * `--gaps` leaves every third id out of the model table (a sparse table: no long runs of ids).
 */
import { parseArgs } from "node:util";
import pg from "pg";
import { SYNC_EVERYTHING } from "../../src/registry/config.ts";
import { reconcileRegistry, replicableBatchQuery } from "../../src/registry/consistency.ts";
import type { ReplicableTypeSchemaConfig } from "../../src/registry/config.ts";
import { closePass, finishPass, walkConsistencyPass } from "../../src/registry/deletions.ts";
import { ensureTrackingSideTables } from "../../src/registry/side-tables.ts";
import { tableRefs } from "../../src/registry/tables.ts";
import { setUpBenchType, startLocalServer } from "./cluster.ts";

const { values: args } = parseArgs({
  options: { rows: { type: "string" }, batch: { type: "string" }, rounds: { type: "string" }, gaps: { type: "boolean" } },
});
const ROWS = Number(args.rows ?? 2_000_000);
const BATCH = Number(args.batch ?? 10_000);
const ROUNDS = Number(args.rounds ?? 3);

const servers = await Promise.all([startLocalServer(), startLocalServer()]);
const primary = new pg.Pool({ connectionString: servers[0]!.url, max: 2 });
const tracking = new pg.Pool({ connectionString: servers[1]!.url, max: 2 });
primary.on("error", () => undefined);
tracking.on("error", () => undefined);
try {
  const type: ReplicableTypeSchemaConfig = { name: "cool_widget", statesLayout: "keyed-by-model-id", source: { table: "cool_widgets" }, deletionPolicy: "Delete" };
  await setUpBenchType(primary, tracking, type, ROWS, args.gaps ? "g % 3 <> 0" : "true");
  const ids = Number((await primary.query<{ n: string }>(`SELECT count(*)::text AS n FROM cool_widgets`)).rows[0]!.n);
  await ensureTrackingSideTables(tracking);
  const { registry } = tableRefs(type);
  const variants: Record<string, () => Promise<void>> = {
    insert: async () => {
      for (let from = 1; from <= ROWS; from += BATCH) {
        await tracking.query(`INSERT INTO ${registry} (cool_widget_id, created_at) SELECT g, now() FROM generate_series($1::bigint, $2::bigint) AS g`, [
          from,
          Math.min(ROWS, from + BATCH - 1),
        ]);
      }
    },
    read: async () => {
      const { text } = replicableBatchQuery(tableRefs(type), SYNC_EVERYTHING);
      let after = "0";
      for (;;) {
        const { rows } = await primary.query<{ scanned: number; last_id: string | null }>(text, [after, BATCH]);
        if (rows[0]!.scanned < BATCH) break;
        after = rows[0]!.last_id!;
      }
    },
    walk: async () => {
      const summary = await reconcileRegistry(primary, tracking, type, SYNC_EVERYTHING, { batchSize: BATCH });
      if (summary.inserted !== ids) throw new Error(`walk inserted ${summary.inserted}, expected ${ids}`);
    },
    pass: async () => {
      const walk = await walkConsistencyPass(primary, tracking, type, SYNC_EVERYTHING, { batchSize: BATCH });
      await closePass(tracking, registry, type.name, walk.pass, 3600);
      await finishPass(tracking, type.name, walk.pass);
      if (walk.inserted !== ids || !walk.complete) throw new Error(`pass inserted ${walk.inserted}, expected ${ids}`);
    },
  };
  const best = new Map<string, number>();
  const names = Object.keys(variants);
  for (let round = 0; round < ROUNDS; round++) {
    for (const name of round % 2 ? [...names].reverse() : names) {
      await tracking.query(`TRUNCATE ${registry} RESTART IDENTITY`);
      await tracking.query("CHECKPOINT");
      const start = performance.now();
      await variants[name]!();
      const s = (performance.now() - start) / 1000;
      best.set(name, Math.min(best.get(name) ?? Infinity, s));
      console.error(`round ${round + 1} ${name}: ${s.toFixed(2)} s`);
    }
  }
  const base = best.get("insert")!;
  console.log(`\n| ${ids} ids${args.gaps ? " (every third missing)" : ""}, batches of ${BATCH}, best of ${ROUNDS} | seconds | vs insert |\n|---|---:|---:|`);
  for (const name of names) console.log(`| ${name} | ${best.get(name)!.toFixed(2)} | ${(base / best.get(name)!).toFixed(2)}× |`);
} finally {
  await primary.end();
  await tracking.end();
  await Promise.all(servers.map((s) => s.stop()));
}
