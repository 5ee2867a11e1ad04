/**
 * The blob strategy: one object per record in the primary's S3-compatible storage, copied to each
 * secondary's, SHA-256 of the full content on both sides (GitLab's BlobReplicatorStrategy).
 *
 * Endpoints are a union over kinds of store (`kind: "s3"` today) so that other stores can sit
 * next to S3 on either side.
 */
import { columnOrTemplate, matches, secretName, type JSONSchema } from "../../api/v1alpha1/common.ts";
import { capacity } from "../../api/v1alpha1/common.ts";
import { sourceFieldRules } from "../../api/v1alpha1/crds.ts";
import type { GeoSiteSpec } from "../../api/v1alpha1/types.generated.ts";
import { secretEnv } from "../../k8s/env.ts";
import { ConfigurationError, requireSecret, type Env } from "../../util/config-env.ts";
import type { StrategyDefinition } from "../definition.ts";
import { compileObjectKeySource, type ObjectKeySourceSpec } from "./object-keys.ts";
import { classifyS3Error } from "./s3-errors.ts";

export interface BlobSettings {
  objectKey: ObjectKeySourceSpec;
}

/** An S3-compatible bucket (and key prefix) with the credentials read from the worker's env. */
export interface S3StoreEndpoint {
  kind: "s3";
  endpoint: string;
  region: string;
  bucket: string;
  prefix: string;
  forcePathStyle: boolean;
  accessKeyId: string;
  secretAccessKey: string;
}

/** Where one site's blobs live. */
export type BlobStoreEndpoint = S3StoreEndpoint;

export interface BlobEndpoints {
  primary: BlobStoreEndpoint;
  /** This secondary's store; absent on the primary. */
  secondary?: BlobStoreEndpoint;
}

const SYNC_CAPACITY = 10;

const objectStorage: JSONSchema = {
  type: "object",
  description: "S3-compatible object storage holding this site's blobs.",
  required: ["endpoint", "bucket", "credentialsSecretRef"],
  properties: {
    endpoint: {
      type: "string",
      maxLength: 2048,
      "x-kubernetes-validations": matches("^https?://[^\\s/]+(/.*)?$", "endpoint must be an http:// or https:// URL"),
      description: "S3 endpoint URL, e.g. https://s3.eu-west-1.amazonaws.com or http://minio.storage:9000.",
    },
    region: { type: "string", default: "us-east-1", minLength: 1, maxLength: 64 },
    bucket: {
      type: "string",
      maxLength: 255,
      "x-kubernetes-validations": matches(
        "^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        "bucket must be a valid S3 bucket name: 3-63 lower-case letters, digits, '.' and '-', starting and ending with a letter or digit",
      ),
      description: "Bucket name (S3 naming rules: 3-63 lower-case letters, digits, dots and hyphens).",
    },
    prefix: {
      type: "string",
      maxLength: 512,
      description: "Optional key prefix every object lives under; must end with '/' when set, e.g. \"uploads/\".",
      "x-kubernetes-validations": [
        { rule: "self == '' || (self.endsWith('/') && !self.startsWith('/') && !self.contains('//'))", message: "prefix must be empty or a relative path ending in '/', such as \"uploads/\"" },
        { rule: "!self.split('/').exists(s, s == '..' || s == '.')", message: "prefix must not contain '.' or '..' segments" },
      ],
    },
    forcePathStyle: { type: "boolean", default: false, description: "Use path-style addressing (MinIO and most self-hosted S3)." },
    credentialsSecretRef: {
      type: "object",
      required: ["name"],
      description: "Secret with keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.",
      properties: { name: secretName },
    },
  },
};

type ObjectStorageSpec = NonNullable<GeoSiteSpec["objectStorage"]>;
type S3EnvPrefix = "GEO_PRIMARY_S3" | "GEO_SECONDARY_S3";

function s3CredentialsEnv(prefix: S3EnvPrefix, storage: ObjectStorageSpec) {
  const secret = storage.credentialsSecretRef.name;
  return [secretEnv(`${prefix}_ACCESS_KEY_ID`, secret, "AWS_ACCESS_KEY_ID"), secretEnv(`${prefix}_SECRET_ACCESS_KEY`, secret, "AWS_SECRET_ACCESS_KEY")];
}

function s3Endpoint(storage: ObjectStorageSpec, env: Env, prefix: S3EnvPrefix): S3StoreEndpoint {
  return {
    kind: "s3",
    endpoint: storage.endpoint,
    region: storage.region ?? "us-east-1",
    bucket: storage.bucket,
    prefix: storage.prefix ?? "",
    forcePathStyle: storage.forcePathStyle ?? false,
    accessKeyId: requireSecret(env, `${prefix}_ACCESS_KEY_ID`, `credentials for bucket ${storage.bucket}`),
    secretAccessKey: requireSecret(env, `${prefix}_SECRET_ACCESS_KEY`, `credentials for bucket ${storage.bucket}`),
  };
}

export const blobStrategy: StrategyDefinition<BlobSettings, BlobEndpoints> = {
  name: "blob",
  crd: {
    name: "blob",
    summary: "objects in S3-compatible storage",
    replicableType: {
      source: { objectKey: columnOrTemplate("object key (blob strategy)", "widgets/{id}/{file_name}") },
      rules: sourceFieldRules("blob", "objectKey", "strategy blob needs source.objectKey (a column or template that yields each object's key)"),
    },
    geoSite: {
      spec: { objectStorage },
      capacities: { blobs: capacity(SYNC_CAPACITY, "Blobs copied at once by one sync Job pod") },
    },
  },
  statesLayout: "keyed-by-model-id",
  primaryDataMayChange: false,
  syncCapacity: { field: "blobs", default: SYNC_CAPACITY },

  parseSettings(spec) {
    if (!spec.source.objectKey) throw new Error(`ReplicableType ${spec.name} has no source.objectKey`);
    return { objectKey: spec.source.objectKey };
  },

  modelColumns(settings) {
    return compileObjectKeySource(settings.objectKey).columns;
  },

  workerStorage(_settings, site, primary) {
    const env = [];
    if (primary.spec.objectStorage) env.push(...s3CredentialsEnv("GEO_PRIMARY_S3", primary.spec.objectStorage));
    if (site.spec.role === "secondary" && site.spec.objectStorage) env.push(...s3CredentialsEnv("GEO_SECONDARY_S3", site.spec.objectStorage));
    return { env, volumes: [], mounts: [] };
  },

  endpointsFromEnv(env, site, primary) {
    if (!primary.objectStorage) throw new ConfigurationError("the primary GeoSite has no objectStorage, which blob types need");
    const endpoints: BlobEndpoints = { primary: s3Endpoint(primary.objectStorage, env, "GEO_PRIMARY_S3") };
    if (site.role === "secondary") {
      if (!site.objectStorage) throw new ConfigurationError("this secondary GeoSite has no objectStorage, which blob types need");
      endpoints.secondary = s3Endpoint(site.objectStorage, env, "GEO_SECONDARY_S3");
    }
    return endpoints;
  },

  storageSharedWithPrimary(secondary, primary) {
    const x = secondary.objectStorage;
    const y = primary.objectStorage;
    if (!x || !y) return undefined;
    const endpoint = (e: string) => e.replace(/\/+$/, "").toLowerCase();
    if (endpoint(x.endpoint) !== endpoint(y.endpoint) || x.bucket !== y.bucket || (x.prefix ?? "") !== (y.prefix ?? "")) return undefined;
    return `its objectStorage is the primary's bucket (${y.bucket} at ${y.endpoint}); a secondary must write to its own bucket`;
  },

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
