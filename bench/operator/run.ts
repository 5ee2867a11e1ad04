/**
 * Operator benchmark: reconcile latency (ReplicableType applied → registry and state tables exist
 * and the first Jobs are created) and the manager's memory over time, with 200 ReplicableTypes and
 * a registry of 1,000,000 rows whose status the manager recomputes on every pass (every 10 s).
 *
 * The manager runs as its own process (`geo-operator manager`), so its RSS is measured alone
 * (/proc/<pid>/status VmRSS, peak VmHWM) and its V8 heap is read from its /metrics
 * (nodejs_heap_size_used_bytes), sampled every 2 s from start to end. Memory is flat when the
 * last fifth of the settled window is within 10 % (+ 8 MB) of the first fifth.
 * Targets: ≤ 2 s latency; RSS flat.
 *
 *   node bench/operator/run.ts            200 types, 1,000,000 rows, 3 minutes settled (~8 min)
 *   node bench/operator/run.ts --quick    40 types, 100,000 rows, 40 s settled (< 3 min)
 *   --types N --rows N --observe-seconds N override; GEO_BENCH_NODE_FLAGS the manager's node flags.
 */
import { execFileSync, spawn } from "node:child_process";
import { parseArgs } from "node:util";
import { mkdtempSync, readFileSync, rmSync, symlinkSync, copyFileSync } from "node:fs";
import { createServer } from "node:net";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { BatchV1Api, KubeConfig } from "@kubernetes/client-node";
import type pg from "pg";
import { createPool } from "../../src/util/database.ts";
import { stringify } from "yaml";
import { startLocalEnvironment } from "../../hack/localenv/index.ts";
import { REPO_ROOT } from "../../hack/localenv/tools.ts";
import { LABELS } from "../../src/api/v1alpha1/resources.ts";
import { typeRuntimeConfig } from "../../src/strategies/type-config.ts";
import { applySchema } from "../../src/registry/schema-manager.ts";

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    types: { type: "string" },
    rows: { type: "string" },
    "observe-seconds": { type: "string" },
  },
});
const QUICK = args.quick === true;
const TYPES = Number(args.types ?? process.env.GEO_BENCH_TYPES ?? (QUICK ? 40 : 200));
const ROWS = Number(args.rows ?? process.env.GEO_BENCH_ROWS ?? (QUICK ? 100_000 : 1_000_000));
const OBSERVE_SECONDS = Number(args["observe-seconds"] ?? (QUICK ? 40 : 180));
const SAMPLE_MS = 2000;
const NS = "bench";
const log = (m: string) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${m}`);
const uptime = () => execFileSync("uptime", { encoding: "utf8" }).trim().replace(/^.*load average: /, "load ");
const loadAtStart = uptime();

// The manager runs from compiled JavaScript, as in the container image (type stripping at run
// time costs ~20 MB of extra memory that production never pays).
const dist = mkdtempSync(join(tmpdir(), "geo-bench-dist-"));
execFileSync(join(REPO_ROOT, "node_modules/.bin/tsc"), ["-p", join(REPO_ROOT, "tsconfig.build.json"), "--outDir", dist], { stdio: "inherit" });
symlinkSync(join(REPO_ROOT, "node_modules"), join(dist, "node_modules"));
copyFileSync(join(REPO_ROOT, "package.json"), join(dist, "package.json"));
const nodeFlags = (process.env.GEO_BENCH_NODE_FLAGS ?? "--max-old-space-size=64 --max-semi-space-size=1").split(" ").filter(Boolean);

const env = await startLocalEnvironment({ components: ["kube", "postgres"], log });
const { kube, postgres } = env.info;
let manager: ReturnType<typeof spawn> | undefined;
try {
  const exec = (args: string[], input?: string) =>
    new Promise<string>((resolve, reject) => {
      const c = spawn(kube!.kubectl, ["--kubeconfig", kube!.kubeconfig, ...args]);
      let out = "";
      let err = "";
      c.stdout.on("data", (d: Buffer) => (out += d));
      c.stderr.on("data", (d: Buffer) => (err += d));
      c.on("close", (code) => (code === 0 ? resolve(out) : reject(new Error(err))));
      c.stdin.end(input ?? "");
    });
  await exec(["apply", "--server-side", "-f", join(REPO_ROOT, "crds")]);
  await exec(["wait", "--for=condition=Established", "crd/geosites.geo.replication.dev", "crd/replicabletypes.geo.replication.dev"]);
  await exec(["create", "namespace", NS]);
  const primary = createPool(postgres!.primaryURL, { applicationName: "operator bench" });
  const tracking = createPool(postgres!.secondaryURL, { applicationName: "operator bench" });

  // Model tables on the primary; type 0 has ROWS records and a full registry on the secondary.
  log(`creating ${TYPES} model tables and a ${ROWS}-row registry`);
  for (let i = 0; i < TYPES; i++) {
    await primary.query(`CREATE TABLE bench_items_${i} (id bigserial PRIMARY KEY, path text NOT NULL)`);
  }
  await primary.query(`INSERT INTO bench_items_0 (path) SELECT 'p/' || g FROM generate_series(1, $1::integer) g`, [ROWS]);
  const spec = (i: number) => ({ name: `bench_item_${i}`, strategy: "blob", source: { table: `bench_items_${i}`, objectKey: { column: "path" } }, intervals: { sync: "10m", verification: "10m", primaryVerification: "10m", consistency: "10m" } });
  const big = typeRuntimeConfig(spec(0) as never).schema;
  for (const [pool, role] of [[primary, "primary"], [tracking, "secondary"]] as const) {
    const c = await pool.connect();
    await applySchema(c, big, role);
    c.release();
  }
  await tracking.query(
    `INSERT INTO bench_item_0_registry (bench_item_0_id, created_at, state, verification_state, last_synced_at, verified_at)
     SELECT g, now(), CASE WHEN g % 10 = 0 THEN 0 ELSE 2 END, CASE WHEN g % 10 < 2 THEN 0 ELSE 2 END, now(), now() FROM generate_series(1, $1::integer) g`,
    [ROWS],
  );
  await tracking.query(`VACUUM ANALYZE bench_item_0_registry`);
  await primary.query(`INSERT INTO bench_item_0_states (bench_item_0_id, verification_state) SELECT g, 2 FROM generate_series(1, $1::integer) g`, [ROWS]);
  await primary.query(`VACUUM ANALYZE bench_items_0, bench_item_0_states`);

  const secrets = [
    { apiVersion: "v1", kind: "Secret", metadata: { name: "main-db", labels: { [LABELS.credentials]: "true" } }, stringData: { url: postgres!.primaryURL } },
    { apiVersion: "v1", kind: "Secret", metadata: { name: "tracking-db", labels: { [LABELS.credentials]: "true" } }, stringData: { url: postgres!.secondaryURL } },
    { apiVersion: "v1", kind: "Secret", metadata: { name: "s3", labels: { [LABELS.credentials]: "true" } }, stringData: { AWS_ACCESS_KEY_ID: "bench-id", AWS_SECRET_ACCESS_KEY: "bench-secret" } },
  ];
  const site = (name: string, s: object) => ({ apiVersion: "geo.replication.dev/v1alpha1", kind: "GeoSite", metadata: { name }, spec: { statusInterval: "10s", ...s } });
  await exec(["apply", "-n", NS, "-f", "-"], [...secrets,
    site("london", { role: "primary", database: { secretRef: { name: "main-db" } } }),
    site("tokyo", { role: "secondary", database: { secretRef: { name: "tracking-db" }, primaryReplicaSecretRef: { name: "main-db" } } }),
  ].map((d) => stringify(d)).join("---\n"));

  const metricsPort = await new Promise<number>((resolve) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const port = (probe.address() as { port: number }).port;
      probe.close(() => resolve(port));
    });
  });
  manager = spawn(process.execPath, [...nodeFlags, join(dist, "cmd/geo-operator.js"), "manager", "--kubeconfig", kube!.kubeconfig, "--metrics-bind-address", `127.0.0.1:${metricsPort}`, "--health-probe-bind-address", "127.0.0.1:0", "--log-level", "error"], { stdio: ["ignore", "ignore", "inherit"] });
  const kc = new KubeConfig();
  kc.loadFromFile(kube!.kubeconfig);
  const batch = kc.makeApiClient(BatchV1Api);
  await new Promise((r) => setTimeout(r, 2000));

  // Memory over time: RSS from /proc, V8 heap from the manager's own metrics.
  const managerPid = manager.pid!;
  const t0Run = performance.now();
  const samples: { t: number; rssMb: number; heapMb: number | null; phase: string }[] = [];
  let phase = "idle";
  const sampleOnce = async () => {
    const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${managerPid}/status`, "utf8"))![1]) / 1024;
    let heap: number | null = null;
    try {
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      const m = /^nodejs_heap_size_used_bytes (\S+)$/m.exec(text);
      heap = m ? Number(m[1]) / 2 ** 20 : null;
    } catch {
      heap = null;
    }
    samples.push({ t: (performance.now() - t0Run) / 1000, rssMb: rss, heapMb: heap, phase });
  };
  const sampler = setInterval(() => void sampleOnce().catch(() => undefined), SAMPLE_MS);

  const tableExists = async (pool: pg.Pool, name: string) => (await pool.query(`SELECT to_regclass($1) IS NOT NULL AS ok`, [name])).rows[0].ok as boolean;
  async function ready(i: number): Promise<boolean> {
    if (!(await tableExists(tracking, `bench_item_${i}_registry`)) || !(await tableExists(primary, `bench_item_${i}_states`))) return false;
    const jobs = await batch.listNamespacedJob({ namespace: NS, labelSelector: `geo.replication.dev/type=bench-item-${i}` });
    return jobs.items.length >= 2; // verify-primary on london and consistency on tokyo
  }
  async function applyAndWait(indices: number[]): Promise<number[]> {
    const t0 = performance.now();
    await exec(["apply", "-n", NS, "-f", "-"], indices.map((i) => stringify({ apiVersion: "geo.replication.dev/v1alpha1", kind: "ReplicableType", metadata: { name: `bench-item-${i}` }, spec: spec(i) })).join("---\n"));
    const latency = new Map<number, number>();
    while (latency.size < indices.length) {
      for (const i of indices) if (!latency.has(i) && (await ready(i))) latency.set(i, performance.now() - t0);
      if (performance.now() - t0 > 300_000) throw new Error("types not ready after 5 minutes");
      await new Promise((r) => setTimeout(r, 20));
    }
    return indices.map((i) => latency.get(i)!);
  }

  const rssAtStart = readFileSync(`/proc/${manager.pid}/status`, "utf8");
  log(`applying the type with the ${ROWS.toLocaleString("en")}-row registry`);
  const [bigLatency] = await applyAndWait([0]);
  log(`applying ${TYPES - 1} more types at once`);
  phase = "burst";
  const burst = await applyAndWait(Array.from({ length: TYPES - 1 }, (_, i) => i + 1));
  // Settled: every type reconciled; status passes run over the big registry every 10 s.
  log(`observing the settled manager for ${OBSERVE_SECONDS} s`);
  phase = "settled";
  await new Promise((r) => setTimeout(r, OBSERVE_SECONDS * 1000));
  phase = "after";
  await exec(["delete", "rtype", "bench-item-1", "-n", NS, "--wait=true"]);
  await primary.query(`DROP TABLE IF EXISTS bench_item_1_states`);
  await tracking.query(`DROP TABLE IF EXISTS bench_item_1_registry; DELETE FROM geo_operator_schema_migrations WHERE type_name = 'bench_item_1'`);
  await primary.query(`DELETE FROM geo_operator_schema_migrations WHERE type_name = 'bench_item_1'`);
  const [single] = await applyAndWait([1]);
  clearInterval(sampler);
  const status = readFileSync(`/proc/${manager.pid}/status`, "utf8");
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(status)![1]);
  const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
  const ms = (x: number) => `${(x / 1000).toFixed(2)} s`;
  const mb = (x: number) => `${x.toFixed(0)} MB`;
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
  const settled = samples.filter((x) => x.phase === "settled");
  const fifth = Math.max(1, Math.floor(settled.length / 5));
  const heaps = settled.map((x) => x.heapMb ?? NaN).filter((x) => !Number.isNaN(x));
  const first = { rss: median(settled.slice(0, fifth).map((x) => x.rssMb)), heap: median(heaps.slice(0, fifth)) };
  const last = { rss: median(settled.slice(-fifth).map((x) => x.rssMb)), heap: median(heaps.slice(-fifth)) };
  const flat = (a: number, b: number) => b <= a * 1.1 + 8;
  const timelineStep = Math.max(1, Math.ceil(samples.length / 30));
  console.log(`
| measurement (${TYPES} ReplicableTypes, ${ROWS.toLocaleString("en")}-row registry) | result | target | met |
|---|---:|---:|---|
| one type applied on a settled operator → tables + first Jobs | ${ms(single!)} | ≤ 2 s | ${single! <= 2000 ? "yes" : "no"} |
| type with the ${ROWS.toLocaleString("en")}-row registry → tables + first Jobs | ${ms(bigLatency!)} | ≤ 2 s | ${bigLatency! <= 2000 ? "yes" : "no"} |
| ${TYPES - 1} types applied at once: p50 / p95 / max | ${ms(pct(burst, 50))} / ${ms(pct(burst, 95))} / ${ms(Math.max(...burst))} | — | — |
| manager RSS idle at start | ${(Number(/VmRSS:\s+(\d+)/.exec(rssAtStart)![1]) / 1024).toFixed(0)} MB | — | — |
| manager RSS now / peak (VmRSS / VmHWM), node ${nodeFlags.join(" ")} | ${(kb("VmRSS") / 1024).toFixed(0)} MB / ${(kb("VmHWM") / 1024).toFixed(0)} MB | — | — |
| manager RSS settled (${OBSERVE_SECONDS} s, ${settled.length} samples): first fifth → last fifth (median), min–max | ${mb(first.rss)} → ${mb(last.rss)}, ${mb(Math.min(...settled.map((x) => x.rssMb)))}–${mb(Math.max(...settled.map((x) => x.rssMb)))} | flat | ${flat(first.rss, last.rss) ? "yes" : "no"} |
| manager V8 heap used settled: first fifth → last fifth (median), min–max | ${mb(first.heap)} → ${mb(last.heap)}, ${mb(Math.min(...heaps))}–${mb(Math.max(...heaps))} | flat | ${flat(first.heap, last.heap) ? "yes" : "no"} |
| load (uptime) at the start / at the end | ${loadAtStart} / ${uptime()} on ${availableParallelism()} cores | — | — |

Memory over time (every ${(timelineStep * SAMPLE_MS) / 1000} s; phase: idle → burst of ${TYPES - 1} types → settled → one type deleted and re-applied):

| t (s) | phase | RSS (MB) | heap used (MB) |
|---:|---|---:|---:|
${samples.filter((_, i) => i % timelineStep === 0).map((x) => `| ${x.t.toFixed(0)} | ${x.phase} | ${x.rssMb.toFixed(0)} | ${x.heapMb === null ? "—" : x.heapMb.toFixed(0)} |`).join("\n")}
`);
  await primary.end();
  await tracking.end();
} finally {
  manager?.kill("SIGTERM");
  await env.stop();
  rmSync(dist, { recursive: true, force: true });
}
