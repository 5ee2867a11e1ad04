/**
 * `kubectl geo status [--site S]`: what the operator last wrote to each GeoSite's status, one row
 * per site and type (GitLab's GeoNodeStatus per replicable). Reads no database.
 */
import type { Command } from "commander";
import type { GeoSite } from "../../api/v1alpha1/resources.ts";
import type { GeoSiteStatus } from "../../api/v1alpha1/types.generated.ts";
import { getSite, listSites, openSession, type GlobalOptions } from "../cluster.ts";
import { EXIT_CODES_HELP } from "../errors.ts";
import type { PluginIO } from "../io.ts";
import { formatAge, formatCount, formatPercent, renderStructured, renderTable } from "../output.ts";

/** Status older than this gets a note: the operator refreshes it every minute by default. */
export const STALE_AFTER_MS = 5 * 60_000;

type TypeStatus = NonNullable<GeoSiteStatus["types"]>[number];

const HEADERS = ["SITE", "ROLE", "TYPE", "COUNT", "SYNCED", "FAILED", "VERIFIED", "VERIFICATION FAILED", "SYNCED%", "VERIFIED%", "HEALTH"];

/** One table row. The primary checksums rather than syncs, so its VERIFIED columns are checksums. */
function typeRow(site: GeoSite, t: TypeStatus | undefined): string[] {
  const health = site.status?.health ?? "-";
  const head = [site.metadata.name, site.spec.role];
  if (!t) return [...head, "-", "-", "-", "-", "-", "-", "-", "-", health];
  if (site.spec.role === "primary") {
    const total = t.checksumTotalCount ?? 0;
    const checksummed = total === 0 ? undefined : ((t.checksummedCount ?? 0) / total) * 100;
    return [...head, t.name, formatCount(t.count), "-", "-", formatCount(t.checksummedCount), formatCount(t.checksumFailedCount), "-", formatPercent(checksummed), health];
  }
  return [
    ...head,
    t.name,
    formatCount(t.count),
    formatCount(t.syncedCount),
    formatCount(t.failedCount),
    formatCount(t.verifiedCount),
    formatCount(t.verificationFailedCount),
    formatPercent(t.syncedInPercentage),
    formatPercent(t.verifiedInPercentage),
    health,
  ];
}

/** Why a site's numbers may not be current, or undefined when they are. */
function staleness(site: GeoSite, now: Date): string | undefined {
  const written = site.status?.lastStatusTime;
  if (!written) return `GeoSite ${site.metadata.name} has no status yet: is the operator running?`;
  const age = now.getTime() - new Date(written).getTime();
  if (age <= STALE_AFTER_MS) return undefined;
  return `status of GeoSite ${site.metadata.name} was last written ${formatAge(age)} ago (${written}): the operator may not be running, or cannot reach the site's databases`;
}

const byRoleThenName = (a: GeoSite, b: GeoSite): number =>
  a.spec.role === b.spec.role ? a.metadata.name.localeCompare(b.metadata.name) : a.spec.role === "primary" ? -1 : 1;

export function registerStatusCommand(program: Command, io: PluginIO, redact: Set<string>): void {
  program
    .command("status")
    .description("replication and verification counts per site and type, from GeoSite status")
    .option("--site <name>", "only this GeoSite")
    .addHelpText("after", EXIT_CODES_HELP)
    .action(async (opts: { site?: string }, cmd: Command) => {
      const globals = cmd.optsWithGlobals<GlobalOptions>();
      const session = openSession(globals, redact);
      const sites = (opts.site ? [await getSite(session, opts.site)] : await listSites(session)).sort(byRoleThenName);
      const now = io.now();
      const notes = sites.map((s) => staleness(s, now)).filter((n): n is string => n !== undefined);

      if (globals.output !== "table") {
        const items = sites.map((s) => ({
          site: s.metadata.name,
          role: s.spec.role,
          health: s.status?.health ?? null,
          healthReasons: s.status?.healthReasons ?? [],
          synced: s.status?.synced ?? null,
          verified: s.status?.verified ?? null,
          lastStatusTime: s.status?.lastStatusTime ?? null,
          stale: staleness(s, now) !== undefined,
          types: s.status?.types ?? [],
        }));
        io.out(renderStructured(globals.output, { namespace: session.namespace, items }));
        return;
      }
      if (sites.length === 0) {
        io.err(`No GeoSites found in namespace ${session.namespace}.\n`);
        return;
      }
      const rows = sites.flatMap((s) => {
        const types = s.status?.types ?? [];
        return types.length ? types.map((t) => typeRow(s, t)) : [typeRow(s, undefined)];
      });
      io.out(renderTable(HEADERS, rows));
      for (const s of sites) {
        for (const reason of s.status?.health === "Unhealthy" ? (s.status.healthReasons ?? []) : []) io.err(`${s.metadata.name} is unhealthy: ${reason}\n`);
      }
      for (const note of notes) io.err(`note: ${note}\n`);
    });
}
