import { describe, expect, it } from "vitest";
import type { SiteServer } from "../strategies/site-server.ts";
import { renderServerDeployment, renderServerService, serverSpecHash, SERVER_LABEL } from "./site-servers.ts";

const server = (over: Partial<SiteServer> = {}): SiteServer => ({
  name: "geo-files-london",
  namespace: "geo",
  site: "london",
  args: ["serve-files", "--root", "/data", "--port", "8443"],
  env: [{ name: "GEO_FILES_TLS_CERT", valueFrom: { secretKeyRef: { name: "files-tls", key: "tls.crt" } } }],
  volumes: [{ name: "files", persistentVolumeClaim: { claimName: "uploads", readOnly: true } }],
  mounts: [{ name: "files", mountPath: "/data", readOnly: true }],
  port: 8443,
  readinessPath: "/v1/ready",
  start: () => Promise.reject(new Error("not used")),
  ...over,
});
const settings = { image: "geo-operator:test", resources: { requests: { cpu: "50m" }, limits: { memory: "256Mi" } } };

describe("site server resources", () => {
  it("renders a restricted Deployment that references Secrets and mounts the volume read-only", () => {
    const d = renderServerDeployment(server(), settings);
    const pod = d.spec!.template.spec!;
    const c = pod.containers[0]!;
    expect(d.metadata!.name).toBe("geo-files-london");
    expect(d.spec!.selector.matchLabels).toEqual({ [SERVER_LABEL]: "geo-files-london" });
    expect(d.spec!.template.metadata!.labels![SERVER_LABEL]).toBe("geo-files-london");
    expect(c.args).toEqual(["serve-files", "--root", "/data", "--port", "8443"]);
    expect(c.env!.find((e) => e.name === "GEO_FILES_TLS_CERT")!.valueFrom!.secretKeyRef!.name).toBe("files-tls");
    expect(c.env!.some((e) => e.value !== undefined && e.name.startsWith("GEO_FILES_TLS"))).toBe(false);
    expect(c.volumeMounts).toContainEqual({ name: "files", mountPath: "/data", readOnly: true });
    expect(c.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, runAsNonRoot: true });
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(c.readinessProbe!.httpGet).toMatchObject({ path: "/v1/ready", port: 8443, scheme: "HTTPS" });
  });

  it("makes the GeoSite the owner of both objects when its uid is known, so deleting the site removes them", () => {
    const site = { namespace: "geo", name: "london", uid: "1234-abcd" };
    const owner = { apiVersion: "geo.replication.dev/v1alpha1", kind: "GeoSite", name: "london", uid: "1234-abcd", controller: true };
    expect(renderServerDeployment(server(), settings, site).metadata!.ownerReferences).toEqual([owner]);
    expect(renderServerService(server(), site).metadata!.ownerReferences).toEqual([owner]);
    expect(renderServerDeployment(server(), settings, { namespace: "geo", name: "london" }).metadata!.ownerReferences).toBeUndefined();
  });

  it("exposes the server port through a Service that selects only this server", () => {
    const s = renderServerService(server());
    expect(s.spec!.selector).toEqual({ [SERVER_LABEL]: "geo-files-london" });
    expect(s.spec!.ports).toEqual([{ name: "https", port: 8443, targetPort: 8443 }]);
  });

  it("changes the spec hash when anything the pod runs with changes, and only then", () => {
    const base = serverSpecHash(server());
    expect(serverSpecHash(server())).toBe(base);
    expect(serverSpecHash(server({ args: ["serve-files", "--root", "/other"] }))).not.toBe(base);
    expect(serverSpecHash(server({ port: 9443 }))).not.toBe(base);
    expect(serverSpecHash(server({ env: [] }))).not.toBe(base);
    expect(renderServerDeployment(server({ port: 9443 }), settings).metadata!.annotations).not.toEqual(renderServerDeployment(server(), settings).metadata!.annotations);
  });
});
