/**
 * What a strategy is, VolSync-style: one object per strategy owns everything about it that the
 * rest of geo-operator needs, so that nothing outside src/strategies/ names a strategy. The
 * catalog (catalog.ts) lists the definitions and resolves `spec.strategy` to exactly one.
 *
 * A definition is cheap to import: storage SDKs and git code load only when `createReplicator`
 * or `probeStorage` runs (a manager without blob types never loads the S3 SDK).
 */
import type { V1EnvVar, V1Volume, V1VolumeMount } from "@kubernetes/client-node";
import type { StrategyCrdFragment } from "../api/v1alpha1/crds.ts";
import type { GeoSite } from "../api/v1alpha1/resources.ts";
import type { GeoSiteSpec, ReplicableTypeSpec } from "../api/v1alpha1/types.generated.ts";
import type { StatesLayout } from "../registry/config.ts";
import type { Env } from "../util/config-env.ts";
import type { Replicator, ReplicatorContext } from "./replicator.ts";
import type { SiteServer } from "./site-server.ts";

/** A GeoSite `capacities` entry for sync; `verification` is shared by every strategy. */
export type SyncCapacityField = Exclude<keyof NonNullable<GeoSiteSpec["capacities"]>, "verification">;

/** What a worker Job needs from the strategy: Secret references in env, and volumes. */
export interface WorkerStorage {
  /** Env vars; credentials only as `valueFrom.secretKeyRef`, never as values. */
  env: V1EnvVar[];
  volumes: V1Volume[];
  mounts: V1VolumeMount[];
}

/** The operator's generic access to a site's Secrets, which a storage probe uses. */
export interface SecretAccess {
  /** Resolves env vars in `namespace` as a pod would see them (SecretNotOptedInError for an unlabelled Secret). */
  resolveEnv(namespace: string, vars: readonly V1EnvVar[]): Promise<Record<string, string>>;
}

/**
 * One strategy. `Settings` are its per-type settings parsed from the ReplicableType spec;
 * `Endpoints` is how a worker reaches its storage, built from the worker's env.
 * (Methods, not function properties: the catalog holds definitions of different Settings.)
 */
export interface StrategyDefinition<Settings = unknown, Endpoints = unknown> {
  /** The value of `spec.strategy` this definition claims. */
  readonly name: string;
  /** What it adds to the CRDs: source fields, type settings, GeoSite storage, capacities, rules. */
  readonly crd: StrategyCrdFragment;
  /** The layout of GitLab's `<name>_states` table GitLab's template for this kind of data uses. */
  readonly statesLayout: StatesLayout;
  /**
   * Whether a record's data may change on the primary after it was copied (a git push). Then
   * secondary verification resyncs rows whose primary checksum changed, and sync refreshes
   * copies when verification is off. Blobs change only through events (an `updated` event resyncs
   * the row); a blob changed without one is found as a checksum mismatch and copied again.
   */
  readonly primaryDataMayChange: boolean;
  /**
   * The settings to check when nearly every item of a run is not found on the primary (the run
   * stops and names them): a wrong location or credentials look exactly like data that is gone.
   */
  readonly notFoundSuspects: string;
  /** Which GeoSite `capacities` entry bounds concurrent syncs, and its default. */
  readonly syncCapacity: { field: SyncCapacityField; default: number };
  /** The type's settings; throws an Error naming the missing field for a spec the CRD would refuse. */
  parseSettings(spec: ReplicableTypeSpec): Settings;
  /** Model columns it reads (beyond the id), for the source check and for loading records. */
  modelColumns(settings: Settings): readonly string[];
  /** Env and volumes of a worker Job acting for `site` (the primary or a secondary). */
  workerStorage(settings: Settings, site: GeoSite, primary: GeoSite): WorkerStorage;
  /**
   * The worker's storage endpoints from its env (the counterpart of `workerStorage`), for the
   * stores `settings` use; `siteName` is the site the worker acts for. Throws ConfigurationError.
   */
  endpointsFromEnv(env: Env, site: GeoSiteSpec, primary: GeoSiteSpec, settings: Settings, siteName: string): Endpoints;
  /**
   * Why a secondary's storage of this kind is the primary's (writing there would change primary
   * data), or undefined. The topology check refuses to schedule such a secondary.
   */
  storageSharedWithPrimary?(secondary: GeoSiteSpec, primary: GeoSiteSpec): string | undefined;
  /**
   * Checks a site's storage for GeoSite health: a problem description, or undefined when fine or
   * when the site has no storage of this kind. Throws when the credentials cannot be read.
   */
  probeStorage?(site: GeoSite, access: SecretAccess): Promise<string | undefined>;
  createReplicator(ctx: ReplicatorContext<Settings, Endpoints>): Promise<Replicator>;
  /**
   * Long-running servers this strategy needs on `site` (e.g. the blob strategy's file retrieval
   * server on a primary whose files live on a volume), given the settings of every type of this
   * strategy in the namespace and all GeoSites. Empty or absent: none. The operator keeps exactly
   * these running (controllers/site-servers.ts).
   */
  siteServers?(site: GeoSite, sites: readonly GeoSite[], types: readonly Settings[]): SiteServer[];
}
