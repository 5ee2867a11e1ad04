/**
 * `kubectl geo release-deletions <type> --site S`: a person has checked why a secondary held the
 * type's deletions (replica unproven or lagging, the primary empty, too many gone at once) and
 * lets them go ahead, through the registry API (the hold records the user the API server named). The next complete consistency pass deletes what two passes confirmed; the
 * annotation geo.replication.dev/release-deletions does the same through the operator.
 */
import type { Command } from "commander";
import { createRegistryAction, type GlobalOptions } from "../cluster.ts";
import { EXIT_CODES_HELP } from "../errors.ts";
import type { PluginIO } from "../io.ts";
import { renderStructured } from "../output.ts";
import { withTarget } from "../target.ts";

export function registerReleaseDeletionsCommand(program: Command, io: PluginIO, redact: Set<string>): void {
  program
    .command("release-deletions")
    .description("let deletions a secondary held for a type go ahead (after you checked why they were held)")
    .argument("<type>", "ReplicableType: metadata.name (cool-widget) or spec.name (cool_widget)")
    .requiredOption("--site <name>", "the secondary GeoSite")
    .addHelpText("after", `\nThe next complete consistency pass deletes what it still confirms gone.\n${EXIT_CODES_HELP}`)
    .action(async (typeName: string, opts: { site: string }, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>();
      await withTarget(globals, redact, { typeName, siteName: opts.site, command: "release-deletions", roles: ["secondary"] }, async (t) => {
        const hold = await createRegistryAction(t.session, { action: "release-deletions", type: t.typeName, site: t.site.metadata.name }, false);
        const result = { action: "release-deletions", site: t.site.metadata.name, type: t.typeName, reason: hold.reason, pending: hold.pending, requestedBy: hold.requestedBy };
        if (globals.output !== "table") {
          io.out(renderStructured(globals.output, result));
          return;
        }
        io.out(`released ${hold.pending} held ${t.typeName} deletion(s) on ${t.site.metadata.name} (${hold.reason}); the next complete consistency pass deletes what it still confirms\n`);
      });
    });
}
