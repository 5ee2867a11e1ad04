/**
 * The blob strategy: one object per record, in the primary's S3-compatible storage or as a file
 * under its `fileStorage.root` (GitLab's object and local storage), copied to each secondary's
 * store of either kind, SHA-256 of the full content on both sides (GitLab's BlobReplicatorStrategy).
 *
 * The pieces: crd.ts (schemas), settings.ts (which store each record uses), endpoints.ts (Job
 * env and volumes, and the endpoints workers build from them), site-servers.ts (the primary's
 * file retrieval server), replicator.ts (copies and checksums over stores).
 */
import type { StrategyDefinition } from "../definition.ts";
import { blobCrd, SYNC_CAPACITY } from "./crd.ts";
import { blobEndpointsFromEnv, blobWorkerStorage, fileStorageSharedWithPrimary, s3CredentialsEnv, type BlobEndpoints } from "./endpoints.ts";
import { compileObjectKeySource } from "./object-keys.ts";
import { classifyS3Error } from "./s3-errors.ts";
import { parseBlobSettings, type BlobSettings } from "./settings.ts";
import { blobSiteServers } from "./site-servers.ts";

export type { BlobSettings } from "./settings.ts";
export type { BlobEndpoints, BlobStoreEndpoint, S3StoreEndpoint } from "./endpoints.ts";

export const blobStrategy: StrategyDefinition<BlobSettings, BlobEndpoints> = {
  name: "blob",
  crd: blobCrd,
  statesLayout: "keyed-by-model-id",
  primaryDataMayChange: false,
  syncCapacity: { field: "blobs", default: SYNC_CAPACITY },

  parseSettings: parseBlobSettings,

  modelColumns(settings) {
    const columns = compileObjectKeySource(settings.objectKey).columns;
    return settings.storeColumn && !columns.includes(settings.storeColumn) ? [...columns, settings.storeColumn] : columns;
  },

  workerStorage: blobWorkerStorage,

  endpointsFromEnv: blobEndpointsFromEnv,

  storageSharedWithPrimary(secondary, primary) {
    const files = fileStorageSharedWithPrimary(secondary, primary);
    if (files) return files;
    const x = secondary.objectStorage;
    const y = primary.objectStorage;
    if (!x || !y) return undefined;
    const endpoint = (e: string) => e.replace(/\/+$/, "").toLowerCase();
    if (endpoint(x.endpoint) !== endpoint(y.endpoint) || x.bucket !== y.bucket || (x.prefix ?? "") !== (y.prefix ?? "")) return undefined;
    return `its objectStorage is the primary's bucket (${y.bucket} at ${y.endpoint}); a secondary must write to its own bucket`;
  },

  siteServers: blobSiteServers,

  async probeStorage(site, access) {
    const storage = site.spec.objectStorage;
    if (!storage) return undefined;
    const env = await access.resolveEnv(site.metadata.namespace, s3CredentialsEnv("GEO_SECONDARY_S3", storage));
    // Loaded on first use: the SDK costs ~30 MB of memory that a manager without blob types never needs.
    const { HeadBucketCommand, S3Client } = await import("@aws-sdk/client-s3");
    const client = new S3Client({
      endpoint: storage.endpoint,
      region: storage.region ?? "us-east-1",
      forcePathStyle: storage.forcePathStyle ?? false,
      credentials: { accessKeyId: env.GEO_SECONDARY_S3_ACCESS_KEY_ID!, secretAccessKey: env.GEO_SECONDARY_S3_SECRET_ACCESS_KEY! },
      maxAttempts: 1,
    });
    try {
      await client.send(new HeadBucketCommand({ Bucket: storage.bucket }), { abortSignal: AbortSignal.timeout(5000) });
      return undefined;
    } catch (err) {
      const kind = classifyS3Error(err);
      const what = kind === "missing-bucket" ? "does not exist" : kind === "bad-credentials" ? "rejects the credentials" : kind === "unreachable" ? "is unreachable" : `failed (${(err as Error).name})`;
      return `bucket ${storage.bucket} at ${storage.endpoint} ${what}`;
    } finally {
      client.destroy();
    }
  },

  async createReplicator(ctx) {
    const { BlobReplicator } = await import("./replicator.ts");
    return new BlobReplicator(ctx);
  },
};
