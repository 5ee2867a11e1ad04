/**
 * globalSetup of the "faults" project: starts the run with an empty row file and, when the run
 * ends, prints the one table of the fault suite and writes it to .test-reports/faults.md (for
 * docs/reliability.md).
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { MARKDOWN_FILE, REPORT_DIR, ROWS_FILE, type FaultRow } from "./report.ts";

const cell = (s: string) => s.replaceAll("|", "\\|").replaceAll("\n", " ");

export function renderMarkdown(rows: readonly FaultRow[]): string {
  const lines = ["| scenario | what was done | expected | observed | result |", "|---|---|---|---|---|"];
  for (const r of rows) lines.push(`| ${cell(r.scenario)} | ${cell(r.done)} | ${cell(r.expected)} | ${cell(r.observed)} | ${r.result} |`);
  const failed = rows.filter((r) => r.result !== "pass").length;
  lines.push("", `${rows.length} scenarios, ${rows.length - failed} passed, ${failed} failed.`);
  return lines.join("\n") + "\n";
}

export function setup(): () => void {
  mkdirSync(REPORT_DIR, { recursive: true });
  rmSync(ROWS_FILE, { force: true });
  return () => {
    const rows: FaultRow[] = existsSync(ROWS_FILE)
      ? readFileSync(ROWS_FILE, "utf8")
          .split("\n")
          .filter((l) => l.trim())
          .map((l) => JSON.parse(l) as FaultRow)
      : [];
    rows.sort((a, b) => a.scenario.localeCompare(b.scenario, "en", { numeric: true }));
    const markdown = renderMarkdown(rows);
    writeFileSync(MARKDOWN_FILE, markdown);
    console.log(`\nFault suite (${MARKDOWN_FILE}):\n\n${markdown}`);
  };
}
