/**
 * Registry rows as Kubernetes objects and as the Table kubectl prints. The fields are GitLab's
 * registry columns, camelCased, with state names instead of numbers (as `kubectl geo registries -o
 * json` has always printed them); labels carry what list selectors filter on.
 */
import type { RegistryRow } from "../registry/registry-row.ts";
import { syncStateName, verificationStateName } from "../registry/state-names.ts";
import { REGISTRY_API_GROUP_VERSION, registryObjectName, type RegistryResourceNames } from "./group.ts";

const hex = (b: Buffer | null): string | null => (b ? b.toString("hex") : null);
const time = (d: Date | null): string | null => (d ? d.toISOString() : null);

export interface RegistryObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; creationTimestamp: string; labels: Record<string, string> };
  site: string;
  type: string;
  [field: string]: unknown;
}

export function registryObject(names: RegistryResourceNames, namespace: string, site: string, typeName: string, r: RegistryRow, mismatch: unknown): RegistryObject {
  const state = syncStateName(r.state);
  const verification = verificationStateName(r.verificationState);
  return {
    apiVersion: REGISTRY_API_GROUP_VERSION,
    kind: names.kind,
    metadata: {
      name: registryObjectName(site, r.id),
      namespace,
      creationTimestamp: r.createdAt.toISOString().replace(/\.\d{3}Z$/, "Z"),
      labels: { site, state, verification, mismatch: String(r.checksumMismatch) },
    },
    site,
    type: typeName,
    id: r.id,
    modelId: r.modelId,
    state,
    createdAt: time(r.createdAt),
    lastSyncedAt: time(r.lastSyncedAt),
    retryAt: time(r.retryAt),
    retryCount: r.retryCount,
    lastSyncFailure: r.lastSyncFailure,
    missingOnPrimary: r.missingOnPrimary,
    verificationState: verification,
    verificationStartedAt: time(r.verificationStartedAt),
    verifiedAt: time(r.verifiedAt),
    verificationRetryAt: time(r.verificationRetryAt),
    verificationRetryCount: r.verificationRetryCount,
    verificationFailure: r.verificationFailure,
    verificationChecksum: hex(r.verificationChecksum),
    checksumMismatch: r.checksumMismatch,
    verificationChecksumMismatched: hex(r.verificationChecksumMismatched),
    mismatch: mismatch ?? null,
  };
}

const COLUMNS = [
  { name: "Name", type: "string", format: "name", description: "<site>.<registry id>", priority: 0 },
  { name: "Site", type: "string", format: "", description: "The secondary GeoSite", priority: 0 },
  { name: "Model ID", type: "integer", format: "", description: "The record's id on the primary", priority: 0 },
  { name: "State", type: "string", format: "", description: "Sync state", priority: 0 },
  { name: "Verification", type: "string", format: "", description: "Verification state", priority: 0 },
  { name: "Retries", type: "integer", format: "", description: "Sync retry count", priority: 0 },
  { name: "Last Synced", type: "string", format: "date-time", description: "When the last sync started", priority: 1 },
  { name: "Verified At", type: "string", format: "date-time", description: "When the copy was last verified", priority: 1 },
  { name: "Mismatch", type: "boolean", format: "", description: "Checksum mismatch with the primary", priority: 0 },
  { name: "Last Failure", type: "string", format: "", description: "Last sync or verification failure", priority: 0 },
];

/** A meta.k8s.io/v1 Table of the objects; `includeObject` as the request asked (Metadata by default). */
export function registryTable(objects: readonly RegistryObject[], listMeta: Record<string, unknown>, includeObject: string | null): Record<string, unknown> {
  return {
    kind: "Table",
    apiVersion: "meta.k8s.io/v1",
    metadata: listMeta,
    columnDefinitions: COLUMNS,
    rows: objects.map((o) => ({
      cells: [
        o.metadata.name,
        o.site,
        o.modelId,
        o.state,
        o.verificationState,
        o.retryCount,
        o.lastSyncedAt ?? "<none>",
        o.verifiedAt ?? "<none>",
        o.checksumMismatch,
        (((o.lastSyncFailure as string | null) ?? (o.verificationFailure as string | null)) ?? "").replace(/\s+/g, " ").slice(0, 80) || "<none>",
      ],
      object:
        includeObject === "Object"
          ? o
          : includeObject === "None"
            ? null
            : { kind: "PartialObjectMetadata", apiVersion: "meta.k8s.io/v1", metadata: o.metadata },
    })),
  };
}

/** Whether the Accept header asks for a Table (kubectl get does). */
export function wantsTable(accept: string | undefined): boolean {
  return !!accept && accept.split(",").some((part) => /as=Table/.test(part) && /g=meta\.k8s\.io/.test(part));
}
