/**
 * Event-driven replication through the operator: the real API server, PostgreSQL and MinIO; the
 * manager in this process with the in-process executor, which runs each site's log cursor beside
 * the worker runs. Once the Jobs' backfill is done every interval of the type becomes an hour, so
 * nothing but the cursors can move a new or changed record within the test: a new record is synced and
 * verified within seconds, a blob rewritten in place (published as updated) is copied again and
 * verified against its new checksum, and the GeoSites show the event log and a cursor caught up.
 */
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { parse, stringify } from "yaml";
import { REPO_ROOT } from "../../../hack/localenv/tools.ts";
import { LABELS, type GeoSite } from "../../../src/api/v1alpha1/resources.ts";
import { DEFAULT_JOB_SETTINGS } from "../../../src/controllers/job-spec.ts";
import type { InProcessSiteServers } from "../../../src/controllers/site-servers.ts";
import { Manager } from "../../../src/manager.ts";
import { cursorPositions, publishEvent } from "../../../src/registry/event-log.ts";
import { SyncState, VerificationState } from "../../../src/registry/states.ts";
import { createLogger } from "../../../src/util/log.ts";
import { createNamespace, kubectlOk } from "../../support/kubectl.ts";
import { testKubeConfig } from "../../support/test-manager.ts";
import { until } from "../../support/until.ts";
import { createTestDatabases, type TestDatabases } from "../registry/databases.ts";

const env = inject("env");
const prefix = `cursor-${randomBytes(3).toString("hex")}/`;
const INITIAL = 3;
/** Well under any interval of the type (1 h): only the cursors can have done it. */
const WITHIN_MS = 20_000;
let ns: string;
let dbs: TestDatabases;
let manager: Manager;
let primaryS3: S3Client;
let secondaryS3: S3Client;

const s3 = (s: NonNullable<typeof env.s3>["primary"]) =>
  new S3Client({ endpoint: s.endpoint, region: s.region, forcePathStyle: true, credentials: { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey } });
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const key = (id: number, file: string) => `${prefix}cool_widgets/${id}/${file}`;

async function putPrimary(id: number, file: string, body: Buffer): Promise<void> {
  await primaryS3.send(new PutObjectCommand({ Bucket: env.s3!.primary.bucket, Key: key(id, file), Body: body }));
}

async function secondaryBody(id: number, file: string): Promise<Buffer | undefined> {
  try {
    const res = await secondaryS3.send(new GetObjectCommand({ Bucket: env.s3!.secondary.bucket, Key: key(id, file) }));
    return Buffer.from(await res.Body!.transformToByteArray());
  } catch {
    return undefined;
  }
}

/** A new record as an application writes it: the object first, then its row. */
async function insertWidget(file: string, body: Buffer): Promise<number> {
  const { rows } = await dbs.primary.query<{ id: string }>(`SELECT nextval('cool_widgets_id_seq')::text AS id`);
  const id = Number(rows[0]!.id);
  await putPrimary(id, file, body);
  await dbs.primary.query(`INSERT INTO cool_widgets (id, namespace_id, file_name) VALUES ($1, 1, $2)`, [id, file]);
  return id;
}

async function registryRow(id: number): Promise<{ state: number; verification_state: number; verification_checksum: Buffer | null } | undefined> {
  const { rows } = await dbs.tracking.query(`SELECT state, verification_state, verification_checksum FROM cool_widget_registry WHERE cool_widget_id = $1`, [id]);
  return rows[0];
}

async function primaryChecksum(id: number): Promise<string | undefined> {
  const { rows } = await dbs.primary.query<{ c: Buffer | null }>(`SELECT verification_checksum AS c FROM cool_widget_states WHERE cool_widget_id = $1`, [id]);
  return rows[0]?.c?.toString("hex");
}

const site = (name: string): GeoSite | undefined => manager.sites.get(name, ns);
const runs = (kind: string, siteName: string) => manager.executor.runs(ns, "cool-widget").filter((r) => r.kind === kind && r.site === siteName);

async function metrics(): Promise<string> {
  return (await fetch(`${manager.metricsURL}/metrics`)).text();
}

function metricValue(text: string, name: string, siteName: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && l.includes(`site="${siteName}"`));
  return line ? Number(line.split(" ").pop()) : undefined;
}

beforeAll(async () => {
  kubectlOk(["apply", "--server-side", "-f", join(REPO_ROOT, "crds")]);
  kubectlOk(["wait", "--for=condition=Established", "--timeout=60s", "crd/geosites.geo.replication.dev", "crd/replicabletypes.geo.replication.dev"]);
  ns = createNamespace("cursor");
  dbs = await createTestDatabases();
  primaryS3 = s3(env.s3!.primary);
  secondaryS3 = s3(env.s3!.secondary);
  await dbs.primary.query(`CREATE TABLE cool_widgets (id bigserial PRIMARY KEY, namespace_id bigint, file_name text NOT NULL)`);
  for (let i = 0; i < INITIAL; i++) await insertWidget(`initial-${i}.bin`, randomBytes(2000));

  const secrets = [
    { name: "primary-main-db", data: { url: dbs.primaryUrl } },
    { name: "secondary-tracking-db", data: { url: dbs.trackingUrl } },
    { name: "primary-replica-db", data: { url: dbs.primaryUrl } },
    { name: "primary-object-storage", data: { AWS_ACCESS_KEY_ID: env.s3!.primary.accessKeyId, AWS_SECRET_ACCESS_KEY: env.s3!.primary.secretAccessKey } },
    { name: "secondary-object-storage", data: { AWS_ACCESS_KEY_ID: env.s3!.secondary.accessKeyId, AWS_SECRET_ACCESS_KEY: env.s3!.secondary.secretAccessKey } },
  ];
  const geoSite = (name: string, spec: object) => ({ apiVersion: "geo.replication.dev/v1alpha1", kind: "GeoSite", metadata: { name }, spec });
  const storage = (s: NonNullable<typeof env.s3>["primary"], credentials: string) => ({ endpoint: s.endpoint, bucket: s.bucket, prefix, forcePathStyle: true, credentialsSecretRef: { name: credentials } });
  const type = parse(readFileSync(join(REPO_ROOT, "config/samples/replicabletype-cool-widget.yaml"), "utf8"));
  type.spec.intervals = { sync: "2s", verification: "2s", primaryVerification: "2s", consistency: "2s" };
  const docs = [
    ...secrets.map((s) => ({ apiVersion: "v1", kind: "Secret", metadata: { name: s.name, labels: { [LABELS.credentials]: "true" } }, stringData: s.data })),
    geoSite("london", { role: "primary", url: "https://london.example.com", statusInterval: "2s", database: { secretRef: { name: "primary-main-db" } }, objectStorage: storage(env.s3!.primary, "primary-object-storage") }),
    geoSite("tokyo", {
      role: "secondary",
      url: "https://tokyo.example.com",
      statusInterval: "2s",
      database: { secretRef: { name: "secondary-tracking-db" }, primaryReplicaSecretRef: { name: "primary-replica-db" } },
      objectStorage: storage(env.s3!.secondary, "secondary-object-storage"),
    }),
    type,
  ];
  kubectlOk(["apply", "-n", ns, "-f", "-"], docs.map((d) => stringify(d)).join("---\n"));

  manager = new Manager({
    kubeConfig: testKubeConfig(),
    namespace: ns,
    log: createLogger({ name: "test-cursor-manager", level: process.env.GEO_TEST_LOG_LEVEL ?? "error" }),
    executor: "in-process",
    jobSettings: { ...DEFAULT_JOB_SETTINGS, maxRunSeconds: 30 },
    metricsPort: 0,
  });
  await manager.start();
}, 120_000);

afterAll(async () => {
  await manager?.stop();
  primaryS3?.destroy();
  secondaryS3?.destroy();
  await dbs?.drop();
});

describe("the log cursors run by the operator", () => {
  it("backfill is the Jobs'; then a cursor runs on each site and answers /healthz", async () => {
    await until("the Jobs replicated and verified the initial records", () => {
      const t = site("tokyo")?.status?.types?.find((x) => x.name === "cool_widget");
      return t?.syncedCount === INITIAL && t.verifiedCount === INITIAL ? t : undefined;
    }, 120_000);
    // From here on no run is due for an hour.
    const hour = { sync: "1h", verification: "1h", primaryVerification: "1h", consistency: "1h" };
    kubectlOk(["patch", "rtype", "cool-widget", "-n", ns, "--type=merge", "-p", JSON.stringify({ spec: { intervals: hour } })]);
    await until("the hourly intervals seen and no run active", () =>
      manager.types.get("cool-widget", ns)?.spec.intervals?.consistency === "1h" && manager.executor.runs(ns, "cool-widget").every((r) => !r.active) ? true : undefined,
    60_000);
    const positions = await until("both cursors saved a position", async () => {
      const [primary, tracking] = await Promise.all([cursorPositions(dbs.primary), cursorPositions(dbs.tracking)]);
      return primary.has("london") && tracking.has("tokyo") ? { primary, tracking } : undefined;
    }, 60_000);
    expect(positions.tracking.get("tokyo")!.gaps).toEqual([]);
    // The type's spec is part of the cursors' env: they restart with the new intervals.
    const servers = manager.siteServers as InProcessSiteServers;
    for (const name of ["london", "tokyo"]) {
      const url = await until(`${name}'s cursor running and healthy`, async () => {
        const u = await servers.url(ns, `geo-cursor-${name}`);
        return u && (await fetch(`${u}/healthz`)).status === 200 ? u : undefined;
      }, 60_000);
      expect(url, name).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    }
  });

  it("replicates and verifies a new record within seconds, with no consistency pass", async () => {
    const consistencyRuns = runs("consistency", "tokyo").length;
    const body = randomBytes(50_000);
    const started = Date.now();
    const id = await insertWidget("fresh.bin", body);
    const row = await until("the new record synced and verified on tokyo", async () => {
      const r = await registryRow(id);
      return r?.state === SyncState.synced && r.verification_state === VerificationState.succeeded ? r : undefined;
    }, 60_000);
    const elapsed = Date.now() - started;
    expect(elapsed).toBeLessThan(WITHIN_MS);
    expect(row.verification_checksum!.toString("hex")).toBe(sha256(body));
    expect(await primaryChecksum(id)).toBe(sha256(body));
    expect((await secondaryBody(id, "fresh.bin"))!.equals(body)).toBe(true);
    expect(runs("consistency", "tokyo").length).toBe(consistencyRuns);
  });

  it("follows a blob rewritten in place: copied again and verified against the new primary checksum", async () => {
    const id = await insertWidget("mutable.bin", randomBytes(10_000));
    await until("the first version verified", async () => (await registryRow(id))?.verification_state === VerificationState.succeeded, 60_000);
    const next = randomBytes(30_000);
    await putPrimary(id, "mutable.bin", next);
    const started = Date.now();
    await publishEvent(dbs.primary, "cool_widget", id, "updated");
    const row = await until("the new content verified on tokyo", async () => {
      const r = await registryRow(id);
      const copy = await secondaryBody(id, "mutable.bin");
      return r?.state === SyncState.synced && r.verification_state === VerificationState.succeeded && r.verification_checksum?.toString("hex") === sha256(next) && copy?.equals(next) ? r : undefined;
    }, 60_000);
    expect(Date.now() - started).toBeLessThan(WITHIN_MS);
    expect(row.verification_checksum!.toString("hex")).toBe(sha256(next));
    expect(await primaryChecksum(id)).toBe(sha256(next));
  });

  it("shows the event log on both sites, the cursor caught up with lag 0, and the same in metrics", async () => {
    const { rows } = await dbs.primary.query<{ id: string }>(`SELECT max(id)::text AS id FROM geo_operator_events`);
    const newest = Number(rows[0]!.id);
    const [london, tokyo] = await until("both statuses show the newest event", () => {
      const l = site("london")?.status?.eventLog;
      const t = site("tokyo")?.status?.eventLog;
      return l?.lastEventId === newest && t?.cursorLastEventId === newest && t.lagSeconds === 0 ? [l, t] : undefined;
    }, 60_000);
    expect(london).toMatchObject({ lastEventId: newest, lastEventTime: expect.any(String), oldestEventAgeSeconds: expect.any(Number) });
    expect(tokyo).toMatchObject({ cursorLastEventId: newest, cursorLastEventTime: expect.any(String), lagSeconds: 0, pendingGaps: 0 });
    expect(site("tokyo")!.status!.health).toBe("Healthy");
    const text = await until("the event log in metrics", async () => {
      const t = await metrics();
      return metricValue(t, "geo_cursor_last_event_id", "tokyo") === newest ? t : undefined;
    }, 30_000);
    expect(metricValue(text, "geo_last_event_id", "london")).toBe(newest);
    expect(metricValue(text, "geo_last_event_timestamp", "london")).toBeGreaterThan(0);
    // Read as the cursor reads it (a pg Date, so at millisecond precision) to compare exactly.
    const applied = await dbs.primary.query<{ created_at: Date }>(`SELECT created_at FROM geo_operator_events WHERE id = $1`, [newest]);
    expect(metricValue(text, "geo_cursor_last_event_timestamp", "tokyo")).toBe(applied.rows[0]!.created_at.getTime() / 1000);
    expect(metricValue(text, "geo_cursor_event_lag_seconds", "tokyo")).toBe(0);
    expect(metricValue(text, "geo_event_log_oldest_event_age_seconds", "london")).toBeGreaterThanOrEqual(0);
    // The in-process cursors measure themselves on the manager's registry.
    expect(text).toMatch(/^geo_event_sync_latency_seconds_count\{type="cool_widget",site="tokyo"\} [2-9]/m);
    expect(text).toMatch(/^geo_event_checksum_latency_seconds_count\{type="cool_widget",site="london"\} [2-9]/m);
  });

  it("prunes events older than the primary's retention on its status pass", async () => {
    await dbs.primary.query(`UPDATE geo_operator_events SET created_at = created_at - interval '2 hours'`);
    kubectlOk(["patch", "gsite", "london", "-n", ns, "--type=merge", "-p", JSON.stringify({ spec: { eventLog: { retention: "1h" } } })]);
    await until("the old events pruned", async () => {
      const { rows } = await dbs.primary.query<{ n: string }>(`SELECT count(*)::text AS n FROM geo_operator_events`);
      return rows[0]!.n === "0" ? true : undefined;
    }, 30_000);
    // An empty log: the newest event's fields go from london's status.
    await until("london's status without events", () => (site("london")?.status?.eventLog && site("london")!.status!.eventLog!.lastEventId === undefined ? true : undefined), 30_000);
  });

  it("reports a cursor held behind maxLag, and the site is Healthy again once it catches up", async () => {
    const servers = manager.siteServers as InProcessSiteServers;
    const before = await servers.url(ns, "geo-cursor-tokyo");
    kubectlOk(["patch", "gsite", "tokyo", "-n", ns, "--type=merge", "-p", JSON.stringify({ spec: { eventLog: { cursor: { maxLag: "1s" } } } })]);
    // The site's spec is part of the cursor's env: the cursor restarts with it.
    const url = await until("tokyo's cursor restarted", async () => {
      const now = await servers.url(ns, "geo-cursor-tokyo");
      return now && now !== before && (await fetch(`${now}/healthz`)).status === 200 ? now : undefined;
    }, 60_000);
    // The cursor cannot save its position while this transaction holds the row: it stays behind.
    const lock = await dbs.tracking.connect();
    let id: number;
    try {
      await lock.query("BEGIN");
      await lock.query(`SELECT * FROM geo_operator_event_cursors WHERE cursor_name = 'tokyo' FOR UPDATE`);
      id = await insertWidget("held.bin", randomBytes(1000));
      const status = await until("tokyo unhealthy with its cursor behind", () => {
        const t = site("tokyo")?.status;
        return t?.healthReasons?.some((r) => r.startsWith("EventCursorBehind: ")) ? t : undefined;
      }, 30_000);
      expect(status.health).toBe("Unhealthy");
      expect(status.eventLog!.lagSeconds).toBeGreaterThan(1);
      expect(status.healthReasons!.find((r) => r.startsWith("EventCursorBehind"))).toMatch(/the log cursor of tokyo is \d+ s behind the primary's newest event \d+ \(limit 1 s\); check the log cursor \(Deployment geo-cursor-tokyo/);
      expect(metricValue(await metrics(), "geo_cursor_event_lag_seconds", "tokyo")).toBeGreaterThan(1);
    } finally {
      await lock.query("ROLLBACK");
      lock.release();
    }
    const healthy = await until("tokyo caught up and Healthy", () => {
      const t = site("tokyo")?.status;
      return t?.health === "Healthy" && t.eventLog?.lagSeconds === 0 && (t.eventLog.cursorLastEventId ?? 0) > 0 ? t : undefined;
    }, 60_000);
    await until("the record written while the cursor was held synced", async () => (await registryRow(id))?.state === SyncState.synced, 30_000);
    expect(healthy.eventLog!.pendingGaps).toBe(0);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
  });

  it("stops a site's cursor switched off, and drops its event log status and series", async () => {
    kubectlOk(["patch", "gsite", "tokyo", "-n", ns, "--type=merge", "-p", JSON.stringify({ spec: { eventLog: { cursor: { enabled: false } } } })]);
    const servers = manager.siteServers as InProcessSiteServers;
    await until("tokyo's cursor stopped and its status without the event log", async () =>
      (await servers.url(ns, "geo-cursor-tokyo")) === undefined && site("tokyo")?.status && site("tokyo")!.status!.eventLog === undefined ? true : undefined,
    30_000);
    const text = await metrics();
    expect(metricValue(text, "geo_cursor_event_lag_seconds", "tokyo")).toBeUndefined();
    expect(metricValue(text, "geo_cursor_last_event_id", "tokyo")).toBeUndefined();
    expect(metricValue(text, "geo_cursor_last_event_timestamp", "tokyo")).toBeUndefined();
    expect(await servers.url(ns, "geo-cursor-london")).toBeDefined();
  });
});
