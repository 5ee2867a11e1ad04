/**
 * Reading objects from S3: opening a GetObject body as a Node stream of a known length, the
 * SHA-256 of an object read once (verification), and the SHA-256 the store checked when the
 * object was written. None holds an object in memory.
 */
import { Readable } from "node:stream";
import { GetObjectCommand, HeadObjectCommand, type GetObjectCommandOutput, type HeadObjectCommandOutput } from "@aws-sdk/client-s3";
import { sha256OfStream, type StreamChecksum } from "../../util/sha256-meter.ts";
import { fullObjectKey } from "./object-keys.ts";
import type { ObjectStore } from "./object-store.ts";
import { ObjectMissingError, classifyS3Error } from "./s3-errors.ts";

export type ObjectChecksum = StreamChecksum;

/** A GetObject response whose body is a Node stream of exactly `length` bytes. */
export interface ObjectReadStream {
  body: Readable;
  length: number;
  response: GetObjectCommandOutput;
}

/**
 * Starts reading `fullKey` (already prefixed) from `store`. A missing key raises
 * ObjectMissingError; any other failure propagates as the SDK raised it.
 */
export async function openObject(store: ObjectStore, fullKey: string, signal?: AbortSignal): Promise<ObjectReadStream> {
  let response: GetObjectCommandOutput;
  try {
    response = await store.client.send(new GetObjectCommand({ Bucket: store.bucket, Key: fullKey }), { abortSignal: signal });
  } catch (err) {
    if (classifyS3Error(err) === "missing-object") throw new ObjectMissingError(store.bucket, fullKey, store.role, { cause: err });
    throw err;
  }
  const body = response.Body;
  if (!(body instanceof Readable)) throw new Error(`GetObject ${store.bucket}/${fullKey} returned no Node stream body`);
  if (response.ContentLength === undefined) {
    body.destroy();
    throw new Error(`GetObject ${store.bucket}/${fullKey} returned no Content-Length`);
  }
  return { body, length: response.ContentLength, response };
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
  let head: HeadObjectCommandOutput;
  try {
    head = await store.client.send(new HeadObjectCommand({ Bucket: store.bucket, Key: fullKey, ChecksumMode: "ENABLED" }), { abortSignal: opts.signal });
  } catch (err) {
    if (classifyS3Error(err) === "missing-object") throw new ObjectMissingError(store.bucket, fullKey, store.role, { cause: err });
    throw err;
  }
  const stored = head.ChecksumSHA256;
  if (!stored || head.ChecksumType === "COMPOSITE" || stored.includes("-") || head.ContentLength === undefined) return undefined;
  const checksum = Buffer.from(stored, "base64");
  return checksum.length === 32 ? { checksum, bytes: head.ContentLength } : undefined;
}
