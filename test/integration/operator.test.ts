/**
 * The operator end to end without a kubelet: the real API server, PostgreSQL, MinIO and git; the
 * manager running in this process with the Jobs executor; a test kubelet running each Job's
 * command as a local process. Samples are applied with real kubectl.
 */
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { parse, stringify } from "yaml";
import { REPO_ROOT } from "../../hack/localenv/tools.ts";
import { LABELS } from "../../src/api/v1alpha1/resources.ts";
import { DEFAULT_JOB_SETTINGS } from "../../src/controllers/job-spec.ts";
import { Manager } from "../../src/manager.ts";
import { createLogger } from "../../src/util/log.ts";
import { createTestDatabases, type TestDatabases } from "./registry/databases.ts";
import { startTestOperator, testKubeConfig, TEST_LEASE, type TestOperator } from "../support/test-manager.ts";
import { createNamespace, kubectl, kubectlAsync, kubectlOk } from "../support/kubectl.ts";
import { startFaultProxy, type FaultProxy } from "../support/fault-proxy.ts";
import { until } from "../support/until.ts";

const env = inject("env");
const prefix = `op-${randomBytes(3).toString("hex")}/`;
const run = randomBytes(3).toString("hex");
let ns: string;
let dbs: TestDatabases;
let manager: Manager;
let operator: TestOperator;
let proxy: FaultProxy;
let mirrorRoot: string;
let work: string;
let primaryS3: S3Client;
let secondaryS3: S3Client;
const bodies = new Map<number, Buffer>();
const BLOBS = 12;
const REPOS = 3;

const s3 = (s: NonNullable<typeof env.s3>["primary"]) =>
  new S3Client({ endpoint: s.endpoint, region: s.region, forcePathStyle: true, credentials: { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey } });
const git = (args: string[], cwd: string) =>
  execFileSync("git", ["-c", "user.name=Geo", "-c", "user.email=geo@example.com", "-c", "init.defaultBranch=main", ...args], { cwd, encoding: "utf8" }).trim();

/** A repository on the primary's git server with one commit, and its design_repositories row; returns the row's id. */
async function addRepository(name: string): Promise<string> {
  const diskPath = `op-${run}/${name}`;
  const bare = join(env.git!.root, `${diskPath}.git`);
  execFileSync("git", ["init", "-q", "--bare", "-b", "main", bare]);
  const clone = join(work, name);
  git(["clone", "-q", bare, clone], work);
  git(["commit", "-q", "--allow-empty", "-m", name], clone);
  git(["push", "-q", "origin", "main"], clone);
  const { rows } = await dbs.primary.query<{ id: string }>(`INSERT INTO design_repositories (namespace_id, disk_path) VALUES (1, $1) RETURNING id`, [diskPath]);
  return rows[0]!.id;
}

/** A kubeconfig whose server goes through the proxy, so the test can cut the manager's connections. */
function proxiedKubeConfig(port: number): KubeConfig {
  const doc = parse(readFileSync(process.env.KUBECONFIG!, "utf8"));
  doc.clusters[0].cluster.server = `https://127.0.0.1:${port}`;
  doc.clusters[0].cluster["tls-server-name"] = "localhost";
  const kc = new KubeConfig();
  kc.loadFromString(stringify(doc));
  return kc;
}


async function metrics(): Promise<string> {
  return (await fetch(`${manager.metricsURL}/metrics`)).text();
}

function metricValue(text: string, name: string, site: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && l.includes(`site="${site}"`));
  return line ? Number(line.split(" ").pop()) : undefined;
}

beforeAll(async () => {
  kubectlOk(["apply", "--server-side", "-f", join(REPO_ROOT, "crds")]);
  kubectlOk(["wait", "--for=condition=Established", "--timeout=60s", "crd/geosites.geo.replication.dev", "crd/replicabletypes.geo.replication.dev"]);
  ns = createNamespace("operator");
  dbs = await createTestDatabases();
  mirrorRoot = mkdtempSync(join(tmpdir(), "geo-op-mirrors-"));
  work = mkdtempSync(join(tmpdir(), "geo-op-work-"));
  primaryS3 = s3(env.s3!.primary);
  secondaryS3 = s3(env.s3!.secondary);

  // The application's data on the primary.
  await dbs.primary.query(`CREATE TABLE cool_widgets (id bigserial PRIMARY KEY, namespace_id bigint, file_name text NOT NULL)`);
  await dbs.primary.query(`CREATE TABLE design_repositories (id bigserial PRIMARY KEY, namespace_id bigint, disk_path text NOT NULL)`);
  for (let i = 0; i < BLOBS; i++) {
    const { rows } = await dbs.primary.query<{ id: string }>(`INSERT INTO cool_widgets (namespace_id, file_name) VALUES (1, $1) RETURNING id`, [`w${i}.bin`]);
    const body = randomBytes(1000 + i * 1000);
    bodies.set(Number(rows[0]!.id), body);
    await primaryS3.send(new PutObjectCommand({ Bucket: env.s3!.primary.bucket, Key: `${prefix}cool_widgets/${rows[0]!.id}/w${i}.bin`, Body: body }));
  }
  for (let i = 0; i < REPOS; i++) await addRepository(`repo-${i}`);

  const secrets = [
    { name: "primary-main-db", data: { url: dbs.primaryUrl } },
    { name: "secondary-tracking-db", data: { url: dbs.trackingUrl } },
    { name: "primary-replica-db", data: { url: dbs.primaryUrl } },
    { name: "primary-object-storage", data: { AWS_ACCESS_KEY_ID: env.s3!.primary.accessKeyId, AWS_SECRET_ACCESS_KEY: env.s3!.primary.secretAccessKey } },
    { name: "secondary-object-storage", data: { AWS_ACCESS_KEY_ID: env.s3!.secondary.accessKeyId, AWS_SECRET_ACCESS_KEY: env.s3!.secondary.secretAccessKey } },
  ];
  const site = (name: string, spec: object) => ({ apiVersion: "geo.replication.dev/v1alpha1", kind: "GeoSite", metadata: { name }, spec });
  const docs = [
    ...secrets.map((s) => ({ apiVersion: "v1", kind: "Secret", metadata: { name: s.name, labels: { [LABELS.credentials]: "true" } }, stringData: s.data })),
    site("london", {
      role: "primary",
      url: "https://london.example.com",
      statusInterval: "2s",
      database: { secretRef: { name: "primary-main-db" } },
      objectStorage: { endpoint: env.s3!.primary.endpoint, bucket: env.s3!.primary.bucket, prefix, forcePathStyle: true, credentialsSecretRef: { name: "primary-object-storage" } },
      git: { baseURL: env.git!.baseURL },
    }),
    site("tokyo", {
      role: "secondary",
      url: "https://tokyo.example.com",
      statusInterval: "2s",
      database: { secretRef: { name: "secondary-tracking-db" }, primaryReplicaSecretRef: { name: "primary-replica-db" } },
      objectStorage: { endpoint: env.s3!.secondary.endpoint, bucket: env.s3!.secondary.bucket, prefix, forcePathStyle: true, credentialsSecretRef: { name: "secondary-object-storage" } },
      git: { mirrorRoot },
    }),
  ];
  kubectlOk(["apply", "-n", ns, "-f", "-"], docs.map((d) => stringify(d)).join("---\n"));
  // The sample ReplicableTypes, with intervals short enough for a test.
  const fast = { sync: "2s", verification: "2s", primaryVerification: "2s", consistency: "3s" };
  for (const file of ["replicabletype-cool-widget.yaml", "replicabletype-design-repository.yaml"]) {
    const doc = parse(readFileSync(join(REPO_ROOT, "config/samples", file), "utf8"));
    doc.spec.intervals = fast;
    // Repositories: verification every 10 minutes, longer than this file runs. The first
    // verification starts beside the first sync and finds nothing synced; every repository is
    // verified only because verification follows a sync run that left copies waiting for it.
    if (doc.metadata.name === "design-repository") doc.spec.intervals = { ...fast, verification: "10m" };
    doc.spec.verification = { ...(doc.spec.verification ?? {}), minimumReverificationInterval: "4s" };
    doc.spec.deletionPolicy = "Delete";
    delete doc.spec.source.namespaceTable;
    delete doc.spec.source.namespaceParentColumn;
    delete doc.spec.source.shardColumn;
    kubectlOk(["apply", "-n", ns, "-f", "-"], stringify(doc));
  }

  proxy = await startFaultProxy({ host: "127.0.0.1", port: Number(new URL(testKubeConfig().getCurrentCluster()!.server).port) });
  operator = await startTestOperator({ namespace: ns, identity: "manager-a", logName: "test-manager", maxRunSeconds: 60, kubeConfig: proxiedKubeConfig(proxy.port) });
  manager = operator.manager;
}, 300_000);

afterAll(async () => {
  await operator?.stop();
  await proxy?.close();
  primaryS3?.destroy();
  secondaryS3?.destroy();
  await dbs?.drop();
  rmSync(mirrorRoot, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
});

describe("operator", () => {
  it("serves /healthz and /readyz", async () => {
    expect((await fetch(`${manager.healthURL}/healthz`)).status).toBe(200);
    expect((await fetch(`${manager.healthURL}/readyz`)).status).toBe(200);
  });

  it("renders each site's log cursor as a Deployment and Service owned by its GeoSite, with Secrets by reference", async () => {
    const deployment = (name: string) => until(`Deployment ${name}`, () => {
      const res = kubectl(["get", "deployment", name, "-n", ns, "-o", "json"]);
      return res.code === 0 ? JSON.parse(res.stdout) : undefined;
    }, 60_000);
    for (const [name, role] of [["london", "primary"], ["tokyo", "secondary"]] as const) {
      const d = await deployment(`geo-cursor-${name}`);
      const c = d.spec.template.spec.containers[0];
      expect(c.args).toEqual(["cursor", "--site", name, "--metrics-port", "9090"]);
      expect(c.readinessProbe.httpGet).toMatchObject({ path: "/healthz", port: 9090, scheme: "HTTP" });
      const vars = Object.fromEntries(c.env.map((e: any) => [e.name, e]));
      expect(JSON.parse(vars.GEO_TYPE_SPECS.value).map((t: any) => t.name)).toEqual(["cool_widget", "design_repository"]);
      expect(JSON.parse(vars.GEO_SITE_SPEC.value).role).toBe(role);
      expect(vars.GEO_PRIMARY_SITE_NAME.value).toBe("london");
      expect(vars.GEO_TYPE_SPEC).toBeUndefined();
      // Credentials only as references, never as values.
      const secretNames = c.env.filter((e: any) => e.valueFrom).map((e: any) => e.valueFrom.secretKeyRef.name);
      expect(secretNames).toContain(role === "primary" ? "primary-main-db" : "secondary-tracking-db");
      expect(new Set(secretNames)).toEqual(new Set(role === "primary" ? ["primary-main-db", "primary-object-storage"] : ["primary-replica-db", "secondary-tracking-db", "primary-object-storage", "secondary-object-storage"]));
      for (const secret of [dbs.primaryUrl, dbs.trackingUrl, env.s3!.primary.secretAccessKey, env.s3!.secondary.secretAccessKey]) expect(JSON.stringify(d)).not.toContain(secret);
      expect(d.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: "GeoSite", name })]);
      // The Service is created right after the Deployment, in the same reconcile.
      const svc = await until(`Service geo-cursor-${name}`, () => {
        const res = kubectl(["get", "service", `geo-cursor-${name}`, "-n", ns, "-o", "json"]);
        return res.code === 0 ? JSON.parse(res.stdout) : undefined;
      }, 60_000);
      expect(svc.spec.ports).toEqual([expect.objectContaining({ name: "http", port: 9090 })]);
      expect(svc.metadata.labels["app.kubernetes.io/component"]).toBe("log-cursor");
    }
  });

  it("replicates and verifies every object and repository; kubectl get geosites shows 100.0%", async () => {
    // Re-verification every 4 s here sends the primary's checksums back to pending for a moment,
    // so both sites are read at once until both show everything done.
    const line = await until("tokyo at 100.0% synced and verified, london at 100.0% checksummed", () => {
      const out = kubectlOk(["get", "geosites", "-n", ns, "--no-headers"]);
      return /^tokyo\s+secondary\s+Healthy\s+100\.0%\s+100\.0%/m.test(out) && /^london\s+primary\s+Healthy\s+-\s+100\.0%/m.test(out) ? out : undefined;
    }, 240_000);
    expect(line).toMatch(/^london\s+primary\s+Healthy\s+-\s+100\.0%/m);
    const site = JSON.parse(kubectlOk(["get", "gsite", "tokyo", "-n", ns, "-o", "json"]));
    const widgets = site.status.types.find((t: any) => t.name === "cool_widget");
    expect(widgets).toMatchObject({ count: BLOBS, registryCount: BLOBS, syncedCount: BLOBS, verifiedCount: BLOBS, failedCount: 0, syncedInPercentage: 100, verifiedInPercentage: 100 });
    const repos = site.status.types.find((t: any) => t.name === "design_repository");
    expect(repos).toMatchObject({ count: REPOS, syncedCount: REPOS, verifiedCount: REPOS });
    for (const [id, body] of bodies) {
      const res = await secondaryS3.send(new GetObjectCommand({ Bucket: env.s3!.secondary.bucket, Key: `${prefix}cool_widgets/${id}/w${id - Math.min(...bodies.keys())}.bin` }));
      expect(createHash("sha256").update(await res.Body!.transformToByteArray()).digest("hex")).toBe(createHash("sha256").update(body).digest("hex"));
    }
    const rtype = JSON.parse(kubectlOk(["get", "rtype", "cool-widget", "-n", ns, "-o", "json"]));
    expect(rtype.status.conditions.find((c: any) => c.type === "Ready")).toMatchObject({ status: "True" });
    expect(rtype.status.sites.map((s: any) => [s.name, s.ready])).toEqual([["london", true], ["tokyo", true]]);
    expect(rtype.status.lastJobs.map((j: any) => `${j.site}/${j.kind}`)).toEqual(["london/verify-primary", "tokyo/consistency", "tokyo/sync", "tokyo/verify"]);
    expect(kubectlOk(["get", "rtype", "-n", ns, "--no-headers"])).toMatch(/^cool-widget\s+blob\s+true\s+true\s+True\s+/m);
  });

  it("exports GitLab's gauges with the right values", async () => {
    const text = await until("gauges", async () => {
      const t = await metrics();
      // Verified counts are exact (a row being re-verified right now is not verified), and
      // re-verification runs every 4 s here: wait for a status pass that shows every type done.
      const done =
        metricValue(t, "geo_cool_widgets_verified", "tokyo") === BLOBS &&
        metricValue(t, "geo_cool_widgets_checksummed", "london") === BLOBS &&
        metricValue(t, "geo_design_repositories_verified", "tokyo") === REPOS;
      return done ? t : undefined;
    });
    expect(metricValue(text, "geo_cool_widgets", "tokyo")).toBe(BLOBS);
    expect(metricValue(text, "geo_cool_widgets_synced", "tokyo")).toBe(BLOBS);
    expect(metricValue(text, "geo_cool_widgets_registry", "tokyo")).toBe(BLOBS);
    expect(metricValue(text, "geo_cool_widgets_failed", "tokyo")).toBe(0);
    expect(metricValue(text, "geo_cool_widgets_checksummed", "london")).toBe(BLOBS);
    expect(metricValue(text, "geo_design_repositories_verified", "tokyo")).toBe(REPOS);
    expect(text).toMatch(/geo_cool_widgets_synced\{site="tokyo",url="https:\/\/tokyo\.example\.com"\} 12/);
    expect(text).toMatch(/^geo_operator_reconcile_total\{controller="replicabletype",result="success"\} \d+/m);
    expect(text).toMatch(/^process_resident_memory_bytes \d+/m);
    expect(text).toMatch(/^geo_operator_oldest_pending_seconds\{type="cool_widget",site="tokyo"\} 0/m);
    // Worker outcomes seen through the Jobs, bytes from the runs the workers recorded.
    expect(text).toMatch(/^geo_operator_jobs_total\{type="cool_widget",site="tokyo",kind="sync",result="succeeded"\} [1-9]/m);
    const bytes = Number(/^geo_operator_replicated_bytes_total\{type="cool_widget",site="tokyo"\} (\d+)/m.exec(text)?.[1]);
    expect(bytes).toBe([...bodies.values()].reduce((n, b) => n + b.length, 0));
  });

  it("verifies a new repository right after the sync run that copied it, not at the next verification interval (10 minutes here)", async () => {
    const id = await addRepository("repo-late");
    // Every repository before this one was verified long ago: the verification interval is
    // minutes away, so only a verification that follows the sync can reach this one in time.
    await until("the new repository synced and verified on tokyo", async () =>
      (await dbs.tracking.query(`SELECT 1 FROM design_repository_registry WHERE design_repository_id = $1 AND state = 2 AND verification_state = 2`, [id])).rowCount === 1 || undefined, 60_000);
  });

  it("shows a corrupted secondary object as a failure in status and metrics, then heals it", async () => {
    const [id] = [...bodies.keys()];
    const key = `${prefix}cool_widgets/${id}/w0.bin`;
    await secondaryS3.send(new PutObjectCommand({ Bucket: env.s3!.secondary.bucket, Key: key, Body: Buffer.from("bit rot") }));
    // Re-verification (every 4 s here) finds it; the row fails for both verification and sync.
    await until("the mismatch in status", () => {
      const site = JSON.parse(kubectlOk(["get", "gsite", "tokyo", "-n", ns, "-o", "json"]));
      const t = site.status.types.find((x: any) => x.name === "cool_widget");
      return t.failedCount >= 1 || t.verificationFailedCount >= 1 ? t : undefined;
    });
    // The failed row waits out its backoff (at least 16 s), so the gauge has time to show it.
    await until("the failure in metrics", async () => {
      const t = await metrics();
      const v = (metricValue(t, "geo_cool_widgets_failed", "tokyo") ?? 0) + (metricValue(t, "geo_cool_widgets_verification_failed", "tokyo") ?? 0);
      return v >= 1 ? v : undefined;
    }, 30_000);
    // Backoff for the first retry is under a minute; a manual trigger re-runs the Jobs now.
    await dbs.tracking.query(`UPDATE cool_widget_registry SET retry_at = now() WHERE state = 3`);
    kubectlOk(["annotate", "--overwrite", "rtype", "cool-widget", "-n", ns, `geo.replication.dev/trigger=${Date.now()}`]);
    await until("healed", async () => {
      const res = await secondaryS3.send(new GetObjectCommand({ Bucket: env.s3!.secondary.bucket, Key: key }));
      const body = Buffer.from(await res.Body!.transformToByteArray());
      const out = kubectlOk(["get", "geosites", "tokyo", "-n", ns, "--no-headers"]);
      return body.equals(bodies.get(id!)!) && /100\.0%\s+100\.0%/.test(out) ? true : undefined;
    }, 180_000);
    const events = kubectlOk(["get", "events", "-n", ns, "-o", "json"]);
    expect(JSON.parse(events).items.some((e: any) => e.reason === "ManualTrigger")).toBe(true);
  });

  it("recovers when its watch connections are killed", async () => {
    const cut = proxy.cutAll();
    expect(cut).toBeGreaterThan(0);
    // A change after the cut must still reach the operator: a third site appears in status.
    kubectlOk(["annotate", "--overwrite", "rtype", "design-repository", "-n", ns, `geo.replication.dev/trigger=after-cut-${Date.now()}`]);
    await until("the trigger handled after the cut", () => {
      const rt = JSON.parse(kubectlOk(["get", "rtype", "design-repository", "-n", ns, "-o", "json"]));
      return rt.status.lastTrigger?.startsWith("after-cut-") ? true : undefined;
    }, 60_000);
    expect(manager.sites.restarts + manager.types.restarts).toBeGreaterThan(0);
  });

  it("elects one leader when two managers run", async () => {
    const second = new Manager({
      kubeConfig: testKubeConfig(),
      namespace: ns,
      log: createLogger({ name: "test-manager-b", level: "error" }),
      executor: "jobs",
      jobSettings: DEFAULT_JOB_SETTINGS,
      leaderElection: { namespace: ns, ...TEST_LEASE, identity: "manager-b" },
      onLostLeadership: () => undefined,
    });
    await second.start();
    try {
      await new Promise((r) => setTimeout(r, 3000));
      expect(manager.leading).toBe(true);
      expect(second.leading).toBe(false);
      const lease = JSON.parse(kubectlOk(["get", "lease", "geo-operator-leader", "-n", ns, "-o", "json"]));
      expect(lease.spec.holderIdentity).toBe("manager-a");
    } finally {
      await second.stop();
    }
  });

  it("deleting a ReplicableType removes its Jobs and, with deletionPolicy Delete, its tables", async () => {
    const jobsBefore = kubectlOk(["get", "jobs", "-n", ns, "-l", "geo.replication.dev/type=design-repository", "-o", "name"]).trim();
    expect(jobsBefore).not.toBe("");
    const deleted = await kubectlAsync(["delete", "rtype", "design-repository", "-n", ns, "--wait=true", "--timeout=60s"]);
    expect(deleted.code, deleted.stderr).toBe(0);
    expect(kubectl(["get", "rtype", "design-repository", "-n", ns]).code).not.toBe(0);
    await until("jobs gone", () => (kubectlOk(["get", "jobs", "-n", ns, "-l", "geo.replication.dev/type=design-repository", "-o", "name"]).trim() === "" ? true : undefined), 30_000);
    const tables = async (db: typeof dbs.primary, name: string) => (await db.query(`SELECT to_regclass($1) AS t`, [name])).rows[0].t;
    expect(await tables(dbs.tracking, "design_repository_registry")).toBeNull();
    expect(await tables(dbs.primary, "design_repository_states")).toBeNull();
    // The model table and the other type are untouched.
    expect(await tables(dbs.primary, "design_repositories")).not.toBeNull();
    expect(await tables(dbs.tracking, "cool_widget_registry")).not.toBeNull();
  });

  it("reports invalid topologies and missing source tables in conditions, and schedules nothing for them", async () => {
    const other = createNamespace("invalid");
    // A manager of its own for this namespace (the main one watches only its namespace).
    const local = new Manager({ kubeConfig: testKubeConfig(), namespace: other, log: createLogger({ name: "test-manager-invalid", level: "error" }), executor: "jobs", jobSettings: DEFAULT_JOB_SETTINGS });
    await local.start();
    try {
      await checkInvalid(other);
    } finally {
      await local.stop();
    }
  });
});

async function checkInvalid(other: string): Promise<void> {
  {
    const site = (name: string, spec: object) => stringify({ apiVersion: "geo.replication.dev/v1alpha1", kind: "GeoSite", metadata: { name }, spec });
    const secrets = ["a-db", "b-db", "c-db"].map((n) => stringify({ apiVersion: "v1", kind: "Secret", metadata: { name: n, labels: { [LABELS.credentials]: "true" } }, stringData: { url: dbs.primaryUrl } }));
    const s3 = { endpoint: env.s3!.primary.endpoint, bucket: env.s3!.primary.bucket, forcePathStyle: true, credentialsSecretRef: { name: "creds" } };
    kubectlOk(["apply", "-n", other, "-f", "-"], [...secrets, stringify({ apiVersion: "v1", kind: "Secret", metadata: { name: "creds", labels: { [LABELS.credentials]: "true" } }, stringData: { AWS_ACCESS_KEY_ID: "key-id", AWS_SECRET_ACCESS_KEY: "secret-key" } })].join("---\n"));
    // Two primaries.
    kubectlOk(["apply", "-n", other, "-f", "-"], [site("p1", { role: "primary", database: { secretRef: { name: "a-db" } } }), site("p2", { role: "primary", database: { secretRef: { name: "b-db" } } })].join("---\n"));
    const type = parse(readFileSync(join(REPO_ROOT, "config/samples/replicabletype-cool-widget.yaml"), "utf8"));
    kubectlOk(["apply", "-n", other, "-f", "-"], stringify(type));
    const ready = (name: string) => until(`${name} conditions`, () => {
      const rt = JSON.parse(kubectlOk(["get", "rtype", name, "-n", other, "-o", "json"]));
      return rt.status?.conditions?.find((c: any) => c.type === "Ready") ? rt : undefined;
    }, 30_000);
    let rt = await ready("cool-widget");
    expect(rt.status.conditions.find((c: any) => c.type === "SitesValid")).toMatchObject({ status: "False", reason: "MultiplePrimaries" });
    expect(rt.status.conditions.find((c: any) => c.type === "SitesValid").message).toMatch(/GeoSites p1, p2 all have role primary; exactly one is allowed/);
    // One primary and a secondary writing into the primary's bucket.
    kubectlOk(["delete", "gsite", "p2", "-n", other]);
    kubectlOk(["apply", "-n", other, "-f", "-"], [
      site("p1", { role: "primary", database: { secretRef: { name: "a-db" } }, objectStorage: s3 }),
      site("s1", { role: "secondary", database: { secretRef: { name: "c-db" }, primaryReplicaSecretRef: { name: "a-db" } }, objectStorage: s3 }),
    ].join("---\n"));
    await until("PointsAtPrimary", () => {
      const r = JSON.parse(kubectlOk(["get", "rtype", "cool-widget", "-n", other, "-o", "json"]));
      return r.status?.sites?.find((s: any) => s.name === "s1")?.reason === "PointsAtPrimary" ? r : undefined;
    }, 30_000).then((r) => {
      expect(r.status.sites.find((s: any) => s.name === "s1").message).toMatch(/its objectStorage is the primary's bucket/);
    });
    // A secondary whose tracking-database Secret is another Secret holding the primary's database.
    kubectlOk(["apply", "-n", other, "-f", "-"], site("s2", { role: "secondary", database: { secretRef: { name: "b-db" }, primaryReplicaSecretRef: { name: "a-db" } } }));
    await until("shared database", () => {
      const r = JSON.parse(kubectlOk(["get", "rtype", "cool-widget", "-n", other, "-o", "json"]));
      const s2 = r.status?.sites?.find((s: any) => s.name === "s2");
      return s2?.reason === "PointsAtPrimary" ? s2 : undefined;
    }, 30_000).then((s2) => expect(s2.message).toMatch(/its tracking database 127\.0\.0\.1:\d+\/geo_registry_\w+ is the primary's main database/));
    // A type whose table does not exist on the primary.
    type.metadata.name = "ghost";
    type.spec.name = "ghost_widget";
    type.spec.source.table = "ghost_widgets";
    kubectlOk(["apply", "-n", other, "-f", "-"], stringify(type));
    rt = await until("SourceMissing", () => {
      const r = JSON.parse(kubectlOk(["get", "rtype", "ghost", "-n", other, "-o", "json"]));
      return r.status?.conditions?.find((c: any) => c.type === "SourceValid")?.status === "False" ? r : undefined;
    }, 30_000);
    expect(rt.status.conditions.find((c: any) => c.type === "SourceValid").message).toMatch(/table public\.ghost_widgets does not exist on the primary/);
    expect(rt.status.conditions.find((c: any) => c.type === "Ready")).toMatchObject({ status: "False", reason: "SourceMissing" });
    // Nothing was scheduled for the invalid type or the invalid secondary.
    const jobs = JSON.parse(kubectlOk(["get", "jobs", "-n", other, "-o", "json"])).items.map((j: any) => j.metadata.labels);
    expect(jobs.filter((l: any) => l["geo.replication.dev/type"] === "ghost")).toEqual([]);
    expect(jobs.filter((l: any) => l["geo.replication.dev/site"] === "s1" || l["geo.replication.dev/site"] === "s2")).toEqual([]);
    const events = JSON.parse(kubectlOk(["get", "events", "-n", other, "-o", "json"])).items;
    expect(events.some((e: any) => e.reason === "SourceMissing" && e.involvedObject.name === "ghost")).toBe(true);
  }
}
