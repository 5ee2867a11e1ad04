/**
 * One site's object storage as the blob strategy sees it: an S3 client tuned for bulk copies, the
 * bucket, the key prefix every object lives under, and the site's role. The role travels with the
 * store so that the write paths can refuse a primary without trusting their callers.
 */
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { inspect } from "node:util";
import { S3Client } from "@aws-sdk/client-s3";
import type { GeoSiteSpec } from "../../api/v1alpha1/types.generated.ts";
import type { Logger } from "../../util/log.ts";
import { validatePrefix } from "./object-keys.ts";

export type SiteRole = "primary" | "secondary";

export type ObjectStorageSpec = NonNullable<GeoSiteSpec["objectStorage"]>;

export interface ObjectStore {
  client: S3Client;
  bucket: string;
  /** "" or a prefix ending in "/"; every key this store touches starts with it. */
  prefix: string;
  role: SiteRole;
}

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
  /** SDK attempts per request, retries included (default 3). */
  maxAttempts?: number;
  /** Receives the SDK's warnings and errors; without it the SDK writes some to the console. */
  logger?: Logger;
}

export const DEFAULT_MAX_SOCKETS = 64;

/**
 * Builds the store for one site. The caller owns it and calls `store.client.destroy()` when done,
 * which closes the keep-alive sockets.
 */
export function createObjectStore(
  spec: Pick<ObjectStorageSpec, "endpoint" | "region" | "bucket" | "prefix" | "forcePathStyle">,
  credentials: S3Credentials,
  role: SiteRole,
  options: ObjectStoreOptions = {},
): ObjectStore {
  const prefix = spec.prefix ?? "";
  validatePrefix(prefix);
  const agentOptions = { keepAlive: true, maxSockets: options.maxSockets ?? DEFAULT_MAX_SOCKETS };
  const client = new S3Client({
    endpoint: spec.endpoint,
    region: spec.region ?? "us-east-1",
    forcePathStyle: spec.forcePathStyle ?? false,
    credentials,
    maxAttempts: options.maxAttempts ?? 3,
    logger: sdkLogger(options.logger),
    // The SDK would otherwise add a CRC32 pass over every body we send and receive; we already
    // hash every byte with SHA-256 and check lengths, and S3 checks Content-Length itself.
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    requestHandler: {
      httpAgent: new HttpAgent(agentOptions),
      httpsAgent: new HttpsAgent(agentOptions),
      connectionTimeout: options.connectionTimeoutMs ?? 10_000,
      socketTimeout: options.socketTimeoutMs ?? 60_000,
    },
  });
  // The SDK's logger middleware builds a filtered copy of every command's input and output for
  // an info line we drop anyway (measurable per request on small objects); its warnings and the
  // errors we see thrown still reach the logger given above.
  client.middlewareStack.remove("loggerMiddleware");
  return { client, bucket: spec.bucket, prefix, role };
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
