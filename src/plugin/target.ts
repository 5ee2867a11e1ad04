/**
 * One type on one site, as the plugin addresses it: the GeoSite and ReplicableType from the API
 * server, checked for the roles a command works on. The rows themselves are read and changed by
 * the manager, through the registry API (see cluster.ts).
 */
import type { GeoSite, ReplicableType } from "../api/v1alpha1/resources.ts";
import { registryResourceNames } from "../registry-api/group.ts";
import { findType, getSite, openSession, type GlobalOptions, type Session } from "./cluster.ts";
import { usageError } from "./errors.ts";

export interface Target {
  session: Session;
  site: GeoSite;
  type: ReplicableType;
  /** The type's spec.name (cool_widget): table and message names use it. */
  typeName: string;
  /** The registry API resource of the type's registries (coolwidgetregistries). */
  plural: string;
}

export interface TargetRequest {
  typeName: string;
  siteName: string;
  /** The command (for messages) and which roles it works on. */
  command: string;
  roles: readonly ("primary" | "secondary")[];
}

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
  return work({ session, site, type, typeName: type.spec.name, plural: registryResourceNames(type.spec.name).plural });
}
