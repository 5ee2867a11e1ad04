/**
 * `kubectl geo resync <type> --site S`: GitLab's registry "resync" mutation. The selected rows on a
 * secondary go back to pending with their retries reset, so the next sync run copies them again.
 * The manager does it (a RegistryAction through the registry API), so RBAC decides who may.
 */
import { Option, type Command } from "commander";
import type { GlobalOptions } from "../cluster.ts";
import { EXIT_CODES_HELP } from "../errors.ts";
import type { PluginIO } from "../io.ts";
import { renderStructured } from "../output.ts";
import { addSelectionOptions, applySelection, checkSelection, type SelectionOptions } from "../selection.ts";
import { SYNC_STATES } from "../../registry/state-names.ts";
import { withTarget } from "../target.ts";

interface ResyncOptions extends Omit<SelectionOptions, "inState"> {
  site: string;
  state?: string;
}

export function registerResyncCommand(program: Command, io: PluginIO, redact: Set<string>): void {
  const cmd = program
    .command("resync")
    .description("mark registry rows on a secondary for a fresh copy (GitLab's resync)")
    .argument("<type>", "ReplicableType: metadata.name (cool-widget) or spec.name (cool_widget)")
    .requiredOption("--site <name>", "the secondary GeoSite");
  addSelectionOptions(cmd)
    .addOption(new Option("--state <state>", "every row in this sync state, e.g. failed").choices(SYNC_STATES))
    .addHelpText("after", `\nRows being copied, synced or failed become pending; pending rows stay as they are.\n${EXIT_CODES_HELP}`)
    .action(async (typeName: string, opts: ResyncOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>();
      const selection: SelectionOptions = { ...opts, ...(opts.state ? { inState: opts.state } : {}) };
      checkSelection(selection, "--state");
      await withTarget(globals, redact, { typeName, siteName: opts.site, command: "resync", roles: ["secondary"] }, async (t) => {
        const result = await applySelection(t, "resync", selection, io, "state", (count) => `this resyncs all ${count} ${t.typeName} registry rows on GeoSite ${t.site.metadata.name}`);
        if (globals.output !== "table") {
          io.out(renderStructured(globals.output, { action: "resync", site: t.site.metadata.name, type: t.typeName, ...result }));
          return;
        }
        const unchanged = result.selected - result.changed;
        io.out(
          `${result.changed} ${t.typeName} registry row(s) on ${t.site.metadata.name} marked for resync` +
            (unchanged ? ` (${unchanged} of ${result.selected} selected were already pending)` : "") +
            "\n",
        );
      });
    });
}
