/**
 * The failover preflight against the real API server, PostgreSQL and MinIO: the operator (in this
 * process, Jobs run by the test kubelet) keeps a secondary's FailoverReady condition False while a
 * record fails to sync and True once every record is synced and verified, a type with nothing to
 * replicate counting as done, and False again while a synced record failed verification or
 * deletions are held; `kubectl geo preflight` exits 4 or 0 accordingly, prints the
 * checklist as JSON, refuses the primary, and catches a status the stopped operator no longer
 * writes, although the condition it last wrote still says True.
 */
import { randomBytes } from "node:crypto";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { stringify } from "yaml";
import type { Manager } from "../../src/manager.ts";
import { startTestOperator, type TestOperator } from "../support/test-manager.ts";
import { conditionOf, createNamespace, installCrdsAsync, kubectlAsync, kubectlAsyncOk as kubectlOk, metricLine as metricAt } from "../support/kubectl.ts";
import { createBlobWorld, retryNow, type World } from "../support/worker-world.ts";
import { until } from "../support/until.ts";
import { runGeo } from "./plugin/plugin-world.ts";

const env = inject("env");
let ns: string;
let world: World;
let manager: Manager;
let operator: TestOperator | undefined;
/** The widget whose object is missing on the primary: its sync fails until the object appears. */
let brokenId: number;

const getJSON = async (kind: string, name: string) => JSON.parse(await kubectlOk(["get", kind, name, "-n", ns, "-o", "json"]));
const geo = (args: string[]) => runGeo(["-n", ns, ...args]);
const metricLine = (name: string, labels: string) => metricAt(manager.metricsURL!, name, labels);

beforeAll(async () => {
  await installCrdsAsync();
  ns = createNamespace("failover");
  world = await createBlobWorld(env);
  for (let i = 0; i < 5; i++) {
    const { rows } = await world.dbs.primary.query<{ id: string }>(`INSERT INTO cool_widgets (namespace_id, file_name) VALUES (1, $1) RETURNING id`, [`f${i}.bin`]);
    await world.primaryS3.send(new PutObjectCommand({ Bucket: env.s3!.primary.bucket, Key: `${world.prefix}cool_widgets/${rows[0]!.id}/f${i}.bin`, Body: randomBytes(1024) }));
  }
  const { rows } = await world.dbs.primary.query<{ id: string }>(`INSERT INTO cool_widgets (namespace_id, file_name) VALUES (1, 'broken.bin') RETURNING id`);
  brokenId = Number(rows[0]!.id);
  // A second type with nothing to replicate: 0 of 0 must count as done.
  await world.dbs.primary.query(`CREATE TABLE empty_things (id bigserial PRIMARY KEY, path text NOT NULL)`);

  const fast = { sync: "2s", verification: "2s", primaryVerification: "2s", consistency: "2s" };
  const docs: object[] = [
    ...world.secrets(),
    { apiVersion: "geo.replication.dev/v1alpha1", kind: "GeoSite", metadata: { name: "london" }, spec: { ...world.primarySite, statusInterval: "2s" } },
    {
      apiVersion: "geo.replication.dev/v1alpha1",
      kind: "GeoSite",
      metadata: { name: "tokyo" },
      // No log cursor runs under the test kubelet (it runs Jobs only): switched off, the cursor check does not apply.
      spec: { ...world.secondarySite, statusInterval: "2s", eventLog: { cursor: { enabled: false } } },
    },
    { apiVersion: "geo.replication.dev/v1alpha1", kind: "ReplicableType", metadata: { name: "cool-widget" }, spec: { ...world.type, intervals: fast } },
    {
      apiVersion: "geo.replication.dev/v1alpha1",
      kind: "ReplicableType",
      metadata: { name: "empty-thing" },
      spec: { name: "empty_thing", strategy: "blob", source: { table: "empty_things", objectKey: { column: "path" } }, intervals: fast },
    },
  ];
  await kubectlOk(["apply", "-n", ns, "-f", "-"], docs.map((d) => stringify(d)).join("---\n"));
  operator = await startTestOperator({ namespace: ns, identity: "failover", logName: "failover-manager", maxRunSeconds: 30 });
  manager = operator.manager;
}, 300_000);

afterAll(async () => {
  await operator?.stop();
  await world?.close();
});

describe("failover readiness", () => {
  it("keeps FailoverReady False while a record fails to sync, naming the type and how many", { timeout: 240_000 }, async () => {
    // Everything else done: five widgets synced and verified, the empty type counted.
    const tokyo = await until("tokyo: 5 synced and verified, 1 failed", async () => {
      const t = await getJSON("geosite", "tokyo");
      const w = t.status?.types?.find((x: any) => x.name === "cool_widget");
      const e = t.status?.types?.find((x: any) => x.name === "empty_thing");
      return w?.syncedCount === 5 && w?.verifiedCount === 5 && w?.failedCount === 1 && e && conditionOf(t, "FailoverReady") ? t : undefined;
    }, 180_000);
    const c = conditionOf(tokyo, "FailoverReady");
    expect(c).toMatchObject({ status: "False", reason: "SyncFailures" });
    expect(c.message).toContain("SyncFailures: cool_widget: 1 record failed to sync (checksum mismatches included)");
    expect(c.message).toContain("NotSynced: cool_widget: 1 record not synced, 5 of 6 done");
    expect(c.message).not.toContain("empty_thing");
    expect(conditionOf(await getJSON("geosite", "london"), "FailoverReady")).toBeUndefined();
    expect(await kubectlOk(["get", "geosites", "-n", ns, "--no-headers"])).toMatch(/^tokyo\s+secondary\s+\S+\s+83\.3%\s+83\.3%\s+False\s+/m);
    expect(await until("the gauge", () => metricLine("geo_operator_site_failover_ready", 'site="tokyo"'))).toMatch(/ 0$/);
  });

  it("kubectl geo preflight exits 4 and says what blocks, as a table and as JSON", async () => {
    const table = await geo(["preflight", "--site", "tokyo"]);
    expect(table.code, table.stderr).toBe(4);
    expect(table.stdout).toMatch(/^✗\s+syncFailures\s+cool_widget\s+cool_widget: 1 record failed to sync \(checksum mismatches included\)$/m);
    expect(table.stdout).toMatch(/^✗\s+synced\s+cool_widget\s+cool_widget: 1 record not synced, 5 of 6 done$/m);
    expect(table.stdout).toMatch(/^✓\s+synced\s+empty_thing\s+empty_thing: nothing to replicate \(0 of 0\)$/m);
    expect(table.stdout).toMatch(/^✓\s+verificationFailures\s+cool_widget\s+/m);
    expect(table.stderr).toMatch(/error: GeoSite tokyo is not ready for failover: 3 of \d+ checks fail; first: SyncFailures: cool_widget: 1 record failed to sync \(checksum mismatches included\)/);

    const json = await geo(["preflight", "--site", "tokyo", "-o", "json"]);
    expect(json.code).toBe(4);
    const result = JSON.parse(json.stdout);
    expect(result).toMatchObject({ site: "tokyo", namespace: ns, ready: false, condition: { status: "False", reason: "SyncFailures" } });
    expect(result.checks.filter((c: any) => !c.ok)).toEqual([
      expect.objectContaining({ check: "syncFailures", type: "cool_widget", reason: "SyncFailures", records: 1 }),
      expect.objectContaining({ check: "synced", type: "cool_widget", reason: "NotSynced", records: 1, done: 5, total: 6 }),
      expect.objectContaining({ check: "verified", type: "cool_widget", reason: "NotVerified", records: 1, done: 5, total: 6 }),
    ]);
    expect(result.checks.find((c: any) => c.check === "replicationLag")).toMatchObject({ ok: true });

    const primary = await geo(["preflight", "--site", "london"]);
    expect(primary.code).toBe(2);
    expect(primary.stderr).toMatch(/GeoSite london is the primary/);
    expect((await geo(["preflight", "--site", "nowhere"])).code).toBe(3);
  });

  it("turns FailoverReady True once every record is synced and verified, and preflight exits 0", { timeout: 240_000 }, async () => {
    await world.primaryS3.send(new PutObjectCommand({ Bucket: env.s3!.primary.bucket, Key: `${world.prefix}cool_widgets/${brokenId}/broken.bin`, Body: randomBytes(512) }));
    // Stand in for waiting out the backoffs, on the primary's checksum and on the secondary's sync.
    await world.dbs.primary.query(`UPDATE cool_widget_states SET verification_retry_at = now() - interval '1 second' WHERE verification_state = 3`);
    await retryNow(world.dbs.tracking);
    await kubectlOk(["annotate", "--overwrite", "rtype", "cool-widget", "-n", ns, `geo.replication.dev/trigger=${Date.now()}`]);
    const tokyo = await until("FailoverReady True", async () => {
      const t = await getJSON("geosite", "tokyo");
      return conditionOf(t, "FailoverReady")?.status === "True" ? t : undefined;
    }, 180_000);
    expect(conditionOf(tokyo, "FailoverReady")).toMatchObject({ reason: "FailoverReady", message: expect.stringMatching(/^all \d+ failover checks pass$/) });
    expect(tokyo.status.types.find((x: any) => x.name === "cool_widget")).toMatchObject({ syncedCount: 6, verifiedCount: 6 });
    // What the runbook tells a person to run.
    expect((await kubectlAsync(["wait", "geosite/tokyo", "-n", ns, "--for=condition=FailoverReady", "--timeout=10s"])).code).toBe(0);

    const table = await geo(["preflight", "--site", "tokyo"]);
    expect(table.code, table.stderr + table.stdout).toBe(0);
    expect(table.stdout).not.toContain("✗");
    expect(table.stdout).toMatch(/GeoSite tokyo is ready for a planned failover: all \d+ checks pass/);
    const json = await geo(["preflight", "--site", "tokyo", "-o", "json"]);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ site: "tokyo", ready: true, condition: { status: "True" } });
    expect(await until("the gauge at 1", async () => ((await metricLine("geo_operator_site_failover_ready", 'site="tokyo"'))?.endsWith(" 1") ? true : undefined))).toBe(true);
  });

  it("is not ready while a synced record failed verification, naming the type and how many", { timeout: 240_000 }, async () => {
    const [first] = (await world.dbs.tracking.query<{ id: string }>(`SELECT cool_widget_id AS id FROM cool_widget_registry ORDER BY cool_widget_id LIMIT 1`)).rows;
    const modelId = Number(first!.id);
    // What the verify worker records when it cannot checksum a synced copy (markVerificationFailed),
    // with the retry an hour away so the failure stays while the test looks at it.
    await world.dbs.tracking.query(
      `UPDATE cool_widget_registry SET verification_state = 3, verification_failure = 'the copy could not be read', verification_retry_count = 1, verification_retry_at = now() + interval '1 hour'
        WHERE cool_widget_id = $1 AND state = 2`,
      [modelId],
    );
    const tokyo = await until("tokyo: 1 verification failure in status", async () => {
      const t = await getJSON("geosite", "tokyo");
      return t.status?.types?.find((x: any) => x.name === "cool_widget")?.verificationFailedCount === 1 && conditionOf(t, "FailoverReady")?.status === "False" ? t : undefined;
    }, 180_000);
    expect(tokyo.status.types.find((x: any) => x.name === "cool_widget")).toMatchObject({ syncedCount: 6, failedCount: 0, verifiedCount: 5, verificationFailedCount: 1 });
    expect(conditionOf(tokyo, "FailoverReady")).toMatchObject({ reason: "VerificationFailures", message: expect.stringContaining("VerificationFailures: cool_widget: 1 record failed verification") });

    const table = await geo(["preflight", "--site", "tokyo"]);
    expect(table.code, table.stderr).toBe(4);
    expect(table.stdout).toMatch(/^✗\s+verificationFailures\s+cool_widget\s+cool_widget: 1 record failed verification$/m);
    expect(table.stdout).toMatch(/^✓\s+syncFailures\s+cool_widget\s+cool_widget: no failed syncs$/m);
    expect(table.stderr).toMatch(/not ready for failover: 2 of \d+ checks fail; first: VerificationFailures: cool_widget: 1 record failed verification/);
    const json = await geo(["preflight", "--site", "tokyo", "-o", "json"]);
    expect(json.code).toBe(4);
    expect(JSON.parse(json.stdout).checks.filter((c: any) => !c.ok)).toEqual([
      expect.objectContaining({ check: "verificationFailures", type: "cool_widget", reason: "VerificationFailures", records: 1 }),
      expect.objectContaining({ check: "verified", type: "cool_widget", reason: "NotVerified", records: 1, done: 5, total: 6 }),
    ]);

    // The retry due: the worker verifies the intact copy and the site is ready again.
    await retryNow(world.dbs.tracking);
    await until("FailoverReady True again", async () => (conditionOf(await getJSON("geosite", "tokyo"), "FailoverReady")?.status === "True" ? true : undefined), 180_000);
  });

  it("is not ready while deletions are held, naming the type and how many, as GeoSite status counts them", { timeout: 240_000 }, async () => {
    // An empty primary table is the implausible picture the consistency pass holds deletions for
    // (PrimaryEmpty) rather than removing every copy. The rows come back afterwards with their ids.
    const { rows: widgets } = await world.dbs.primary.query<{ id: string; namespace_id: string; file_name: string }>(`SELECT id, namespace_id, file_name FROM cool_widgets ORDER BY id`);
    expect(widgets).toHaveLength(6);
    await world.dbs.primary.query(`DELETE FROM cool_widgets`);
    const tokyo = await until("tokyo: 6 deletions held in status", async () => {
      const t = await getJSON("geosite", "tokyo");
      return t.status?.types?.find((x: any) => x.name === "cool_widget")?.heldDeletions === 6 && conditionOf(t, "FailoverReady")?.reason === "DeletionsHeld" ? t : undefined;
    }, 180_000);
    expect(tokyo.status.types.find((x: any) => x.name === "empty_thing")?.heldDeletions).toBeUndefined();
    expect(conditionOf(tokyo, "FailoverReady")).toMatchObject({ status: "False", message: expect.stringContaining("DeletionsHeld: cool_widget: 6 deletions held") });

    const table = await geo(["preflight", "--site", "tokyo"]);
    expect(table.code, table.stderr).toBe(4);
    expect(table.stdout).toMatch(/^✗\s+deletionsHeld\s+cool_widget\s+cool_widget: 6 deletions held: check why \(kubectl geo status\), then release them or fix the cause$/m);
    expect(table.stdout).toMatch(/^✓\s+deletionsHeld\s+empty_thing\s+empty_thing: no deletions held$/m);
    expect(table.stderr).toMatch(/not ready for failover: 1 of \d+ checks fail; first: DeletionsHeld: cool_widget: 6 deletions held/);
    const json = await geo(["preflight", "--site", "tokyo", "-o", "json"]);
    expect(json.code).toBe(4);
    expect(JSON.parse(json.stdout).checks.filter((c: any) => !c.ok)).toEqual([expect.objectContaining({ check: "deletionsHeld", type: "cool_widget", reason: "DeletionsHeld", records: 6 })]);

    // The primary's rows back: the next pass finds nothing gone and lifts the hold.
    for (const w of widgets) await world.dbs.primary.query(`INSERT INTO cool_widgets (id, namespace_id, file_name) VALUES ($1, $2, $3)`, [w.id, w.namespace_id, w.file_name]);
    const ready = await until("FailoverReady True once nothing is held", async () => {
      const t = await getJSON("geosite", "tokyo");
      return conditionOf(t, "FailoverReady")?.status === "True" ? t : undefined;
    }, 180_000);
    expect(ready.status.types.find((x: any) => x.name === "cool_widget")).not.toHaveProperty("heldDeletions");
  });

  it("catches a status the operator stopped writing, though the last condition still says True", { timeout: 240_000 }, async () => {
    // A threshold of 40 s, far below the 5-minute heartbeat: the live operator rewrites the unchanged
    // status every third of it, so it stays fresh for longer than the threshold...
    await kubectlOk(["patch", "geosite", "tokyo", "-n", ns, "--type=merge", "-p", JSON.stringify({ spec: { failover: { maxStatusAge: "40s" } } })]);
    await until("the operator saw the new threshold", async () => {
      const t = await getJSON("geosite", "tokyo");
      return t.status.observedGeneration === t.metadata.generation || undefined;
    });
    const liveUntil = Date.now() + 50_000;
    while (Date.now() < liveUntil) {
      const res = await geo(["preflight", "--site", "tokyo", "-o", "json"]);
      expect(res.code, res.stdout).toBe(0);
      await new Promise((r) => setTimeout(r, 8000));
    }
    // ...and once it has stopped, the status ages past it.
    await operator!.stop();
    operator = undefined;
    await new Promise((r) => setTimeout(r, 41_000));
    const res = await geo(["preflight", "--site", "tokyo", "-o", "json"]);
    expect(res.code).toBe(4);
    const result = JSON.parse(res.stdout);
    expect(result.condition).toMatchObject({ status: "True" });
    expect(result.checks.filter((c: any) => !c.ok)).toEqual([
      expect.objectContaining({ check: "statusFresh", reason: "StatusStale", limitSeconds: 40, message: expect.stringMatching(/status last written \d+ s ago .*the operator may not be running/) }),
    ]);
  });

  it("refuses a maxStatusAge shorter than twice statusInterval, and failover thresholds on the primary", async () => {
    const tooShort = await kubectlAsync(["patch", "geosite", "tokyo", "-n", ns, "--type=merge", "-p", JSON.stringify({ spec: { failover: { maxStatusAge: "3s" } } })]);
    expect(tooShort.code).not.toBe(0);
    expect(tooShort.stderr).toMatch(/failover.maxStatusAge must be at least twice statusInterval/);
    const onPrimary = await kubectlAsync(["patch", "geosite", "london", "-n", ns, "--type=merge", "-p", JSON.stringify({ spec: { failover: { maxReplicationLag: "30s" } } })]);
    expect(onPrimary.code).not.toBe(0);
    expect(onPrimary.stderr).toMatch(/failover applies to secondary sites only/);
  });
});
