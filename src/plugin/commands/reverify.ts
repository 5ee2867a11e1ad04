/**
 * `kubectl geo reverify <type> --site S`: GitLab's registry "reverify" mutation. On a secondary the
 * selected synced rows go back to verification pending, so the copy is checksummed again; on the
 * primary the `_states` rows are marked for re-checksumming, dropping the old checksum so that no
 * secondary compares against it meanwhile. Carried out by the manager through the registry API.
 */
import { Option, type Command } from "commander";
import type { GlobalOptions } from "../cluster.ts";
import { EXIT_CODES_HELP } from "../errors.ts";
import type { PluginIO } from "../io.ts";
import { renderStructured } from "../output.ts";
import { addSelectionOptions, applySelection, checkSelection, type SelectionOptions } from "../selection.ts";
import { VERIFICATION_STATES } from "../../registry/state-names.ts";
import { withTarget } from "../target.ts";

interface ReverifyOptions extends Omit<SelectionOptions, "inState"> {
  site: string;
  verification?: string;
}

export function registerReverifyCommand(program: Command, io: PluginIO, redact: Set<string>): void {
  const cmd = program
    .command("reverify")
    .description("checksum rows again: registry rows on a secondary, or _states rows on the primary")
    .argument("<type>", "ReplicableType: metadata.name (cool-widget) or spec.name (cool_widget)")
    .requiredOption("--site <name>", "a secondary GeoSite, or the primary");
  addSelectionOptions(cmd)
    .addOption(new Option("--verification <state>", "every row in this verification state, e.g. failed").choices(VERIFICATION_STATES))
    .addHelpText(
      "after",
      `
On a secondary, synced rows become verification pending (rows not yet synced are verified once
they sync; disabled rows stay disabled). On the primary, every selected row but disabled ones
becomes pending and loses its checksum until it is computed again.
${EXIT_CODES_HELP}`,
    )
    .action(async (typeName: string, opts: ReverifyOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>();
      const selection: SelectionOptions = { ...opts, ...(opts.verification ? { inState: opts.verification } : {}) };
      checkSelection(selection, "--verification");
      await withTarget(globals, redact, { typeName, siteName: opts.site, command: "reverify", roles: ["primary", "secondary"] }, async (t) => {
        const primary = t.site.spec.role === "primary";
        const rowsName = primary ? `${t.typeName}_states rows` : `${t.typeName} registry rows`;
        const result = await applySelection(t, "reverify", selection, io, "verification", (count) => `this reverifies all ${count} ${rowsName} on GeoSite ${t.site.metadata.name}`);
        if (globals.output !== "table") {
          io.out(renderStructured(globals.output, { action: "reverify", site: t.site.metadata.name, role: t.site.spec.role, type: t.typeName, ...result }));
          return;
        }
        const unchanged = result.selected - result.changed;
        const why = primary ? "verification disabled" : "not synced, already pending or verification disabled";
        io.out(
          `${result.changed} ${rowsName} on ${t.site.metadata.name} marked for ${primary ? "re-checksumming" : "reverification"}` +
            (unchanged ? ` (${unchanged} of ${result.selected} selected left as they were: ${why})` : "") +
            "\n",
        );
      });
    });
}
