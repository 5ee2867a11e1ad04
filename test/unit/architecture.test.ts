/**
 * Rules of the code's shape that a reviewer should not have to check by hand:
 *  - nothing outside src/strategies/ compares a strategy name (strategies own their whole story;
 *    see docs/architecture.md, "Adding a strategy");
 *  - lower layers never import from the layers built on them.
 * Each failure names the offending file:line.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../hack/localenv/tools.ts";
import { STRATEGIES } from "../../src/strategies/catalog.ts";

function sourceFiles(dir: string): string[] {
  return readdirSync(join(REPO_ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith(".ts"))
    .map((e) => relative(REPO_ROOT, join(e.parentPath, e.name)));
}

const lines = (file: string) => readFileSync(join(REPO_ROOT, file), "utf8").split("\n");

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const names = STRATEGIES.map((s) => escape(s.name)).join("|");
const Q = `["'\`]`;
const COMPARE = "(?:===?|!==?)";

/** Patterns of a strategy comparison: a `strategy` compared with a literal (TypeScript or CEL), a switch on it, or a catalog name compared. */
const STRATEGY_COMPARISONS: RegExp[] = [
  // x.strategy === "blob", spec.strategy != 'repository' (CEL), strategy !== `...`; not a template '${name}'.
  new RegExp(`\\bstrategy\\b[\\w.?!)\\]]*\\s*${COMPARE}\\s*${Q}(?!\\$\\{)`, "i"),
  // "blob" === type.strategy
  new RegExp(`${Q}[^"'\`\\n]*${Q}\\s*${COMPARE}\\s*[\\w.?!]*strategy\\b`, "i"),
  // switch (type.strategy)
  /\bswitch\s*\([^)]*strategy[^)]*\)/i,
  // any catalog name compared, switched on or looked up: === "blob", case 'repository':, .includes("blob")
  new RegExp(`${COMPARE}\\s*(${Q})(?:${names})\\1|(${Q})(?:${names})\\2\\s*${COMPARE}|\\bcase\\s+(${Q})(?:${names})\\3|\\.includes\\(\\s*(${Q})(?:${names})\\4\\s*\\)`),
];

/** `file:line: text` for every line of `files` that compares a strategy name. */
export function strategyComparisons(files: { file: string; lines: string[] }[]): string[] {
  const found: string[] = [];
  for (const { file, lines: text } of files) {
    text.forEach((line, i) => {
      if (STRATEGY_COMPARISONS.some((re) => re.test(line))) found.push(`${file}:${i + 1}: ${line.trim()}`);
    });
  }
  return found;
}

const IMPORT = /(?:\bfrom\s+|\bimport\s*\(\s*|^\s*import\s+)["'](\.[^"']+)["']/g;

/** Repository-relative targets of the relative imports of `file`, with their line numbers. */
function importsOf(file: string): { line: number; target: string }[] {
  const out: { line: number; target: string }[] = [];
  lines(file).forEach((text, i) => {
    for (const m of text.matchAll(IMPORT)) out.push({ line: i + 1, target: relative(REPO_ROOT, resolve(REPO_ROOT, dirname(file), m[1]!)) });
  });
  return out;
}

const under = (path: string, prefixes: readonly string[]) => prefixes.some((p) => path === p || path.startsWith(`${p}/`));

const LAYER_RULES: { files: string[]; mayNotImport: string[] }[] = [
  {
    files: ["src/util", "src/api", "src/registry", "src/k8s", "src/metrics"],
    mayNotImport: ["src/strategies", "src/workers", "src/controllers", "src/plugin", "src/manager.ts"],
  },
  { files: ["src/strategies"], mayNotImport: ["src/workers", "src/controllers", "src/plugin", "src/manager.ts"] },
  // What runs in a worker's or a cursor's process; the controllers build on them (a cursor is a site server).
  { files: ["src/workers", "src/cursor"], mayNotImport: ["src/controllers", "src/plugin", "src/manager.ts"] },
  { files: ["src/workers"], mayNotImport: ["src/cursor"] },
];

describe("strategy names", () => {
  it("are compared nowhere outside src/strategies/", () => {
    const files = [...sourceFiles("src"), ...sourceFiles("cmd")]
      .filter((f) => !f.startsWith("src/strategies/") && !f.endsWith(".generated.ts"))
      .map((file) => ({ file, lines: lines(file) }));
    expect(files.length).toBeGreaterThan(50);
    expect(strategyComparisons(files), "compare strategy names in src/strategies/ only: add what you need to StrategyDefinition").toEqual([]);
  });

  it("are caught in every form the scan knows", () => {
    const bad = [
      'if (type.spec.strategy === "blob") {',
      "if (config.strategy !== 'repository') return;",
      'const repo = "repository" == rt.spec.strategy;',
      "{ rule: \"self.strategy != 'blob' || has(self.source.objectKey)\" }",
      "switch (type.strategy) {",
      '    case "blob":',
      'if (["repository"].includes("repository")) {}',
      "types.some((t) => t.spec.strategy==='blob')",
    ];
    const good = [
      'const spec = { name: "w", strategy: "blob", source: { table: "ws" } };',
      "{ rule: `self.strategy != '${strategy}' || has(self.source.${field})` }",
      "const strategy = strategyFor(type.strategy);",
      'if (strategy.primaryDataMayChange) log.info("repository changed");',
    ];
    const scan = (text: string[]) => strategyComparisons([{ file: "x.ts", lines: text }]);
    expect(scan(bad)).toHaveLength(bad.length);
    expect(scan(good)).toEqual([]);
    expect(scan(["", 'x.strategy === "blob"'])).toEqual(['x.ts:2: x.strategy === "blob"']);
  });
});

describe("dependency layers", () => {
  for (const rule of LAYER_RULES) {
    it(`${rule.files.join(", ")} import nothing from ${rule.mayNotImport.join(", ")}`, () => {
      const offences: string[] = [];
      for (const file of rule.files.flatMap((d) => sourceFiles(d))) {
        for (const { line, target } of importsOf(file)) {
          if (under(target, rule.mayNotImport)) offences.push(`${file}:${line} imports ${target}`);
        }
      }
      expect(offences).toEqual([]);
    });
  }

  it("sees static, re-exported and dynamic imports", () => {
    const text = ['import { a } from "../workers/run.ts";', 'export { b } from "./b.ts";', '  const { c } = await import("../controllers/c.ts");', 'import "./side-effect.ts";'];
    const found = text.flatMap((t) => [...t.matchAll(IMPORT)].map((m) => m[1]));
    expect(found).toEqual(["../workers/run.ts", "./b.ts", "../controllers/c.ts", "./side-effect.ts"]);
  });
});
