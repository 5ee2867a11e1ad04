/**
 * `kubectl geo preflight --site S`: could this secondary be promoted now without losing data? The
 * same checklist as its FailoverReady condition (controllers/failover-readiness.ts), evaluated here
 * at this machine's clock from the GeoSite and ReplicableTypes alone, so a status the operator
 * stopped writing is caught even when the operator is down. Reads only the Kubernetes API.
 * Exit code 0 only when every check passes, 4 when one fails.
 */
import type { Command } from "commander";
import { parseDuration } from "../../api/v1alpha1/duration.ts";
import { GROUP, PLURALS, VERSION, type GeoSite, type ReplicableType } from "../../api/v1alpha1/resources.ts";
import { failoverReadiness, failoverThresholdsOf, type FailoverCheck } from "../../controllers/failover-readiness.ts";
import { ConditionType } from "../../controllers/reasons.ts";
import { apiError, getSite, listSites, openSession, type GlobalOptions, type Session } from "../cluster.ts";
import { EXIT_CODES_HELP, ExitCode, PluginError, usageError } from "../errors.ts";
import type { PluginIO } from "../io.ts";
import { renderStructured, renderTable } from "../output.ts";

const HELP = `
Checks, each naming what blocks and how many records:
  siteValid             the site is enabled and the site topology accepts it
  statusFresh           status.lastStatusTime within spec.failover.maxStatusAge (default 3 statusIntervals, at least 5m)
  storageReachable      no database, storage or site-server failure in the site's health
  syncFailures          no registry row of any type failed to sync; a checksum mismatch fails the
                        row's sync (it is fetched again), so mismatches are counted here
  verificationFailures  no synced row failed verification for another reason (its copy could not
                        be checksummed); mismatches are under syncFailures
  synced                every record of every enabled type synced (0 of 0 counts as done)
  verified              every record verified, unless the type's verification is off
  deletionsHeld         no deletions held on the site
  replicationLag        the primary's database replica within spec.failover.maxReplicationLag (1m) plus its heartbeat interval
  eventCursorLag        when the site runs a log cursor: within spec.failover.maxEventCursorLag (eventLog.cursor.maxLag)
`;

async function listTypes(session: Session): Promise<ReplicableType[]> {
  try {
    const list = (await session.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: session.namespace, plural: PLURALS.ReplicableType })) as { items?: ReplicableType[] };
    return list.items ?? [];
  } catch (err) {
    throw apiError(session, err, `ReplicableTypes in namespace ${session.namespace}`);
  }
}

/** The result a script reads (-o json / yaml). */
export interface PreflightResult {
  site: string;
  namespace: string;
  ready: boolean;
  evaluatedAt: string;
  /** The FailoverReady condition as the operator last wrote it, for comparison. */
  condition: { status: string; reason: string; lastTransitionTime: string } | null;
  checks: FailoverCheck[];
}

export function registerPreflightCommand(program: Command, io: PluginIO, redact: Set<string>): void {
  program
    .command("preflight")
    .description("check that a secondary site could be promoted now without losing data (exit code 0 only when ready)")
    .requiredOption("--site <name>", "the secondary GeoSite to check")
    .addHelpText("after", `${HELP}${EXIT_CODES_HELP}`)
    .action(async (opts: { site: string }, cmd: Command) => {
      const globals = cmd.optsWithGlobals<GlobalOptions>();
      const session = openSession(globals, redact);
      const site = await getSite(session, opts.site);
      if (site.spec.role !== "secondary") {
        throw usageError(`GeoSite ${site.metadata.name} is the primary: preflight checks a secondary that could take over from it`);
      }
      const [sites, types] = await Promise.all([listSites(session), listTypes(session)]);
      const primary = sites.find((s: GeoSite) => s.spec.role === "primary" && s.spec.enabled !== false);
      const now = io.now();
      const readiness = failoverReadiness({
        site,
        types,
        now,
        thresholds: failoverThresholdsOf(site.spec),
        ...(primary ? { primaryHeartbeatSeconds: parseDuration(primary.spec.statusInterval ?? "1m") / 1000 } : {}),
      });
      const written = site.status?.conditions?.find((c) => c.type === ConditionType.FailoverReady);
      const failing = readiness.checks.filter((c) => !c.ok);

      if (globals.output !== "table") {
        const result: PreflightResult = {
          site: site.metadata.name,
          namespace: session.namespace,
          ready: readiness.ready,
          evaluatedAt: now.toISOString(),
          condition: written ? { status: written.status, reason: written.reason, lastTransitionTime: written.lastTransitionTime } : null,
          checks: readiness.checks,
        };
        io.out(renderStructured(globals.output, result));
      } else {
        const rows = readiness.checks.map((c) => [c.ok ? "✓" : "✗", c.check, c.type ?? "-", c.message]);
        io.out(renderTable(["", "CHECK", "TYPE", "DETAIL"], rows));
        if (readiness.ready) io.out(`\nGeoSite ${site.metadata.name} is ready for a planned failover: all ${readiness.checks.length} checks pass.\n`);
      }
      if (!readiness.ready) {
        throw new PluginError(
          ExitCode.notReady,
          `GeoSite ${site.metadata.name} is not ready for failover: ${failing.length} of ${readiness.checks.length} checks fail; first: ${failing[0]!.reason}: ${failing[0]!.message}`,
        );
      }
    });
}
