import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { renderGeneratedFiles } from "../../src/api/v1alpha1/render.ts";
import { KINDS } from "../../src/strategies/crds.ts";
import { REPO_ROOT } from "../../hack/localenv/tools.ts";

describe("generated files", () => {
  it("match src/api/v1alpha1/crds.ts and the strategies' fragments (run `npm run generate` after changing the schema)", async () => {
    const files = await renderGeneratedFiles(KINDS);
    expect(files.size).toBeGreaterThanOrEqual(7);
    for (const [path, expected] of files) {
      let actual = "";
      try {
        actual = readFileSync(join(REPO_ROOT, path), "utf8");
      } catch {
        // missing counts as stale
      }
      expect(actual, `${path} is stale: run npm run generate`).toBe(expected);
    }
  });
});
