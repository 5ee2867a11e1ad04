/**
 * `geo-operator event publish --type T --id N --event updated`: tells secondaries about a change
 * the database cannot see (a blob rewritten in place, a push to a repository), through
 * geo_operator_publish_event() in the primary's main database (GEO_PRIMARY_DB_URL, or a file
 * named by GEO_PRIMARY_DB_URL_FILE). Prints the event's id.
 * Exit codes: 0 published, 1 database unreachable, 2 invalid arguments or unknown type.
 */
import { Option, type Command } from "commander";
import { EVENT_KIND_NAMES, type EventKindName } from "../../src/registry/states.ts";

interface PublishOptions {
  type: string;
  id: string;
  event: EventKindName;
}

/** SQLSTATEs geo_operator_publish_event() raises for a caller's mistake. */
const CALLER_ERRORS = new Set(["22023", "42704"]);

export function registerEventCommand(program: Command): void {
  const event = program.command("event").description("the change event log on the primary");
  event
    .command("publish")
    .description("publish a change the database cannot see (a rewritten blob, a git push) so secondaries act on it now")
    .requiredOption("--type <name>", "ReplicableType spec.name, e.g. upload")
    .requiredOption("--id <model-id>", "the record's id in the model table")
    .addOption(new Option("--event <kind>", "what happened").choices(EVENT_KIND_NAMES).default("updated"))
    .action(async (opts: PublishOptions) => {
      const { requireSecret, ConfigurationError } = await import("../../src/util/config-env.ts");
      const { createPool } = await import("../../src/util/database.ts");
      const { publishEvent } = await import("../../src/registry/event-log.ts");
      if (!/^[1-9][0-9]{0,18}$/.test(opts.id)) {
        process.stderr.write(`geo-operator event publish: --id must be a positive integer, got ${JSON.stringify(opts.id)}\n`);
        process.exitCode = 2;
        return;
      }
      let url: string;
      try {
        url = requireSecret(process.env, "GEO_PRIMARY_DB_URL", "the primary's main database");
      } catch (err) {
        process.stderr.write(`geo-operator event publish: ${(err as Error).message}\n`);
        process.exitCode = err instanceof ConfigurationError ? 2 : 1;
        return;
      }
      const pool = createPool(url, { max: 1, applicationName: "geo-operator event publish" });
      try {
        const id = await publishEvent(pool, opts.type, Number(opts.id), opts.event);
        process.stdout.write(`published ${opts.event} ${opts.type} ${opts.id}: event ${id}\n`);
      } catch (err) {
        const code = (err as { code?: string }).code;
        process.stderr.write(`geo-operator event publish: ${(err as Error).message}\n`);
        process.exitCode = code && CALLER_ERRORS.has(code) ? 2 : 1;
      } finally {
        await pool.end();
      }
    });
}
