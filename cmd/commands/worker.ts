/** `geo-operator worker`: the CLI face of src/workers/run.ts. */
import { Option, type Command } from "commander";
import { WORKER_KINDS, type WorkerKind } from "../../src/workers/kinds.ts";
import type { WorkerOptions } from "../../src/workers/run.ts";

export function registerWorkerCommand(program: Command): void {
  program
    .command("worker")
    .description("run one sync or verification pass for a type and site (what the operator's Jobs run)")
    .addArgument(program.createArgument("<kind>", "verify-primary | sync | verify | consistency").choices(WORKER_KINDS))
    .requiredOption("--type <name>", "ReplicableType spec.name, e.g. cool_widget")
    .requiredOption("--site <name>", "GeoSite this run acts for")
    .option("--max-run <duration>", "stop claiming new work after this long", "10m")
    .addOption(new Option("--log-level <level>", "log level").choices(["debug", "info", "warn", "error"]).default("info"))
    .action(async (kind: WorkerKind, opts: WorkerOptions) => {
      // Loaded here, not at start-up: the storage SDKs and git code are the worker's alone, and
      // the manager (the same binary) should not carry them in memory.
      const { runWorker } = await import("../../src/workers/run.ts");
      process.exitCode = await runWorker(kind, opts);
    });
}
