/**
 * Site topology: an operator started with --site acts for that GeoSite only (one cluster per
 * site), while the same manifests are applied everywhere.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, expect, inject, it } from "vitest";
import { parse, stringify } from "yaml";
import { REPO_ROOT } from "../../hack/localenv/tools.ts";
import { LABELS } from "../../src/api/v1alpha1/resources.ts";
import { DEFAULT_JOB_SETTINGS } from "../../src/controllers/job-spec.ts";
import { Manager } from "../../src/manager.ts";
import { createLogger } from "../../src/util/log.ts";
import { createTestDatabases, type TestDatabases } from "./registry/databases.ts";
import { createNamespace, kubectlAsync, kubectlOk } from "../support/kubectl.ts";

const env = inject("env");
let ns: string;
let dbs: TestDatabases;
let manager: Manager;

beforeAll(async () => {
  kubectlOk(["apply", "--server-side", "-f", join(REPO_ROOT, "crds")]);
  ns = createNamespace("topology");
  dbs = await createTestDatabases();
  await dbs.primary.query(`CREATE TABLE cool_widgets (id bigserial PRIMARY KEY, namespace_id bigint, file_name text NOT NULL)`);
  const s3 = (side: "primary" | "secondary") => ({ endpoint: env.s3![side].endpoint, bucket: env.s3![side].bucket, forcePathStyle: true, credentialsSecretRef: { name: `${side}-s3` } });
  const docs = [
    { apiVersion: "v1", kind: "Secret", metadata: { name: "main-db", labels: { [LABELS.credentials]: "true" } }, stringData: { url: dbs.primaryUrl } },
    { apiVersion: "v1", kind: "Secret", metadata: { name: "tracking-db", labels: { [LABELS.credentials]: "true" } }, stringData: { url: dbs.trackingUrl } },
    ...(["primary", "secondary"] as const).map((side) => ({ apiVersion: "v1", kind: "Secret", metadata: { name: `${side}-s3`, labels: { [LABELS.credentials]: "true" } }, stringData: { AWS_ACCESS_KEY_ID: env.s3![side].accessKeyId, AWS_SECRET_ACCESS_KEY: env.s3![side].secretAccessKey } })),
    { apiVersion: "geo.replication.dev/v1alpha1", kind: "GeoSite", metadata: { name: "london" }, spec: { role: "primary", statusInterval: "2s", database: { secretRef: { name: "main-db" } }, objectStorage: s3("primary") } },
    { apiVersion: "geo.replication.dev/v1alpha1", kind: "GeoSite", metadata: { name: "tokyo" }, spec: { role: "secondary", statusInterval: "2s", database: { secretRef: { name: "tracking-db" }, primaryReplicaSecretRef: { name: "main-db" } }, objectStorage: s3("secondary") } },
  ];
  const type = parse(readFileSync(join(REPO_ROOT, "config/samples/replicabletype-cool-widget.yaml"), "utf8"));
  kubectlOk(["apply", "-n", ns, "-f", "-"], [...docs, type].map((d) => stringify(d)).join("---\n"));
  const kc = new KubeConfig();
  kc.loadFromFile(process.env.KUBECONFIG!);
  manager = new Manager({ kubeConfig: kc, namespace: ns, site: "tokyo", log: createLogger({ name: "test-manager-tokyo", level: "error" }), executor: "jobs", jobSettings: DEFAULT_JOB_SETTINGS });
  await manager.start();
}, 120_000);

afterAll(async () => {
  await manager?.stop();
  // The finalizer belongs to the stopped manager: release it so the namespace can go.
  await kubectlAsync(["patch", "rtype", "cool-widget", "-n", ns, "--type=merge", "-p", '{"metadata":{"finalizers":null}}']);
  await dbs?.drop();
});

it("an operator with --site tokyo prepares and schedules tokyo only, and writes only tokyo's status", async () => {
  let rt: any;
  for (let i = 0; i < 120 && !rt?.status?.sites?.length; i++) {
    await new Promise((r) => setTimeout(r, 250));
    rt = JSON.parse((await kubectlAsync(["get", "rtype", "cool-widget", "-n", ns, "-o", "json"])).stdout);
  }
  expect(rt.status.sites.map((s: any) => s.name)).toEqual(["tokyo"]);
  expect(rt.status.sites[0]).toMatchObject({ ready: true, role: "secondary" });
  // Tables: the registry on tokyo's tracking DB; nothing on the primary, which london's operator owns.
  expect((await dbs.tracking.query(`SELECT to_regclass('cool_widget_registry') AS t`)).rows[0].t).not.toBeNull();
  expect((await dbs.primary.query(`SELECT to_regclass('cool_widget_states') AS t`)).rows[0].t).toBeNull();
  const jobs = JSON.parse((await kubectlAsync(["get", "jobs", "-n", ns, "-o", "json"])).stdout).items.map((j: any) => j.metadata.labels["geo.replication.dev/site"]);
  expect(jobs.length).toBeGreaterThan(0);
  expect(new Set(jobs)).toEqual(new Set(["tokyo"]));
  // Status: tokyo's is written; london's stays empty for london's own operator.
  for (let i = 0; i < 60; i++) {
    const tokyo = JSON.parse((await kubectlAsync(["get", "gsite", "tokyo", "-n", ns, "-o", "json"])).stdout);
    if (tokyo.status?.lastStatusTime) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  expect(JSON.parse((await kubectlAsync(["get", "gsite", "tokyo", "-n", ns, "-o", "json"])).stdout).status.lastStatusTime).toBeDefined();
  expect(JSON.parse((await kubectlAsync(["get", "gsite", "london", "-n", ns, "-o", "json"])).stdout).status).toBeUndefined();
});

it("reports the schema version its database records, also once the schema step is cached", async () => {
  const rtOf = async () => JSON.parse((await kubectlAsync(["get", "rtype", "cool-widget", "-n", ns, "-o", "json"])).stdout);
  const tokyoVersion = (rt: any) => rt.status?.sites?.find((s: any) => s.name === "tokyo")?.schemaVersion;
  // Version 2 of the registry's schema adds the row counters' triggers (registry/row-counts.ts).
  for (let i = 0; i < 120 && tokyoVersion(await rtOf()) !== 2; i++) await new Promise((r) => setTimeout(r, 250));
  expect(tokyoVersion(await rtOf())).toBe(2);
  // A later version recorded in the tracking database (as a newer operator would leave it): the
  // next generation's schema step finds nothing to apply and reports what the database says.
  await dbs.tracking.query(
    `INSERT INTO geo_operator_schema_migrations (type_name, role, version) VALUES ('cool_widget', 'secondary', 7) ON CONFLICT DO NOTHING`,
  );
  kubectlOk(["patch", "rtype", "cool-widget", "-n", ns, "--type=merge", "-p", JSON.stringify({ spec: { intervals: { sync: "2m" } } })]);
  let version: unknown;
  for (let i = 0; i < 120 && version !== 7; i++) {
    await new Promise((r) => setTimeout(r, 250));
    version = tokyoVersion(await rtOf());
  }
  expect(version).toBe(7);
});
