/**
 * `kubectl apply -k config/default` against the test API server. Server-side dry run: the real
 * apply would create cluster-scoped objects (CRDs, ClusterRole) that other test files share, and a
 * later delete would remove the CRDs under them. The namespace is created for real (it is
 * otherwise unused), because a dry run cannot place objects in a namespace that does not exist.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { kubectl, kubectlOk } from "../../support/kubectl.ts";
import { KUSTOMIZE_DEFAULT, kustomize } from "../../unit/chart/render.ts";

describe("kubectl apply -k config/default", () => {
  beforeAll(() => {
    const ns = kustomize().find((m) => m.kind === "Namespace")!;
    kubectlOk(["apply", "-f", "-"], JSON.stringify(ns));
  });

  it("is accepted by the API server for every object", () => {
    const out = kubectlOk(["apply", "-k", KUSTOMIZE_DEFAULT, "--dry-run=server"]);
    for (const m of kustomize()) {
      const group = m.apiVersion.includes("/") ? m.apiVersion.split("/")[0] : "";
      const id = `${m.kind.toLowerCase()}${group ? `.${group}` : ""}/${m.metadata.name}`;
      expect(out, id).toMatch(new RegExp(`^${id.replace(/\./g, "\\.")} (created|configured|unchanged) \\(server dry run\\)$`, "m"));
    }
  });

  it("is accepted as a server-side apply too", () => {
    const res = kubectl(["apply", "-k", KUSTOMIZE_DEFAULT, "--server-side", "--force-conflicts", "--field-manager=geo-kustomize-test", "--dry-run=server"]);
    expect(res.stderr).toBe("");
    expect(res.code).toBe(0);
  });

  it("its pod is admitted in geo-operator-system under the enforced restricted profile", () => {
    const d = kustomize().find((m) => m.kind === "Deployment")!;
    const pod = { apiVersion: "v1", kind: "Pod", metadata: { name: "manager", namespace: "geo-operator-system" }, spec: { ...d.spec.template.spec, serviceAccountName: "default" } };
    const res = kubectl(["create", "--dry-run=server", "-f", "-"], JSON.stringify(pod));
    expect(res.stderr).toBe("");
    expect(res.code).toBe(0);
  });
});
