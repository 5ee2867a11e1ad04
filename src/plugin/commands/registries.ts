/**
 * `kubectl geo registries <type> --site S`: rows of a secondary's `<name>_registry`, filtered like
 * GitLab's registry GraphQL queries (replicationState, verificationState) plus checksum mismatches.
 */
import { InvalidArgumentError, Option, type Command } from "commander";
import type { RegistryRow } from "../../registry/registry-row.ts";
import type { GlobalOptions } from "../cluster.ts";
import { EXIT_CODES_HELP } from "../errors.ts";
import type { PluginIO } from "../io.ts";
import { ellipsize, formatTime, renderStructured, renderTable } from "../output.ts";
import { mismatchDetails } from "../../registry/replicas.ts";
import { listRegistryRows, type RowFilter } from "../../registry/row-selection.ts";
import { SYNC_STATES, VERIFICATION_STATES, syncStateName, syncStateValue, verificationStateName, verificationStateValue } from "../states.ts";
import { withTarget } from "../target.ts";

export const DEFAULT_LIMIT = 50;

interface RegistriesOptions {
  site: string;
  state?: string;
  verification?: string;
  mismatch?: boolean;
  limit: number;
}

export function parsePositiveInteger(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError("must be a positive integer");
  return n;
}

const HEADERS = ["ID", "MODEL ID", "STATE", "LAST SYNCED", "RETRY AT", "RETRIES", "VERIFICATION", "VERIFIED AT", "CHECKSUM MISMATCH", "LAST FAILURE"];

function tableRow(r: RegistryRow): string[] {
  return [
    String(r.id),
    String(r.modelId),
    syncStateName(r.state),
    formatTime(r.lastSyncedAt),
    formatTime(r.retryAt),
    String(r.retryCount),
    verificationStateName(r.verificationState),
    formatTime(r.verifiedAt),
    String(r.checksumMismatch),
    ellipsize(r.lastSyncFailure ?? r.verificationFailure),
  ];
}

const hex = (b: Buffer | null): string | null => (b ? b.toString("hex") : null);

function jsonRow(r: RegistryRow, mismatch: unknown): Record<string, unknown> {
  return {
    id: r.id,
    modelId: r.modelId,
    state: syncStateName(r.state),
    createdAt: r.createdAt,
    lastSyncedAt: r.lastSyncedAt,
    retryAt: r.retryAt,
    retryCount: r.retryCount,
    lastSyncFailure: r.lastSyncFailure,
    missingOnPrimary: r.missingOnPrimary,
    verificationState: verificationStateName(r.verificationState),
    verificationStartedAt: r.verificationStartedAt,
    verifiedAt: r.verifiedAt,
    verificationRetryAt: r.verificationRetryAt,
    verificationRetryCount: r.verificationRetryCount,
    verificationFailure: r.verificationFailure,
    verificationChecksum: hex(r.verificationChecksum),
    checksumMismatch: r.checksumMismatch,
    verificationChecksumMismatched: hex(r.verificationChecksumMismatched),
    mismatch: mismatch ?? null,
  };
}

export function registerRegistriesCommand(program: Command, io: PluginIO, redact: Set<string>): void {
  program
    .command("registries")
    .description("list registry rows of a type on a secondary site (its tracking database)")
    .argument("<type>", "ReplicableType: metadata.name (cool-widget) or spec.name (cool_widget)")
    .requiredOption("--site <name>", "the secondary GeoSite")
    .addOption(new Option("--state <state>", "only rows in this sync state").choices(SYNC_STATES))
    .addOption(new Option("--verification <state>", "only rows in this verification state").choices(VERIFICATION_STATES))
    .option("--mismatch", "only rows whose checksum differs from the primary's")
    .option("--limit <n>", "most rows to show, lowest id first", parsePositiveInteger, DEFAULT_LIMIT)
    .addHelpText("after", EXIT_CODES_HELP)
    .action(async (typeName: string, opts: RegistriesOptions, cmd: Command) => {
      const globals = cmd.optsWithGlobals<GlobalOptions>();
      const filter: RowFilter = {
        ...(opts.state ? { state: syncStateValue(opts.state) } : {}),
        ...(opts.verification ? { verification: verificationStateValue(opts.verification) } : {}),
        ...(opts.mismatch ? { mismatch: true } : {}),
      };
      await withTarget(globals, redact, { typeName, siteName: opts.site, command: "registries", roles: ["secondary"] }, async (t) => {
        const fetched = await listRegistryRows(t.db.pool, t.config, filter, opts.limit + 1);
        const rows = fetched.slice(0, opts.limit);
        const more = fetched.length > rows.length;
        if (globals.output !== "table") {
          const mismatches = await mismatchDetails(t.db.pool, t.config.name, rows.map((r) => r.modelId));
          io.out(renderStructured(globals.output, { site: t.site.metadata.name, type: t.config.name, limit: opts.limit, truncated: more, items: rows.map((r) => jsonRow(r, mismatches.get(r.modelId))) }));
        } else if (rows.length === 0) {
          io.err(`No ${t.config.name} registry rows on ${t.site.metadata.name} match.\n`);
        } else {
          io.out(renderTable(HEADERS, rows.map(tableRow)));
        }
        if (more) io.err(`note: showing the first ${opts.limit} matching rows; raise --limit to see more\n`);
      });
    });
}
