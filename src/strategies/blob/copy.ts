/**
 * Copying one object from the primary's bucket to a secondary's (or any stream into a secondary's
 * bucket), and deleting from a secondary.
 *
 * The source is read once. Objects up to BUFFERED_PUT_MAX (most blobs) are read into one buffer,
 * hashed in one call and sent as a PutObject that carries that SHA-256 (`x-amz-checksum-sha256`):
 * the store computes its own and refuses the write when they differ, so a copy that S3 accepted
 * holds exactly the bytes we hashed. Larger objects, up to the multipart threshold, stream from
 * the GetObject body into a PutObject on the lean path (LeanS3.putStream), which hashes each chunk
 * as it passes and sends the SHA-256 after the bytes as an aws-chunked trailer that the store
 * checks likewise. A store whose GeoSite says `uploadChecksum: None` (one that refuses S3's
 * additional checksums) gets Content-MD5 on a buffered PUT and only the length on a streamed one;
 * the checksum returned is still ours, and a first verification then reads the copy back. Above
 * the threshold a multipart upload (the SDK's Upload) takes the bytes
 * through a SHA-256 meter, without a store-checked checksum. The checksum returned is of exactly
 * what was sent. The destination only ever holds the previous object or the complete new one: a
 * single PUT is committed by S3 only when its announced Content-Length (streamed: the final chunk
 * and trailer) has arrived and the checksum matches, and a multipart upload is completed only
 * after the meter has seen the source's full length; on any failure the request is destroyed or
 * the multipart upload aborted.
 */
import { createHash } from "node:crypto";
import { DeleteObjectCommand, type PutObjectCommandInput } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { ObjectLengthMismatchError, Sha256Meter } from "../../util/sha256-meter.ts";
import { openObject, type ContentHeaders, type ObjectChecksum } from "./s3-read.ts";
import { fullObjectKey } from "./object-keys.ts";
import { S3ResponseError } from "./s3-lean.ts";
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
  const what = opts.what ?? `${dst.bucket}/${dstKey}`;
  const headers = contentRequestHeaders(opts.headers ?? {});
  const multipartAbove = Math.min(opts.multipartThreshold ?? DEFAULT_MULTIPART_THRESHOLD, MAX_SINGLE_PUT);
  try {
    if (length <= Math.min(BUFFERED_PUT_MAX, multipartAbove)) {
      const data = await readWhole(body, length, what, opts.signal);
      const checksum = createHash("sha256").update(data).digest();
      await withUploadChecksumHint(dst, () => putChecksummed(dst, dstKey, data, headers, checksum, opts.signal));
      return { checksum, bytes: length, multipart: false };
    }
    if (length <= multipartAbove) {
      // The SHA-256 goes to the store as the body's trailer (unless the store cannot take one); the
      // lean path hashes, counts and frames each chunk as it arrives.
      const trailer = dst.uploadChecksum === "SHA256";
      const sent = await withUploadChecksumHint(dst, () => dst.lean.putStream(dstKey, body, length, headers, what, opts.signal, { trailer }));
      return { ...sent, multipart: false };
    }
    return { ...(await uploadParts(dst, dstKey, body, length, what, opts)), multipart: true };
  } catch (err) {
    body.destroy();
    throw err;
  }
}

/**
 * The whole body as one buffer of exactly `length` bytes; ObjectLengthMismatchError when it holds
 * fewer or more. Destroys the body when `signal` aborts.
 */
async function readWhole(body: Readable, length: number, what: string, signal: AbortSignal | undefined): Promise<Buffer> {
  signal?.throwIfAborted();
  const data = Buffer.allocUnsafe(length);
  let received = 0;
  const stop = () => body.destroy(signal!.reason);
  signal?.addEventListener("abort", stop, { once: true });
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      if (received + chunk.length > length) throw new ObjectLengthMismatchError(what, length, received + chunk.length);
      chunk.copy(data, received);
      received += chunk.length;
    }
  } finally {
    signal?.removeEventListener("abort", stop);
  }
  signal?.throwIfAborted();
  if (received !== length) throw new ObjectLengthMismatchError(what, length, received);
  return data;
}

/** Content headers as a PutObject request's headers. */
function contentRequestHeaders(content: ContentHeaders): Record<string, string> {
  const headers: Record<string, string> = {};
  const named: [string, string | undefined][] = [
    ["content-type", content.ContentType],
    ["content-encoding", content.ContentEncoding],
    ["content-disposition", content.ContentDisposition],
    ["content-language", content.ContentLanguage],
    ["cache-control", content.CacheControl],
    ...Object.entries(content.Metadata ?? {}).map(([name, value]): [string, string] => [`x-amz-meta-${name}`, value]),
  ];
  for (const [name, value] of named) if (value !== undefined) headers[name] = value;
  return headers;
}

/**
 * A PutObject that carries the body's SHA-256 (`x-amz-checksum-sha256`), which the store checks
 * before it commits the object (S3 answers BadDigest, MinIO XAmzContentChecksumMismatch). Sent on
 * the store's lean path (s3-lean.ts), signed UNSIGNED-PAYLOAD: the checksum already covers the
 * bytes, and hashing the body again for the signature would double the work. The body is a
 * buffer, so a retried attempt sends the same bytes.
 */
async function putChecksummed(dst: ObjectStore, fullKey: string, data: Buffer, headers: Record<string, string>, checksum: Buffer, signal: AbortSignal | undefined): Promise<void> {
  // A store that takes no SHA-256 still checks Content-MD5, which every S3-compatible store knows.
  const integrity: Record<string, string> = dst.uploadChecksum === "SHA256" ? { "x-amz-checksum-sha256": checksum.toString("base64") } : { "content-md5": createHash("md5").update(data).digest("base64") };
  await dst.lean.put(fullKey, data, { ...headers, ...integrity }, signal);
}

/**
 * What S3-compatible stores that do not implement S3's additional checksums answer to a PutObject
 * carrying one (x-amz-checksum-sha256, or an aws-chunked body with a trailer): Cloudflare R2 and
 * older Ceph RGW NotImplemented, Backblaze B2 InvalidArgument ("Unsupported header"), others
 * InvalidRequest. A plain PutObject gets none of these from a store that works at all.
 */
const CHECKSUM_REFUSALS = new Set(["NotImplemented", "InvalidArgument", "InvalidRequest"]);

/**
 * Runs a PUT that carries our SHA-256 and, when the store refuses it in a way that points at the
 * checksum, says so and what to change: the store's own message alone ("Unsupported header") does
 * not tell an operator that geo-operator has a setting for it. The error keeps its name and status,
 * so it is classified as before.
 */
async function withUploadChecksumHint<T>(dst: ObjectStore, put: () => Promise<T>): Promise<T> {
  try {
    return await put();
  } catch (err) {
    if (dst.uploadChecksum !== "SHA256" || !(err instanceof S3ResponseError) || !CHECKSUM_REFUSALS.has(err.name)) throw err;
    const { httpStatusCode, requestId, attempts } = err.$metadata;
    throw new S3ResponseError(
      httpStatusCode,
      err.name,
      `${err.message} (the store may not accept the SHA-256 checksum sent with uploads, x-amz-checksum-sha256; ` +
        `if it is an S3-compatible store without it, set objectStorage.uploadChecksum: None on the secondary GeoSite)`,
      requestId,
      attempts,
    );
  }
}

/**
 * A multipart upload of `body` through the SDK's Upload, hashed and counted on the way by a
 * Sha256Meter: the meter fails instead of ending unless exactly `length` bytes passed, and Upload
 * completes the upload only after the end of its body, so a short source is never completed. One
 * controller ends both sides: the caller's signal, or the first failure on either (a failed
 * upload must stop the download, and the reverse).
 */
async function uploadParts(dst: ObjectStore, fullKey: string, body: Readable, length: number, what: string, opts: CopyOptions & { headers?: ContentHeaders }): Promise<ObjectChecksum> {
  opts.signal?.throwIfAborted();
  const abort = new AbortController();
  let failure: { error: unknown } | undefined;
  const fail = (error: unknown) => {
    failure ??= { error };
    abort.abort(error);
  };
  const onCallerAbort = () => fail(opts.signal!.reason);
  opts.signal?.addEventListener("abort", onCallerAbort, { once: true });
  try {
    const meter = new Sha256Meter(length, what);
    const partSize = Math.max(opts.partSize ?? DEFAULT_PART_SIZE, MIN_PART_SIZE, Math.ceil(length / MAX_PARTS));
    const params: PutObjectCommandInput = { ...opts.headers, Bucket: dst.bucket, Key: fullKey, Body: meter, ContentLength: length };
    // No abortController is handed to Upload: its abort() settles done() at once while parts are
    // still in flight. A failed body instead makes Upload wait for them, send
    // AbortMultipartUpload, and only then reject.
    const upload = new Upload({ client: dst.client, params, partSize, queueSize: opts.queueSize ?? DEFAULT_QUEUE_SIZE, leavePartsOnError: false });
    const reading = pipeline(body, meter, { signal: abort.signal }).catch(fail);
    const writing = upload.done().then(() => undefined, fail);
    await Promise.all([reading, writing]);
    if (failure) throw failure.error;
    return meter.result();
  } finally {
    opts.signal?.removeEventListener("abort", onCallerAbort);
  }
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
