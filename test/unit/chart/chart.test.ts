/** The Helm chart rendered by the real helm: lint, security, flags, optional parts, values schema. */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../../hack/localenv/tools.ts";
import { CHART_DIR, find, get, helm, helmTemplate, helmTemplateRaw, KUBE_VERSION, type Manifest } from "./render.ts";

const manager = (m: Manifest[]) => get(m, "Deployment").spec.template.spec.containers.find((c: { name: string }) => c.name === "manager");
const args = (m: Manifest[]): string[] => manager(m).args;
const env = (m: Manifest[], name: string) => manager(m).env.find((e: { name: string }) => e.name === name);

describe("helm chart", () => {
  it("passes helm lint --strict", () => {
    const res = helm(["lint", "--strict", CHART_DIR, "--kube-version", KUBE_VERSION]);
    expect(res.stderr + res.stdout).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
    expect(res.code).toBe(0);
  });

  it("renders the operator's objects with default values (no monitoring objects)", () => {
    const kinds = helmTemplate().map((m) => m.kind).sort();
    expect(kinds).toEqual(["APIService", "ClusterRole", "ClusterRole", "ClusterRole", "ClusterRoleBinding", "Deployment", "Role", "RoleBinding", "Secret", "Service", "Service", "ServiceAccount"]);
  });

  it("runs the manager under the restricted Pod Security profile", () => {
    const m = helmTemplate();
    const pod = get(m, "Deployment").spec.template.spec;
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } });
    expect(manager(m).securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      capabilities: { drop: ["ALL"] },
      seccompProfile: { type: "RuntimeDefault" },
    });
    // A read-only root needs a writable /tmp (HOME, git, the in-process executor).
    expect(manager(m).volumeMounts).toContainEqual({ name: "tmp", mountPath: "/tmp" });
    expect(pod.volumes).toContainEqual({ name: "tmp", emptyDir: {} });
  });

  it("probes /healthz and /readyz on 8081, exposes metrics on 9090 through a Service", () => {
    const m = helmTemplate();
    const c = manager(m);
    expect(c.ports).toEqual([
      { name: "metrics", containerPort: 9090, protocol: "TCP" },
      { name: "health", containerPort: 8081, protocol: "TCP" },
      { name: "registry-api", containerPort: 8443, protocol: "TCP" },
    ]);
    expect(c.livenessProbe.httpGet).toEqual({ path: "/healthz", port: "health" });
    expect(c.readinessProbe.httpGet).toEqual({ path: "/readyz", port: "health" });
    const svc = get(m, "Service", "geo-operator-metrics");
    expect(svc.spec.ports).toEqual([{ name: "metrics", port: 9090, targetPort: "metrics", protocol: "TCP" }]);
    expect(svc.spec.selector).toEqual(get(m, "Deployment").spec.selector.matchLabels);
  });

  it("passes the manager its flags, POD_NAMESPACE from the downward API and the worker image", () => {
    const m = helmTemplate();
    expect(args(m)).toEqual([
      "manager",
      "--executor=jobs",
      "--metrics-bind-address=:9090",
      "--health-probe-bind-address=:8081",
      "--leader-elect",
      "--max-run=600",
      "--log-level=info",
      "--registry-api-bind-address=:8443",
      "--registry-api-cert-dir=/tls",
    ]);
    expect(env(m, "POD_NAMESPACE")).toEqual({ name: "POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } });
    expect(manager(m).image).toBe("geo-operator:0.1.0");
    expect(env(m, "GEO_OPERATOR_IMAGE").value).toBe("geo-operator:0.1.0");
  });

  it("renders values into flags: site, executor, worker settings, replicas", () => {
    const m = helmTemplate({
      set: [
        "site=tokyo",
        "executor=in-process",
        "replicaCount=2",
        "worker.serviceAccountName=geo-worker",
        "worker.maxRunSeconds=120",
        "worker.image.pullPolicy=Always",
        "worker.image.repository=registry.example/geo-worker",
        "worker.image.tag=1.2.3",
        "image.repository=registry.example/geo-operator",
        "image.digest=sha256:" + "a".repeat(64),
      ],
    });
    expect(args(m)).toEqual(expect.arrayContaining(["--site=tokyo", "--executor=in-process", "--leader-elect", "--job-service-account=geo-worker", "--max-run=120", "--image-pull-policy=Always"]));
    expect(get(m, "Deployment").spec.replicas).toBe(2);
    expect(manager(m).image).toBe(`registry.example/geo-operator@sha256:${"a".repeat(64)}`);
    expect(env(m, "GEO_OPERATOR_IMAGE").value).toBe("registry.example/geo-worker:1.2.3");
    expect(args(helmTemplate()).some((a) => a.startsWith("--site"))).toBe(false);
  });

  it("every flag the chart passes exists in `geo-operator manager --help`", () => {
    const help = spawnSync(process.execPath, [join(REPO_ROOT, "bin/geo-operator.js"), "manager", "--help"], { encoding: "utf8" });
    expect(help.status).toBe(0);
    const m = helmTemplate({ set: ["site=a", "worker.serviceAccountName=b", "worker.image.pullPolicy=Always"] });
    for (const arg of args(m).slice(1)) expect(help.stdout, arg).toContain(arg.split("=")[0]!);
    // Starting Node and the CLI takes seconds when the two cores are busy.
  }, 30_000);

  it("refuses several replicas without leader election", () => {
    const res = helmTemplateRaw({ set: ["replicaCount=3", "leaderElection.enabled=false"] });
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain("replicaCount > 1 needs leaderElection.enabled=true");
    expect(args(helmTemplate({ set: ["leaderElection.enabled=false"] }))).not.toContain("--leader-elect");
  });

  it("renders ServiceMonitor, PrometheusRule and the dashboard ConfigMap only when enabled", () => {
    const off = helmTemplate();
    for (const kind of ["ServiceMonitor", "PrometheusRule", "ConfigMap"]) expect(find(off, kind)).toBeUndefined();
    const on = helmTemplate({ set: ["metrics.serviceMonitor.enabled=true", "metrics.prometheusRule.enabled=true", "dashboard.enabled=true"] });
    const sm = get(on, "ServiceMonitor", "geo-operator");
    expect(sm.spec.endpoints).toEqual([expect.objectContaining({ port: "metrics", path: "/metrics" })]);
    expect(get(on, "Service", "geo-operator-metrics").metadata.labels).toMatchObject(sm.spec.selector.matchLabels);
    // The log cursors' Services, in every namespace (in the release's only for a namespaced install).
    const cursors = get(on, "ServiceMonitor", "geo-operator-cursors");
    expect(cursors.spec.endpoints).toEqual([expect.objectContaining({ port: "http", path: "/metrics" })]);
    expect(cursors.spec.namespaceSelector).toEqual({ any: true });
    const namespaced = helmTemplate({ set: ["metrics.serviceMonitor.enabled=true", "rbac.namespaced=true"] });
    expect(get(namespaced, "ServiceMonitor", "geo-operator-cursors").spec.namespaceSelector).toEqual({ matchNames: ["geo-operator-system"] });
    expect(get(on, "PrometheusRule").spec.groups[0].rules.map((r: { alert: string }) => r.alert)).toEqual(["GeoSiteUnhealthy", "GeoVerificationFailuresRising", "GeoOldestPendingTooOld", "GeoEventCursorBehind"]);
    const cm = get(on, "ConfigMap");
    expect(cm.metadata.labels).toMatchObject({ grafana_dashboard: "1" });
    expect(JSON.parse(cm.data["geo-operator.json"])).toEqual(JSON.parse(readFileSync(join(CHART_DIR, "dashboards/geo-operator.json"), "utf8")));
  });

  it("a ServiceMonitor without the metrics Service is refused", () => {
    const res = helmTemplateRaw({ set: ["metrics.serviceMonitor.enabled=true", "metrics.service.enabled=false"] });
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain("metrics.serviceMonitor.enabled needs metrics.service.enabled=true");
  });

  it("ships the generated CRDs in crds/ (installed by helm, never templated)", () => {
    const crds = helmTemplate({ includeCrds: true }).filter((m) => m.kind === "CustomResourceDefinition");
    expect(crds.map((c) => c.metadata.name).sort()).toEqual(["geosites.geo.replication.dev", "replicabletypes.geo.replication.dev"]);
    for (const name of ["geosites", "replicabletypes"]) {
      const file = `${name}.geo.replication.dev.yaml`;
      expect(readFileSync(join(CHART_DIR, "crds", file), "utf8")).toBe(readFileSync(join(REPO_ROOT, "crds", file), "utf8"));
    }
  });
});

describe("values.schema.json", () => {
  const schema = JSON.parse(readFileSync(join(CHART_DIR, "values.schema.json"), "utf8"));

  it("closes every object it describes (additionalProperties: false)", () => {
    const open: string[] = [];
    const walk = (node: Record<string, any>, path: string) => {
      if (node.properties) {
        if (node.additionalProperties !== false) open.push(path || "(root)");
        for (const [k, v] of Object.entries(node.properties)) walk(v as Record<string, any>, `${path}.${k}`);
      }
    };
    walk(schema, "");
    expect(open).toEqual([]);
  });

  it("describes every key of values.yaml, and values.yaml passes it", () => {
    expect(helmTemplateRaw().code).toBe(0);
  });

  for (const [set, message] of [
    ["imag.tag=x", "additional properties 'imag' not allowed"],
    ["image.tg=x", "additional properties 'tg' not allowed"],
    ["metrics.serviceMonitor.enable=true", "additional properties 'enable' not allowed"],
    ["worker.serviceAcountName=x", "additional properties 'serviceAcountName' not allowed"],
    ["executor=cron", "value must be one of 'jobs', 'in-process'"],
    ["site=Tokyo_1", "/site"],
    ["metrics.prometheusRule.siteUnhealthyFor=ten", "/metrics/prometheusRule/siteUnhealthyFor"],
    ["metrics.prometheusRule.cursorLagFor=soon", "/metrics/prometheusRule/cursorLagFor"],
  ] as const) {
    it(`rejects --set ${set} with a clear message`, () => {
      const res = helmTemplateRaw({ set: [set] });
      expect(res.code).not.toBe(0);
      expect(res.stderr).toContain("values don't meet the specifications of the schema");
      expect(res.stderr).toContain(message);
    });
  }
});
