/**
 * The chart's and kustomize's RBAC grant exactly what the operator's code calls: derived from the
 * source (api-calls.ts), compared verb for verb in both directions.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../../hack/localenv/tools.ts";
import { apiUses, requiredPermissions } from "./api-calls.ts";
import { flattenRules, get, helmTemplate, kustomize, KUSTOMIZE_NAMESPACED, type Manifest } from "./render.ts";

/** ClusterRole + Role rules of one rendering, as "group|resource|verb". */
function granted(manifests: Manifest[]): { cluster: string[]; namespaced: string[] } {
  // geo-viewer and geo-operator-admin are for people, not the operator's ServiceAccount.
  const forOperator = (m: Manifest) => m.metadata.labels?.["app.kubernetes.io/component"] !== "user-roles";
  const roles = (kind: string) => manifests.filter((m) => m.kind === kind && forOperator(m)).flatMap((m) => m.rules ?? []);
  return { cluster: flattenRules(roles("ClusterRole")), namespaced: flattenRules(roles("Role")) };
}

describe("RBAC derived from the operator's source", () => {
  const uses = apiUses();
  const required = requiredPermissions(uses);

  it("finds the API calls the operator is known to make", () => {
    // A guard for the scanner itself: if it stops seeing calls, the comparisons below prove nothing.
    expect(required).toEqual(expect.arrayContaining(["batch|jobs|create", "|secrets|get", "geo.replication.dev|replicabletypes/status|patch", "coordination.k8s.io|leases|update"]));
    for (const u of uses) expect(u.where).toMatch(/^(src|cmd)\/.+\.ts:\d+$/);
  });

  for (const [name, render, registryApi] of [
    ["chart", () => helmTemplate(), true],
    ["chart with registryApi.enabled=false", () => helmTemplate({ set: ["registryApi.enabled=false"] }), false],
    ["config/default", () => kustomize(), false],
  ] as const) {
    it(`${name}: ClusterRole + leader-election Role grant exactly the verbs the code uses`, () => {
      const required = requiredPermissions(uses, { registryApi });
      const { cluster, namespaced } = granted(render());
      const all = [...new Set([...cluster, ...namespaced])].sort();
      const where = (p: string) => uses.filter((u) => u.permission === p).map((u) => u.where).join(", ");
      const missing = required.filter((p) => !all.includes(p)).map((p) => `${p} (used at ${where(p)})`);
      const extra = all.filter((p) => !required.includes(p));
      expect({ missing, extra }).toEqual({ missing: [], extra: [] });
    });

    it(`${name}: leases only in the namespaced Role, nothing else there`, () => {
      const { cluster, namespaced } = granted(render());
      expect(cluster.filter((p) => p.startsWith("coordination.k8s.io|"))).toEqual([]);
      expect(namespaced.every((p) => p.startsWith("coordination.k8s.io|leases|"))).toBe(true);
    });
  }

  it("the chart binds its roles to its own ServiceAccount", () => {
    const m = helmTemplate({ release: "geo-a", namespace: "ns-a" });
    const sa = get(m, "ServiceAccount").metadata.name;
    for (const kind of ["ClusterRoleBinding", "RoleBinding"]) {
      const b = get(m, kind);
      expect(b.subjects).toEqual([{ kind: "ServiceAccount", name: sa, namespace: "ns-a" }]);
      expect(b.roleRef.name).toBe(get(m, kind.replace("Binding", "")).metadata.name);
    }
    expect(get(m, "Deployment").spec.template.spec.serviceAccountName).toBe(sa);
  });

  it("cluster-scoped names are unique per release and namespace", () => {
    const names = [
      ["one", "ns-a"],
      ["two", "ns-a"],
      ["one", "ns-b"],
    ].map(([release, namespace]) => {
      const m = helmTemplate({ release: release!, namespace: namespace! });
      return [get(m, "ClusterRole").metadata.name, get(m, "ClusterRoleBinding").metadata.name];
    });
    expect(new Set(names.map((n) => n[0])).size).toBe(3);
    expect(new Set(names.map((n) => n[1])).size).toBe(3);
  });

  describe("namespace-scoped install (rbac.namespaced=true, config/namespaced)", () => {
    const renders = [
      ["chart", () => helmTemplate({ release: "geo-a", namespace: "ns-a", set: ["rbac.namespaced=true", "registryApi.enabled=false"] }), "ns-a"],
      ["config/namespaced", () => kustomize(KUSTOMIZE_NAMESPACED), "geo-operator-system"],
    ] as const;
    for (const [name, render, namespace] of renders) {
      it(`${name}: no ClusterRole or ClusterRoleBinding; Roles in its namespace grant exactly the verbs the code uses`, () => {
        const m = render();
        expect(m.filter((x) => x.kind === "ClusterRole" || x.kind === "ClusterRoleBinding").map((x) => x.metadata.name)).toEqual([]);
        const roles = m.filter((x) => x.kind === "Role" || x.kind === "RoleBinding");
        expect(roles.length).toBe(4);
        for (const r of roles) expect(r.metadata.namespace, `${r.kind}/${r.metadata.name}`).toBe(namespace);
        const { namespaced } = granted(m);
        const needed = requiredPermissions(uses, { registryApi: false });
        const missing = needed.filter((p) => !namespaced.includes(p));
        const extra = namespaced.filter((p) => !needed.includes(p));
        expect({ missing, extra }).toEqual({ missing: [], extra: [] });
        // Secrets: get by name only.
        expect(namespaced.filter((p) => p.startsWith("|secrets|"))).toEqual(["|secrets|get"]);
      });

      it(`${name}: binds the Role to the operator's ServiceAccount and watches only its own namespace`, () => {
        const m = render();
        const sa = get(m, "ServiceAccount").metadata.name;
        const operatorRole = m.find((x) => x.kind === "Role" && !x.metadata.name.endsWith("-leader-election"))!;
        const binding = m.find((x) => x.kind === "RoleBinding" && x.roleRef.name === operatorRole.metadata.name)!;
        expect(binding.roleRef).toEqual({ apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: operatorRole.metadata.name });
        expect(binding.subjects).toEqual([{ kind: "ServiceAccount", name: sa, namespace }]);
        const env = get(m, "Deployment").spec.template.spec.containers[0].env;
        expect(env).toContainEqual({ name: "WATCH_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } });
      });
    }

    it("the default (cluster-scoped) install watches every namespace", () => {
      for (const m of [helmTemplate(), kustomize()]) {
        expect(get(m, "Deployment").spec.template.spec.containers[0].env.map((e: { name: string }) => e.name)).not.toContain("WATCH_NAMESPACE");
      }
    });
  });

  it("the manager reads the watched namespace from WATCH_NAMESPACE", () => {
    // The env var the chart and config/namespaced set must be the one cmd/commands/manager.ts reads.
    expect(readFileSync(join(REPO_ROOT, "cmd/commands/manager.ts"), "utf8")).toMatch(/"--namespace <ns>".*process\.env\.WATCH_NAMESPACE/);
  });

  it("the operator never lists or watches Secrets (the opt-in label is checked on each get)", () => {
    expect(required.filter((p) => p.startsWith("|secrets|"))).toEqual(["|secrets|get"]);
  });

  it("rbac.create=false renders no roles", () => {
    const m = helmTemplate({ set: ["rbac.create=false"] });
    expect(m.filter((x) => /Role/.test(x.kind)).map((x) => x.kind)).toEqual([]);
  });
});
