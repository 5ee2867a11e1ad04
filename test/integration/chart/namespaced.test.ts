/**
 * A namespace-scoped install: `helm install --set rbac.namespaced=true` gives the operator a Role
 * in its own namespace instead of a ClusterRole, and a manager holding only that Role (its
 * ServiceAccount's token) and watching that namespace still reconciles it, with labelled Secrets.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { parse, stringify } from "yaml";
import { REPO_ROOT } from "../../../hack/localenv/tools.ts";
import { LABELS } from "../../../src/api/v1alpha1/resources.ts";
import { DEFAULT_JOB_SETTINGS } from "../../../src/controllers/job-spec.ts";
import { Manager } from "../../../src/manager.ts";
import { createLogger } from "../../../src/util/log.ts";
import { createTestDatabases, type TestDatabases } from "../registry/databases.ts";
import { createNamespace, kubectl, kubectlAsync, kubectlOk } from "../../support/kubectl.ts";
import { CHART_DIR, run } from "../../unit/chart/render.ts";

const env = inject("env");
const release = `geo-operator-ns-${randomBytes(3).toString("hex")}`;
let ns: string;
let other: string;
let dbs: TestDatabases;
let manager: Manager | undefined;

function helm(args: string[]): string {
  const res = run(process.env.GEO_TEST_HELM!, [...args, "--kubeconfig", process.env.KUBECONFIG!]);
  if (res.code !== 0) throw new Error(`helm ${args.join(" ")} failed (${res.code}): ${res.stderr}`);
  return res.stdout;
}
const canI = (args: string[]) => kubectl(["auth", "can-i", `--as=system:serviceaccount:${ns}:${release}`, ...args]).stdout.trim();
const getJSON = async (args: string[]) => JSON.parse((await kubectlAsync([...args, "-o", "json"])).stdout);

/** A kubeconfig that authenticates as the release's ServiceAccount, as the operator's pod would. */
function serviceAccountKubeConfig(): KubeConfig {
  const admin = new KubeConfig();
  admin.loadFromFile(process.env.KUBECONFIG!);
  const cluster = admin.getCurrentCluster()!;
  const token = kubectlOk(["create", "token", release, "-n", ns]).trim();
  const kc = new KubeConfig();
  kc.loadFromOptions({ clusters: [cluster], users: [{ name: "operator", token }], contexts: [{ name: "operator", cluster: cluster.name, user: "operator" }], currentContext: "operator" });
  return kc;
}

beforeAll(async () => {
  kubectlOk(["apply", "--server-side", "-f", join(REPO_ROOT, "crds")]);
  ns = createNamespace("geo-scoped");
  other = createNamespace("geo-scoped-other");
  helm(["install", release, CHART_DIR, "--namespace", ns, "--set", "rbac.namespaced=true", "--set", "site=tokyo"]);

  dbs = await createTestDatabases();
  await dbs.primary.query(`CREATE TABLE cool_widgets (id bigserial PRIMARY KEY, namespace_id bigint, file_name text NOT NULL)`);
  const opted = { [LABELS.credentials]: "true" };
  const s3 = (side: "primary" | "secondary") => ({ endpoint: env.s3![side].endpoint, bucket: env.s3![side].bucket, forcePathStyle: true, credentialsSecretRef: { name: `${side}-s3` } });
  const gsite = (name: string, spec: object) => ({ apiVersion: "geo.replication.dev/v1alpha1", kind: "GeoSite", metadata: { name }, spec: { statusInterval: "2s", ...spec } });
  const sites = [
    gsite("london", { role: "primary", database: { secretRef: { name: "main-db" } }, objectStorage: s3("primary") }),
    gsite("tokyo", { role: "secondary", database: { secretRef: { name: "tracking-db" }, primaryReplicaSecretRef: { name: "main-db" } }, objectStorage: s3("secondary") }),
  ];
  const docs = [
    { apiVersion: "v1", kind: "Secret", metadata: { name: "main-db", labels: opted }, stringData: { url: dbs.primaryUrl } },
    { apiVersion: "v1", kind: "Secret", metadata: { name: "tracking-db", labels: opted }, stringData: { url: dbs.trackingUrl } },
    ...(["primary", "secondary"] as const).map((side) => ({ apiVersion: "v1", kind: "Secret", metadata: { name: `${side}-s3`, labels: opted }, stringData: { AWS_ACCESS_KEY_ID: env.s3![side].accessKeyId, AWS_SECRET_ACCESS_KEY: env.s3![side].secretAccessKey } })),
    ...sites,
  ];
  const type = parse(readFileSync(join(REPO_ROOT, "config/samples/replicabletype-cool-widget.yaml"), "utf8"));
  kubectlOk(["apply", "-n", ns, "-f", "-"], [...docs, type].map((d) => stringify(d)).join("---\n"));
  // The same GeoSites in a namespace outside the Role: the operator must neither see nor touch them.
  kubectlOk(["apply", "-n", other, "-f", "-"], sites.map((d) => stringify(d)).join("---\n"));
  // The authorizer sees the new Role through its informer, a moment later.
  for (let i = 0; i < 40 && canI(["list", "geosites.geo.replication.dev", "-n", ns]) !== "yes"; i++) await new Promise((r) => setTimeout(r, 250));
}, 120_000);

afterAll(async () => {
  await manager?.stop();
  // The finalizer belongs to the stopped manager: release it so the namespace can go.
  await kubectlAsync(["patch", "rtype", "cool-widget", "-n", ns, "--type=merge", "-p", '{"metadata":{"finalizers":null}}']);
  run(process.env.GEO_TEST_HELM!, ["uninstall", release, "--namespace", ns, "--kubeconfig", process.env.KUBECONFIG!]);
  await dbs?.drop();
});

describe("helm install --set rbac.namespaced=true", () => {
  it("creates a Role and RoleBinding in the release namespace and no ClusterRole", () => {
    expect(kubectl(["get", "clusterrole", `${ns}-${release}`]).stderr).toContain("NotFound");
    expect(kubectl(["get", "clusterrolebinding", `${ns}-${release}`]).stderr).toContain("NotFound");
    const role = JSON.parse(kubectlOk(["get", "role", release, "-n", ns, "-o", "json"]));
    expect(role.rules).toContainEqual({ apiGroups: [""], resources: ["secrets"], verbs: ["get"] });
    const binding = JSON.parse(kubectlOk(["get", "rolebinding", release, "-n", ns, "-o", "json"]));
    expect(binding.subjects).toEqual([{ kind: "ServiceAccount", name: release, namespace: ns }]);
    const c = JSON.parse(kubectlOk(["get", "deployment", release, "-n", ns, "-o", "json"])).spec.template.spec.containers[0];
    expect(c.env).toContainEqual({ name: "WATCH_NAMESPACE", valueFrom: { fieldRef: { apiVersion: "v1", fieldPath: "metadata.namespace" } } });
  });

  it("confines the operator to its namespace (as the API server evaluates RBAC)", () => {
    const allowed = [
      ["get", "secrets", "-n", ns],
      ["list", "geosites.geo.replication.dev", "-n", ns],
      ["watch", "replicabletypes.geo.replication.dev", "-n", ns],
      ["create", "jobs.batch", "-n", ns],
      ["create", "events", "-n", ns],
    ];
    const denied = [
      ["get", "secrets", "-n", other],
      ["get", "secrets", "-n", "kube-system"],
      ["list", "secrets", "-n", ns],
      ["watch", "secrets", "-n", ns],
      ["list", "geosites.geo.replication.dev", "--all-namespaces"],
      ["list", "geosites.geo.replication.dev", "-n", other],
      ["create", "jobs.batch", "-n", other],
      ["patch", "geosites.geo.replication.dev", "--subresource=status", "-n", other],
    ];
    for (const a of allowed) expect(canI(a), a.join(" ")).toBe("yes");
    for (const a of denied) expect(canI(a), a.join(" ")).toBe("no");
  });

  it("a manager with only the Role, watching its namespace, reconciles it and leaves other namespaces alone", async () => {
    manager = new Manager({
      kubeConfig: serviceAccountKubeConfig(),
      namespace: ns, // WATCH_NAMESPACE: the pod's own namespace
      site: "tokyo",
      log: createLogger({ name: "test-manager-scoped", level: "error" }),
      executor: "jobs",
      jobSettings: DEFAULT_JOB_SETTINGS,
    });
    await manager.start();
    let rt: any;
    for (let i = 0; i < 240 && !rt?.status?.sites?.[0]?.ready; i++) {
      await new Promise((r) => setTimeout(r, 250));
      rt = await getJSON(["get", "rtype", "cool-widget", "-n", ns]);
    }
    expect(rt.status.sites[0]).toMatchObject({ name: "tokyo", ready: true });
    // Jobs were created (their Secrets are labelled) in the watched namespace.
    await expect.poll(async () => (await getJSON(["get", "jobs", "-n", ns])).items.length, { timeout: 30_000 }).toBeGreaterThan(0);
    await expect.poll(async () => (await getJSON(["get", "gsite", "tokyo", "-n", ns])).status?.lastStatusTime, { timeout: 30_000 }).toBeDefined();
    // The GeoSite outside the namespace is untouched.
    expect((await getJSON(["get", "gsite", "tokyo", "-n", other])).status).toBeUndefined();
    expect((await getJSON(["get", "jobs", "-n", other])).items).toEqual([]);
  });
});
