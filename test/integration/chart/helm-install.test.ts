/**
 * `helm install` of charts/geo-operator into the test API server with the real helm, checked with
 * the real kubectl: the objects and their fields, the CRDs, RBAC as the API server evaluates it,
 * Pod Security admission of the operator's pod, and `helm uninstall` (which keeps the CRDs).
 *
 * Shares the API server with every other integration test: each release has a unique name and
 * namespace, so its cluster-scoped ClusterRole/ClusterRoleBinding never collide, and the CRDs
 * (crds/, skipped by helm when present) are never deleted.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNamespace, kubectl, kubectlOk } from "../../support/kubectl.ts";
import { CHART_DIR, run } from "../../unit/chart/render.ts";

const suffix = randomBytes(3).toString("hex");
// Names that contain the chart name are used as they are (the chart's fullname rule).
const release = `geo-operator-${suffix}`;
const second = `geo-operator-b-${suffix}`;
let ns: string;
let ns2: string;
let notes = "";

function helm(args: string[]): string {
  const res = run(process.env.GEO_TEST_HELM!, [...args, "--kubeconfig", process.env.KUBECONFIG!]);
  if (res.code !== 0) throw new Error(`helm ${args.join(" ")} failed (${res.code}): ${res.stderr}`);
  return res.stdout;
}
const getJSON = (args: string[]) => JSON.parse(kubectlOk([...args, "-o", "json"]));
const canI = (sa: string, args: string[]) => kubectl(["auth", "can-i", `--as=system:serviceaccount:${sa}`, ...args]).stdout.trim();

describe("helm install charts/geo-operator", () => {
  beforeAll(() => {
    ns = createNamespace("geo-chart");
    ns2 = createNamespace("geo-chart2");
    // The local environment serves the registry API (one APIService per cluster): these releases do not.
    notes = helm(["install", release, CHART_DIR, "--namespace", ns, "--set", "site=tokyo", "--set", "worker.serviceAccountName=geo-worker", "--set", "registryApi.enabled=false"]);
    // A second release in parallel: cluster-scoped names must not collide.
    helm(["install", second, CHART_DIR, "--namespace", ns2, "--set", "registryApi.enabled=false"]);
  });

  afterAll(() => {
    for (const [r, n] of [[release, ns], [second, ns2]] as const) run(process.env.GEO_TEST_HELM!, ["uninstall", r, "--namespace", n, "--kubeconfig", process.env.KUBECONFIG!]);
  });

  it("prints what to do next", () => {
    expect(notes).toContain("kubectl get geosites");
    expect(notes).toContain(`It acts for the GeoSite "tokyo" only.`);
    expect(notes).toContain(`Worker Jobs run as ServiceAccount "geo-worker"`);
  });

  it("installs the CRDs, established", () => {
    kubectlOk(["wait", "--for=condition=Established", "--timeout=60s", "crd/geosites.geo.replication.dev", "crd/replicabletypes.geo.replication.dev"]);
  });

  it("creates the Deployment with the expected args, probes and security context", () => {
    const d = getJSON(["get", "deployment", release, "-n", ns]);
    const pod = d.spec.template.spec;
    const c = pod.containers[0];
    expect(pod.serviceAccountName).toBe(release);
    expect(c.args).toEqual(expect.arrayContaining(["manager", "--site=tokyo", "--leader-elect", "--job-service-account=geo-worker", "--metrics-bind-address=:9090", "--health-probe-bind-address=:8081"]));
    expect(c.env).toContainEqual({ name: "POD_NAMESPACE", valueFrom: { fieldRef: { apiVersion: "v1", fieldPath: "metadata.namespace" } } });
    expect(c.livenessProbe.httpGet).toMatchObject({ path: "/healthz", port: "health" });
    expect(c.readinessProbe.httpGet).toMatchObject({ path: "/readyz", port: "health" });
    expect(c.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ["ALL"] } });
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } });
  });

  it("creates the ServiceAccount and the metrics Service on 9090", () => {
    getJSON(["get", "serviceaccount", release, "-n", ns]);
    const svc = getJSON(["get", "service", `${release}-metrics`, "-n", ns]);
    expect(svc.spec.ports).toEqual([expect.objectContaining({ name: "metrics", port: 9090, targetPort: "metrics" })]);
  });

  it("creates one ClusterRole per release, bound to the release's ServiceAccount", () => {
    for (const [r, n] of [[release, ns], [second, ns2]] as const) {
      const role = getJSON(["get", "clusterrole", `${n}-${r}`]);
      expect(role.rules.length).toBeGreaterThan(0);
      const binding = getJSON(["get", "clusterrolebinding", `${n}-${r}`]);
      expect(binding.subjects).toEqual([{ kind: "ServiceAccount", name: r, namespace: n }]);
    }
  });

  it("grants the operator what it uses and no more (as the API server evaluates RBAC)", () => {
    const sa = `${ns}:${release}`;
    const other = ns2;
    const allowed: string[][] = [
      ["list", "geosites.geo.replication.dev", "--all-namespaces"],
      ["watch", "replicabletypes.geo.replication.dev", "--all-namespaces"],
      ["patch", "replicabletypes.geo.replication.dev", "-n", other],
      ["patch", "geosites.geo.replication.dev", "--subresource=status", "-n", other],
      ["create", "jobs.batch", "-n", other],
      ["delete", "jobs.batch", "-n", other],
      ["get", "secrets", "-n", other],
      ["create", "events", "-n", other],
      ["update", "leases.coordination.k8s.io", "-n", ns],
    ];
    const denied: string[][] = [
      ["list", "secrets", "-n", other],
      ["update", "geosites.geo.replication.dev", "-n", other],
      ["patch", "geosites.geo.replication.dev", "-n", other],
      ["update", "jobs.batch", "-n", other],
      ["create", "pods", "-n", other],
      ["create", "leases.coordination.k8s.io", "-n", other],
      ["delete", "customresourcedefinitions.apiextensions.k8s.io"],
    ];
    for (const a of allowed) expect(canI(sa, a), a.join(" ")).toBe("yes");
    for (const a of denied) expect(canI(sa, a), a.join(" ")).toBe("no");
  });

  it("its pod is admitted under the restricted Pod Security profile", () => {
    const pssNs = createNamespace("geo-chart-pss");
    kubectlOk(["label", "namespace", pssNs, "pod-security.kubernetes.io/enforce=restricted"]);
    const template = getJSON(["get", "deployment", release, "-n", ns]).spec.template;
    const pod = { apiVersion: "v1", kind: "Pod", metadata: { name: "manager", namespace: pssNs, labels: template.metadata.labels }, spec: { ...template.spec, serviceAccountName: "default" } };
    const admitted = kubectl(["create", "--dry-run=server", "-f", "-"], JSON.stringify(pod));
    expect(admitted.stderr).toBe("");
    expect(admitted.code).toBe(0);
    // The control: the same pod without its security context is refused, so admission is active.
    const c = pod.spec.containers[0];
    const bare = { ...pod, spec: { ...pod.spec, securityContext: {}, containers: [{ ...c, securityContext: {} }] } };
    const refused = kubectl(["create", "--dry-run=server", "-f", "-"], JSON.stringify(bare));
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain("violates PodSecurity");
  });

  it("helm uninstall removes the release's objects and keeps the CRDs", () => {
    helm(["uninstall", second, "--namespace", ns2, "--wait"]);
    for (const args of [
      ["deployment", second, "-n", ns2],
      ["serviceaccount", second, "-n", ns2],
      ["service", `${second}-metrics`, "-n", ns2],
      ["role", `${second}-leader-election`, "-n", ns2],
      ["clusterrole", `${ns2}-${second}`],
      ["clusterrolebinding", `${ns2}-${second}`],
    ]) {
      const res = kubectl(["get", ...args]);
      expect(res.stderr, args.join(" ")).toContain("NotFound");
    }
    kubectlOk(["get", "crd", "geosites.geo.replication.dev", "replicabletypes.geo.replication.dev"]);
    // The other release is untouched.
    kubectlOk(["get", "clusterrole", `${ns}-${release}`]);
  });
});
