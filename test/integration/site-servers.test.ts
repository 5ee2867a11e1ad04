/**
 * The executors of site servers against the real API server: a Deployment and a Service per
 * server, replaced when the spec changes, removed when no longer wanted, refused when the pod would
 * reference a Secret that is not opted in; and the in-process executor starting, restarting and
 * stopping a real listening server with env resolved from Secrets.
 */
import { createServer, type Server } from "node:http";
import { AppsV1Api, CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { beforeAll, describe, expect, it } from "vitest";
import { LABELS } from "../../src/api/v1alpha1/resources.ts";
import { DEFAULT_JOB_SETTINGS } from "../../src/controllers/job-spec.ts";
import { DeploymentSiteServers, InProcessSiteServers, SERVER_LABEL } from "../../src/controllers/site-servers.ts";
import { SecretNotOptedInError } from "../../src/k8s/env.ts";
import type { SiteServer } from "../../src/strategies/site-server.ts";
import { createLogger } from "../../src/util/log.ts";
import { createNamespace, kubectl, kubectlOk } from "../support/kubectl.ts";

let ns: string;
let core: CoreV1Api;
let apps: AppsV1Api;
const log = createLogger({ name: "test", level: "error" });

const server = (over: Partial<SiteServer> = {}): SiteServer => ({
  name: "geo-files-london",
  namespace: ns,
  site: "london",
  args: ["serve-files", "--root", "/data"],
  env: [{ name: "GREETING", valueFrom: { secretKeyRef: { name: "server-secret", key: "greeting" } } }],
  volumes: [],
  mounts: [],
  port: 8443,
  readinessPath: "/v1/health",
  start: async (env) => {
    const http: Server = createServer((_req, res) => res.end(env.GREETING ?? "none"));
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    const port = (http.address() as { port: number }).port;
    return { url: `http://127.0.0.1:${port}`, close: () => new Promise<void>((r) => http.close(() => r())) };
  },
  ...over,
});

beforeAll(() => {
  ns = createNamespace("site-servers");
  const secret = (name: string, labels: Record<string, string>) => ({ apiVersion: "v1", kind: "Secret", metadata: { name, labels }, stringData: { greeting: `hello from ${name}` } });
  kubectlOk(["apply", "-n", ns, "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: [secret("server-secret", { [LABELS.credentials]: "true" }), secret("not-opted-in", {})] }));
  const kc = new KubeConfig();
  kc.loadFromFile(process.env.KUBECONFIG!);
  core = kc.makeApiClient(CoreV1Api);
  apps = kc.makeApiClient(AppsV1Api);
});

const deployment = (name: string) => kubectl(["get", "deployment", name, "-n", ns, "-o", "json"]);
const service = (name: string) => kubectl(["get", "service", name, "-n", ns, "-o", "json"]);

describe("DeploymentSiteServers", () => {
  it("creates, replaces on change, and removes servers no longer wanted", async () => {
    const servers = new DeploymentSiteServers({ apps, core, settings: DEFAULT_JOB_SETTINGS });
    await servers.reconcile(ns, "london", [server()]);
    const created = JSON.parse(deployment("geo-files-london").stdout);
    expect(created.spec.template.spec.containers[0].args).toEqual(["serve-files", "--root", "/data"]);
    expect(created.metadata.labels[SERVER_LABEL]).toBe("geo-files-london");
    expect(JSON.parse(service("geo-files-london").stdout).spec.ports[0].port).toBe(8443);

    // Unchanged: nothing is written (the generation stays).
    await servers.reconcile(ns, "london", [server()]);
    expect(JSON.parse(deployment("geo-files-london").stdout).metadata.generation).toBe(created.metadata.generation);

    await servers.reconcile(ns, "london", [server({ args: ["serve-files", "--root", "/other"], port: 9443 })]);
    const replaced = JSON.parse(deployment("geo-files-london").stdout);
    expect(replaced.spec.template.spec.containers[0].args).toEqual(["serve-files", "--root", "/other"]);
    expect(replaced.metadata.generation).toBeGreaterThan(created.metadata.generation);
    expect(JSON.parse(service("geo-files-london").stdout).spec.ports[0].port).toBe(9443);

    // Another site's servers are not touched by this site's reconcile.
    await servers.reconcile(ns, "paris", [server({ name: "geo-files-paris", site: "paris" })]);
    await servers.reconcile(ns, "london", []);
    expect(deployment("geo-files-london").code).not.toBe(0);
    expect(service("geo-files-london").code).not.toBe(0);
    expect(deployment("geo-files-paris").code).toBe(0);
  });

  it("refuses a server whose pod would reference a Secret that is not opted in, and creates nothing", async () => {
    const servers = new DeploymentSiteServers({ apps, core, settings: DEFAULT_JOB_SETTINGS });
    const bad = server({ name: "geo-files-rome", site: "rome", env: [{ name: "X", valueFrom: { secretKeyRef: { name: "not-opted-in", key: "greeting" } } }] });
    await expect(servers.reconcile(ns, "rome", [bad])).rejects.toBeInstanceOf(SecretNotOptedInError);
    expect(deployment("geo-files-rome").code).not.toBe(0);
  });
});

describe("InProcessSiteServers", () => {
  it("starts a server with env from Secrets, restarts it when its spec changes, stops it when no longer wanted", async () => {
    const servers = new InProcessSiteServers({ core, log });
    await servers.reconcile(ns, "london", [server()]);
    const url = await servers.url(ns, "geo-files-london");
    expect(await (await fetch(url!)).text()).toBe("hello from server-secret");

    await servers.reconcile(ns, "london", [server({ args: ["changed"] })]);
    const restarted = await servers.url(ns, "geo-files-london");
    expect(restarted).not.toBe(url);
    await expect(fetch(url!)).rejects.toThrow();
    expect(await (await fetch(restarted!)).text()).toBe("hello from server-secret");

    await servers.reconcile(ns, "london", []);
    expect(await servers.url(ns, "geo-files-london")).toBeUndefined();
    await expect(fetch(restarted!)).rejects.toThrow();
    await servers.stopAll();
  });

  it("refuses env from a Secret that is not opted in", async () => {
    const servers = new InProcessSiteServers({ core, log });
    const bad = server({ env: [{ name: "X", valueFrom: { secretKeyRef: { name: "not-opted-in", key: "greeting" } } }] });
    await expect(servers.reconcile(ns, "london", [bad])).rejects.toBeInstanceOf(SecretNotOptedInError);
    expect(await servers.url(ns, "geo-files-london")).toBeUndefined();
  });
});
