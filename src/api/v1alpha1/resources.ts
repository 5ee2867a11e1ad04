/** Typed shapes of the two custom resources as they come from the API server. */
import type { KubernetesObject, V1ObjectMeta } from "@kubernetes/client-node";
import type { GeoSiteSpec, GeoSiteStatus, ReplicableTypeSpec, ReplicableTypeStatus } from "./types.generated.ts";

export { API_VERSION, GROUP, VERSION } from "./common.ts";

export interface GeoSite extends KubernetesObject {
  metadata: V1ObjectMeta & { name: string; namespace: string };
  spec: GeoSiteSpec;
  status?: GeoSiteStatus;
}

export interface ReplicableType extends KubernetesObject {
  metadata: V1ObjectMeta & { name: string; namespace: string };
  spec: ReplicableTypeSpec;
  status?: ReplicableTypeStatus;
}

export type Condition = NonNullable<GeoSiteStatus["conditions"]>[number];

export const PLURALS = { GeoSite: "geosites", ReplicableType: "replicabletypes" } as const;

/** Finalizer that lets the operator remove Jobs (and, with deletionPolicy Delete, tables) first. */
export const FINALIZER = "geo.replication.dev/finalizer";
/** Annotation holding a timestamp; a new value runs the type's Jobs now (as VolSync's trigger.manual). */
export const TRIGGER_ANNOTATION = "geo.replication.dev/trigger";
/**
 * Runs asked for through the registry API, {"<site>": {"<kind>": "<RFC 3339 time>"}}: a
 * RegistryAction that changed rows (resync, reverify, release-deletions) starts the run that acts
 * on them at once instead of at the next interval. Written by the operator (run-requests.ts).
 */
export const RUN_REQUESTS_ANNOTATION = "geo.replication.dev/run-requests";
/** A new value lets deletions held on this type's secondaries go ahead once (see docs/reliability.md). */
export const RELEASE_DELETIONS_ANNOTATION = "geo.replication.dev/release-deletions";
/**
 * On a secondary GeoSite: the primary database identity (a UUID from the heartbeat) this site is to
 * replicate from from now on, after the primary's database was rebuilt on purpose (heartbeat.ts).
 */
export const ACCEPT_PRIMARY_IDENTITY_ANNOTATION = "geo.replication.dev/accept-primary-identity";
/** "true": a type being deleted releases its finalizer without waiting for unreachable sites. */
export const FORCE_DELETE_ANNOTATION = "geo.replication.dev/force-delete";

export const LABELS = {
  managedBy: "app.kubernetes.io/managed-by",
  type: "geo.replication.dev/type",
  site: "geo.replication.dev/site",
  kind: "geo.replication.dev/worker",
  ownerUID: "geo.replication.dev/owner-uid",
  /** On a Secret: "true" lets GeoSites name it (the operator reads and hands out only such Secrets). */
  credentials: "geo.replication.dev/credentials",
} as const;

/** Sets a condition the way apimachinery's meta.SetStatusCondition does (transition time kept when status is unchanged). */
export function setCondition(conditions: Condition[], next: Omit<Condition, "lastTransitionTime">, now: Date): Condition[] {
  const existing = conditions.find((c) => c.type === next.type);
  const lastTransitionTime = existing && existing.status === next.status ? existing.lastTransitionTime : now.toISOString();
  const merged: Condition = { ...next, lastTransitionTime };
  return [...conditions.filter((c) => c.type !== next.type), merged].sort((a, b) => a.type.localeCompare(b.type));
}

/** What a lookup by name found, or the message saying what exists instead. */
export type Lookup<T> = { found: T } | { notFound: string };

/** A ReplicableType by metadata.name (cool-widget) or spec.name (cool_widget); the former wins. */
export function lookUpType(types: readonly ReplicableType[], name: string, namespace: string): Lookup<ReplicableType> {
  const found = types.find((t) => t.metadata.name === name) ?? types.find((t) => t.spec.name === name);
  if (found) return { found };
  const known = types.length ? types.map((t) => `${t.metadata.name} (${t.spec.name})`).sort().join(", ") : "none";
  return { notFound: `ReplicableType "${name}" not found in namespace ${namespace} (types there: ${known})` };
}

export function lookUpSite(sites: readonly GeoSite[], name: string, namespace: string): Lookup<GeoSite> {
  const found = sites.find((s) => s.metadata.name === name);
  if (found) return { found };
  const known = sites.length ? sites.map((s) => s.metadata.name).sort().join(", ") : "none";
  return { notFound: `GeoSite "${name}" not found in namespace ${namespace} (GeoSites there: ${known})` };
}
