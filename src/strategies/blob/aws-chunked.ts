/**
 * S3's `aws-chunked` body encoding with a trailing checksum (STREAMING-UNSIGNED-PAYLOAD-TRAILER):
 * each chunk is sent as `<hex length>\r\n<bytes>\r\n`, then `0\r\n`, then the trailer
 * `x-amz-checksum-sha256:<base64>\r\n\r\n`. It lets a streamed upload carry the SHA-256 of its
 * bytes, known only at the end, which the store checks before it commits the object; a body that
 * stops before the final chunk and trailer is never committed.
 *
 * The chunks have a fixed size, not the size of whatever the source delivers, so the encoded
 * length is known before the first byte: the request goes out with a Content-Length (no HTTP
 * chunked framing on top), and most source chunks are written as they are, with one chunk header
 * per AWS_CHUNK_SIZE bytes.
 */
export const TRAILER = "x-amz-checksum-sha256";

/**
 * Bytes per aws-chunked chunk. S3 wants at least 8 KiB for every chunk but the last; MinIO takes
 * up to 16 MiB. 1 MiB keeps the framing to one header per sixteen 64 KiB socket reads.
 */
export const AWS_CHUNK_SIZE = 1024 * 1024;

/** A SHA-256 in base64 is always this long. */
const SHA256_BASE64_LENGTH = 44;
const CRLF = "\r\n";

/** The request headers that announce an aws-chunked body of `decodedLength` bytes with the SHA-256 trailer. */
export function awsChunkedHeaders(decodedLength: number): Record<string, string> {
  return {
    "content-encoding": "aws-chunked",
    "x-amz-decoded-content-length": String(decodedLength),
    "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    "x-amz-trailer": TRAILER,
  };
}

/** Where the encoded bytes go: a request, or anything with a Writable's write(). */
export interface ChunkSink {
  /** False when the sink wants the writer to wait for its 'drain'. */
  write(data: Buffer | string): boolean;
}

/**
 * Encodes a body of exactly `length` bytes as aws-chunked, written piecewise as the bytes arrive.
 * The caller counts the bytes: writing more than `length` throws, and `end` must come only after
 * exactly `length` bytes.
 */
export class AwsChunkedEncoder {
  /** The encoded body's length in bytes, trailer included: the request's Content-Length. */
  readonly encodedLength: number;
  private readonly length: number;
  private readonly chunkSize: number;
  /** The header of every full chunk after the first, with the previous chunk's closing CRLF. */
  private readonly fullHeader: Buffer;
  private framed = 0;
  /** Bytes still to come in the chunk being written. */
  private left = 0;

  constructor(length: number, chunkSize = AWS_CHUNK_SIZE) {
    this.length = length;
    this.chunkSize = chunkSize;
    this.fullHeader = Buffer.from(`${CRLF}${chunkSize.toString(16)}${CRLF}`, "latin1");
    const full = Math.floor(length / chunkSize);
    const rest = length % chunkSize;
    const headerLength = (size: number) => size.toString(16).length + CRLF.length;
    let encoded = length + full * (headerLength(chunkSize) + CRLF.length) + (rest > 0 ? headerLength(rest) + CRLF.length : 0);
    encoded += `0${CRLF}${TRAILER}:`.length + SHA256_BASE64_LENGTH + 2 * CRLF.length;
    this.encodedLength = encoded;
  }

  /** Writes `chunk` to `sink`, with a chunk header where a chunk starts; returns the sink's last answer. */
  write(chunk: Buffer, sink: ChunkSink): boolean {
    if (this.framed + chunk.length > this.length) throw new Error(`aws-chunked body of ${this.length} bytes given ${this.framed + chunk.length}`);
    let ok = true;
    for (let offset = 0; offset < chunk.length; ) {
      if (this.left === 0) {
        const size = Math.min(this.chunkSize, this.length - this.framed);
        sink.write(size === this.chunkSize && this.framed > 0 ? this.fullHeader : `${this.framed > 0 ? CRLF : ""}${size.toString(16)}${CRLF}`);
        this.left = size;
      }
      const take = Math.min(this.left, chunk.length - offset);
      ok = sink.write(offset === 0 && take === chunk.length ? chunk : chunk.subarray(offset, offset + take));
      offset += take;
      this.left -= take;
      this.framed += take;
    }
    return ok;
  }

  /** What follows the last byte: the end of the last chunk, the final chunk and the trailer with `checksum`. */
  end(checksum: Buffer): string {
    if (this.framed !== this.length) throw new Error(`aws-chunked body of ${this.length} bytes ended after ${this.framed}`);
    return `${this.length > 0 ? CRLF : ""}0${CRLF}${TRAILER}:${checksum.toString("base64")}${CRLF}${CRLF}`;
  }
}
