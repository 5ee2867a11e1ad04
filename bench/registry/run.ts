#!/usr/bin/env node
/**
 * Registry benchmark: backfill of 1,000,000 ids into an empty registry
 * against a server-side INSERT … SELECT generate_series baseline into an
 * identical table, status queries at 1M rows, and memory.
 *
 *   node bench/registry/run.ts
 *
 * Uses GEO_BENCH_PRIMARY_DB_URL / GEO_BENCH_SECONDARY_DB_URL (falling back to
 * GEO_TEST_PRIMARY_DB_URL / GEO_TEST_SECONDARY_DB_URL); without them it starts
 * two throwaway PostgreSQL 15 servers. GEO_BENCH_ROWS overrides 1,000,000.
 */
import { randomBytes } from "node:crypto";
import { availableParallelism, loadavg } from "node:os";
import pg from "pg";
import type { ReplicableTypeSchemaConfig } from "../../src/registry/config.ts";
import { SYNC_EVERYTHING } from "../../src/registry/config.ts";
import { reconcileRegistry } from "../../src/registry/consistency.ts";
import type { ConsistencySummary } from "../../src/registry/consistency.ts";
import { applySchema } from "../../src/registry/schema-manager.ts";
import { backfillStates } from "../../src/registry/states-backfill.ts";
import { closePass, finishPass, walkConsistencyPass } from "../../src/registry/deletions.ts";
import { ensureTrackingSideTables } from "../../src/registry/side-tables.ts";
import {
  modelCountQuery,
  primaryStatus,
  registryStateCountsQuery,
  registryVerificationCountsQuery,
  secondaryStatus,
  statesCountsQuery,
} from "../../src/registry/status.ts";
import { startLocalServer } from "./cluster.ts";
import type { LocalServer } from "./cluster.ts";

const ROWS = Number(process.env.GEO_BENCH_ROWS ?? 1_000_000);
const SMALL_ROWS = Math.max(1, Math.floor(ROWS / 10));
const STATUS_RUNS = 7;
const ROUNDS = Number(process.env.GEO_BENCH_ROUNDS ?? 3);

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

async function medianMs(work: () => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < STATUS_RUNS; i++) {
    const start = performance.now();
    await work();
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

/** How PostgreSQL runs a query at this size, left to its own choices: the scans it uses. */
async function scansOf(pool: pg.Pool, sql: string): Promise<string> {
  const { rows } = await pool.query<{ "QUERY PLAN": string }>(`EXPLAIN ${sql}`);
  const scans = rows.map((r) => r["QUERY PLAN"].match(/(Index Only Scan|Index Scan|Seq Scan|Bitmap Index Scan)(?: using)? on (\S+)|(Index Only Scan|Index Scan) using (\S+)/));
  const found = scans.filter((m) => m !== null).map((m) => (m[3] ? `${m[3]} ${m[4]}` : `${m[1]} ${m[2]}`));
  return [...new Set(found)].join(", ");
}

async function main(): Promise<void> {
  const { primary: primaryServer, secondary: secondaryServer, servers } = await serverUrls();
  const database = `geo_registry_bench_${randomBytes(4).toString("hex")}`;
  await onServer(primaryServer, `CREATE DATABASE ${database}`);
  await onServer(secondaryServer, `CREATE DATABASE ${database}`);
  const primary = new pg.Pool({ connectionString: inDatabase(primaryServer, database), max: 4 });
  const tracking = new pg.Pool({ connectionString: inDatabase(secondaryServer, database), max: 4 });
  const rows: [string, string, string][] = [];
  try {
    const small = widget("small_widget", "small_widgets");
    const big = widget("cool_widget", "cool_widgets");
    const baseline = widget("baseline_widget", "baseline_widgets");
    for (const [type, count] of [[small, SMALL_ROWS], [big, ROWS], [baseline, 0]] as const) {
      await primary.query(`CREATE TABLE ${type.source.table} (id bigint PRIMARY KEY)`);
      await primary.query(`INSERT INTO ${type.source.table} (id) SELECT g FROM generate_series(1, $1::integer) AS g`, [count]);
      await primary.query(`VACUUM ANALYZE ${type.source.table}`);
      for (const [pool, role] of [[primary, "primary"], [tracking, "secondary"]] as const) {
        const client = await pool.connect();
        try {
          await applySchema(client, type, role);
        } finally {
          client.release();
        }
      }
    }

    // Baseline: the same rows written by the tracking server alone, into an identical registry table.
    // The machine may be shared, so baseline and backfill alternate for ROUNDS rounds and the best of each counts.
    const smallRun = await measure(() => reconcileRegistry(primary, tracking, small, SYNC_EVERYTHING));
    const baseTimes: number[] = [];
    const runTimes: number[] = [];
    let run: Measured<ConsistencySummary> | undefined;
    for (let round = 0; round < ROUNDS; round++) {
      await tracking.query("TRUNCATE public.baseline_widget_registry, public.cool_widget_registry RESTART IDENTITY");
      await tracking.query("CHECKPOINT");
      const base = await measure(() =>
        tracking.query(
          `INSERT INTO public.baseline_widget_registry (baseline_widget_id, created_at) SELECT g, now() FROM generate_series(1, $1::integer) AS g`,
          [ROWS],
        ),
      );
      baseTimes.push(base.seconds);
      await tracking.query("CHECKPOINT");
      run = await measure(() => reconcileRegistry(primary, tracking, big, SYNC_EVERYTHING));
      if (run.result.inserted !== ROWS) throw new Error(`expected ${ROWS} inserted, got ${run.result.inserted}`);
      runTimes.push(run.seconds);
    }
    if (!run) throw new Error("no rounds ran");
    const best = (xs: number[]): number => Math.min(...xs);
    const all = (xs: number[]): string => xs.map((x) => x.toFixed(2)).join(" / ");
    const rate = ROWS / best(runTimes);
    const baseRate = ROWS / best(baseTimes);
    const ratio = rate / baseRate;
    rows.push(
      [
        "baseline: INSERT … SELECT generate_series",
        `best ${best(baseTimes).toFixed(2)} s (${Math.round(baseRate).toLocaleString("en-US")} rows/s); rounds ${all(baseTimes)} s`,
        "—",
      ],
      [
        `registry consistency backfill, ${ROWS.toLocaleString("en-US")} ids, batches of 10,000`,
        `best ${best(runTimes).toFixed(2)} s (${Math.round(rate).toLocaleString("en-US")} rows/s) = ${ratio.toFixed(2)}× baseline; rounds ${all(runTimes)} s`,
        ratio >= 0.8 ? "≥ 0.8× ✅" : "≥ 0.8× ❌",
      ],
    );
    const rescan = await measure(() => reconcileRegistry(primary, tracking, big, SYNC_EVERYTHING));
    rows.push([`consistency re-walk, nothing to do`, `${rescan.seconds.toFixed(2)} s`, "—"]);

    // The same walk as the consistency worker runs it since the safety rails: every batch also
    // notes deletion candidates, clears returning ones and moves the resumable pass cursor.
    await ensureTrackingSideTables(tracking);
    const workerPass = async () => {
      const walk = await walkConsistencyPass(primary, tracking, big, SYNC_EVERYTHING, { batchSize: 10_000 });
      await closePass(tracking, "public.cool_widget_registry", big.name, walk.pass, 3600);
      await finishPass(tracking, big.name, walk.pass);
      return walk;
    };
    const railTimes: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      await tracking.query("TRUNCATE public.cool_widget_registry RESTART IDENTITY");
      await tracking.query("CHECKPOINT");
      const railRun = await measure(workerPass);
      if (railRun.result.inserted !== ROWS) throw new Error(`expected ${ROWS} inserted with evidence, got ${railRun.result.inserted}`);
      railTimes.push(railRun.seconds);
    }
    const railRatio = ROWS / best(railTimes) / baseRate;
    rows.push([
      `… the same backfill as the worker runs it, with deletion evidence and the pass cursor`,
      `best ${best(railTimes).toFixed(2)} s = ${railRatio.toFixed(2)}× baseline (${(railRatio / ratio).toFixed(2)}× the bare walk); rounds ${all(railTimes)} s`,
      railRatio >= 0.8 ? "≥ 0.8× ✅" : "≥ 0.8× ❌",
    ]);
    const railRescan = await measure(workerPass);
    rows.push([`consistency re-walk as the worker runs it, nothing to do`, `${railRescan.seconds.toFixed(2)} s`, "—"]);

    const statesRun = await measure(() => backfillStates(primary, big));
    rows.push([`_states backfill on the primary, ${ROWS.toLocaleString("en-US")} ids`, `${statesRun.seconds.toFixed(2)} s`, "—"]);

    await tracking.query("VACUUM ANALYZE public.cool_widget_registry");
    await primary.query("VACUUM ANALYZE public.cool_widget_states");
    const statusPending = await medianMs(() => secondaryStatus(tracking, primary, big, SYNC_EVERYTHING));
    // A steady state: 90 % synced (of which 8/9 verified, 1/18 verification failed), 5 % failed, 5 % pending.
    await tracking.query(
      `UPDATE public.cool_widget_registry SET
         state = CASE WHEN cool_widget_id % 20 = 0 THEN 3 WHEN cool_widget_id % 20 = 1 THEN 0 ELSE 2 END,
         verification_state = CASE WHEN cool_widget_id % 20 < 2 THEN 0 WHEN cool_widget_id % 18 = 0 THEN 3 WHEN cool_widget_id % 9 = 0 THEN 0 ELSE 2 END`,
    );
    await primary.query(`UPDATE public.cool_widget_states SET verification_state = CASE WHEN cool_widget_id % 50 = 0 THEN 3 ELSE 2 END`);
    await tracking.query("VACUUM ANALYZE public.cool_widget_registry");
    await primary.query("VACUUM ANALYZE public.cool_widget_states");
    const statusMixed = await medianMs(() => secondaryStatus(tracking, primary, big, SYNC_EVERYTHING));
    const statusExact = await medianMs(() => secondaryStatus(tracking, primary, big, SYNC_EVERYTHING, { exact: true }));
    const statusPrimary = await medianMs(() => primaryStatus(primary, big));
    const statusTarget = (ms: number): string => (ms <= 100 ? "≤ 100 ms ✅" : "≤ 100 ms ❌");
    const million = ROWS.toLocaleString("en-US");
    rows.push(
      [`secondary status, ${million} rows all pending (median of ${STATUS_RUNS})`, `${statusPending.toFixed(1)} ms`, statusTarget(statusPending)],
      [`secondary status, ${million} rows 90 % synced (median of ${STATUS_RUNS})`, `${statusMixed.toFixed(1)} ms`, statusTarget(statusMixed)],
      [`secondary status, exact verification counts (heap scan of synced rows)`, `${statusExact.toFixed(1)} ms`, statusTarget(statusExact)],
      [`primary status, ${million} rows (median of ${STATUS_RUNS})`, `${statusPrimary.toFixed(1)} ms`, statusTarget(statusPrimary)],
      [`plan: registry counts by state`, await scansOf(tracking, registryStateCountsQuery(big)), "index only"],
      [`plan: registry verification counts`, await scansOf(tracking, registryVerificationCountsQuery(big)), "index only"],
      [`plan: _states counts`, await scansOf(primary, statesCountsQuery(big)), "planner's choice (narrow table)"],
      [`plan: model count`, await scansOf(primary, modelCountQuery(big)), "planner's choice (narrow table)"],
      [
        `peak heap during backfill: ${SMALL_ROWS.toLocaleString("en-US")} ids → ${ROWS.toLocaleString("en-US")} ids`,
        `${smallRun.peakHeapMb.toFixed(1)} MB → ${run.peakHeapMb.toFixed(1)} MB`,
        run.peakHeapMb <= smallRun.peakHeapMb * 1.5 + 8 ? "flat ✅" : "flat ❌",
      ],
      [
        `peak RSS during backfill: ${SMALL_ROWS.toLocaleString("en-US")} ids → ${ROWS.toLocaleString("en-US")} ids`,
        `${smallRun.peakRssMb.toFixed(1)} MB → ${run.peakRssMb.toFixed(1)} MB`,
        run.peakRssMb <= smallRun.peakRssMb * 1.5 + 16 ? "flat ✅" : "flat ❌",
      ],
      ["process peak RSS (whole run)", `${(process.resourceUsage().maxRSS / 1024).toFixed(1)} MB`, "—"],
      ["load average at the end (1 min, cores)", `${loadavg()[0]?.toFixed(1)} on ${availableParallelism()} cores`, "—"],
    );
  } finally {
    await Promise.all([primary.end(), tracking.end()]);
    await onServer(primaryServer, `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).catch(() => undefined);
    await onServer(secondaryServer, `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).catch(() => undefined);
    for (const server of servers) await server.stop();
  }

  console.log(`\n| measurement | result | target |\n|---|---|---|`);
  for (const [what, result, target] of rows) console.log(`| ${what} | ${result} | ${target} |`);
}

await main();
