/**
 * `geo-operator schema print -f <manifest> --role primary|secondary`: the exact DDL the operator
 * would run for a ReplicableType, then for its own tables in that database (the heartbeat on the
 * primary; copy locations, worker runs and deletion evidence on a secondary), printed without
 * touching any database, for a DBA to review.
 */
import { Option, type Command } from "commander";
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import { typeRuntimeConfig } from "../../src/strategies/type-config.ts";
import type { ReplicableTypeSpec } from "../../src/api/v1alpha1/types.generated.ts";
import { renderSchemaDDL } from "../../src/registry/ddl.ts";
import { renderSideTablesDDL } from "../../src/registry/side-tables.ts";

/** The ReplicableType specs in a YAML stream (other kinds are skipped). */
export function replicableTypeSpecs(text: string): ReplicableTypeSpec[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as { kind?: string; spec?: ReplicableTypeSpec } | null)
    .filter((d): d is { kind: string; spec: ReplicableTypeSpec } => d?.kind === "ReplicableType" && !!d.spec)
    .map((d) => d.spec);
}

export function registerSchemaCommand(program: Command): void {
  const schema = program.command("schema").description("database schema derived from ReplicableTypes");
  schema
    .command("print")
    .description("print the DDL for a ReplicableType manifest, and for the operator's own tables, without connecting to any database")
    .requiredOption("-f, --filename <file>", "ReplicableType manifest (YAML or JSON; - for stdin)")
    .addOption(new Option("--role <role>", "which database: primary (the _states table) or secondary (the registry)").choices(["primary", "secondary"]).makeOptionMandatory())
    .action((opts: { filename: string; role: "primary" | "secondary" }) => {
      const text = readFileSync(opts.filename === "-" ? 0 : opts.filename, "utf8");
      const specs = replicableTypeSpecs(text);
      if (specs.length === 0) {
        process.stderr.write(`geo-operator schema print: ${opts.filename} holds no ReplicableType\n`);
        process.exitCode = 2;
        return;
      }
      try {
        const scripts = specs.map((s) => renderSchemaDDL(typeRuntimeConfig(s).schema, opts.role));
        // The operator's own tables first, as applySchema applies them: the types' counting triggers call their functions.
        process.stdout.write([renderSideTablesDDL(opts.role), ...scripts].join("\n"));
      } catch (err) {
        process.stderr.write(`geo-operator schema print: ${(err as Error).message}\n`);
        process.exitCode = 2;
      }
    });
}
