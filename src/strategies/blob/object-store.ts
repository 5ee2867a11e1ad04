/**
 * One site's object storage as the blob strategy sees it: an S3 client tuned for bulk copies and,
 * beside it on the same sockets, the lean path for the per-object GET, HEAD and single PUT
 * (s3-lean.ts); the bucket, the key prefix every object lives under, and the site's role. The role
 * travels with the store so that the write paths can refuse a primary without trusting their
 * callers.
 */
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { inspect } from "node:util";
import { S3Client } from "@aws-sdk/client-s3";
import type { GeoSiteSpec } from "../../api/v1alpha1/types.generated.ts";
import type { Logger } from "../../util/log.ts";
import { validatePrefix } from "./object-keys.ts";
import { LeanS3 } from "./s3-lean.ts";

export type SiteRole = "primary" | "secondary";

export type ObjectStorageSpec = NonNullable<GeoSiteSpec["objectStorage"]>;

export interface ObjectStore {
  client: S3Client;
  /** GetObject, HeadObject and single PutObject (buffered or streamed) without the SDK's per-request cost. */
  lean: LeanS3;
  bucket: string;
  /** "" or a prefix ending in "/"; every key this store touches starts with it. */
  prefix: string;
  role: SiteRole;
  /** What a copy written here carries for the store to check (`objectStorage.uploadChecksum`). */
  uploadChecksum: UploadChecksum;
}

export type UploadChecksum = NonNullable<ObjectStorageSpec["uploadChecksum"]>;

/** Read by the caller from the Secret named in `credentialsSecretRef` (or from mounted files). */
export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface ObjectStoreOptions {
  /**
   * Sockets kept open to the endpoint. A copy holds one GET and up to `queueSize` part uploads,
   * so size this to concurrency × (queueSize + 1); requests beyond it wait for a free socket.
   */
  maxSockets?: number;
  /** Give up connecting after this long (default 10 s). */
  connectionTimeoutMs?: number;
  /**
   * Fail a request or a body stream that moves no bytes for this long (default 60 s). This is what
   * ends a copy whose endpoint hangs (a stopped process keeps its TCP connections open).
   */
  socketTimeoutMs?: number;
  /** Attempts per request, retries included, for the SDK and the lean path (default 3). */
  maxAttempts?: number;
  /** Receives the SDK's warnings and errors; without it the SDK writes some to the console. */
  logger?: Logger;
}

export const DEFAULT_MAX_SOCKETS = 64;

/**
 * Builds the store for one site. The caller owns it and calls `store.client.destroy()` when done,
 * which closes the keep-alive sockets of both the SDK client and the lean path (they share them).
 */
export function createObjectStore(
  spec: Pick<ObjectStorageSpec, "endpoint" | "region" | "bucket" | "prefix" | "forcePathStyle" | "uploadChecksum">,
  credentials: S3Credentials,
  role: SiteRole,
  options: ObjectStoreOptions = {},
): ObjectStore {
  const prefix = spec.prefix ?? "";
  validatePrefix(prefix);
  const agentOptions = { keepAlive: true, maxSockets: options.maxSockets ?? DEFAULT_MAX_SOCKETS };
  const httpAgent = new HttpAgent(agentOptions);
  const httpsAgent = new HttpsAgent(agentOptions);
  const region = spec.region ?? "us-east-1";
  const forcePathStyle = spec.forcePathStyle ?? false;
  const maxAttempts = options.maxAttempts ?? 3;
  const connectionTimeoutMs = options.connectionTimeoutMs ?? 10_000;
  const socketTimeoutMs = options.socketTimeoutMs ?? 60_000;
  const client = new S3Client({
    endpoint: spec.endpoint,
    region,
    forcePathStyle,
    credentials,
    maxAttempts,
    logger: sdkLogger(options.logger),
    // The SDK would otherwise add a CRC32 pass over every body we send and receive; we already
    // hash every byte with SHA-256 and check lengths, and S3 checks Content-Length itself.
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    requestHandler: { httpAgent, httpsAgent, connectionTimeout: connectionTimeoutMs, socketTimeout: socketTimeoutMs },
  });
  // The SDK's logger middleware builds a filtered copy of every command's input and output for
  // an info line we drop anyway (measurable per request on small objects); its warnings and the
  // errors we see thrown still reach the logger given above.
  client.middlewareStack.remove("loggerMiddleware");
  // The SDK's own endpoint rules say where the bucket is (path-style or virtual-host) and which
  // region signs for it; the lean path asks them once instead of on every request.
  const resolved = client.config.endpointProvider({ Bucket: spec.bucket, Region: region, Endpoint: spec.endpoint, ForcePathStyle: forcePathStyle, UseFIPS: false, UseDualStack: false, Accelerate: false });
  const [scheme] = (resolved.properties?.authSchemes ?? []) as { name?: string; signingRegion?: string }[];
  if (scheme && scheme.name !== "sigv4") throw new Error(`bucket ${spec.bucket} needs ${scheme.name} signing; only SigV4 buckets are supported`);
  const bucketUrl = new URL(resolved.url);
  const lean = new LeanS3({
    bucketUrl,
    signingRegion: scheme?.signingRegion ?? region,
    credentials,
    agent: bucketUrl.protocol === "https:" ? httpsAgent : httpAgent,
    maxAttempts,
    connectionTimeoutMs,
    socketTimeoutMs,
  });
  return { client, lean, bucket: spec.bucket, prefix, role, uploadChecksum: spec.uploadChecksum ?? "SHA256" };
}

/**
 * The SDK logs every command with its input at info level; only its warnings and errors are
 * worth a line. With no logger they are dropped rather than printed to the console.
 */
function sdkLogger(log: Logger | undefined) {
  const ignore = () => undefined;
  const forward = (level: "warn" | "error") => (...content: unknown[]) =>
    log?.[level]({ component: "aws-sdk" }, content.map((c) => (typeof c === "string" ? c : inspect(c, { depth: 2 }))).join(" "));
  return { trace: ignore, debug: ignore, info: ignore, warn: forward("warn"), error: forward("error") };
}
