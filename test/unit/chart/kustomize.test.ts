/**
 * `kubectl apply -k config/default` installs the same operator as the chart with matching values:
 * the parts that decide behaviour and security are compared field by field.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../../hack/localenv/tools.ts";
import { flattenRules, get, helmTemplate, kustomize, KUSTOMIZE_NAMESPACED, type Manifest } from "./render.ts";

const container = (m: Manifest[]) => get(m, "Deployment").spec.template.spec.containers[0];

describe("config/default matches the chart", () => {
  // The chart's defaults, released as geo-operator into geo-operator-system (what the docs show).
  // config/ ships no registry API (an APIService and its certificate need the chart's templating).
  const chart = helmTemplate({ release: "geo-operator", namespace: "geo-operator-system", includeCrds: true, set: ["registryApi.enabled=false"] });
  const kust = kustomize();
  const tmp = mkdtempSync(join(tmpdir(), "geo-kustomize-"));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it("renders the same kinds and names", () => {
    const ids = (m: Manifest[]) => m.map((x) => `${x.kind}/${x.metadata.namespace ?? ""}/${x.metadata.name}`).sort();
    // The chart never creates its namespace (helm install --create-namespace does).
    expect(ids(kust).filter((id) => !id.startsWith("Namespace/"))).toEqual(ids(chart));
  });

  it("creates geo-operator-system with the restricted Pod Security labels", () => {
    expect(get(kust, "Namespace", "geo-operator-system").metadata.labels).toMatchObject({
      "pod-security.kubernetes.io/enforce": "restricted",
      "pod-security.kubernetes.io/audit": "restricted",
      "pod-security.kubernetes.io/warn": "restricted",
    });
  });

  it("has the same RBAC rules and bindings", () => {
    for (const kind of ["ClusterRole", "Role"]) expect(flattenRules(get(kust, kind).rules), kind).toEqual(flattenRules(get(chart, kind).rules));
    for (const kind of ["ClusterRoleBinding", "RoleBinding"]) {
      expect(get(kust, kind).subjects, kind).toEqual(get(chart, kind).subjects);
      expect(get(kust, kind).roleRef, kind).toEqual(get(chart, kind).roleRef);
    }
  });

  it("has the same Deployment: args, env, image, securityContext, probes, ports, volumes, resources", () => {
    const [k, c] = [container(kust), container(chart)];
    for (const field of ["name", "image", "imagePullPolicy", "args", "env", "ports", "livenessProbe", "readinessProbe", "securityContext", "resources", "volumeMounts"]) {
      expect(k[field], field).toEqual(c[field]);
    }
    const [kp, cp] = [get(kust, "Deployment").spec, get(chart, "Deployment").spec];
    expect(kp.replicas).toEqual(cp.replicas);
    expect(kp.selector).toEqual(cp.selector);
    for (const field of ["securityContext", "volumes", "serviceAccountName", "terminationGracePeriodSeconds"]) expect(kp.template.spec[field], field).toEqual(cp.template.spec[field]);
    expect(kp.template.metadata.labels).toMatchObject(cp.selector.matchLabels);
  });

  it("has the same metrics Service", () => {
    const [k, c] = [get(kust, "Service").spec, get(chart, "Service").spec];
    expect(k.ports).toEqual(c.ports);
    expect(k.selector).toEqual(c.selector);
    expect(k.type).toEqual(c.type);
  });

  it("has the same CRDs", () => {
    const crds = (m: Manifest[]) => m.filter((x) => x.kind === "CustomResourceDefinition").sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
    const strip = (x: Manifest) => ({ ...x, metadata: { ...x.metadata, labels: undefined } });
    expect(crds(kust).map(strip)).toEqual(crds(chart).map(strip));
    expect(crds(kust)).toHaveLength(2);
  });

  it("moves the worker image with `kustomize edit set image` in config/manager", () => {
    cpSync(join(REPO_ROOT, "config"), join(tmp, "config"), { recursive: true });
    const file = join(tmp, "config/manager/kustomization.yaml");
    writeFileSync(file, readFileSync(file, "utf8").replace("newTag: 0.1.0", "newName: registry.example/geo-operator\n    newTag: 9.9.9"));
    const c = container(kustomize(join(tmp, "config/default")));
    expect(c.image).toBe("registry.example/geo-operator:9.9.9");
    expect(c.env.find((e: { name: string }) => e.name === "GEO_OPERATOR_IMAGE").value).toBe("registry.example/geo-operator:9.9.9");
  });

  it("uses the chart's image tag (appVersion)", () => {
    const appVersion = /appVersion:\s*"?([^"\n]+)"?/.exec(readFileSync(join(REPO_ROOT, "charts/geo-operator/Chart.yaml"), "utf8"))![1];
    expect(container(kust).image).toBe(`geo-operator:${appVersion}`);
  });
});

describe("config/namespaced matches the chart with rbac.namespaced=true", () => {
  const chart = helmTemplate({ release: "geo-operator", namespace: "geo-operator-system", includeCrds: true, set: ["rbac.namespaced=true", "registryApi.enabled=false"] });
  const kust = kustomize(KUSTOMIZE_NAMESPACED);

  it("renders the same kinds and names", () => {
    const ids = (m: Manifest[]) => m.map((x) => `${x.kind}/${x.metadata.namespace ?? ""}/${x.metadata.name}`).sort();
    expect(ids(kust).filter((id) => !id.startsWith("Namespace/"))).toEqual(ids(chart));
  });

  it("has the same Roles and RoleBindings", () => {
    const byName = (m: Manifest[], kind: string) => Object.fromEntries(m.filter((x) => x.kind === kind).map((x) => [x.metadata.name, x]));
    const [kr, cr] = [byName(kust, "Role"), byName(chart, "Role")];
    expect(Object.keys(kr).sort()).toEqual(Object.keys(cr).sort());
    for (const name of Object.keys(cr)) expect(flattenRules(kr[name]!.rules), name).toEqual(flattenRules(cr[name]!.rules));
    const [kb, cb] = [byName(kust, "RoleBinding"), byName(chart, "RoleBinding")];
    for (const name of Object.keys(cb)) {
      expect(kb[name]?.subjects, name).toEqual(cb[name]!.subjects);
      expect(kb[name]?.roleRef, name).toEqual(cb[name]!.roleRef);
    }
  });

  it("has the same container env (WATCH_NAMESPACE included)", () => {
    expect(container(kust).env).toEqual(container(chart).env);
    expect(container(kust).env.map((e: { name: string }) => e.name)).toContain("WATCH_NAMESPACE");
  });
});
