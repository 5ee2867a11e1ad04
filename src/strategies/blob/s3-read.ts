/**
 * Reading objects from S3: opening a GetObject body as a Node stream of a known length, the
 * SHA-256 of an object read once (verification), and the SHA-256 the store checked when the
 * object was written. None holds an object in memory. GET and HEAD go through the store's lean
 * path (s3-lean.ts), not the SDK: they are made once per object.
 */
import type { IncomingHttpHeaders } from "node:http";
import type { Readable } from "node:stream";
import type { PutObjectCommandInput } from "@aws-sdk/client-s3";
import { sha256OfStream, type StreamChecksum } from "../../util/sha256-meter.ts";
import { fullObjectKey } from "./object-keys.ts";
import type { ObjectStore } from "./object-store.ts";
import { ObjectMissingError, classifyS3Error } from "./s3-errors.ts";

export type ObjectChecksum = StreamChecksum;

/** Headers that describe the content rather than the transfer, named as the SDK's PutObject names them. */
export type ContentHeaders = Pick<PutObjectCommandInput, "ContentType" | "ContentEncoding" | "ContentDisposition" | "ContentLanguage" | "CacheControl" | "Metadata">;

/** A GetObject response whose body is a Node stream of exactly `length` bytes. */
export interface ObjectReadStream {
  body: Readable;
  length: number;
  content: ContentHeaders;
}

/**
 * Starts reading `fullKey` (already prefixed) from `store`. A missing key raises
 * ObjectMissingError; any other failure propagates as S3ResponseError or Node's socket error. The
 * signal, until the body has ended, destroys it.
 */
export async function openObject(store: ObjectStore, fullKey: string, signal?: AbortSignal): Promise<ObjectReadStream> {
  let response: Awaited<ReturnType<ObjectStore["lean"]["get"]>>;
  try {
    response = await store.lean.get(fullKey, signal);
  } catch (err) {
    if (classifyS3Error(err) === "missing-object") throw new ObjectMissingError(store.bucket, fullKey, store.role, { cause: err });
    throw err;
  }
  const length = contentLength(response.headers);
  if (length === undefined) {
    response.body.destroy();
    throw new Error(`GetObject ${store.bucket}/${fullKey} returned no Content-Length`);
  }
  return { body: response.body, length, content: contentHeaders(response.headers) };
}

function contentLength(headers: IncomingHttpHeaders): number | undefined {
  const value = headers["content-length"];
  return value !== undefined && /^\d+$/.test(value) ? Number(value) : undefined;
}

function contentHeaders(headers: IncomingHttpHeaders): ContentHeaders {
  const metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith("x-amz-meta-") && typeof value === "string") metadata[name.slice("x-amz-meta-".length)] = value;
  }
  return {
    ContentType: headers["content-type"],
    ContentEncoding: headers["content-encoding"],
    ContentDisposition: headers["content-disposition"],
    ContentLanguage: headers["content-language"],
    CacheControl: headers["cache-control"],
    Metadata: metadata,
  };
}

/**
 * Streams the object at `key` (relative to the store's prefix) once and returns its SHA-256 and
 * length. Raises ObjectMissingError when it does not exist, InvalidObjectKeyError for a key that
 * must not be used, ObjectLengthMismatchError when the body is cut short; S3 and network errors
 * propagate unchanged (see classifyS3Error).
 */
export async function sha256Object(store: ObjectStore, key: string, opts: { signal?: AbortSignal } = {}): Promise<ObjectChecksum> {
  opts.signal?.throwIfAborted();
  const fullKey = fullObjectKey(store.prefix, key);
  const object = await openObject(store, fullKey, opts.signal);
  return sha256OfStream(object.body, object.length, `${store.bucket}/${fullKey}`, opts.signal);
}

/**
 * The SHA-256 the store computed, and checked against the one the writer sent, when the object at
 * `key` was written (`x-amz-checksum-sha256`, from a HEAD), with the object's length. Undefined
 * when the store keeps no full-object SHA-256 for it: written without one, or a multipart
 * upload's checksum of part checksums. Reads no object bytes, so it says what arrived at write
 * time, not what is stored now. Raises ObjectMissingError when there is no such object.
 */
export async function storedSha256(store: ObjectStore, key: string, opts: { signal?: AbortSignal } = {}): Promise<ObjectChecksum | undefined> {
  opts.signal?.throwIfAborted();
  const fullKey = fullObjectKey(store.prefix, key);
  let head: IncomingHttpHeaders;
  try {
    head = await store.lean.head(fullKey, { "x-amz-checksum-mode": "ENABLED" }, opts.signal);
  } catch (err) {
    if (classifyS3Error(err) === "missing-object") throw new ObjectMissingError(store.bucket, fullKey, store.role, { cause: err });
    throw err;
  }
  const stored = head["x-amz-checksum-sha256"];
  const bytes = contentLength(head);
  if (typeof stored !== "string" || !stored || head["x-amz-checksum-type"] === "COMPOSITE" || stored.includes("-") || bytes === undefined) return undefined;
  const checksum = Buffer.from(stored, "base64");
  return checksum.length === 32 ? { checksum, bytes } : undefined;
}
