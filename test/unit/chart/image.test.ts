/**
 * The container image without a Docker engine: hack/check-image.sh lints the Dockerfile and runs
 * the CLI from a directory laid out like the image. Needs the npm registry (or its cache) for
 * `npm ci --omit=dev`; about 15 s to a minute.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../../hack/localenv/tools.ts";

describe("container image", () => {
  it("hack/check-image.sh passes", { timeout: 300_000 }, () => {
    const res = spawnSync("bash", [join(REPO_ROOT, "hack/check-image.sh")], { encoding: "utf8", cwd: REPO_ROOT, timeout: 290_000 });
    const output = `${res.stdout}\n${res.stderr}`;
    expect(output, output).toContain("[check-image] all checks passed");
    expect(res.status, output).toBe(0);
  });
});
