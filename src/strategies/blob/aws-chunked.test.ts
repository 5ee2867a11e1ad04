import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { AwsChunkedTrailer, awsChunkedHeaders } from "./aws-chunked.ts";

async function encode(chunks: string[]): Promise<string> {
  const hash = createHash("sha256");
  const encoder = new AwsChunkedTrailer(() => hash.digest());
  const source = Readable.from(chunks.map((c) => Buffer.from(c)));
  source.on("data", (c: Buffer) => hash.update(c));
  return Buffer.concat(await source.pipe(encoder).toArray()).toString("latin1");
}

describe("AwsChunkedTrailer", () => {
  it("frames each chunk with its hex length and ends with the SHA-256 trailer", async () => {
    const sum = createHash("sha256").update("hello world, again").digest("base64");
    expect(await encode(["hello world", "", ", again"])).toBe(`b\r\nhello world\r\n7\r\n, again\r\n0\r\nx-amz-checksum-sha256:${sum}\r\n\r\n`);
  });

  it("encodes an empty body as the final chunk and the trailer", async () => {
    expect(await encode([])).toBe(`0\r\nx-amz-checksum-sha256:${createHash("sha256").digest("base64")}\r\n\r\n`);
  });

  it("announces the decoded length and the trailer", () => {
    expect(awsChunkedHeaders(42)).toMatchObject({ "x-amz-decoded-content-length": "42", "x-amz-trailer": "x-amz-checksum-sha256", "content-encoding": "aws-chunked" });
  });
});
