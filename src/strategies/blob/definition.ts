/**
 * The blob strategy: one object per record, in the primary's S3-compatible storage or as a file
 * under its `fileStorage.root` (GitLab's object and local storage), copied to each secondary's
 * store of either kind, SHA-256 of the full content on both sides (GitLab's BlobReplicatorStrategy).
 *
 * The pieces: crd.ts (schemas), settings.ts (which store each record uses), endpoints.ts (Job
 * env and volumes, and the endpoints workers build from them), site-servers.ts (the primary's
 * file retrieval server), replicator.ts (copies and checksums over stores).
 */
import type { GeoSiteSpec } from "../../api/v1alpha1/types.generated.ts";
import { secretEnv } from "../../k8s/env-vars.ts";
import type { SecretAccess, StrategyDefinition } from "../definition.ts";
import { blobCrd, SYNC_CAPACITY } from "./crd.ts";
import { blobEndpointsFromEnv, blobWorkerStorage, fileStorageSharedWithPrimary, PRIMARY_FILES_KEY_ENV, s3CredentialsEnv, type BlobEndpoints } from "./endpoints.ts";
import { parseSecretKey } from "./files/signing.ts";
import { compileObjectKeySource } from "./object-keys.ts";
import { classifyS3Error } from "./s3-errors.ts";
import { parseBlobSettings, type BlobSettings } from "./settings.ts";
import { FILES_TLS_CERT_ENV, FILES_TLS_KEY_ENV } from "./files/site-keys.ts";
import { blobSiteServers } from "./site-servers.ts";

export type { BlobSettings } from "./settings.ts";
export type { BlobEndpoints, BlobStoreEndpoint, S3StoreEndpoint } from "./endpoints.ts";

export const blobStrategy: StrategyDefinition<BlobSettings, BlobEndpoints> = {
  name: "blob",
  crd: blobCrd,
  statesLayout: "keyed-by-model-id",
  primaryDataMayChange: false,
  notFoundSuspects:
    "the primary GeoSite's bucket, prefix or credentials, its fileStorage.root or retrieval settings, and the type's source.objectKey, source.storeColumn or blob store choice",
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

  /**
   * A bucket is asked whether it exists and takes the credentials. File storage cannot be checked
   * from the manager (a PVC is only mounted in worker pods, whose preflight reads it); what can be
   * checked is that the retrieval server's TLS Secret has its keys and a secondary's retrieval key
   * is long enough.
   */
  async probeStorage(site, access) {
    const problems: string[] = [];
    const files = site.spec.fileStorage;
    if (files?.retrieval && site.spec.role === "primary") {
      const tls = files.retrieval.tlsSecretRef.name;
      await access.resolveEnv(site.metadata.namespace, [secretEnv(FILES_TLS_CERT_ENV, tls, "tls.crt"), secretEnv(FILES_TLS_KEY_ENV, tls, "tls.key")]);
    }
    const keyRef = files?.retrievalCredentialsSecretRef;
    if (keyRef && site.spec.role === "secondary") {
      const env = await access.resolveEnv(site.metadata.namespace, [secretEnv(PRIMARY_FILES_KEY_ENV, keyRef.name, keyRef.key ?? "key")]);
      try {
        parseSecretKey(env[PRIMARY_FILES_KEY_ENV] ?? "", `key ${keyRef.key ?? "key"} of Secret ${keyRef.name} (fileStorage.retrievalCredentialsSecretRef)`);
      } catch (err) {
        problems.push((err as Error).message);
      }
    }
    if (site.spec.objectStorage) {
      const bucket = await probeBucket(site.spec.objectStorage, site.metadata.namespace, access);
      if (bucket) problems.push(bucket);
    }
    return problems.length > 0 ? problems.join("; ") : undefined;
  },

  async createReplicator(ctx) {
    const { BlobReplicator } = await import("./replicator.ts");
    return new BlobReplicator(ctx);
  },
};

async function probeBucket(storage: NonNullable<GeoSiteSpec["objectStorage"]>, namespace: string, access: SecretAccess): Promise<string | undefined> {
  const env = await access.resolveEnv(namespace, s3CredentialsEnv("GEO_SECONDARY_S3", storage));
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
}
