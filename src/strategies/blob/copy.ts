/**
 * Copying one object from the primary's bucket to a secondary's (or any stream into a secondary's
 * bucket), and deleting from a secondary.
 *
 * The source is read once. Objects up to BUFFERED_PUT_MAX (most blobs) are read into one buffer,
 * hashed in one call and sent as a PutObject that carries that SHA-256 (`x-amz-checksum-sha256`):
 * the store computes its own and refuses the write when they differ, so a copy that S3 accepted
 * holds exactly the bytes we hashed. Larger objects stream GetObject → SHA-256 meter → PutObject,
 * the SHA-256 sent after the bytes as an aws-chunked trailer that the store checks likewise (or,
 * above a size threshold, a multipart upload without one), so the checksum returned is of
 * exactly what was sent. The destination only ever holds the previous object or the complete new one: a single PUT
 * is committed by S3 only when its announced Content-Length has arrived (and, with a checksum,
 * only when it matches), and a multipart upload is completed only after the meter has seen the
 * source's full length; on any failure the request is destroyed or the multipart upload aborted.
 */
import { createHash } from "node:crypto";
import { DeleteObjectCommand, PutObjectCommand, type PutObjectCommandInput } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { ObjectLengthMismatchError, Sha256Meter } from "../../util/sha256-meter.ts";
import { openObject, type ContentHeaders, type ObjectChecksum } from "./s3-read.ts";
import { AwsChunkedTrailer, awsChunkedHeaders } from "./aws-chunked.ts";
import { fullObjectKey } from "./object-keys.ts";
import type { ObjectStore } from "./object-store.ts";

const MiB = 1024 * 1024;
/** S3's bounds on multipart uploads. */
const MIN_PART_SIZE = 5 * MiB;
const MAX_PARTS = 10_000;
const MAX_SINGLE_PUT = 5 * 1024 * MiB;

// A streamed single PUT is as atomic as a multipart upload and measured ~1.5× faster at 64 MiB;
// parts only pay off where a retry of the whole object would cost too much (rclone: 200 MiB).
export const DEFAULT_MULTIPART_THRESHOLD = 128 * MiB;
export const DEFAULT_PART_SIZE = 16 * MiB;
export const DEFAULT_QUEUE_SIZE = 4;
/**
 * Objects up to this size are read whole before they are written: one hash call and one PUT with
 * its SHA-256 instead of a stream pipeline per object (the per-object cost dominates small blobs).
 * At most concurrency × this much is held in memory.
 */
export const BUFFERED_PUT_MAX = 8 * MiB;

export interface CopyOptions {
  /** Objects larger than this go through a multipart upload (default 128 MiB, at most 5 GiB). */
  multipartThreshold?: number;
  /** Part size of multipart uploads (default 16 MiB, at least 5 MiB; raised to fit 10,000 parts). */
  partSize?: number;
  /** Parts uploaded at once per object (default 4). Each holds one part in memory. */
  queueSize?: number;
  /** Ends the copy; the destination keeps its previous content. */
  signal?: AbortSignal;
}

export interface CopyResult extends ObjectChecksum {
  multipart: boolean;
}

/** A write or delete was aimed at a primary's bucket. Nothing on a primary is ever changed. */
export class PrimaryWriteRefusedError extends Error {
  override name = "PrimaryWriteRefusedError";

  constructor(action: "write" | "delete", store: ObjectStore, key: string) {
    super(`refusing to ${action} ${store.bucket}/${store.prefix}${key}: that bucket belongs to the primary site, which is never written to`);
  }
}

/**
 * Copies `key` (relative to each store's prefix) from `src` to `dst` and returns the SHA-256 and
 * length of the bytes written. Throws PrimaryWriteRefusedError when `dst` is a primary and
 * InvalidObjectKeyError for a hostile key, both before any request; ObjectMissingError when the
 * source has no such object; ObjectLengthMismatchError when the source body is cut short; the
 * signal's reason when aborted; S3 and network errors as the SDK raised them. Idempotent: a
 * repeated copy rewrites the same bytes.
 */
export async function copyObject(src: ObjectStore, dst: ObjectStore, key: string, opts: CopyOptions = {}): Promise<CopyResult> {
  if (dst.role === "primary") throw new PrimaryWriteRefusedError("write", dst, key);
  const srcKey = fullObjectKey(src.prefix, key);
  fullObjectKey(dst.prefix, key);
  opts.signal?.throwIfAborted();
  const source = await openObject(src, srcKey, opts.signal);
  return writeObject(dst, key, source.body, source.length, { ...opts, headers: source.content, what: `${src.bucket}/${srcKey}` });
}

/**
 * Writes `body`, which must hold exactly `length` bytes, at `key` (relative to the store's
 * prefix) of a secondary's bucket and returns the SHA-256 of what was written; above the
 * multipart threshold as a multipart upload. The object appears whole or not at all. Consumes or
 * destroys `body` in every case. Throws PrimaryWriteRefusedError on a primary and
 * InvalidObjectKeyError for a hostile key, both before any request.
 */
export async function writeObject(
  dst: ObjectStore,
  key: string,
  body: Readable,
  length: number,
  opts: CopyOptions & { headers?: ContentHeaders; what?: string } = {},
): Promise<CopyResult> {
  let dstKey: string;
  try {
    if (dst.role === "primary") throw new PrimaryWriteRefusedError("write", dst, key);
    dstKey = fullObjectKey(dst.prefix, key);
    opts.signal?.throwIfAborted();
  } catch (err) {
    body.destroy();
    throw err;
  }
  // One controller ends every request of this copy: the caller's signal, or the first failure
  // on either side (a failed upload must stop the download, and the reverse).
  const abort = new AbortController();
  let failure: { error: unknown } | undefined;
  const fail = (error: unknown) => {
    failure ??= { error };
    abort.abort(error);
  };
  const onCallerAbort = () => fail(opts.signal!.reason);
  opts.signal?.addEventListener("abort", onCallerAbort, { once: true });
  try {
    if (length <= Math.min(BUFFERED_PUT_MAX, opts.multipartThreshold ?? DEFAULT_MULTIPART_THRESHOLD)) {
      const data = await readWhole(body, length, opts.what ?? `${dst.bucket}/${dstKey}`, abort.signal);
      const checksum = createHash("sha256").update(data).digest();
      await putChecksummed(dst, dstKey, data, opts.headers ?? {}, checksum, abort.signal);
      return { checksum, bytes: length, multipart: false };
    }
    const meter = new Sha256Meter(length, opts.what ?? `${dst.bucket}/${dstKey}`);
    const multipart = length > Math.min(opts.multipartThreshold ?? DEFAULT_MULTIPART_THRESHOLD, MAX_SINGLE_PUT);
    let reading: Promise<void>;
    let writing: Promise<void>;
    const params: PutObjectCommandInput = { ...opts.headers, Bucket: dst.bucket, Key: dstKey };
    if (multipart) {
      reading = pipeline(body, meter, { signal: abort.signal }).catch(fail);
      writing = uploadParts(dst, { ...params, Body: meter, ContentLength: length }, length, opts).catch(fail);
    } else {
      // The SHA-256 the meter computes goes to the store as the body's trailer.
      const encoded = new AwsChunkedTrailer(() => meter.result().checksum);
      reading = pipeline(body, meter, encoded, { signal: abort.signal }).catch(fail);
      writing = putStreamed(dst, { ...params, Body: encoded, ContentLength: length }, length, abort.signal).catch(fail);
    }
    await Promise.all([reading, writing]);
    if (failure) throw failure.error;
    return { ...meter.result(), multipart };
  } catch (err) {
    body.destroy();
    throw failure ? failure.error : err;
  } finally {
    opts.signal?.removeEventListener("abort", onCallerAbort);
  }
}

/**
 * The whole body as one buffer of exactly `length` bytes; ObjectLengthMismatchError when it holds
 * fewer or more. Destroys the body when `signal` aborts.
 */
async function readWhole(body: Readable, length: number, what: string, signal: AbortSignal): Promise<Buffer> {
  const data = Buffer.allocUnsafe(length);
  let received = 0;
  const stop = () => body.destroy(signal.reason);
  signal.addEventListener("abort", stop, { once: true });
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      if (received + chunk.length > length) throw new ObjectLengthMismatchError(what, length, received + chunk.length);
      chunk.copy(data, received);
      received += chunk.length;
    }
  } finally {
    signal.removeEventListener("abort", stop);
  }
  signal.throwIfAborted();
  if (received !== length) throw new ObjectLengthMismatchError(what, length, received);
  return data;
}

/**
 * A PutObject that carries the body's SHA-256 (`x-amz-checksum-sha256`), which the store checks
 * before it commits the object (S3 answers BadDigest, MinIO XAmzContentChecksumMismatch). Sent on
 * the store's lean path (s3-lean.ts), signed UNSIGNED-PAYLOAD: the checksum already covers the
 * bytes, and hashing the body again for the signature would double the work. The body is a
 * buffer, so a retried attempt sends the same bytes.
 */
async function putChecksummed(dst: ObjectStore, fullKey: string, data: Buffer, content: ContentHeaders, checksum: Buffer, signal: AbortSignal): Promise<void> {
  const headers: Record<string, string> = { "x-amz-checksum-sha256": checksum.toString("base64") };
  const named: [string, string | undefined][] = [
    ["content-type", content.ContentType],
    ["content-encoding", content.ContentEncoding],
    ["content-disposition", content.ContentDisposition],
    ["content-language", content.ContentLanguage],
    ["cache-control", content.CacheControl],
    ...Object.entries(content.Metadata ?? {}).map(([name, value]): [string, string] => [`x-amz-meta-${name}`, value]),
  ];
  for (const [name, value] of named) if (value !== undefined) headers[name] = value;
  await dst.lean.put(fullKey, data, headers, signal);
}

/**
 * A streamed PutObject of `length` bytes whose aws-chunked body ends with their SHA-256, which the
 * store checks before it commits the object. The abort signal destroys the request; a PUT that
 * has not delivered its final chunk and trailer is discarded by S3.
 */
async function putStreamed(dst: ObjectStore, params: PutObjectCommandInput, length: number, signal: AbortSignal): Promise<void> {
  const command = new PutObjectCommand(params);
  command.middlewareStack.add(
    (next) => async (args) => {
      const request = args.request as { headers: Record<string, string> };
      // ContentLength is the decoded length (it spares the SDK a warning); the body is longer.
      delete request.headers["content-length"];
      Object.assign(request.headers, awsChunkedHeaders(length));
      return next(args);
    },
    { step: "build", name: "geoAwsChunkedTrailer" },
  );
  await dst.client.send(command, { abortSignal: signal });
}

async function uploadParts(dst: ObjectStore, params: PutObjectCommandInput, length: number, opts: CopyOptions): Promise<void> {
  const partSize = Math.max(opts.partSize ?? DEFAULT_PART_SIZE, MIN_PART_SIZE, Math.ceil(length / MAX_PARTS));
  // No abortController is handed to Upload: its abort() settles done() at once while parts are
  // still in flight. A failed body instead makes Upload wait for them, send
  // AbortMultipartUpload, and only then reject.
  const upload = new Upload({ client: dst.client, params, partSize, queueSize: opts.queueSize ?? DEFAULT_QUEUE_SIZE, leavePartsOnError: false });
  await upload.done();
}

/**
 * Deletes `key` (relative to the store's prefix) from a secondary's bucket. Deleting a key that
 * does not exist succeeds. Throws PrimaryWriteRefusedError on a primary, before any request.
 */
export async function deleteObject(store: ObjectStore, key: string, opts: { signal?: AbortSignal } = {}): Promise<void> {
  if (store.role === "primary") throw new PrimaryWriteRefusedError("delete", store, key);
  const fullKey = fullObjectKey(store.prefix, key);
  await store.client.send(new DeleteObjectCommand({ Bucket: store.bucket, Key: fullKey }), { abortSignal: opts.signal });
}
