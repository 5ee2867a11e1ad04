/**
 * One type on one site, ready to query: the GeoSite and ReplicableType from the API server, the
 * type's registry config, and a connection to the site's database whose table for the type is
 * known to exist. Every command that reads or flags rows starts here.
 */
import type { GeoSite, ReplicableType } from "../api/v1alpha1/resources.ts";
import { typeRuntimeConfig } from "../strategies/type-config.ts";
import type { ReplicableTypeSchemaConfig } from "../registry/config.ts";
import { deriveIdentifiers } from "../registry/identifiers.ts";
import { connectSiteDatabase, findType, getSite, openSession, type GlobalOptions, type Session, type SiteDatabase } from "./cluster.ts";
import { notFound, usageError } from "./errors.ts";
import { registrySide, statesSide, type Side } from "../registry/row-selection.ts";
import { tableExists } from "../registry/tables.ts";

export interface Target {
  session: Session;
  site: GeoSite;
  type: ReplicableType;
  config: ReplicableTypeSchemaConfig;
  db: SiteDatabase;
  /** The registry on a secondary, `<name>_states` on the primary. */
  side: Side;
}

export interface TargetRequest {
  typeName: string;
  siteName: string;
  /** The command (for messages) and which roles it works on. */
  command: string;
  roles: readonly ("primary" | "secondary")[];
}

/** What the operator last said about this type on this site, to explain a missing table. */
function operatorView(type: ReplicableType, site: string): string {
  const entry = type.status?.sites?.find((s) => s.name === site);
  if (!type.status?.sites) return "the operator has not reconciled the ReplicableType yet";
  if (!entry) return `ReplicableType ${type.metadata.name} does not list GeoSite ${site} among its sites`;
  if (entry.ready) return "the operator reports the site ready; its tables may have been dropped";
  return `the operator reports ${entry.reason ?? "not ready"}${entry.message ? `: ${entry.message}` : ""}`;
}

/** Opens the target and runs `work`; the database connection is closed afterwards. */
export async function withTarget<T>(globals: GlobalOptions, redact: Set<string>, request: TargetRequest, work: (target: Target) => Promise<T>): Promise<T> {
  const session = openSession(globals, redact);
  const site = await getSite(session, request.siteName);
  if (!request.roles.includes(site.spec.role)) {
    throw usageError(
      site.spec.role === "primary"
        ? `GeoSite ${site.metadata.name} is the primary: ${request.command} works on secondary sites, which keep the registries`
        : `GeoSite ${site.metadata.name} is a secondary: ${request.command} works on the primary site`,
    );
  }
  const type = await findType(session, request.typeName);
  const config = typeRuntimeConfig(type.spec).schema;
  const side = site.spec.role === "primary" ? statesSide(config) : registrySide(config);
  const db = await connectSiteDatabase(session, site);
  try {
    if (!(await tableExists(db.pool, side.table))) {
      const ids = deriveIdentifiers(config.name);
      const table = site.spec.role === "primary" ? ids.statesTable : ids.registryTable;
      throw notFound(`${table} does not exist in the ${db.label} yet: ${operatorView(type, site.metadata.name)}`);
    }
    return await work({ session, site, type, config, db, side });
  } finally {
    await db.close().catch(() => undefined);
  }
}
