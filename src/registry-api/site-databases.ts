/**
 * The registry API's connections to the sites' databases: the URL from the Secret a GeoSite
 * names (read as the operator reads it, opted-in Secrets only), the operator's own pool for that
 * URL (SiteAccess), and errors a person can act on that never show a password.
 */
import type pg from "pg";
import type { GeoSite, ReplicableType } from "../api/v1alpha1/resources.ts";
import type { SiteAccess } from "../controllers/site-access.ts";
import type { ReplicableTypeSchemaConfig } from "../registry/config.ts";
import { deriveIdentifiers } from "../registry/identifiers.ts";
import { registrySide, statesSide, type Side } from "../registry/row-selection.ts";
import { tableExists } from "../registry/tables.ts";
import { checkDatabase, describeDatabase } from "../util/database.ts";
import { ApiError } from "./status.ts";

export interface OpenSide {
  pool: pg.Pool;
  /** "tracking database of GeoSite tokyo (127.0.0.1:5432/geo)". */
  label: string;
  /** The registry on a secondary, `<name>_states` on the primary. */
  side: Side;
}

/** What the operator last said about this type on this site, to explain a missing table. */
function operatorView(type: ReplicableType, site: string): string {
  const entry = type.status?.sites?.find((s) => s.name === site);
  if (!type.status?.sites) return "the operator has not reconciled the ReplicableType yet";
  if (!entry) return `ReplicableType ${type.metadata.name} does not list GeoSite ${site} among its sites`;
  if (entry.ready) return "the operator reports the site ready; its tables may have been dropped";
  return `the operator reports ${entry.reason ?? "not ready"}${entry.message ? `: ${entry.message}` : ""}`;
}

export class SiteDatabases {
  private readonly access: SiteAccess;

  constructor(access: SiteAccess) {
    this.access = access;
  }

  /** The site's database (tracking on a secondary, main on the primary), reachable, or an ApiError. */
  async open(site: GeoSite): Promise<{ pool: pg.Pool; label: string }> {
    const ref = site.spec.database.secretRef;
    const key = ref.key ?? "url";
    const namespace = site.metadata.namespace ?? "default";
    const what = site.spec.role === "primary" ? "main database" : "tracking database";
    let url: string | undefined;
    try {
      url = (await this.access.resolveEnv(namespace, [{ name: "URL", valueFrom: { secretKeyRef: { name: ref.name, key, optional: true } } }])).URL;
    } catch (err) {
      throw new ApiError(500, "InternalError", (err as Error).message);
    }
    if (url === undefined) {
      throw new ApiError(404, "NotFound", `GeoSite ${site.metadata.name} names Secret ${namespace}/${ref.name} key "${key}" for its ${what}, but there is no such Secret or key`);
    }
    const pool = this.access.poolFor(url);
    try {
      await checkDatabase(pool, url, `${what} of GeoSite ${site.metadata.name}`);
    } catch (err) {
      throw new ApiError(503, "ServiceUnavailable", (err as Error).message);
    }
    return { pool, label: `${what} of GeoSite ${site.metadata.name} (${describeDatabase(url)})` };
  }

  /** The site's database with the type's table on its side known to exist. */
  async openSide(site: GeoSite, type: ReplicableType, config: ReplicableTypeSchemaConfig): Promise<OpenSide> {
    const { pool, label } = await this.open(site);
    const primary = site.spec.role === "primary";
    const side = primary ? statesSide(config) : registrySide(config);
    if (!(await tableExists(pool, side.table))) {
      const ids = deriveIdentifiers(config.name);
      throw new ApiError(404, "NotFound", `${primary ? ids.statesTable : ids.registryTable} does not exist in the ${label} yet: ${operatorView(type, site.metadata.name)}`);
    }
    return { pool, label, side };
  }
}
