/**
 * `geo-operator`: the one CLI. Subcommands are registered from their own modules so this file
 * stays a table of contents.
 */
import { Command } from "commander";
import { existsSync, readFileSync } from "node:fs";
import { registerCrdsCommand } from "./commands/crds.ts";
import { registerCursorCommand } from "./commands/cursor.ts";
import { registerEventCommand } from "./commands/event.ts";
import { registerManagerCommand } from "./commands/manager.ts";
import { registerSchemaCommand } from "./commands/schema.ts";
import { registerServeFilesCommand } from "./commands/serve-files.ts";
import { registerWorkerCommand } from "./commands/worker.ts";

// cmd/ in a checkout, dist/cmd/ in the image: package.json is one or two levels up.
const pkgURL = [new URL("../package.json", import.meta.url), new URL("../../package.json", import.meta.url)].find((u) => existsSync(u))!;
const pkg = JSON.parse(readFileSync(pkgURL, "utf8")) as { version: string };

const program = new Command()
  .name("geo-operator")
  .description("Replicates and verifies application data (S3 blobs, git repositories) from a primary site to secondary sites.")
  .version(pkg.version)
  .showHelpAfterError();

registerCrdsCommand(program);
registerSchemaCommand(program);
registerWorkerCommand(program);
registerManagerCommand(program);
registerServeFilesCommand(program);
registerCursorCommand(program);
registerEventCommand(program);

await program.parseAsync(process.argv);
