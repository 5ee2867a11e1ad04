/**
 * SHA-256 of any stream, computed while the bytes pass through: a copy hashes what it writes, a
 * verification reads its source once. Nothing is held in memory. Knows nothing of where the bytes
 * come from (S3, a file, HTTP): the caller names the object for error messages.
 */
import { createHash, type Hash } from "node:crypto";
import type { FileHandle } from "node:fs/promises";
import { type Readable, Transform, type TransformCallback } from "node:stream";

/** The body delivered fewer or more bytes than the response's Content-Length announced. */
export class ObjectLengthMismatchError extends Error {
  override name = "ObjectLengthMismatchError";
  readonly expected: number;
  readonly received: number;

  constructor(object: string, expected: number, received: number) {
    super(`object ${object} announced ${expected} bytes but ${received > expected ? "sent more than that" : `ended after ${received}`}`);
    this.expected = expected;
    this.received = received;
  }
}

export interface StreamChecksum {
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
  private readonly hash: Hash | null;
  private digest: Buffer | undefined;

  /** `object` names the bytes in errors; with `hash: false` the meter only counts. */
  constructor(expectedBytes: number, object: string, options: { hash?: boolean } = {}) {
    super();
    this.expectedBytes = expectedBytes;
    this.object = object;
    this.hash = options.hash === false ? null : createHash("sha256");
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.expectedBytes) {
      callback(new ObjectLengthMismatchError(this.object, this.expectedBytes, this.bytes));
      return;
    }
    this.hash?.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (this.bytes !== this.expectedBytes) callback(new ObjectLengthMismatchError(this.object, this.expectedBytes, this.bytes));
    else callback();
  }

  /** The checksum; only meaningful once every byte has passed (the stream's flush or end). */
  result(): StreamChecksum {
    if (!this.hash) throw new Error("Sha256Meter was created without hashing");
    this.digest ??= this.hash.digest();
    return { checksum: this.digest, bytes: this.bytes };
  }
}


/** Bytes read from a file per call; large enough that hashing, not the read calls, sets the pace. */
export const FILE_READ_CHUNK = 1024 * 1024;

/**
 * SHA-256 of an open file read from its start, in FILE_READ_CHUNK reads into two buffers (no
 * stream, no buffer per chunk): what a stream pipeline costs on top of OpenSSL is most of its
 * time. The next read runs on libuv's thread pool while this thread hashes the current buffer, so
 * reading from the page cache overlaps the hashing instead of adding to it. Fails with
 * ObjectLengthMismatchError when the file holds fewer or more than `expectedBytes` bytes (it was
 * truncated or appended to), and with the signal's reason when aborted. The caller closes
 * `handle` (FileHandle.close waits for a read still in flight).
 */
export async function sha256OfFile(handle: FileHandle, expectedBytes: number, object: string, signal?: AbortSignal): Promise<StreamChecksum> {
  signal?.throwIfAborted();
  const hash = createHash("sha256");
  // One byte more than expected, so that a file that grew shows in the last read.
  const size = Math.min(FILE_READ_CHUNK, expectedBytes + 1);
  const buffers = [Buffer.allocUnsafe(size), Buffer.allocUnsafe(size)] as const;
  let turn = 0;
  let bytes = 0;
  let next: Promise<{ bytesRead: number }> | undefined = handle.read(buffers[0], 0, size, 0);
  try {
    for (;;) {
      const { bytesRead } = await next;
      next = undefined;
      signal?.throwIfAborted();
      if (bytesRead === 0) break;
      const current = buffers[turn]!;
      bytes += bytesRead;
      if (bytes > expectedBytes) throw new ObjectLengthMismatchError(object, expectedBytes, bytes);
      turn ^= 1;
      next = handle.read(buffers[turn]!, 0, size, bytes);
      hash.update(current.subarray(0, bytesRead));
    }
  } finally {
    // Leaving early with a read in flight: its outcome no longer matters.
    next?.catch(() => undefined);
  }
  if (bytes !== expectedBytes) throw new ObjectLengthMismatchError(object, expectedBytes, bytes);
  return { checksum: hash.digest(), bytes };
}

/**
 * SHA-256 and length of everything `body` delivers, hashed in its 'data' events: the read-only
 * path (verification) needs no pass-through stream, whose per-chunk cost is most of a stream's.
 * Fails with ObjectLengthMismatchError when the body holds fewer or more than `expectedBytes`
 * bytes, with the body's error, or with the signal's reason (the body is then destroyed).
 */
export function sha256OfStream(body: Readable, expectedBytes: number, object: string, signal?: AbortSignal): Promise<StreamChecksum> {
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    let bytes = 0;
    let settled = false;
    const settle = (err: unknown, result?: StreamChecksum) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener("abort", onAbort);
      if (err === undefined) resolve(result!);
      else {
        body.destroy();
        reject(err);
      }
    };
    const onAbort = () => settle(signal!.reason);
    if (signal?.aborted) return onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    body.on("data", (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > expectedBytes) return settle(new ObjectLengthMismatchError(object, expectedBytes, bytes));
      hash.update(chunk);
    });
    body.once("error", (err) => settle(err));
    body.once("end", () => {
      if (bytes !== expectedBytes) settle(new ObjectLengthMismatchError(object, expectedBytes, bytes));
      else settle(undefined, { checksum: hash.digest(), bytes });
    });
    // A socket closed before the end ("aborted") ends some bodies with 'close' and no 'end'. The
    // error is built only then: an Error's stack trace costs as much as hashing a small object.
    body.once("close", () => {
      if (!settled) settle(new ObjectLengthMismatchError(object, expectedBytes, bytes));
    });
  });
}
