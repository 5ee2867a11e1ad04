/**
 * SQL lives in src/registry/ (one file per family of queries), and states are written there with
 * the named constants, never as numbers. This keeps both true for src/ and cmd/.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "..", "..");

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith(".ts") && !e.name.endsWith(".test.ts"))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)));
}

/** The one query outside the registry: the pool helper's connectivity check (`select 1`) when a process starts. */
const QUERY_ALLOWED = new Set(["src/util/database.ts"]);

const STATEMENT = /\b(SELECT\s[\s\S]{0,300}?\sFROM\s|INSERT INTO|UPDATE\s+\S+\s+SET\s|DELETE FROM|(CREATE|DROP|ALTER)\s+(UNIQUE\s+)?(TABLE|INDEX|DATABASE)\b|TRUNCATE\s|information_schema|to_regclass|pg_advisory)/;
const QUERY_CALL = /\.query\s*(<[^>]*>)?\s*\(/;
const STATE_LITERAL = /\b(verification_state|state)\s*(=|<>|!=)\s*\d|\b(verification_state|state)\s+(NOT\s+)?IN\s*\(\s*\d|ARRAY\[\d/;

describe("where SQL lives", () => {
  it("no SQL statement and no query call outside src/registry", () => {
    const offenders = [...sources("src"), ...sources("cmd")]
      .filter((file) => !file.startsWith("src/registry/"))
      .flatMap((file) => {
        const text = readFileSync(join(ROOT, file), "utf8");
        const found: string[] = [];
        if (STATEMENT.test(text)) found.push(`${file}: ${text.match(STATEMENT)![0].split("\n")[0]}`);
        if (QUERY_CALL.test(text) && !QUERY_ALLOWED.has(file)) found.push(`${file}: calls .query()`);
        return found;
      });
    expect(offenders).toEqual([]);
  });

  it("registry SQL writes states with SyncState and VerificationState, not numbers", () => {
    const offenders = sources("src/registry").flatMap((file) =>
      readFileSync(join(ROOT, file), "utf8")
        .split("\n")
        .map((line, i) => ({ line, n: i + 1 }))
        .filter(({ line }) => STATE_LITERAL.test(line))
        .map(({ line, n }) => `${file}:${n}: ${line.trim()}`),
    );
    expect(offenders).toEqual([]);
  });

  it("the patterns catch what they are meant to", () => {
    expect(STATEMENT.test("`SELECT id FROM x WHERE y`")).toBe(true);
    expect(STATEMENT.test("`UPDATE ${registry} SET state = 0`")).toBe(true);
    expect(QUERY_CALL.test("await db.query<{ n: string }>(`...`)")).toBe(true);
    expect(STATE_LITERAL.test("WHERE state = 2 AND verification_state IN (0, 3)")).toBe(true);
    expect(STATE_LITERAL.test("WHERE state = ${SyncState.synced}")).toBe(false);
  });
});
