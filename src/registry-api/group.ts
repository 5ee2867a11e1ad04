/**
 * Names of the aggregated registry API (served by the manager behind an APIService): its group and
 * version, the resource each ReplicableType gets, and the label keys list filters understand. The
 * plugin imports only this file from here, so it stays free of database code.
 */
export const REGISTRY_API_GROUP = "registry.geo.replication.dev";
export const REGISTRY_API_VERSION = "v1alpha1";
export const REGISTRY_API_GROUP_VERSION = `${REGISTRY_API_GROUP}/${REGISTRY_API_VERSION}`;
/** metadata.name of the APIService that routes the group to the manager. */
export const REGISTRY_API_SERVICE_NAME = `${REGISTRY_API_VERSION}.${REGISTRY_API_GROUP}`;

/** The resource that carries resync, reverify and release-deletions requests (create only). */
export const ACTIONS_RESOURCE = "registryactions";
export const ACTION_KIND = "RegistryAction";
export const ACTION_NAMES = ["resync", "reverify", "release-deletions"] as const;
export type ActionName = (typeof ACTION_NAMES)[number];

/** Label keys a registry list can be filtered on (`kubectl get ... -l site=tokyo,state=failed`). */
export const SELECTOR_KEYS = ["site", "state", "verification", "mismatch"] as const;
export type SelectorKey = (typeof SELECTOR_KEYS)[number];

export interface RegistryResourceNames {
  /** e.g. coolwidgetregistries for spec.name cool_widget. */
  plural: string;
  singular: string;
  kind: string;
  listKind: string;
}

/**
 * The resource of one type's registries. Resource names may not contain underscores, so spec.name
 * cool_widget becomes coolwidgetregistries (kind CoolWidgetRegistry).
 */
export function registryResourceNames(specName: string): RegistryResourceNames {
  const compact = specName.replaceAll("_", "").toLowerCase();
  const kind = `${specName
    .split("_")
    .filter(Boolean)
    .map((w) => w[0]!.toUpperCase() + w.slice(1))
    .join("")}Registry`;
  return { plural: `${compact}registries`, singular: `${compact}registry`, kind, listKind: `${kind}List` };
}

/** A registry row's object name: `<site>.<registry id>` (ids repeat across sites). */
export function registryObjectName(site: string, id: number): string {
  return `${site}.${id}`;
}

export function parseRegistryObjectName(name: string): { site: string; id: number } | undefined {
  const m = /^(.+)\.(\d+)$/.exec(name);
  if (!m) return undefined;
  const id = Number(m[2]);
  return Number.isSafeInteger(id) && id > 0 ? { site: m[1]!, id } : undefined;
}

/** What a RegistryAction asks for; exactly one of ids, modelIds, all, state, verification selects rows. */
export interface RegistryActionSpec {
  action: ActionName;
  /** ReplicableType metadata.name or spec.name. */
  type: string;
  site: string;
  ids?: number[];
  modelIds?: number[];
  all?: boolean;
  /** A sync state name (resync). */
  state?: string;
  /** A verification state name (reverify). */
  verification?: string;
}

export interface RegistryActionStatus {
  /** The user the API server authenticated, as the Event records it. */
  requestedBy: string;
  selected: number;
  changed: number;
  /** release-deletions: why the deletions had been held and how many were pending. */
  reason?: string;
  pending?: number;
  /** True when the request was a dry run (dryRun=All): counted, nothing changed. */
  dryRun?: boolean;
  completionTime: string;
}
