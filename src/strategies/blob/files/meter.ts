/**
 * A pass-through stream that hashes (SHA-256) and counts what flows through it, and fails instead
 * of ending when the count differs from the expected length: a consumer that sees the end has
 * seen every byte.
 */
import { createHash, type Hash } from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";
import { BlobLengthMismatchError, type BlobChecksum } from "./store.ts";

export class BlobMeter extends Transform {
  readonly expectedBytes: number;
  readonly what: string;
  bytes = 0;
  private readonly hash: Hash | null;

  /** `what` names the blob in errors; `hash: false` only counts. */
  constructor(expectedBytes: number, what: string, options: { hash?: boolean } = {}) {
    super();
    this.expectedBytes = expectedBytes;
    this.what = what;
    this.hash = options.hash === false ? null : createHash("sha256");
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.expectedBytes) {
      callback(new BlobLengthMismatchError(this.what, this.expectedBytes, this.bytes));
      return;
    }
    this.hash?.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (this.bytes !== this.expectedBytes) callback(new BlobLengthMismatchError(this.what, this.expectedBytes, this.bytes));
    else callback();
  }

  /** The checksum; only meaningful once the stream has finished without error, and only once. */
  result(): BlobChecksum {
    if (!this.hash) throw new Error("BlobMeter was created without hashing");
    return { checksum: this.hash.digest(), bytes: this.bytes };
  }
}
