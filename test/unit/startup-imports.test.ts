/**
 * What a process of the one geo-operator binary loads before it does its work. Every worker Job
 * starts a fresh Pod, so start-up is paid once per run: on two cores, loading the Kubernetes
 * client alone took about a second of CPU per Pod. Workers, the CLI's help and the CRD printer
 * never talk to the API server and must not load it. Recorded at run time (module hooks), so a
 * dynamic import or a require counts as much as a static import.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../hack/localenv/tools.ts";

const dir = mkdtempSync(join(tmpdir(), "geo-startup-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Packages loaded by `node <args>` (a script or `--input-type=module -e`), and how it ended. */
function packagesLoadedBy(name: string, args: string[]): { packages: string[]; code: number | null; stderr: string } {
  const out = join(dir, `${name}.json`);
  const hook = pathToFileURL(join(REPO_ROOT, "test/support/record-packages.mjs")).href;
  const res = spawnSync(process.execPath, ["--import", hook, ...args], { cwd: REPO_ROOT, encoding: "utf8", env: { ...process.env, GEO_RECORD_PACKAGES: out }, timeout: 60_000 });
  return { packages: JSON.parse(readFileSync(out, "utf8")) as string[], code: res.status, stderr: res.stderr };
}
const importing = (modules: string[]) => [
  "--input-type=module",
  "-e",
  `for (const m of ${JSON.stringify(modules.map((m) => pathToFileURL(join(REPO_ROOT, m)).href))}) await import(m);`,
];

const KUBERNETES_CLIENT = "@kubernetes/client-node";

describe("start-up imports", () => {
  it("the manager loads the Kubernetes client (the recording sees it)", () => {
    const { packages, code, stderr } = packagesLoadedBy("manager", importing(["src/manager.ts"]));
    expect(code, stderr).toBe(0);
    expect(packages).toContain(KUBERNETES_CLIENT);
  });

  it("a worker loads its database driver but not the Kubernetes client", () => {
    // (The storage SDK and git come with the type's strategy, when the run starts.)
    const { packages, code, stderr } = packagesLoadedBy("worker", importing(["src/workers/run.ts"]));
    expect(code, stderr).toBe(0);
    expect(packages).toContain("pg");
    expect(packages).not.toContain(KUBERNETES_CLIENT);
  });

  it("the geo-operator command line loads no client, driver or SDK before a command runs", () => {
    const { packages, code, stderr } = packagesLoadedBy("cli", [join(REPO_ROOT, "bin/geo-operator.js"), "worker", "--help"]);
    expect(code, stderr).toBe(0);
    for (const heavy of [KUBERNETES_CLIENT, "@aws-sdk/client-s3", "simple-git", "prom-client"]) expect(packages).not.toContain(heavy);
  });

  it("printing the CRDs needs no Kubernetes client", () => {
    const { packages, code, stderr } = packagesLoadedBy("crds", [join(REPO_ROOT, "bin/geo-operator.js"), "crds"]);
    expect(code, stderr).toBe(0);
    expect(packages).not.toContain(KUBERNETES_CLIENT);
  });
});
