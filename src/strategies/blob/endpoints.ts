/**
 * How a blob worker reaches each store its type uses, and what its Job needs for that: the two
 * halves of one contract (`workerStorage` writes the env and volumes, `endpointsFromEnv` reads
 * them back). Only the stores the type's settings can use are asked for, so a type whose blobs
 * are all files never needs S3 credentials.
 *
 * The primary's files are read directly from `fileStorage.root` (the primary's PVC mounted
 * read-only there) unless the primary GeoSite has `fileStorage.retrieval`: then a secondary reads
 * them through that HTTPS server with its own key.
 */
import type { V1EnvVar } from "@kubernetes/client-node";
import type { GeoSite } from "../../api/v1alpha1/resources.ts";
import type { GeoSiteSpec } from "../../api/v1alpha1/types.generated.ts";
import { secretEnv } from "../../k8s/env-vars.ts";
import { ConfigurationError, requireSecret, secretFromEnv, type Env } from "../../util/config-env.ts";
import type { WorkerStorage } from "../definition.ts";
import { parseSecretKey } from "./files/signing.ts";
import { primaryStoreKinds, secondaryStoreKinds, type BlobSettings, type StoreKind } from "./settings.ts";

/** An S3-compatible bucket (and key prefix) with the credentials read from the worker's env. */
export interface S3StoreEndpoint {
  kind: "s3";
  endpoint: string;
  region: string;
  bucket: string;
  prefix: string;
  forcePathStyle: boolean;
  uploadChecksum: "SHA256" | "None";
  accessKeyId: string;
  secretAccessKey: string;
}

/** A directory on this pod's filesystem (a mounted volume). */
export interface FilesStoreEndpoint {
  kind: "files";
  root: string;
}

/** The primary's files through its retrieval server, as site `site`. */
export interface RetrievalStoreEndpoint {
  kind: "retrieval";
  url: string;
  site: string;
  key: string;
  /** PEM of the CA that signed the server's certificate; absent: the system's CAs. */
  ca?: string;
}

export type BlobStoreEndpoint = S3StoreEndpoint | FilesStoreEndpoint | RetrievalStoreEndpoint;

/** One side's stores, by the kind of store the type's settings name. */
export interface PrimaryStoreEndpoints {
  ObjectStorage?: S3StoreEndpoint;
  FileStorage?: FilesStoreEndpoint | RetrievalStoreEndpoint;
}

export interface SecondaryStoreEndpoints {
  ObjectStorage?: S3StoreEndpoint;
  FileStorage?: FilesStoreEndpoint;
}

export interface BlobEndpoints {
  primary: PrimaryStoreEndpoints;
  /** This secondary's stores; absent on the primary. */
  secondary?: SecondaryStoreEndpoints;
}

type ObjectStorageSpec = NonNullable<GeoSiteSpec["objectStorage"]>;
type S3EnvPrefix = "GEO_PRIMARY_S3" | "GEO_SECONDARY_S3";

export const PRIMARY_FILES_KEY_ENV = "GEO_PRIMARY_FILES_KEY";
export const PRIMARY_FILES_CA_ENV = "GEO_PRIMARY_FILES_CA";
const PRIMARY_FILES_VOLUME = "primary-files";
const FILES_VOLUME = "files";

export function s3CredentialsEnv(prefix: S3EnvPrefix, storage: ObjectStorageSpec): V1EnvVar[] {
  const secret = storage.credentialsSecretRef.name;
  return [secretEnv(`${prefix}_ACCESS_KEY_ID`, secret, "AWS_ACCESS_KEY_ID"), secretEnv(`${prefix}_SECRET_ACCESS_KEY`, secret, "AWS_SECRET_ACCESS_KEY")];
}

/** Whether a secondary reads the primary's files through the primary's retrieval server. */
export function readsThroughRetrieval(primary: GeoSiteSpec): boolean {
  return primary.fileStorage?.retrieval !== undefined;
}

/** The Secret references and volumes a Job acting for `site` needs for the stores the type uses. */
export function blobWorkerStorage(settings: BlobSettings, site: GeoSite, primary: GeoSite): WorkerStorage {
  const storage: WorkerStorage = { env: [], volumes: [], mounts: [] };
  const onSecondary = site.spec.role === "secondary";
  for (const kind of primaryStoreKinds(settings)) {
    if (kind === "ObjectStorage") {
      if (primary.spec.objectStorage) storage.env.push(...s3CredentialsEnv("GEO_PRIMARY_S3", primary.spec.objectStorage));
      continue;
    }
    const files = primary.spec.fileStorage;
    if (!files) continue;
    if (onSecondary && files.retrieval) {
      const key = site.spec.fileStorage?.retrievalCredentialsSecretRef;
      if (key) storage.env.push(secretEnv(PRIMARY_FILES_KEY_ENV, key.name, key.key ?? "key"));
      storage.env.push(secretEnv(PRIMARY_FILES_CA_ENV, files.retrieval.tlsSecretRef.name, "ca.crt", true));
    } else if (files.root && files.persistentVolumeClaim) {
      storage.volumes.push({ name: PRIMARY_FILES_VOLUME, persistentVolumeClaim: { claimName: files.persistentVolumeClaim.claimName, readOnly: true } });
      storage.mounts.push({ name: PRIMARY_FILES_VOLUME, mountPath: files.root, readOnly: true });
    }
  }
  if (onSecondary) {
    for (const kind of secondaryStoreKinds(settings)) {
      if (kind === "ObjectStorage") {
        if (site.spec.objectStorage) storage.env.push(...s3CredentialsEnv("GEO_SECONDARY_S3", site.spec.objectStorage));
        continue;
      }
      const files = site.spec.fileStorage;
      if (files?.root && files.persistentVolumeClaim) {
        storage.volumes.push({ name: FILES_VOLUME, persistentVolumeClaim: { claimName: files.persistentVolumeClaim.claimName } });
        storage.mounts.push({ name: FILES_VOLUME, mountPath: files.root });
      }
    }
  }
  return storage;
}

function s3Endpoint(storage: ObjectStorageSpec, env: Env, prefix: S3EnvPrefix): S3StoreEndpoint {
  return {
    kind: "s3",
    endpoint: storage.endpoint,
    region: storage.region ?? "us-east-1",
    bucket: storage.bucket,
    prefix: storage.prefix ?? "",
    forcePathStyle: storage.forcePathStyle ?? false,
    uploadChecksum: storage.uploadChecksum ?? "SHA256",
    accessKeyId: requireSecret(env, `${prefix}_ACCESS_KEY_ID`, `credentials for bucket ${storage.bucket}`),
    secretAccessKey: requireSecret(env, `${prefix}_SECRET_ACCESS_KEY`, `credentials for bucket ${storage.bucket}`),
  };
}

function why(kind: StoreKind, side: "primaryStore" | "secondaryStore", settings: BlobSettings): string {
  if (side === "primaryStore" && settings.storeColumn) return `source.storeColumn ${settings.storeColumn} may name ${kind} for any record`;
  if (side === "secondaryStore" && settings.secondaryStore === "SameAsPrimary") return `blob.secondaryStore SameAsPrimary keeps copies in ${kind} like the primary`;
  return `blob.${side} is ${kind}`;
}

/**
 * The endpoints of every store the type uses, from the worker's env. `siteName` is the site this
 * worker acts for (a secondary signs retrieval requests with it). Throws ConfigurationError naming
 * what is missing.
 */
export function blobEndpointsFromEnv(env: Env, site: GeoSiteSpec, primary: GeoSiteSpec, settings: BlobSettings, siteName: string): BlobEndpoints {
  const endpoints: BlobEndpoints = { primary: {} };
  for (const kind of primaryStoreKinds(settings)) {
    const because = why(kind, "primaryStore", settings);
    if (kind === "ObjectStorage") {
      if (!primary.objectStorage) throw new ConfigurationError(`the primary GeoSite has no objectStorage, which this type needs (${because})`);
      endpoints.primary.ObjectStorage = s3Endpoint(primary.objectStorage, env, "GEO_PRIMARY_S3");
      continue;
    }
    const files = primary.fileStorage;
    if (!files?.root) throw new ConfigurationError(`the primary GeoSite has no fileStorage.root, which this type needs (${because})`);
    if (site.role === "secondary" && files.retrieval) {
      const ca = secretFromEnv(env, PRIMARY_FILES_CA_ENV);
      endpoints.primary.FileStorage = {
        kind: "retrieval",
        url: files.retrieval.url,
        site: siteName,
        key: retrievalKey(
          requireSecret(
            env,
            PRIMARY_FILES_KEY_ENV,
            `this site's key for the primary's retrieval server at ${files.retrieval.url} (fileStorage.retrievalCredentialsSecretRef of this secondary GeoSite)`,
          ),
        ),
        ...(ca ? { ca } : {}),
      };
    } else {
      endpoints.primary.FileStorage = { kind: "files", root: files.root };
    }
  }
  if (site.role === "secondary") {
    endpoints.secondary = {};
    for (const kind of secondaryStoreKinds(settings)) {
      const because = why(kind, "secondaryStore", settings);
      if (kind === "ObjectStorage") {
        if (!site.objectStorage) throw new ConfigurationError(`this secondary GeoSite has no objectStorage, which this type needs (${because})`);
        endpoints.secondary.ObjectStorage = s3Endpoint(site.objectStorage, env, "GEO_SECONDARY_S3");
      } else {
        if (!site.fileStorage?.root) throw new ConfigurationError(`this secondary GeoSite has no fileStorage.root, which this type needs (${because})`);
        endpoints.secondary.FileStorage = { kind: "files", root: site.fileStorage.root };
      }
    }
  }
  return endpoints;
}

function retrievalKey(text: string): string {
  try {
    return parseSecretKey(text, PRIMARY_FILES_KEY_ENV);
  } catch (err) {
    throw new ConfigurationError((err as Error).message);
  }
}

/** Why a secondary's file storage is the primary's (or cannot sit next to it in a pod), or undefined. */
export function fileStorageSharedWithPrimary(secondary: GeoSiteSpec, primary: GeoSiteSpec): string | undefined {
  const x = secondary.fileStorage;
  const y = primary.fileStorage;
  if (!x?.root || !y?.root) return undefined;
  const xClaim = x.persistentVolumeClaim?.claimName;
  const yClaim = y.persistentVolumeClaim?.claimName;
  if (xClaim && xClaim === yClaim) {
    return `its fileStorage.persistentVolumeClaim is the primary's (${yClaim}); a secondary must write its copies to its own volume`;
  }
  if (!xClaim && !yClaim && overlaps(x.root, y.root)) {
    return x.root === y.root
      ? `its fileStorage.root is the primary's directory (${y.root}); a secondary must write its copies to its own directory`
      : `its fileStorage.root ${x.root} and the primary's ${y.root} contain one another; a secondary must write its copies outside the primary's directory`;
  }
  if (x.root === y.root && !y.retrieval) {
    return `its fileStorage.root ${x.root} is where the primary's files are read from directly; use another root (the primary's volume is mounted read-only at ${y.root} in the secondary's Jobs)`;
  }
  return undefined;
}

/** Whether one of two clean absolute paths is the other or below it. */
function overlaps(a: string, b: string): boolean {
  const within = (inner: string, outer: string) => inner === outer || outer === "/" || inner.startsWith(`${outer}/`);
  return within(a, b) || within(b, a);
}
