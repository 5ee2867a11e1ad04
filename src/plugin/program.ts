/**
 * The `kubectl geo` command line: global flags, the four subcommands, and the one place where
 * errors become messages and exit codes.
 */
import { Command, CommanderError, Option } from "commander";
import { redactMessage } from "./cluster.ts";
import { registerPreflightCommand } from "./commands/preflight.ts";
import { registerRegistriesCommand } from "./commands/registries.ts";
import { registerReleaseDeletionsCommand } from "./commands/release-deletions.ts";
import { registerResyncCommand } from "./commands/resync.ts";
import { registerReverifyCommand } from "./commands/reverify.ts";
import { registerStatusCommand } from "./commands/status.ts";
import { EXIT_CODES_HELP, ExitCode, PluginError, type ExitCodeValue } from "./errors.ts";
import type { PluginIO } from "./io.ts";

export function buildProgram(io: PluginIO, redact: Set<string>, version: string): Command {
  const program = new Command()
    .name("kubectl geo")
    .description("Inspect and steer geo-operator replication: site status, registry rows, resync and reverify.")
    .version(version)
    .option("--kubeconfig <file>", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    .option("-n, --namespace <namespace>", "namespace of the GeoSites and ReplicableTypes (default: the kubeconfig context's)")
    .addOption(new Option("-o, --output <format>", "output format").choices(["table", "json", "yaml"]).default("table"))
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride()
    .addHelpText("after", EXIT_CODES_HELP);
  registerStatusCommand(program, io, redact);
  registerRegistriesCommand(program, io, redact);
  registerResyncCommand(program, io, redact);
  registerReverifyCommand(program, io, redact);
  registerReleaseDeletionsCommand(program, io, redact);
  registerPreflightCommand(program, io, redact);
  return program;
}

/** Runs one invocation; resolves to the exit code instead of exiting, so tests can call it. */
export async function runPlugin(argv: string[], io: PluginIO, version: string): Promise<ExitCodeValue> {
  const redact = new Set<string>();
  const program = buildProgram(io, redact, version);
  try {
    await program.parseAsync(argv, { from: "user" });
    return ExitCode.ok;
  } catch (err) {
    // Commander has already printed its message (unknown flag, bad choice, missing argument).
    if (err instanceof CommanderError) return err.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    const message = err instanceof Error ? err.message : String(err);
    io.err(`error: ${redactMessage(message, redact)}\n`);
    return err instanceof PluginError ? err.exitCode : ExitCode.failure;
  }
}
