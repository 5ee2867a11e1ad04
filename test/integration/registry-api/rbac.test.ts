/**
 * The registry API through the real API server's aggregation layer: people with only the chart's
 * geo-viewer role list registry rows (kubectl get and kubectl geo) without any Secret access, people
 * without it are refused, geo-operator-admin may resync and the action is recorded with their
 * name; the server refuses anyone who does not come through the API server's front proxy.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { REPO_ROOT } from "../../../hack/localenv/tools.ts";
import { CHECKSUM_MISMATCH_MESSAGE } from "../../../src/registry/states.ts";
import { createNamespace, kubectl, kubectlOk, type CommandResult } from "../../support/kubectl.ts";
import { createUser, type TestUser } from "../../support/users.ts";
import { createPluginWorld, runGeo, type PluginWorld } from "../plugin/plugin-world.ts";

let world: PluginWorld;
let viewer: TestUser;
let admin: TestUser;
let stranger: TestUser;

const RESOURCE = "coolwidgetregistries";

function as(user: TestUser, args: string[]): CommandResult {
  const res = spawnSync(process.env.GEO_TEST_KUBECTL!, ["--kubeconfig", user.kubeconfig, "--cache-dir", user.cacheDir, "-n", world.ns, ...args], { encoding: "utf8", timeout: 60_000 });
  return { code: res.status ?? -1, stdout: res.stdout ?? "", stderr: res.stderr ?? "" };
}

const geoAs = (user: TestUser, args: string[]) => runGeo(["--kubeconfig", user.kubeconfig, "-n", world.ns, ...args]);

async function registry(): Promise<Map<number, Record<string, any>>> {
  const { rows } = await world.dbs.tracking.query(`SELECT * FROM cool_widget_registry ORDER BY id`);
  return new Map(rows.map((r) => [Number(r.id), r]));
}

beforeAll(async () => {
  world = await createPluginWorld("registry-api");
  await world.dbs.tracking.query(
    `INSERT INTO cool_widget_registry (cool_widget_id, created_at, state, last_synced_at, retry_count, last_sync_failure, verification_state, checksum_mismatch)
     SELECT g, now(), CASE WHEN g % 3 = 0 THEN 3 ELSE 2 END, now(), CASE WHEN g % 3 = 0 THEN 1 ELSE 0 END,
            CASE WHEN g % 3 = 0 THEN 'connection reset' END, 0, false
       FROM generate_series(1, 12) g`,
  );
  await world.dbs.tracking.query(`UPDATE cool_widget_registry SET last_sync_failure = $1, checksum_mismatch = true WHERE cool_widget_id = 12`, [CHECKSUM_MISMATCH_MESSAGE]);

  // The chart's roles for people, exactly as it renders them.
  const helm = spawnSync(process.env.GEO_TEST_HELM!, ["template", "geo", join(REPO_ROOT, "charts/geo-operator"), "--kube-version", "1.35.0", "--show-only", "templates/user-roles.yaml"], { encoding: "utf8" });
  expect(helm.status, helm.stderr).toBe(0);
  kubectlOk(["apply", "-f", "-"], helm.stdout);

  const { certDir } = inject("env").kube!;
  const opts = { certDir, adminKubeconfig: process.env.KUBECONFIG! };
  viewer = createUser("vera", opts);
  admin = createUser("adam", opts);
  stranger = createUser("sam", opts);
  kubectlOk(["create", "rolebinding", "vera-geo-viewer", "-n", world.ns, "--clusterrole=geo-viewer", "--user=vera"]);
  kubectlOk(["create", "rolebinding", "adam-geo-admin", "-n", world.ns, "--clusterrole=geo-operator-admin", "--user=adam"]);
});

afterAll(async () => {
  await world?.close();
});

describe("geo-viewer", () => {
  it("has no access to Secrets, yet lists the failed rows of a type on a site with kubectl get", async () => {
    expect(as(viewer, ["auth", "can-i", "get", "secrets"]).stdout.trim()).toBe("no");
    // The API server's discovery of a new type's resource refreshes about once a minute.
    const deadline = Date.now() + 150_000;
    let listed: CommandResult = as(viewer, ["get", RESOURCE, "-l", "site=tokyo,state=failed"]);
    while (listed.code !== 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 3000));
      listed = as(viewer, ["get", RESOURCE, "-l", "site=tokyo,state=failed"]);
    }
    expect(listed.code, listed.stderr).toBe(0);
    const lines = listed.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^NAME\s+SITE\s+MODEL ID\s+STATE\s+VERIFICATION\s+RETRIES\s+MISMATCH\s+LAST FAILURE/);
    expect(lines.slice(1).map((l) => l.split(/\s+/).slice(0, 4))).toEqual([
      ["tokyo.3", "tokyo", "3", "failed"],
      ["tokyo.6", "tokyo", "6", "failed"],
      ["tokyo.9", "tokyo", "9", "failed"],
      ["tokyo.12", "tokyo", "12", "failed"],
    ]);
  }, 200_000);

  it("reads one row by name, as JSON, with GitLab's registry fields", () => {
    const res = as(viewer, ["get", RESOURCE, "tokyo.12", "-o", "json"]);
    expect(res.code, res.stderr).toBe(0);
    const row = JSON.parse(res.stdout) as Record<string, any>;
    expect(row).toMatchObject({ kind: "CoolWidgetRegistry", site: "tokyo", id: 12, modelId: 12, state: "failed", checksumMismatch: true, retryCount: 1 });
    expect(row.metadata.labels).toEqual({ site: "tokyo", state: "failed", verification: "pending", mismatch: "true" });
    expect(as(viewer, ["get", RESOURCE, "tokyo.99"]).stderr).toMatch(/not found/);
  });

  it("pages with limit and continue: every row once, in id order", () => {
    const ids: number[] = [];
    let token = "";
    for (let page = 0; page < 10; page++) {
      const res = as(viewer, ["get", "--raw", `/apis/registry.geo.replication.dev/v1alpha1/namespaces/${world.ns}/${RESOURCE}?labelSelector=site%3Dtokyo&limit=5${token ? `&continue=${token}` : ""}`]);
      expect(res.code, res.stderr).toBe(0);
      const list = JSON.parse(res.stdout) as { items: { id: number }[]; metadata: { continue?: string } };
      expect(list.items.length).toBeLessThanOrEqual(5);
      ids.push(...list.items.map((i) => i.id));
      if (!list.metadata.continue) break;
      token = encodeURIComponent(list.metadata.continue);
    }
    expect(ids).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
  });

  it("a namespace without the type lists no rows, and kubectl get geo stays the custom resources", () => {
    const other = createNamespace("registry-api-empty");
    try {
      const empty = kubectl(["get", RESOURCE, "-n", other]);
      expect(empty.code, empty.stderr).toBe(0);
      expect(empty.stderr).toMatch(/No resources found/);
      const all = kubectl(["get", "geo", "-n", world.ns, "-o", "name"]);
      expect(all.code, all.stderr).toBe(0);
      expect(all.stdout.trim().split("\n").every((l) => l.includes(".geo.replication.dev/") && !l.includes("registr"))).toBe(true);
    } finally {
      kubectl(["delete", "namespace", other, "--wait=false"]);
    }
  });

  it("filters on the server and says what a selector cannot do", () => {
    const mismatched = as(viewer, ["get", RESOURCE, "-l", "site=tokyo,mismatch=true", "-o", "json"]);
    expect(mismatched.code, mismatched.stderr).toBe(0);
    expect((JSON.parse(mismatched.stdout) as { items: { id: number }[] }).items.map((i) => i.id)).toEqual([12]);
    // Without a site, every secondary is listed; one whose database is down fails the list by name
    // rather than leaving its rows out unnoticed.
    const everywhere = as(viewer, ["get", RESOURCE, "-l", "mismatch=true"]);
    expect(everywhere.code).not.toBe(0);
    expect(everywhere.stderr).toMatch(/cannot reach the tracking database of GeoSite osaka/);
    const bad = as(viewer, ["get", RESOURCE, "-l", "colour=blue"]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/unknown label selector key "colour": registries can be selected by site, state, verification, mismatch/);
  });

  it("runs kubectl geo registries and status, but may not resync", async () => {
    const rows = await geoAs(viewer, ["registries", "cool-widget", "--site", "tokyo", "--state", "failed"]);
    expect(rows.code, rows.stderr).toBe(0);
    expect(rows.stdout.trimEnd().split("\n").slice(1).map((l) => Number(l.split(/ {2,}/)[0]))).toEqual([3, 6, 9, 12]);
    expect((await geoAs(viewer, ["status"])).code).toBe(0);
    const before = await registry();
    const resync = await geoAs(viewer, ["resync", "cool-widget", "--site", "tokyo", "--state", "failed"]);
    expect(resync.code).toBe(1);
    expect(resync.stderr).toMatch(/forbidden: .*User "vera" cannot create resource "registryactions" in API group "registry.geo.replication.dev"/);
    expect(await registry()).toEqual(before);
  });
});

describe("without a role", () => {
  it("is refused (403) by kubectl get and by kubectl geo", async () => {
    const res = as(stranger, ["get", "--raw", `/apis/registry.geo.replication.dev/v1alpha1/namespaces/${world.ns}/${RESOURCE}`]);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/Error from server \(Forbidden\)|forbidden/);
    const geo = await geoAs(stranger, ["registries", "cool-widget", "--site", "tokyo"]);
    expect(geo.code).toBe(1);
    expect(geo.stderr).toMatch(/forbidden/);
  });
});

describe("geo-operator-admin", () => {
  it("resyncs the failed rows, and an Event records who did it and how many rows changed", async () => {
    const before = await registry();
    const res = await geoAs(admin, ["resync", "cool-widget", "--site", "tokyo", "--state", "failed"]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toBe("4 cool_widget registry row(s) on tokyo marked for resync\n");
    const after = await registry();
    const changed = [...before.keys()].filter((id) => JSON.stringify(before.get(id)) !== JSON.stringify(after.get(id)));
    expect(changed).toEqual([3, 6, 9, 12]);
    for (const id of changed) expect(after.get(id)).toMatchObject({ state: 0, retry_count: 0 });

    const events = JSON.parse(kubectlOk(["get", "events", "-n", world.ns, "--field-selector", "reason=ResyncRequested", "-o", "json"])) as { items: { message: string; involvedObject: { kind: string; name: string } }[] };
    expect(events.items.map((e) => [e.involvedObject.kind, e.involvedObject.name, e.message])).toEqual([
      ["GeoSite", "tokyo", "adam: 4 of 4 selected cool_widget registry rows marked for resync through the registry API"],
    ]);
    // The operator is asked to sync tokyo now, not at the next interval (controllers/run-requests.ts).
    const rt = JSON.parse(kubectlOk(["get", "rtype", "cool-widget", "-n", world.ns, "-o", "json"])) as { metadata: { annotations?: Record<string, string> } };
    const requested = JSON.parse(rt.metadata.annotations?.["geo.replication.dev/run-requests"] ?? "{}") as Record<string, Record<string, string>>;
    expect(Object.keys(requested)).toEqual(["tokyo"]);
    expect(Object.keys(requested.tokyo!)).toEqual(["sync"]);
    expect(Date.now() - Date.parse(requested.tokyo!.sync!)).toBeLessThan(60_000);
  });

  it("creates a RegistryAction with kubectl and sees its result", () => {
    const action = { apiVersion: "registry.geo.replication.dev/v1alpha1", kind: "RegistryAction", metadata: { generateName: "reverify-" }, spec: { action: "reverify", type: "cool_widget", site: "tokyo", ids: [1, 2] } };
    const created = spawnSync(process.env.GEO_TEST_KUBECTL!, ["--kubeconfig", admin.kubeconfig, "--cache-dir", admin.cacheDir, "-n", world.ns, "create", "-f", "-", "-o", "json"], { input: JSON.stringify(action), encoding: "utf8" });
    expect(created.status, created.stderr).toBe(0);
    expect((JSON.parse(created.stdout) as { status: Record<string, unknown> }).status).toMatchObject({ requestedBy: "adam", selected: 2, changed: 0 });
  });
});

/**
 * A client certificate the front-proxy CA signed for `cn`, which is not the name the API server
 * allows to assert identities (--requestheader-allowed-names=front-proxy-client): what a component
 * holding a certificate from the same CA for another purpose could present.
 */
function frontProxySignedCert(cn: string): { cert: string; key: string } {
  const { certDir } = inject("env").kube!;
  const dir = mkdtempSync(join(tmpdir(), "geo-front-proxy-other-"));
  const ssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  ssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "client.key", "-out", "client.csr", "-subj", `/CN=${cn}`);
  writeFileSync(join(dir, "client.ext"), "extendedKeyUsage=clientAuth\n");
  // -set_serial rather than -CAcreateserial: nothing is written next to the harness's CA.
  ssl("x509", "-req", "-in", "client.csr", "-CA", join(certDir, "front-proxy-ca.crt"), "-CAkey", join(certDir, "front-proxy-ca.key"), "-set_serial", `0x${randomBytes(8).toString("hex")}`, "-out", "client.crt", "-days", "1", "-extfile", "client.ext");
  return { cert: readFileSync(join(dir, "client.crt"), "utf8"), key: readFileSync(join(dir, "client.key"), "utf8") };
}

describe("the server behind the API server", () => {
  const rowsPath = () => `/apis/registry.geo.replication.dev/v1alpha1/namespaces/${world.ns}/${RESOURCE}?labelSelector=site%3Dtokyo`;
  const call = (opts: { cert?: string; key?: string; headers?: Record<string, string>; method?: string; path?: string; body?: string }) =>
    new Promise<number>((resolve, reject) => {
      const url = inject("env").kube!.registryApiURL;
      const { path = rowsPath(), body, ...tls } = opts;
      const req = request(`${url}${path}`, { rejectUnauthorized: false, ...tls }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      req.end(body);
    });
  const frontProxyClientCert = () => {
    const { certDir } = inject("env").kube!;
    return { cert: readFileSync(join(certDir, "front-proxy-client.crt"), "utf8"), key: readFileSync(join(certDir, "front-proxy-client.key"), "utf8") };
  };

  it("answers 401 to a caller without the front proxy's certificate, whatever headers it sends", async () => {
    const { certDir } = inject("env").kube!;
    expect(await call({ headers: { "X-Remote-User": "system:admin", "X-Remote-Group": "system:masters" } })).toBe(401);
    // A certificate the cluster's client CA signed is a user's, not the front proxy's.
    const userCert = { cert: readFileSync(join(certDir, "admin.crt"), "utf8"), key: readFileSync(join(certDir, "admin.key"), "utf8") };
    expect(await call({ ...userCert, headers: { "X-Remote-User": "system:admin", "X-Remote-Group": "system:masters" } })).toBe(401);
    // The front proxy's own certificate is accepted, and RBAC still decides for the user it names.
    const proxyCert = frontProxyClientCert();
    expect(await call({ ...proxyCert, headers: { "X-Remote-User": "sam" } })).toBe(403);
    expect(await call({ ...proxyCert, headers: { "X-Remote-User": "vera" } })).toBe(200);
  });

  it("answers 401 to a certificate the front-proxy CA signed for a name other than the allowed one", async () => {
    const other = frontProxySignedCert("metrics-scraper");
    expect(await call({ ...other, headers: { "X-Remote-User": "vera" } })).toBe(401);
    expect(await call({ ...other, headers: { "X-Remote-User": "system:admin", "X-Remote-Group": "system:masters" } })).toBe(401);
    // The same request with the allowed name's certificate is served: only the name differs.
    expect(await call({ ...frontProxyClientCert(), headers: { "X-Remote-User": "vera" } })).toBe(200);
  });

  it("refuses (403) a RegistryAction from a user without geo-operator-admin, even from the front proxy", async () => {
    // The API server authorizes before it proxies; this request does not pass through it, so only
    // the server's own check stands between a viewer and a resync.
    const before = await registry();
    const action = { apiVersion: "registry.geo.replication.dev/v1alpha1", kind: "RegistryAction", metadata: { name: "viewer-resync" }, spec: { action: "resync", type: "cool_widget", site: "tokyo", all: true } };
    const post = (user: string) =>
      call({
        ...frontProxyClientCert(),
        method: "POST",
        path: `/apis/registry.geo.replication.dev/v1alpha1/namespaces/${world.ns}/registryactions`,
        headers: { "X-Remote-User": user, "Content-Type": "application/json" },
        body: JSON.stringify(action),
      });
    expect(await post("vera")).toBe(403);
    expect(await post("sam")).toBe(403);
    expect(await registry()).toEqual(before);
  });

  it("counts its requests by verb and status code on /metrics", async () => {
    const counts = async () => {
      const text = await (await fetch(inject("env").kube!.registryApiMetricsURL)).text();
      const value = (verb: string, code: number) => Number(new RegExp(`^geo_operator_registry_api_requests_total\\{verb="${verb}",code="${code}"\\} (\\d+)$`, "m").exec(text)?.[1] ?? 0);
      return { list401: value("list", 401), list403: value("list", 403), list200: value("list", 200), durations: /^geo_operator_registry_api_request_duration_seconds_count\{verb="list"\} (\d+)$/m.exec(text)?.[1] };
    };
    const before = await counts();
    const proxyCert = frontProxyClientCert();
    expect(await call({ headers: { "X-Remote-User": "vera" } })).toBe(401);
    expect(await call({ ...proxyCert, headers: { "X-Remote-User": "sam" } })).toBe(403);
    expect(await call({ ...proxyCert, headers: { "X-Remote-User": "vera" } })).toBe(200);
    expect(await call({ ...proxyCert, headers: { "X-Remote-User": "vera" } })).toBe(200);
    const after = await counts();
    // Other test files list rows through the same server meanwhile; only this one is refused.
    expect([after.list401 - before.list401, after.list403 - before.list403]).toEqual([1, 1]);
    expect(after.list200 - before.list200).toBeGreaterThanOrEqual(2);
    expect(Number(after.durations) - Number(before.durations ?? 0)).toBeGreaterThanOrEqual(4);
  });
});
