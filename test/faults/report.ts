/**
 * The fault suite's table: every scenario adds one row (scenario | what was done | expected |
 * observed | result) to a JSON-lines file under .test-reports/; report-setup.ts prints the table
 * and writes it as markdown when the run ends. Rows are written whether the scenario passed or
 * failed, so the table always says what was observed.
 */
import { appendFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "../../hack/localenv/tools.ts";

export const REPORT_DIR = join(REPO_ROOT, ".test-reports");
export const ROWS_FILE = join(REPORT_DIR, "faults.jsonl");
export const MARKDOWN_FILE = join(REPORT_DIR, "faults.md");

export interface FaultRow {
  scenario: string;
  done: string;
  expected: string;
  observed: string;
  result: "pass" | "FAIL";
}

export interface Observer {
  /** Adds a fact to the row's "observed" column. */
  note(fact: string): void;
}

/**
 * Runs one scenario's body and records its row. The body notes what it saw; an assertion that
 * fails ends the row with the failure's first line, and is rethrown for vitest.
 */
export async function scenario(
  name: string,
  what: { done: string; expected: string },
  body: (o: Observer) => Promise<void>,
  timeoutMs = 280_000,
): Promise<void> {
  const facts: string[] = [];
  const observer: Observer = { note: (fact) => void facts.push(fact) };
  let result: FaultRow["result"] = "pass";
  try {
    // Ends before vitest's own timeout, so a scenario that hangs still gets its row.
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`scenario did not finish within ${timeoutMs / 1000} s`)), timeoutMs);
    });
    try {
      await Promise.race([body(observer), deadline]);
    } finally {
      clearTimeout(timer);
    }
  } catch (err) {
    result = "FAIL";
    const message = err instanceof Error ? err.message : String(err);
    facts.push(`FAILED: ${message.split("\n").find((l) => l.trim()) ?? message}`.slice(0, 400));
    throw err;
  } finally {
    mkdirSync(REPORT_DIR, { recursive: true });
    const row: FaultRow = { scenario: name, done: what.done, expected: what.expected, observed: facts.join("; "), result };
    appendFileSync(ROWS_FILE, JSON.stringify(row) + "\n");
  }
}
