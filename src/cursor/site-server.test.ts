import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import type { GeoSite, ReplicableType } from "../api/v1alpha1/resources.ts";
import { createLogger } from "../util/log.ts";
import { CURSOR_COMPONENT, cursorSiteServer, cursorWanted } from "./site-server.ts";

const meta = (name: string) => ({ name, namespace: "geo", uid: `uid-${name}`, generation: 1 });
const london: GeoSite = {
  apiVersion: "geo.replication.dev/v1alpha1",
  kind: "GeoSite",
  metadata: meta("london"),
  spec: {
    role: "primary",
    database: { secretRef: { name: "primary-main-db" } },
    objectStorage: { endpoint: "https://s3.example", bucket: "london", credentialsSecretRef: { name: "primary-s3" } },
    git: { baseURL: "https://git.example", credentialsSecretRef: { name: "primary-git" } },
  },
};
const tokyo: GeoSite = {
  apiVersion: "geo.replication.dev/v1alpha1",
  kind: "GeoSite",
  metadata: meta("tokyo"),
  spec: {
    role: "secondary",
    database: { secretRef: { name: "tracking-db", key: "dsn" }, primaryReplicaSecretRef: { name: "replica-db" } },
    objectStorage: { endpoint: "https://s3.tokyo.example", bucket: "tokyo", credentialsSecretRef: { name: "tokyo-s3" } },
    git: { mirrorRoot: "/var/opt/geo/mirrors", persistentVolumeClaim: { claimName: "tokyo-mirrors" } },
  },
};
const type = (name: string, spec: Partial<ReplicableType["spec"]>): ReplicableType => ({
  apiVersion: "geo.replication.dev/v1alpha1",
  kind: "ReplicableType",
  metadata: meta(name.replace(/_/g, "-")),
  spec: { name, strategy: "blob", source: { table: `${name}s`, objectKey: { column: "path" } }, ...spec },
});
const widgets = type("cool_widget", {});
const avatars = type("avatar", { intervals: { consistency: "1h" } });
const repos = type("design_repository", { strategy: "repository", source: { table: "design_repositories", repositoryPath: { template: "{disk_path}.git" } } });
const scanned = type("scanned_only", { changeCapture: "none" });
const types = [widgets, scanned, repos, avatars];

describe("the log cursor as a site server", () => {
  it("runs `geo-operator cursor` for the site on port 9090 over HTTP, named geo-cursor-<site>", () => {
    const server = cursorSiteServer({ site: tokyo, primary: london, types })!;
    expect(server).toMatchObject({ name: "geo-cursor-tokyo", namespace: "geo", site: "tokyo", port: 9090, scheme: "HTTP", readinessPath: "/healthz" });
    expect(server.args).toEqual(["cursor", "--site", "tokyo", "--metrics-port", "9090"]);
    expect(server.labels).toEqual({ "app.kubernetes.io/component": CURSOR_COMPONENT });
  });

  it("passes the specs of the types that capture changes, and the worker's site env without GEO_TYPE_SPEC", () => {
    const env = cursorSiteServer({ site: tokyo, primary: london, types })!.env;
    const value = (name: string) => env.find((e) => e.name === name)?.value;
    expect(JSON.parse(value("GEO_TYPE_SPECS")!).map((s: { name: string }) => s.name)).toEqual(["avatar", "cool_widget", "design_repository"]);
    expect(JSON.parse(value("GEO_TYPE_SPECS")!)[0]).toEqual(avatars.spec);
    expect(JSON.parse(value("GEO_SITE_SPEC")!)).toEqual(tokyo.spec);
    expect(JSON.parse(value("GEO_PRIMARY_SITE_SPEC")!)).toEqual(london.spec);
    expect(value("GEO_PRIMARY_SITE_NAME")).toBe("london");
    expect(env.some((e) => e.name === "GEO_TYPE_SPEC")).toBe(false);
  });

  it("references every secret and never holds a value: databases and each strategy's storage, once each", () => {
    const env = cursorSiteServer({ site: tokyo, primary: london, types })!.env;
    const refs = Object.fromEntries(env.filter((e) => e.valueFrom).map((e) => [e.name, `${e.valueFrom!.secretKeyRef!.name}/${e.valueFrom!.secretKeyRef!.key}`]));
    expect(refs).toEqual({
      GEO_PRIMARY_DB_URL: "replica-db/url",
      GEO_TRACKING_DB_URL: "tracking-db/dsn",
      GEO_PRIMARY_S3_ACCESS_KEY_ID: "primary-s3/AWS_ACCESS_KEY_ID",
      GEO_PRIMARY_S3_SECRET_ACCESS_KEY: "primary-s3/AWS_SECRET_ACCESS_KEY",
      GEO_SECONDARY_S3_ACCESS_KEY_ID: "tokyo-s3/AWS_ACCESS_KEY_ID",
      GEO_SECONDARY_S3_SECRET_ACCESS_KEY: "tokyo-s3/AWS_SECRET_ACCESS_KEY",
      GEO_PRIMARY_GIT_USERNAME: "primary-git/username",
      GEO_PRIMARY_GIT_PASSWORD: "primary-git/password",
    });
    expect(env.filter((e) => e.value !== undefined).map((e) => e.name).sort()).toEqual(["GEO_PRIMARY_SITE_NAME", "GEO_PRIMARY_SITE_SPEC", "GEO_SITE_SPEC", "GEO_TYPE_SPECS"]);
    expect(new Set(env.map((e) => e.name)).size).toBe(env.length);
  });

  it("mounts the volumes the strategies ask for once, however many types ask", () => {
    const twoRepos = [repos, type("wiki", { strategy: "repository", source: { table: "wikis", repositoryPath: { template: "{disk_path}.wiki.git" } } })];
    const server = cursorSiteServer({ site: tokyo, primary: london, types: twoRepos })!;
    expect(server.volumes).toEqual([{ name: "mirrors", persistentVolumeClaim: { claimName: "tokyo-mirrors" } }]);
    expect(server.mounts).toEqual([{ name: "mirrors", mountPath: "/var/opt/geo/mirrors" }]);
  });

  it("on the primary reads the main database and no tracking database", () => {
    const env = cursorSiteServer({ site: london, primary: london, types })!.env;
    expect(env.find((e) => e.name === "GEO_PRIMARY_DB_URL")!.valueFrom!.secretKeyRef).toEqual({ name: "primary-main-db", key: "url" });
    expect(env.some((e) => e.name === "GEO_TRACKING_DB_URL")).toBe(false);
  });

  it("is not wanted without a type that captures changes, with the cursor switched off, or on a disabled site", () => {
    expect(cursorWanted(tokyo, types)).toBe(true);
    expect(cursorSiteServer({ site: tokyo, primary: london, types: [scanned] })).toBeUndefined();
    const off = { ...tokyo, spec: { ...tokyo.spec, eventLog: { cursor: { enabled: false } } } };
    expect(cursorSiteServer({ site: off, primary: london, types })).toBeUndefined();
    const disabled = { ...tokyo, spec: { ...tokyo.spec, enabled: false } };
    expect(cursorSiteServer({ site: disabled, primary: london, types })).toBeUndefined();
    const broken = { ...widgets, spec: { ...widgets.spec, source: { table: "x" } } } as ReplicableType;
    expect(cursorSiteServer({ site: tokyo, primary: london, types: [broken] })).toBeUndefined();
  });

  it("runs the in-process cursor with its metrics on the registry it is given, and stops it on close", async () => {
    const registry = new Registry();
    const server = cursorSiteServer({ site: tokyo, primary: london, types, metricsRegistry: registry });
    // No databases here: the cursor fails its configuration check and is restarted later; it still serves /healthz.
    const running = await server!.start({}, createLogger({ name: "test", level: "silent" }));
    try {
      expect(running.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect((await fetch(`${running.url}/healthz`)).status).toBe(503);
      expect(await registry.getSingleMetric("geo_event_sync_latency_seconds")).toBeDefined();
      // A second cursor on the same registry reuses its metrics.
      const other = await server!.start({}, createLogger({ name: "test", level: "silent" }));
      await other.close();
    } finally {
      await running.close();
    }
    await expect(fetch(`${running.url}/healthz`)).rejects.toThrow();
  });
});
