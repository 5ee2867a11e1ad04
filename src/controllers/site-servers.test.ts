import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { GeoSite, ReplicableType } from "../api/v1alpha1/resources.ts";
import type { SiteServer } from "../strategies/site-server.ts";
import { desiredSiteServers, renderServerDeployment, renderServerService, serverSpecHash, SERVER_LABEL } from "./site-servers.ts";

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
    expect(serverSpecHash(server({ scheme: "HTTP" }))).not.toBe(base);
    expect(serverSpecHash(server({ labels: { a: "b" } }))).not.toBe(base);
    // Servers that set neither scheme nor labels keep the hash they had before both existed: no rollout on upgrade.
    const { name, namespace, site, args, env, volumes, mounts, port, readinessPath } = server();
    expect(base).toBe(createHash("sha256").update(JSON.stringify({ name, namespace, site, args, env, volumes, mounts, port, readinessPath })).digest("hex").slice(0, 16));
    expect(renderServerDeployment(server({ port: 9443 }), settings).metadata!.annotations).not.toEqual(renderServerDeployment(server(), settings).metadata!.annotations);
  });
});

describe("desiredSiteServers", () => {
  const site = (name: string, spec: Record<string, unknown>): GeoSite =>
    ({ apiVersion: "geo.replication.dev/v1alpha1", kind: "GeoSite", metadata: { name, namespace: "geo", uid: `uid-${name}` }, spec: { database: { secretRef: { name: "db" } }, ...spec } }) as unknown as GeoSite;
  const london = site("london", {
    role: "primary",
    fileStorage: { root: "/data", retrieval: { url: "https://files.london.example:8443", port: 8443, tlsSecretRef: { name: "tls" } } },
  });
  const tokyo = site("tokyo", { role: "secondary", fileStorage: { root: "/copies", retrievalCredentialsSecretRef: { name: "tokyo-key" } } });
  // Without change capture, so that only the strategies' servers are asked for (the log cursor's are below).
  const type = (name: string, spec: Record<string, unknown>): ReplicableType =>
    ({ metadata: { name, namespace: "geo" }, spec: { name, strategy: "blob", source: { table: name, objectKey: { template: "{id}" } }, changeCapture: "none", ...spec } }) as unknown as ReplicableType;

  it("asks for the retrieval server on a primary whose files some type reads, with one key per secondary", () => {
    const servers = desiredSiteServers(london, [london, tokyo], [type("upload", { blob: { primaryStore: "FileStorage" } })]);
    expect(servers.map((s) => s.name)).toEqual(["geo-files-london"]);
    expect(servers[0]!.env.map((e) => e.name)).toContain("GEO_FILES_SITE_KEY_tokyo");
  });

  it("asks for nothing when no type reads files, on a secondary, on a disabled site, or for a spec that cannot be parsed", () => {
    expect(desiredSiteServers(london, [london, tokyo], [type("widget", {})])).toEqual([]);
    expect(desiredSiteServers(tokyo, [london, tokyo], [type("upload", { blob: { primaryStore: "FileStorage" } })])).toEqual([]);
    const disabled = { ...london, spec: { ...london.spec, enabled: false } } as GeoSite;
    expect(desiredSiteServers(disabled, [disabled, tokyo], [type("upload", { blob: { primaryStore: "FileStorage" } })])).toEqual([]);
    const broken = { metadata: { name: "b", namespace: "geo" }, spec: { name: "b", strategy: "blob", source: { table: "b" }, blob: { primaryStore: "FileStorage" } } } as unknown as ReplicableType;
    expect(desiredSiteServers(london, [london, tokyo], [broken])).toEqual([]);
    expect(desiredSiteServers(london, [london, tokyo], [broken, type("upload", { source: { table: "uploads", objectKey: { column: "path" }, storeColumn: "store" } })]).map((s) => s.name)).toEqual(["geo-files-london"]);
  });
});

describe("the log cursor among a site's servers", () => {
  const meta = (name: string) => ({ name, namespace: "geo", uid: `uid-${name}` });
  const london = { metadata: meta("london"), spec: { role: "primary", database: { secretRef: { name: "main-db" } }, objectStorage: { endpoint: "https://s3.example", bucket: "london", credentialsSecretRef: { name: "london-s3" } } } } as unknown as GeoSite;
  const tokyo = {
    metadata: meta("tokyo"),
    spec: {
      role: "secondary",
      database: { secretRef: { name: "tracking-db" }, primaryReplicaSecretRef: { name: "replica-db" } },
      objectStorage: { endpoint: "https://s3.tokyo.example", bucket: "tokyo", credentialsSecretRef: { name: "tokyo-s3" } },
      git: { mirrorRoot: "/mirrors", persistentVolumeClaim: { claimName: "tokyo-mirrors" } },
    },
  } as unknown as GeoSite;
  const types = [
    { metadata: meta("cool-widget"), spec: { name: "cool_widget", strategy: "blob", source: { table: "cool_widgets", objectKey: { column: "path" } } } },
    { metadata: meta("design-repository"), spec: { name: "design_repository", strategy: "repository", source: { table: "design_repositories", repositoryPath: { template: "{disk_path}.git" } } } },
  ] as unknown as ReplicableType[];

  it("is asked for on the primary and on every valid secondary", () => {
    expect(desiredSiteServers(london, [london, tokyo], types).map((s) => s.name)).toEqual(["geo-cursor-london"]);
    expect(desiredSiteServers(tokyo, [london, tokyo], types).map((s) => s.name)).toEqual(["geo-cursor-tokyo"]);
  });

  it("is not asked for on a secondary the topology check refuses, or without a primary", () => {
    const pointsAtPrimary = { ...tokyo, spec: { ...tokyo.spec, database: { ...tokyo.spec.database, secretRef: { name: "main-db" } } } };
    expect(desiredSiteServers(pointsAtPrimary, [london, pointsAtPrimary], types)).toEqual([]);
    expect(desiredSiteServers(tokyo, [tokyo], types)).toEqual([]);
  });

  it("renders a Deployment probed over HTTP on /healthz and a Service with an http port, labelled as the log cursor", () => {
    const [server] = desiredSiteServers(tokyo, [london, tokyo], types);
    const d = renderServerDeployment(server!, settings);
    const c = d.spec!.template.spec!.containers[0]!;
    expect(c.command).toEqual(["geo-operator"]);
    expect(c.args).toEqual(["cursor", "--site", "tokyo", "--metrics-port", "9090"]);
    expect(c.readinessProbe!.httpGet).toEqual({ path: "/healthz", port: 9090, scheme: "HTTP" });
    expect(c.ports).toEqual([{ name: "http", containerPort: 9090 }]);
    expect(c.env!.filter((e) => e.value !== undefined && /URL|KEY|PASSWORD/.test(e.name))).toEqual([]);
    expect(c.env!.find((e) => e.name === "GEO_TRACKING_DB_URL")!.valueFrom!.secretKeyRef).toEqual({ name: "tracking-db", key: "url" });
    expect(d.spec!.template.spec!.volumes).toContainEqual({ name: "mirrors", persistentVolumeClaim: { claimName: "tokyo-mirrors" } });
    expect(c.volumeMounts).toContainEqual({ name: "mirrors", mountPath: "/mirrors" });
    expect(d.spec!.selector.matchLabels).toEqual({ [SERVER_LABEL]: "geo-cursor-tokyo" });
    expect(d.spec!.template.metadata!.labels).toMatchObject({ [SERVER_LABEL]: "geo-cursor-tokyo", "app.kubernetes.io/component": "log-cursor", "app.kubernetes.io/managed-by": "geo-operator" });
    const s = renderServerService(server!);
    expect(s.spec!.ports).toEqual([{ name: "http", port: 9090, targetPort: 9090 }]);
    expect(s.metadata!.labels).toMatchObject({ "app.kubernetes.io/component": "log-cursor", [SERVER_LABEL]: "geo-cursor-tokyo" });
  });
});
