/**
 * SHA-256 of objects in S3, computed while the bytes stream past: the copy hashes what it writes
 * and verification re-reads an object once. Neither holds an object in memory.
 */
import { createHash, type Hash } from "node:crypto";
import { Readable, Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { GetObjectCommand, type GetObjectCommandOutput } from "@aws-sdk/client-s3";
import { fullObjectKey } from "../strategies/blob/object-keys.ts";
import type { ObjectStore } from "../strategies/blob/object-store.ts";
import { ObjectLengthMismatchError, ObjectMissingError, classifyS3Error } from "./s3-errors.ts";

export interface ObjectChecksum {
  /** 32 bytes. */
  checksum: Buffer;
  bytes: number;
}

/**
 * A pass-through stream that hashes and counts what flows through it and fails, instead of
 * ending, when the count differs from `expectedBytes`. A consumer that sees the end has
 * therefore seen every byte of the object.
 */
export class Sha256Meter extends Transform {
  readonly expectedBytes: number;
  readonly object: string;
  bytes = 0;
  private readonly hash: Hash = createHash("sha256");

  constructor(expectedBytes: number, object: string) {
    super();
    this.expectedBytes = expectedBytes;
    this.object = object;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.expectedBytes) {
      callback(new ObjectLengthMismatchError(this.object, this.expectedBytes, this.bytes));
      return;
    }
    this.hash.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (this.bytes !== this.expectedBytes) callback(new ObjectLengthMismatchError(this.object, this.expectedBytes, this.bytes));
    else callback();
  }

  /** The checksum; only meaningful once the stream has finished without error. */
  result(): ObjectChecksum {
    return { checksum: this.hash.digest(), bytes: this.bytes };
  }
}

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
  const meter = new Sha256Meter(object.length, `${store.bucket}/${fullKey}`);
  // resume() discards the pass-through output; only the hash and the count matter here.
  meter.resume();
  await pipeline(object.body, meter, opts.signal ? { signal: opts.signal } : {});
  return meter.result();
}
