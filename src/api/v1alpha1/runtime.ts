/**
 * Turns the custom resources into the plain, fully defaulted settings the registry, the
 * strategies and the workers use. The API server applies schema defaults on write; these defaults
 * repeat them for objects read from files (e.g. `geo-operator schema print -f`).
 *
 * The strategy's part of a type (its settings, its `_states` layout) is not known here: callers
 * use `typeRuntimeConfig` from src/strategies/type-config.ts, which supplies it.
 */
import type { ReplicableTypeSchemaConfig, SelectiveSync, StatesLayout } from "../../registry/config.ts";
import { parseDuration } from "./duration.ts";
import type { GeoSiteSpec, ReplicableTypeSpec } from "./types.generated.ts";

/** A type's settings; `settings` is its strategy's own, parsed by the strategy's definition. */
export interface TypeRuntimeConfig<Settings = unknown> {
  schema: ReplicableTypeSchemaConfig;
  name: string;
  plural: string;
  /** The strategy's name, as the catalog (src/strategies/catalog.ts) knows it. */
  strategy: string;
  settings: Settings;
  replicationEnabled: boolean;
  verificationEnabled: boolean;
  minimumReverificationIntervalMs: number;
  intervalsMs: { sync: number; verification: number; primaryVerification: number; consistency: number };
  batchSizes: { consistency: number; backfill: number };
  timeoutsMs: { sync: number; stuckStarted: number; missingOnPrimaryRecheck: number };
  deletion: { graceSeconds: number; maxPerPass: number; maxPercentPerPass: number };
  parallelism: number;
}

/** What the strategy contributes to a type's runtime config. */
export interface StrategyTypeParts<Settings> {
  statesLayout: StatesLayout;
  settings: Settings;
  /** Model columns the strategy reads: a change to one of them is an "updated" event. */
  modelColumns: readonly string[];
}

export function buildTypeRuntimeConfig<Settings>(spec: ReplicableTypeSpec, strategy: StrategyTypeParts<Settings>): TypeRuntimeConfig<Settings> {
  const plural = spec.plural ?? `${spec.name}s`;
  const verificationEnabled = spec.verification?.enabled ?? true;
  return {
    schema: {
      name: spec.name,
      plural,
      statesLayout: strategy.statesLayout,
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
      changeCapture: spec.changeCapture ?? "trigger",
      // A move into or out of a site's selection is a change a cursor must see, like a new key.
      captureColumns: [...strategy.modelColumns, ...[spec.source.namespaceColumn, spec.source.shardColumn].filter((c): c is string => !!c)],
    },
    name: spec.name,
    plural,
    strategy: spec.strategy,
    settings: strategy.settings,
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
  };
}

export function selectiveSyncOf(site: GeoSiteSpec): SelectiveSync {
  const s = site.selectiveSync;
  if (!s?.type) return { type: "" };
  return s.type === "namespaces" ? { type: "namespaces", namespaces: s.namespaces ?? [] } : { type: "shards", shards: s.shards ?? [] };
}

/** Checksums one verification Job pod computes at once (sync capacities belong to the strategies). */
export function verificationCapacityOf(site: GeoSiteSpec): number {
  return site.capacities?.verification ?? 100;
}

/** How stale the primary's heartbeat, read through this secondary's replica, may be. */
export function maxReplicationLagSecondsOf(site: GeoSiteSpec): number {
  return parseDuration(site.database.maxReplicationLag ?? "10m") / 1000;
}

/** Primary: how long events stay in the change event log before they are pruned. */
export function eventLogRetentionSecondsOf(site: GeoSiteSpec): number {
  return parseDuration(site.eventLog?.retention ?? "24h") / 1000;
}

/** Whether the site runs its log cursor (when some type captures changes). */
export function cursorEnabledOf(site: GeoSiteSpec): boolean {
  return site.eventLog?.cursor?.enabled ?? true;
}

/** Secondary: how far behind the primary's newest event the cursor may fall before the site is unhealthy. */
export function cursorMaxLagSecondsOf(site: GeoSiteSpec): number {
  return parseDuration(site.eventLog?.cursor?.maxLag ?? "5m") / 1000;
}
