// Prints one closing line, "N passed, N failed, N skipped", over vitest JSON reports, so CI and
// people see the total of every run together. Unhandled errors (hack/vitest-unhandled-errors.ts
// writes them beside each JSON report) are printed in full and fail the summary: vitest's own JSON
// report does not carry them. Exits 1 when a report is missing, a test failed or an error was left
// unhandled.
import { existsSync, readFileSync } from "node:fs";
import { basename } from "node:path";
import { unhandledErrorsPath, type UnhandledErrorRecord } from "./vitest-unhandled-errors.ts";

export interface Summary {
  passed: number;
  failed: number;
  skipped: number;
  /** Reports that were not written: that run did not finish. */
  missing: string[];
  unhandled: Array<UnhandledErrorRecord & { report: string }>;
}

export function summarise(reports: string[]): Summary {
  const summary: Summary = { passed: 0, failed: 0, skipped: 0, missing: [], unhandled: [] };
  for (const file of reports) {
    if (!existsSync(file)) {
      summary.missing.push(file);
      continue;
    }
    const report = JSON.parse(readFileSync(file, "utf8")) as {
      numPassedTests: number;
      numFailedTests: number;
      numPendingTests: number;
      numTodoTests: number;
    };
    summary.passed += report.numPassedTests;
    summary.failed += report.numFailedTests;
    summary.skipped += report.numPendingTests + report.numTodoTests;
    const errors = unhandledErrorsPath(file);
    if (existsSync(errors)) {
      for (const e of JSON.parse(readFileSync(errors, "utf8")) as UnhandledErrorRecord[]) summary.unhandled.push({ ...e, report: basename(file, ".json") });
    }
  }
  return summary;
}

export function render(s: Summary): { text: string; ok: boolean } {
  const lines: string[] = [];
  for (const file of s.missing) lines.push(`test-summary: ${file} not found (that test run did not finish)`);
  for (const e of s.unhandled) {
    lines.push(`test-summary: unhandled error in the ${e.report} run${e.file ? ` (${e.file}${e.test ? `, during "${e.test}"` : ", outside any test"})` : ""}:`);
    lines.push(...(e.stack || `${e.name}: ${e.message}`).split("\n").map((l) => `  ${l}`));
  }
  const errors = s.unhandled.length > 0 ? `, ${s.unhandled.length} unhandled error${s.unhandled.length === 1 ? "" : "s"}` : "";
  lines.push("", `${s.passed} passed, ${s.failed} failed, ${s.skipped} skipped${errors}`);
  return { text: lines.join("\n"), ok: s.missing.length === 0 && s.failed === 0 && s.unhandled.length === 0 };
}

if (import.meta.main) {
  const { text, ok } = render(summarise(process.argv.slice(2)));
  console.log(text);
  process.exit(ok ? 0 : 1);
}
