/**
 * S3's `aws-chunked` body encoding with a trailing checksum (STREAMING-UNSIGNED-PAYLOAD-TRAILER):
 * each chunk is sent as `<hex length>\r\n<bytes>\r\n`, then `0\r\n`, then the trailer
 * `x-amz-checksum-sha256:<base64>\r\n\r\n`. It lets a streamed upload carry the SHA-256 of its
 * bytes, known only at the end, which the store checks before it commits the object. The SDK can
 * send such a trailer only with a hash of its own; this one sends the hash we compute anyway
 * (Sha256Meter), so the bytes are hashed once.
 */
import { Transform, type TransformCallback } from "node:stream";

export const TRAILER = "x-amz-checksum-sha256";

/** The request headers that announce an aws-chunked body of `decodedLength` bytes with the SHA-256 trailer. */
export function awsChunkedHeaders(decodedLength: number): Record<string, string> {
  return {
    "content-encoding": "aws-chunked",
    "transfer-encoding": "chunked",
    "x-amz-decoded-content-length": String(decodedLength),
    "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    "x-amz-trailer": TRAILER,
  };
}

/** Encodes what flows through it as aws-chunked; `checksum()` is called once, after the last byte. */
export class AwsChunkedTrailer extends Transform {
  private readonly checksum: () => Buffer;

  constructor(checksum: () => Buffer) {
    super();
    this.checksum = checksum;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (chunk.length === 0) return callback();
    this.push(`${chunk.length.toString(16)}\r\n`);
    this.push(chunk);
    callback(null, "\r\n");
  }

  override _flush(callback: TransformCallback): void {
    let sum: Buffer;
    try {
      sum = this.checksum();
    } catch (err) {
      return callback(err as Error);
    }
    callback(null, `0\r\n${TRAILER}:${sum.toString("base64")}\r\n\r\n`);
  }
}
