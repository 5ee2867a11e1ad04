// The closing summary of `make test` counts what vitest's JSON report leaves out: an error no test
// awaited. A real vitest run, with the project's reporter, on a test that passes but leaves a
// rejection behind.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { render, summarise } from "../../hack/test-summary.ts";
import { unhandledErrorsPath } from "../../hack/vitest-unhandled-errors.ts";

const REPO = join(import.meta.dirname, "../..");
const dir = mkdtempSync(join(tmpdir(), "geo-test-summary-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs vitest on `source` (globals, no imports needed) the way the Makefile does; the JSON report's path. */
function runVitest(name: string, source: string): string {
  const root = join(dir, name);
  const report = join(dir, `${name}.json`);
  mkdirSync(root, { recursive: true });
  writeFileSync(join(root, "vitest.config.mjs"), "export default { test: { include: ['*.check.mjs'], globals: true } };\n");
  writeFileSync(join(root, "case.check.mjs"), source);
  const res = spawnSync(process.execPath, [join(REPO, "node_modules/vitest/vitest.mjs"), "run", "--root", root,
    "--reporter=json", `--reporter=${join(REPO, "hack/vitest-unhandled-errors.ts")}`, `--outputFile.json=${report}`], { encoding: "utf8", timeout: 60_000 });
  expect(res.error).toBeUndefined();
  return report;
}

describe("make test's closing summary", () => {
  it("fails a run whose tests passed but which left an error unhandled, and prints that error", () => {
    const report = runVitest("leaves-rejection", [
      "test('passes, and leaves a rejection nobody awaits', async () => {",
      "  Promise.reject(new Error('left behind by the test'));",
      "  await new Promise((r) => setTimeout(r, 100));",
      "});",
    ].join("\n"));
    const written = JSON.parse(readFileSync(unhandledErrorsPath(report), "utf8"));
    expect(written).toHaveLength(1);
    const summary = summarise([report]);
    expect(summary).toMatchObject({ passed: 1, failed: 0, missing: [] });
    expect(summary.unhandled).toEqual([expect.objectContaining({ report: "leaves-rejection", message: "left behind by the test" })]);
    const { text, ok } = render(summary);
    expect(ok).toBe(false);
    expect(text).toContain("left behind by the test");
    expect(text.trimEnd().split("\n").at(-1)).toBe("1 passed, 0 failed, 0 skipped, 1 unhandled error");
  });

  it("passes a clean run, whose errors file is an empty list", () => {
    const report = runVitest("clean", "test('passes', () => { expect(1 + 1).toBe(2); });\n");
    expect(JSON.parse(readFileSync(unhandledErrorsPath(report), "utf8"))).toEqual([]);
    expect(render(summarise([report]))).toEqual({ text: "\n1 passed, 0 failed, 0 skipped", ok: true });
  });

  it("fails when a run wrote no report (it did not finish)", () => {
    const { text, ok } = render(summarise([join(dir, "never-written.json")]));
    expect(ok).toBe(false);
    expect(text).toContain("never-written.json not found");
  });
});
