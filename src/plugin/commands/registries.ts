/**
 * `kubectl geo registries <type> --site S`: rows of a secondary's `<name>_registry`, filtered like
 * GitLab's registry GraphQL queries (replicationState, verificationState) plus checksum mismatches,
 * read through the registry API (the manager queries the tracking database; RBAC decides who may).
 */
import { InvalidArgumentError, Option, type Command } from "commander";
import { listRegistryObjects, type GlobalOptions } from "../cluster.ts";
import { EXIT_CODES_HELP } from "../errors.ts";
import type { PluginIO } from "../io.ts";
import { ellipsize, formatTime, renderStructured, renderTable } from "../output.ts";
import { SYNC_STATES, VERIFICATION_STATES } from "../../registry/state-names.ts";
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

/** A registry row as the registry API returns it (objects.ts): GitLab's columns, camelCased. */
interface RegistryObject {
  apiVersion: string;
  kind: string;
  metadata: unknown;
  site: string;
  type: string;
  id: number;
  modelId: number;
  state: string;
  lastSyncedAt: string | null;
  retryAt: string | null;
  retryCount: number;
  verificationState: string;
  verifiedAt: string | null;
  checksumMismatch: boolean;
  lastSyncFailure: string | null;
  verificationFailure: string | null;
  [field: string]: unknown;
}

const date = (s: string | null): Date | null => (s ? new Date(s) : null);

function tableRow(r: RegistryObject): string[] {
  return [
    String(r.id),
    String(r.modelId),
    r.state,
    formatTime(date(r.lastSyncedAt)),
    formatTime(date(r.retryAt)),
    String(r.retryCount),
    r.verificationState,
    formatTime(date(r.verifiedAt)),
    String(r.checksumMismatch),
    ellipsize(r.lastSyncFailure ?? r.verificationFailure),
  ];
}

/** The row as `-o json` has always printed it: the object without its Kubernetes envelope. */
function jsonRow(r: RegistryObject): Record<string, unknown> {
  const { apiVersion: _a, kind: _k, metadata: _m, site: _s, type: _t, ...row } = r;
  return row;
}

export function registerRegistriesCommand(program: Command, io: PluginIO, redact: Set<string>): void {
  program
    .command("registries")
    .description("list registry rows of a type on a secondary site (through the registry API)")
    .argument("<type>", "ReplicableType: metadata.name (cool-widget) or spec.name (cool_widget)")
    .requiredOption("--site <name>", "the secondary GeoSite")
    .addOption(new Option("--state <state>", "only rows in this sync state").choices(SYNC_STATES))
    .addOption(new Option("--verification <state>", "only rows in this verification state").choices(VERIFICATION_STATES))
    .option("--mismatch", "only rows whose checksum differs from the primary's")
    .option("--limit <n>", "most rows to show, lowest id first", parsePositiveInteger, DEFAULT_LIMIT)
    .addHelpText("after", `\nThe same rows: kubectl get <type>registries -l site=S,state=failed (e.g. coolwidgetregistries).\n${EXIT_CODES_HELP}`)
    .action(async (typeName: string, opts: RegistriesOptions, cmd: Command) => {
      const globals = cmd.optsWithGlobals<GlobalOptions>();
      const labelSelector = [
        `site=${opts.site}`,
        ...(opts.state ? [`state=${opts.state}`] : []),
        ...(opts.verification ? [`verification=${opts.verification}`] : []),
        ...(opts.mismatch ? ["mismatch=true"] : []),
      ].join(",");
      await withTarget(globals, redact, { typeName, siteName: opts.site, command: "registries", roles: ["secondary"] }, async (t) => {
        const page = await listRegistryObjects<RegistryObject>(t.session, t.plural, { labelSelector, limit: opts.limit }, `${t.typeName} registries on GeoSite ${t.site.metadata.name}`);
        const rows = page.items.slice(0, opts.limit);
        const more = page.continue !== undefined;
        if (globals.output !== "table") {
          io.out(renderStructured(globals.output, { site: t.site.metadata.name, type: t.typeName, limit: opts.limit, truncated: more, items: rows.map(jsonRow) }));
        } else if (rows.length === 0) {
          io.err(`No ${t.typeName} registry rows on ${t.site.metadata.name} match.\n`);
        } else {
          io.out(renderTable(HEADERS, rows.map(tableRow)));
        }
        if (more) io.err(`note: showing the first ${opts.limit} matching rows; raise --limit to see more\n`);
      });
    });
}
