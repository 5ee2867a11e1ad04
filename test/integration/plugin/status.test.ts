/**
 * `kubectl geo status` against a real API server: the table is built from what the operator wrote
 * to GeoSite status, stale status gets a note, and kubectl finds the plugin on PATH.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kubectlOk } from "../../support/kubectl.ts";
import { PLUGIN, createPluginWorld, runGeo, type PluginWorld } from "./plugin-world.ts";

let world: PluginWorld;

/** Table rows keyed by header; cells are separated by at least three spaces. */
function parseTable(text: string): Record<string, string>[] {
  const [header, ...lines] = text.trimEnd().split("\n");
  const cols = header!.split(/ {2,}/);
  return lines.map((l) => Object.fromEntries(l.split(/ {2,}/).map((c, i) => [cols[i]!, c])));
}

function patchStatus(site: string, status: object): void {
  kubectlOk(["patch", "geosite", site, "-n", world.ns, "--subresource=status", "--type=merge", "-p", JSON.stringify({ status })]);
}

beforeAll(async () => {
  world = await createPluginWorld("plugin-status");
  patchStatus("tokyo", {
    health: "Healthy",
    synced: "50.0%",
    verified: "16.6%",
    lastStatusTime: new Date().toISOString(),
    types: [
      { name: "cool_widget", count: 6, registryCount: 6, syncedCount: 3, failedCount: 2, verificationTotalCount: 3, verifiedCount: 1, verificationFailedCount: 2, syncedInPercentage: 50, verifiedInPercentage: 16.666 },
    ],
  });
  patchStatus("london", {
    health: "Unhealthy",
    healthReasons: ["JobsFailing: cool-widget verify-primary run x failed"],
    lastStatusTime: new Date(Date.now() - 10 * 60_000).toISOString(),
    types: [{ name: "cool_widget", count: 6, checksumTotalCount: 6, checksummedCount: 4, checksumFailedCount: 1 }],
  });
});
afterAll(async () => {
  await world?.close();
});

describe("kubectl geo status", () => {
  it("prints one row per site and type from GeoSite status, primary first", async () => {
    const res = await world.geo(["status"]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout.split("\n")[0]).toMatch(/^SITE\s+ROLE\s+TYPE\s+COUNT\s+SYNCED\s+FAILED\s+VERIFIED\s+VERIFICATION FAILED\s+SYNCED%\s+VERIFIED%\s+HEALTH$/);
    const rows = parseTable(res.stdout);
    expect(rows.map((r) => r.SITE)).toEqual(["london", "osaka", "paris", "tokyo"]);
    expect(rows[0]).toEqual({
      SITE: "london", ROLE: "primary", TYPE: "cool_widget", COUNT: "6", SYNCED: "-", FAILED: "-",
      VERIFIED: "4", "VERIFICATION FAILED": "1", "SYNCED%": "-", "VERIFIED%": "66.6%", HEALTH: "Unhealthy",
    });
    expect(rows[3]).toEqual({
      SITE: "tokyo", ROLE: "secondary", TYPE: "cool_widget", COUNT: "6", SYNCED: "3", FAILED: "2",
      VERIFIED: "1", "VERIFICATION FAILED": "2", "SYNCED%": "50.0%", "VERIFIED%": "16.6%", HEALTH: "Healthy",
    });
    expect(rows[1]).toMatchObject({ SITE: "osaka", TYPE: "-", HEALTH: "-" });
    // Notes go to stderr so that stdout stays a table.
    expect(res.stderr).toMatch(/note: status of GeoSite london was last written 10m ago/);
    expect(res.stderr).toMatch(/london is unhealthy: JobsFailing/);
    expect(res.stderr).toMatch(/note: GeoSite osaka has no status yet/);
    expect(res.stderr).not.toMatch(/tokyo/);
  });

  it("--site limits the table; an unknown site exits 3 and lists the known ones", async () => {
    const one = await world.geo(["status", "--site", "tokyo"]);
    expect(one.code, one.stderr).toBe(0);
    expect(parseTable(one.stdout).map((r) => r.SITE)).toEqual(["tokyo"]);
    expect(one.stderr).toBe("");

    const missing = await world.geo(["status", "--site", "berlin"]);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(`error: GeoSite "berlin" not found in namespace ${world.ns} (GeoSites there: london, osaka, paris, tokyo)`);
  });

  it("-o json and -o yaml carry the status with a stale flag", async () => {
    const res = await world.geo(["status", "-o", "json"]);
    expect(res.code, res.stderr).toBe(0);
    const doc = JSON.parse(res.stdout);
    const london = doc.items.find((i: any) => i.site === "london");
    expect(london).toMatchObject({ role: "primary", health: "Unhealthy", stale: true, types: [{ name: "cool_widget", checksummedCount: 4 }] });
    expect(doc.items.find((i: any) => i.site === "tokyo")).toMatchObject({ stale: false, types: [{ syncedCount: 3 }] });

    const yaml = await world.geo(["status", "-o", "yaml", "--site", "tokyo"]);
    expect(yaml.code, yaml.stderr).toBe(0);
    expect(yaml.stdout).toMatch(/^ {2}- site: tokyo$/m);
  });

  it("an empty namespace is not an error; an unknown output format is a usage error", async () => {
    const empty = await runGeo(["status", "-n", `${world.ns}-nothing-here`]);
    expect(empty.code, empty.stderr).toBe(0);
    expect(empty.stderr).toMatch(/No GeoSites found/);

    const bad = await world.geo(["status", "-o", "wide"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/Allowed choices are table, json, yaml/);
  });

  it("takes --kubeconfig and reports an unreadable one as a runtime failure", async () => {
    const env = { ...process.env, KUBECONFIG: "/nonexistent/kubeconfig" };
    const ok = await runGeo(["--kubeconfig", process.env.KUBECONFIG!, "-n", world.ns, "status", "--site", "tokyo"], { env });
    expect(ok.code, ok.stderr).toBe(0);
    const broken = await runGeo(["-n", world.ns, "status"], { env });
    expect(broken.code).toBe(1);
    expect(broken.stderr).toMatch(/^error: /);
  });

  it("runs as `kubectl geo` through kubectl's plugin discovery", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kubectl-geo-"));
    try {
      const wrapper = join(dir, "kubectl-geo");
      writeFileSync(wrapper, `#!/bin/sh\nexec "${process.execPath}" "${PLUGIN}" "$@"\n`);
      chmodSync(wrapper, 0o755);
      const env = { ...process.env, PATH: `${dir}:${process.env.PATH ?? ""}` };
      const kubectlBin = [process.env.GEO_TEST_KUBECTL!];
      const list = await runGeo(["plugin", "list"], { env, command: kubectlBin });
      expect(list.stdout).toContain(wrapper);
      const res = await runGeo(["geo", "status", "-n", world.ns, "--site", "tokyo"], { env, command: kubectlBin });
      expect(res.code, res.stderr).toBe(0);
      expect(parseTable(res.stdout)[0]).toMatchObject({ SITE: "tokyo", "SYNCED%": "50.0%" });
      const missing = await runGeo(["geo", "status", "-n", world.ns, "--site", "berlin"], { env, command: kubectlBin });
      expect(missing.code).toBe(3);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
