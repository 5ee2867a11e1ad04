/**
 * `kubectl geo` talks only to the Kubernetes API: nothing it loads may import a database driver,
 * a storage SDK or the registry's SQL. A person needs RBAC, not a database URL.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../hack/localenv/tools.ts";
import { moduleGraph } from "./chart/api-calls.ts";

const FORBIDDEN_PACKAGES = ["pg", "pg-cursor", "@aws-sdk/client-s3", "simple-git"];

describe("kubectl geo", () => {
  const modules = moduleGraph("cmd/kubectl-geo.ts");

  it("loads the plugin's own modules (the scan sees the graph)", () => {
    expect(modules).toEqual(expect.arrayContaining(["cmd/kubectl-geo.ts", "src/plugin/program.ts", "src/plugin/commands/registries.ts", "src/plugin/cluster.ts"]));
  });

  it("imports no database driver, storage SDK or registry SQL", () => {
    const packages = modules.flatMap((file) =>
      [...readFileSync(join(REPO_ROOT, file), "utf8").matchAll(/^(?:import|export)\s+(?!type\s)[^;]*?from\s+"([^".][^"]*)";/gm)].map((m) => `${file}: ${m[1]}`),
    );
    expect(packages.filter((p) => FORBIDDEN_PACKAGES.includes(p.split(": ")[1]!))).toEqual([]);
    // Constants and names only from the registry (no module that runs SQL).
    expect(modules.filter((m) => m.startsWith("src/registry/") || m.startsWith("src/strategies/") || m.startsWith("src/workers/"))).toEqual(["src/registry/state-names.ts", "src/registry/states.ts"]);
  });
});
