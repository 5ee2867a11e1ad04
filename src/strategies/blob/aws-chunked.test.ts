import { createHash, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { AwsChunkedEncoder, awsChunkedHeaders } from "./aws-chunked.ts";

/** Encodes `pieces` (the source's chunks) and returns what was written, as latin1, and how many writes. */
function encode(pieces: Buffer[], chunkSize: number): { body: string; writes: number; encoder: AwsChunkedEncoder } {
  const length = pieces.reduce((n, p) => n + p.length, 0);
  const encoder = new AwsChunkedEncoder(length, chunkSize);
  const out: Buffer[] = [];
  const sink = { write: (data: Buffer | string) => out.push(typeof data === "string" ? Buffer.from(data, "latin1") : data) > 0 };
  const hash = createHash("sha256");
  for (const p of pieces) {
    hash.update(p);
    encoder.write(p, sink);
  }
  const writes = out.length;
  out.push(Buffer.from(encoder.end(hash.digest()), "latin1"));
  return { body: Buffer.concat(out).toString("latin1"), writes, encoder };
}

/** Decodes an aws-chunked body: the data and the trailer line. */
function decode(body: string): { data: string; trailer: string; sizes: number[] } {
  let data = "";
  const sizes: number[] = [];
  let at = 0;
  for (;;) {
    const eol = body.indexOf("\r\n", at);
    const size = parseInt(body.slice(at, eol), 16);
    at = eol + 2;
    if (size === 0) break;
    sizes.push(size);
    data += body.slice(at, at + size);
    expect(body.slice(at + size, at + size + 2)).toBe("\r\n");
    at += size + 2;
  }
  expect(body.endsWith("\r\n\r\n")).toBe(true);
  return { data, trailer: body.slice(at, -4), sizes };
}

describe("AwsChunkedEncoder", () => {
  it("frames the bytes in chunks of its size, whatever the source's pieces, and ends with the SHA-256 trailer", () => {
    const sum = createHash("sha256").update("hello world, again").digest("base64");
    const { body } = encode(["hello world", "", ", again"].map((s) => Buffer.from(s)), 8);
    expect(body).toBe(`8\r\nhello wo\r\n8\r\nrld, aga\r\n2\r\nin\r\n0\r\nx-amz-checksum-sha256:${sum}\r\n\r\n`);
  });

  it("encodes an empty body as the final chunk and the trailer", () => {
    const { body, encoder } = encode([], 8);
    expect(body).toBe(`0\r\nx-amz-checksum-sha256:${createHash("sha256").digest("base64")}\r\n\r\n`);
    expect(encoder.encodedLength).toBe(body.length);
  });

  it.each([
    [1, 16],
    [16, 16],
    [17, 16],
    [100_000, 4096],
    [3 * 65536 + 7, 65536],
    [256 * 1024 * 3, 256 * 1024],
  ])("announces the exact encoded length for %i bytes in chunks of %i", (length, chunkSize) => {
    const data = randomBytes(length);
    // Source pieces of sizes that rarely line up with the chunks.
    const pieces: Buffer[] = [];
    for (let at = 0, i = 0; at < length; i++) {
      const size = Math.min(length - at, 1 + ((i * 7919) % (chunkSize * 2)));
      pieces.push(data.subarray(at, at + size));
      at += size;
    }
    const { body, encoder } = encode(pieces, chunkSize);
    expect(encoder.encodedLength).toBe(body.length);
    const decoded = decode(body);
    expect(Buffer.from(decoded.data, "latin1").equals(data)).toBe(true);
    expect(decoded.sizes.slice(0, -1).every((s) => s === chunkSize)).toBe(true);
    expect(decoded.trailer).toBe(`x-amz-checksum-sha256:${createHash("sha256").update(data).digest("base64")}`);
  });

  it("writes a source chunk that falls inside one chunk as it is, without copying it", () => {
    const piece = randomBytes(100);
    const written: (Buffer | string)[] = [];
    const encoder = new AwsChunkedEncoder(300, 1000);
    encoder.write(piece, { write: (d) => written.push(d) > 0 });
    expect(written).toHaveLength(2);
    expect(written[1]).toBe(piece);
  });

  it("refuses more bytes than announced, and an end before all of them", () => {
    const encoder = new AwsChunkedEncoder(4, 8);
    const sink = { write: () => true };
    expect(() => encoder.write(Buffer.from("12345"), sink)).toThrow(/4 bytes given 5/);
    encoder.write(Buffer.from("123"), sink);
    expect(() => encoder.end(Buffer.alloc(32))).toThrow(/ended after 3/);
  });

  it("announces the decoded length and the trailer", () => {
    expect(awsChunkedHeaders(42)).toMatchObject({ "x-amz-decoded-content-length": "42", "x-amz-trailer": "x-amz-checksum-sha256", "content-encoding": "aws-chunked" });
  });
});
