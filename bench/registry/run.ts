#!/usr/bin/env node
/**
 * Registry benchmark (issues 3 and 15), our code and its baseline side by side in one run:
 * - backfill of ROWS ids into an empty registry (the consistency walk, with the row counters'
 *   triggers) against a server-side INSERT … SELECT generate_series into a bare copy of the
 *   registry table (same columns, indexes and defaults, no triggers);
 * - status at ROWS rows from the counters against counting the tables (what the status did
 *   before the counters), also right after a burst of uncompacted counter rows;
 * - claim throughput of the sync pass (claim, then mark each row synced) with 1, 4 and 16
 *   workers, with and without the counters' triggers;
 * - the process's memory during the backfill (flat in ROWS).
 *
 *   node bench/registry/run.ts            10,000,000 rows (~15 min)
 *   node bench/registry/run.ts --quick    300,000 rows, one round, short claim runs (< 2 min)
 *   --rows N, --rounds N, --claim-seconds N override the sizes.
 *
 * Uses GEO_BENCH_PRIMARY_DB_URL / GEO_BENCH_SECONDARY_DB_URL (falling back to
 * GEO_TEST_PRIMARY_DB_URL / GEO_TEST_SECONDARY_DB_URL); without them it starts
 * two throwaway PostgreSQL 15 servers.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { availableParallelism, loadavg } from "node:os";
import { parseArgs } from "node:util";
import pg from "pg";
import type { ReplicableTypeSchemaConfig } from "../../src/registry/config.ts";
import { SYNC_EVERYTHING } from "../../src/registry/config.ts";
import { reconcileRegistry } from "../../src/registry/consistency.ts";
import type { ConsistencySummary } from "../../src/registry/consistency.ts";
import { resolveConfig } from "../../src/registry/identifiers.ts";
import { compactRowCounts, COUNT_TRIGGERS, Counted, readRowCounts, typeCountStatements } from "../../src/registry/row-counts.ts";
import { backfillStates } from "../../src/registry/states-backfill.ts";
import { closePass, finishPass, walkConsistencyPass } from "../../src/registry/deletions.ts";
import { ensureTrackingSideTables } from "../../src/registry/side-tables.ts";
import { primaryStatus, secondaryStatus } from "../../src/registry/status.ts";
import { claimSyncWork, markSynced } from "../../src/registry/sync-state.ts";
import { tableRefs } from "../../src/registry/tables.ts";
import { setUpBenchType, startLocalServer } from "./cluster.ts";
import type { LocalServer } from "./cluster.ts";

const USAGE = `node bench/registry/run.ts [--quick] [--rows N] [--rounds N] [--claim-seconds N]`;
const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    rows: { type: "string" },
    rounds: { type: "string" },
    "claim-seconds": { type: "string" },
    help: { type: "boolean", default: false },
  },
});
if (args.help) {
  console.log(USAGE);
  process.exit(0);
}
const QUICK = args.quick === true;
const ROWS = Number(args.rows ?? process.env.GEO_BENCH_ROWS ?? (QUICK ? 300_000 : 10_000_000));
const SMALL_ROWS = Math.max(1, Math.floor(ROWS / 10));
const ROUNDS = Number(args.rounds ?? process.env.GEO_BENCH_ROUNDS ?? (QUICK ? 1 : 3));
const CLAIM_SECONDS = Number(args["claim-seconds"] ?? (QUICK ? 3 : 15));
const CLAIM_WORKERS = [1, 4, 16];
const CLAIM_LIMIT = 10;
const STATUS_RUNS = 7;
const TABLE_COUNT_RUNS = QUICK ? 3 : 3;
const BURST = 5_000;
const log = (m: string) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${m}`);
const uptime = (): string => execFileSync("uptime", { encoding: "utf8" }).trim();

function widget(name: string, table: string): ReplicableTypeSchemaConfig {
  return { name, statesLayout: "keyed-by-model-id", source: { table }, deletionPolicy: "Delete" };
}

async function serverUrls(): Promise<{ primary: string; secondary: string; servers: LocalServer[] }> {
  const primary = process.env.GEO_BENCH_PRIMARY_DB_URL ?? process.env.GEO_TEST_PRIMARY_DB_URL;
  const secondary = process.env.GEO_BENCH_SECONDARY_DB_URL ?? process.env.GEO_TEST_SECONDARY_DB_URL;
  if (primary && secondary) return { primary, secondary, servers: [] };
  const servers = await Promise.all([startLocalServer(), startLocalServer()]);
  return { primary: servers[0]!.url, secondary: servers[1]!.url, servers };
}

async function onServer(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

function inDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

interface Measured<T> {
  seconds: number;
  result: T;
  peakHeapMb: number;
  peakRssMb: number;
}

/** Samples heap and RSS while `work` runs; returns its duration and the peaks. */
async function measure<T>(work: () => Promise<T>): Promise<Measured<T>> {
  let peakHeap = 0;
  let peakRss = 0;
  const sample = (): void => {
    const m = process.memoryUsage();
    peakHeap = Math.max(peakHeap, m.heapUsed);
    peakRss = Math.max(peakRss, m.rss);
  };
  const timer = setInterval(sample, 5);
  global.gc?.();
  sample();
  const start = performance.now();
  try {
    const result = await work();
    sample();
    return { seconds: (performance.now() - start) / 1000, result, peakHeapMb: peakHeap / 2 ** 20, peakRssMb: peakRss / 2 ** 20 };
  } finally {
    clearInterval(timer);
  }
}

async function medianMs(work: () => Promise<unknown>, runs = STATUS_RUNS): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    await work();
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}


/** Sync-pass claims for `seconds`: each worker (its own connection) claims CLAIM_LIMIT rows and marks each synced. */
async function claimRun(url: string, config: ReplicableTypeSchemaConfig, workers: number, seconds: number): Promise<number> {
  const clients = await Promise.all(
    Array.from({ length: workers }, async () => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      return client;
    }),
  );
  const runStart = (await clients[0]!.query<{ at: string }>("SELECT clock_timestamp()::text AS at")).rows[0]!.at;
  const deadline = performance.now() + seconds * 1000;
  const start = performance.now();
  try {
    const done = await Promise.all(
      clients.map(async (client) => {
        let synced = 0;
        while (performance.now() < deadline) {
          const rows = await claimSyncWork(client, config, { limit: CLAIM_LIMIT });
          if (rows.length === 0) throw new Error("the registry ran out of rows to claim");
          for (const row of rows) if (await markSynced(client, config, row.id, { claim: row.syncClaim! })) synced++;
        }
        return synced;
      }),
    );
    const rate = done.reduce((a, b) => a + b, 0) / ((performance.now() - start) / 1000);
    // The rows this run synced become pending again, so every run claims from the same registry.
    const { registry } = tableRefs(config);
    await clients[0]!.query(`UPDATE ${registry} SET state = 0 WHERE state IN (1, 2) AND last_synced_at >= $1::timestamptz`, [runStart]);
    return rate;
  } finally {
    await Promise.all(clients.map((c) => c.end()));
  }
}

const fmt = (n: number): string => Math.round(n).toLocaleString("en-US");
const ms = (x: number): string => `${x.toFixed(1)} ms`;

async function main(): Promise<void> {
  const uptimeAtStart = uptime();
  log(`${ROWS.toLocaleString("en-US")} rows${QUICK ? " (--quick)" : ""}; ${uptimeAtStart}`);
  const { primary: primaryServer, secondary: secondaryServer, servers } = await serverUrls();
  const database = `geo_registry_bench_${randomBytes(4).toString("hex")}`;
  await onServer(primaryServer, `CREATE DATABASE ${database}`);
  await onServer(secondaryServer, `CREATE DATABASE ${database}`);
  const trackingUrl = inDatabase(secondaryServer, database);
  const primary = new pg.Pool({ connectionString: inDatabase(primaryServer, database), max: 4 });
  const tracking = new pg.Pool({ connectionString: trackingUrl, max: 4 });
  const rows: [string, string, string][] = [];
  const million = ROWS.toLocaleString("en-US");
  try {
    const small = widget("small_widget", "small_widgets");
    const big = widget("cool_widget", "cool_widgets");
    log("model tables and schemas");
    for (const [type, count] of [[small, SMALL_ROWS], [big, ROWS]] as const) await setUpBenchType(primary, tracking, type, count);
    // The baseline's table: the registry's columns, defaults, constraints and indexes, without the counters' triggers.
    await tracking.query(`CREATE TABLE public.baseline_registry (LIKE public.cool_widget_registry INCLUDING ALL)`);

    // The machine may be shared, so baseline and backfill alternate for ROUNDS rounds and the best of each counts.
    log("backfill rounds");
    const smallRun = await measure(() => reconcileRegistry(primary, tracking, small, SYNC_EVERYTHING));
    const baseTimes: number[] = [];
    const runTimes: number[] = [];
    let run: Measured<ConsistencySummary> | undefined;
    for (let round = 0; round < ROUNDS; round++) {
      await tracking.query("TRUNCATE public.baseline_registry, public.cool_widget_registry RESTART IDENTITY");
      await tracking.query("CHECKPOINT");
      const base = await measure(() =>
        tracking.query(`INSERT INTO public.baseline_registry (cool_widget_id, created_at) SELECT g, now() FROM generate_series(1, $1::integer) AS g`, [ROWS]),
      );
      baseTimes.push(base.seconds);
      await tracking.query("CHECKPOINT");
      run = await measure(() => reconcileRegistry(primary, tracking, big, SYNC_EVERYTHING));
      if (run.result.inserted !== ROWS) throw new Error(`expected ${ROWS} inserted, got ${run.result.inserted}`);
      runTimes.push(run.seconds);
      log(`round ${round + 1}: baseline ${base.seconds.toFixed(2)} s, backfill ${run.seconds.toFixed(2)} s`);
    }
    if (!run) throw new Error("no rounds ran");
    const counted = await readRowCounts(tracking, big.name, Counted.registry);
    const countedTotal = counted?.groups.reduce((t, g) => t + g.n, 0);
    if (countedTotal !== ROWS) throw new Error(`the counters say ${countedTotal} rows after the backfill, not ${ROWS}`);
    const best = (xs: number[]): number => Math.min(...xs);
    const all = (xs: number[]): string => xs.map((x) => x.toFixed(2)).join(" / ");
    const baseRate = ROWS / best(baseTimes);
    const ratio = ROWS / best(runTimes) / baseRate;
    rows.push(
      [`baseline: INSERT … SELECT generate_series, ${million} rows, bare registry copy (no triggers)`, `best ${best(baseTimes).toFixed(2)} s (${fmt(baseRate)} rows/s); rounds ${all(baseTimes)} s`, "—"],
      [
        `registry consistency backfill with the counters, ${million} ids, batches of 10,000`,
        `best ${best(runTimes).toFixed(2)} s (${fmt(ROWS / best(runTimes))} rows/s) = **${ratio.toFixed(2)}×** baseline; rounds ${all(runTimes)} s`,
        ratio >= 0.9 ? "≥ 0.9× ✅" : "≥ 0.9× ❌",
      ],
    );

    // What the counters' triggers cost a bare INSERT … SELECT of the same rows.
    await tracking.query("TRUNCATE public.cool_widget_registry RESTART IDENTITY");
    await tracking.query("CHECKPOINT");
    const counting = await measure(() =>
      tracking.query(`INSERT INTO public.cool_widget_registry (cool_widget_id, created_at) SELECT g, now() FROM generate_series(1, $1::integer) AS g`, [ROWS]),
    );
    rows.push([`… the baseline's INSERT into the registry itself (counters' triggers on)`, `${counting.seconds.toFixed(2)} s = ${(best(baseTimes) / counting.seconds).toFixed(2)}× baseline`, "—"]);

    log("the walk as the worker runs it");
    await ensureTrackingSideTables(tracking);
    const workerPass = async () => {
      const walk = await walkConsistencyPass(primary, tracking, big, SYNC_EVERYTHING, { batchSize: 10_000 });
      await closePass(tracking, "public.cool_widget_registry", big.name, walk.pass, 3600);
      await finishPass(tracking, big.name, walk.pass);
      return walk;
    };
    await tracking.query("TRUNCATE public.cool_widget_registry RESTART IDENTITY");
    await tracking.query("CHECKPOINT");
    const railRun = await measure(workerPass);
    if (railRun.result.inserted !== ROWS) throw new Error(`expected ${ROWS} inserted with evidence, got ${railRun.result.inserted}`);
    rows.push([
      `… the same backfill as the worker runs it (deletion evidence, pass cursor), one round`,
      `${railRun.seconds.toFixed(2)} s = ${(ROWS / railRun.seconds / baseRate).toFixed(2)}× baseline`,
      "—",
    ]);
    const railRescan = await measure(workerPass);
    rows.push([`consistency re-walk as the worker runs it, nothing to do`, `${railRescan.seconds.toFixed(2)} s`, "—"]);

    log("_states backfill");
    const statesRun = await measure(() => backfillStates(primary, big));
    rows.push([`\`_states\` backfill on the primary, ${million} ids (counters on)`, `${statesRun.seconds.toFixed(2)} s (${fmt(ROWS / statesRun.seconds)} rows/s)`, "—"]);

    log("status");
    await tracking.query("VACUUM ANALYZE public.cool_widget_registry");
    await primary.query("VACUUM ANALYZE public.cool_widget_states");
    const secondary = () => secondaryStatus(tracking, primary, big, SYNC_EVERYTHING);
    const secondaryTables = () => secondaryStatus(tracking, primary, big, SYNC_EVERYTHING, { countFromTables: true });
    const statusTarget = (x: number): string => (x <= 10 ? "≤ 10 ms ✅" : "≤ 10 ms ❌");
    const pendingOurs = await medianMs(secondary);
    const pendingTables = await medianMs(secondaryTables, TABLE_COUNT_RUNS);
    // A steady state: 90 % synced (of which 8/9 verified, 1/18 verification failed), 5 % failed, 5 % pending.
    await tracking.query("TRUNCATE public.cool_widget_registry");
    await tracking.query(
      `INSERT INTO public.cool_widget_registry (cool_widget_id, created_at, state, verification_state, last_synced_at, verified_at)
       SELECT g, now(), CASE WHEN g % 20 = 0 THEN 3 WHEN g % 20 = 1 THEN 0 ELSE 2 END,
              CASE WHEN g % 20 < 2 THEN 0 WHEN g % 18 = 0 THEN 3 WHEN g % 9 = 0 THEN 0 ELSE 2 END, now(), now()
       FROM generate_series(1, $1::integer) AS g`,
      [ROWS],
    );
    await tracking.query("VACUUM ANALYZE public.cool_widget_registry");
    const mixedOurs = await medianMs(secondary);
    const mixedTables = await medianMs(secondaryTables, TABLE_COUNT_RUNS);
    const same = JSON.stringify(await secondary()) === JSON.stringify(await secondaryTables());
    const primaryOurs = await medianMs(() => primaryStatus(primary, big));
    const primaryTables = await medianMs(() => primaryStatus(primary, big, { countFromTables: true }), TABLE_COUNT_RUNS);
    const samePrimary = JSON.stringify(await primaryStatus(primary, big)) === JSON.stringify(await primaryStatus(primary, big, { countFromTables: true }));
    // A burst of single-row transitions, each its own statement, leaves one counter row per group it touched.
    await tracking.query(
      `DO $burst$ BEGIN FOR i IN 1..${BURST} LOOP
         UPDATE public.cool_widget_registry SET state = 3 WHERE cool_widget_id = i * 20 + 5;
       END LOOP; END $burst$`,
    );
    const pendingRows = (await readRowCounts(tracking, big.name, Counted.registry))!.rows;
    const t0 = performance.now();
    await secondary();
    const afterBurst = performance.now() - t0;
    // The status started the compaction without waiting for it; time it alone, as the next reader would wait for its rows.
    await tracking.query(
      `DO $burst$ BEGIN FOR i IN 1..${BURST} LOOP
         UPDATE public.cool_widget_registry SET state = 2 WHERE cool_widget_id = i * 20 + 5;
       END LOOP; END $burst$`,
    );
    const t1 = performance.now();
    await compactRowCounts(tracking, big.name, Counted.registry);
    const compaction = performance.now() - t1;
    const afterCompaction = await medianMs(secondary);
    rows.push(
      [`secondary status (12 fields), ${million} rows all pending: counters vs counting the tables`, `**${ms(pendingOurs)}** vs ${ms(pendingTables)}`, statusTarget(pendingOurs)],
      [`secondary status, ${million} rows 90 % synced: counters vs counting the tables (same numbers: ${same ? "yes" : "NO"})`, `**${ms(mixedOurs)}** vs ${ms(mixedTables)}`, statusTarget(mixedOurs)],
      [`primary status, ${million} records and \`_states\` rows: counters vs counting the tables (same: ${samePrimary ? "yes" : "NO"})`, `**${ms(primaryOurs)}** vs ${ms(primaryTables)}`, statusTarget(primaryOurs)],
      [`secondary status right after ${fmt(BURST)} single-row transitions (${fmt(pendingRows)} counter rows to sum)`, ms(afterBurst), statusTarget(afterBurst)],
      [`… compacting that many counter rows (in the background of a status) / the status after it`, `${ms(compaction)} / ${ms(afterCompaction)}`, statusTarget(afterCompaction)],
    );

    log("claims");
    const registry = `"public"."cool_widget_registry"`;
    const claimRates = new Map<string, number>();
    for (const workers of CLAIM_WORKERS) {
      claimRates.set(`on ${workers}`, await claimRun(trackingUrl, big, workers, CLAIM_SECONDS));
      log(`claims with counters, ${workers} workers: ${fmt(claimRates.get(`on ${workers}`)!)} rows/s`);
    }
    for (const name of Object.values(COUNT_TRIGGERS)) await tracking.query(`DROP TRIGGER ${name} ON ${registry}`);
    for (const workers of CLAIM_WORKERS) {
      claimRates.set(`off ${workers}`, await claimRun(trackingUrl, big, workers, CLAIM_SECONDS));
      log(`claims without counters, ${workers} workers: ${fmt(claimRates.get(`off ${workers}`)!)} rows/s`);
    }
    for (const statement of typeCountStatements(resolveConfig(big), "secondary", registry)) await tracking.query(statement);
    for (const workers of CLAIM_WORKERS) {
      const on = claimRates.get(`on ${workers}`)!;
      const off = claimRates.get(`off ${workers}`)!;
      rows.push([
        `sync pass claims (claim ${CLAIM_LIMIT}, mark each synced), ${workers} worker${workers > 1 ? "s" : ""}, ${CLAIM_SECONDS} s: with counters vs without`,
        `${fmt(on)} vs ${fmt(off)} rows/s (${(on / off).toFixed(2)}×)`,
        "—",
      ]);
    }
    const exactAfterClaims = JSON.stringify(await secondary()) === JSON.stringify(await secondaryTables());
    rows.push([`counters equal a full COUNT after the claims`, exactAfterClaims ? "yes" : "NO", exactAfterClaims ? "exact ✅" : "exact ❌"]);

    rows.push(
      [
        `peak heap during backfill: ${SMALL_ROWS.toLocaleString("en-US")} ids → ${million} ids`,
        `${smallRun.peakHeapMb.toFixed(1)} MB → ${run.peakHeapMb.toFixed(1)} MB`,
        run.peakHeapMb <= smallRun.peakHeapMb * 1.5 + 8 ? "flat ✅" : "flat ❌",
      ],
      [
        `peak RSS during backfill: ${SMALL_ROWS.toLocaleString("en-US")} ids → ${million} ids`,
        `${smallRun.peakRssMb.toFixed(1)} MB → ${run.peakRssMb.toFixed(1)} MB`,
        run.peakRssMb <= smallRun.peakRssMb * 1.5 + 16 ? "flat ✅" : "flat ❌",
      ],
      ["process peak RSS (whole run)", `${(process.resourceUsage().maxRSS / 1024).toFixed(1)} MB`, "—"],
      ["load at the start (uptime)", uptimeAtStart.replace(/^.*load/, "load"), "—"],
      ["load at the end (uptime)", `${uptime().replace(/^.*load/, "load")} on ${availableParallelism()} cores (1 min: ${loadavg()[0]?.toFixed(1)})`, "—"],
    );
  } finally {
    await Promise.all([primary.end(), tracking.end()]);
    await onServer(primaryServer, `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).catch(() => undefined);
    await onServer(secondaryServer, `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).catch(() => undefined);
    for (const server of servers) await server.stop();
  }

  console.log(`\n## Registry${QUICK ? " (--quick: not numbers for the record)" : ""}\n\n| measurement | result | target |\n|---|---|---|`);
  for (const [what, result, target] of rows) console.log(`| ${what} | ${result} | ${target} |`);
}

await main();
