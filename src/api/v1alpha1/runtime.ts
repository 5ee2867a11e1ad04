/**
 * Turns the custom resources into the plain, fully defaulted settings the registry, the
 * strategies and the workers use. The API server applies schema defaults on write; these defaults
 * repeat them for objects read from files (e.g. `geo-operator schema print -f`).
 */
import type { ReplicableTypeSchemaConfig, SelectiveSync } from "../../registry/config.ts";
import { parseDuration } from "./duration.ts";
import type { GeoSiteSpec, ReplicableTypeSpec } from "./types.generated.ts";

export interface KeySource {
  column?: string;
  template?: string;
}

export interface TypeRuntimeConfig {
  schema: ReplicableTypeSchemaConfig;
  name: string;
  plural: string;
  strategy: "blob" | "repository";
  objectKey?: KeySource;
  repositoryPath?: KeySource;
  replicationEnabled: boolean;
  verificationEnabled: boolean;
  minimumReverificationIntervalMs: number;
  intervalsMs: { sync: number; verification: number; primaryVerification: number; consistency: number };
  batchSizes: { consistency: number; backfill: number };
  timeoutsMs: { sync: number; stuckStarted: number; missingOnPrimaryRecheck: number };
  deletion: { graceSeconds: number; maxPerPass: number; maxPercentPerPass: number };
  parallelism: number;
  housekeepingEveryFetches: number;
}

export function typeRuntimeConfig(spec: ReplicableTypeSpec): TypeRuntimeConfig {
  const plural = spec.plural ?? `${spec.name}s`;
  const verificationEnabled = spec.verification?.enabled ?? true;
  return {
    schema: {
      name: spec.name,
      plural,
      strategy: spec.strategy,
      source: {
        schema: spec.source.schema ?? "public",
        table: spec.source.table,
        idColumn: spec.source.idColumn ?? "id",
        ...(spec.source.namespaceColumn ? { namespaceColumn: spec.source.namespaceColumn } : {}),
        ...(spec.source.namespaceTable ? { namespaceTable: spec.source.namespaceTable } : {}),
        ...(spec.source.namespaceParentColumn ? { namespaceParentColumn: spec.source.namespaceParentColumn } : {}),
        ...(spec.source.shardColumn ? { shardColumn: spec.source.shardColumn } : {}),
      },
      deletionPolicy: spec.deletionPolicy ?? "Retain",
      verificationEnabled,
    },
    name: spec.name,
    plural,
    strategy: spec.strategy,
    ...(spec.source.objectKey ? { objectKey: spec.source.objectKey } : {}),
    ...(spec.source.repositoryPath ? { repositoryPath: spec.source.repositoryPath } : {}),
    replicationEnabled: spec.replication?.enabled ?? true,
    verificationEnabled,
    minimumReverificationIntervalMs: parseDuration(spec.verification?.minimumReverificationInterval ?? "168h"),
    intervalsMs: {
      sync: parseDuration(spec.intervals?.sync ?? "1m"),
      verification: parseDuration(spec.intervals?.verification ?? "1m"),
      primaryVerification: parseDuration(spec.intervals?.primaryVerification ?? "1m"),
      consistency: parseDuration(spec.intervals?.consistency ?? "10m"),
    },
    batchSizes: { consistency: spec.batchSizes?.consistency ?? 10_000, backfill: spec.batchSizes?.backfill ?? 10_000 },
    timeoutsMs: {
      sync: parseDuration(spec.timeouts?.sync ?? "3h"),
      stuckStarted: parseDuration(spec.timeouts?.stuckStarted ?? "8h"),
      missingOnPrimaryRecheck: parseDuration(spec.timeouts?.missingOnPrimaryRecheck ?? "1h"),
    },
    deletion: {
      graceSeconds: parseDuration(spec.deletion?.gracePeriod ?? "1h") / 1000,
      maxPerPass: spec.deletion?.maxPerPass ?? 1000,
      maxPercentPerPass: spec.deletion?.maxPercentPerPass ?? 10,
    },
    parallelism: spec.parallelism ?? 1,
    housekeepingEveryFetches: spec.repository?.housekeepingEveryFetches ?? 10,
  };
}

export function selectiveSyncOf(site: GeoSiteSpec): SelectiveSync {
  const s = site.selectiveSync;
  if (!s?.type) return { type: "" };
  return s.type === "namespaces" ? { type: "namespaces", namespaces: s.namespaces ?? [] } : { type: "shards", shards: s.shards ?? [] };
}

export function capacitiesOf(site: GeoSiteSpec): { blobs: number; repositories: number; verification: number } {
  return {
    blobs: site.capacities?.blobs ?? 10,
    repositories: site.capacities?.repositories ?? 25,
    verification: site.capacities?.verification ?? 100,
  };
}

/** How stale the primary's heartbeat, read through this secondary's replica, may be. */
export function maxReplicationLagSecondsOf(site: GeoSiteSpec): number {
  return parseDuration(site.database.maxReplicationLag ?? "10m") / 1000;
}
