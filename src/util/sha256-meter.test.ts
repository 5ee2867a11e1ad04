import { createHash } from "node:crypto";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { describe, expect, it } from "vitest";
import { ObjectLengthMismatchError, Sha256Meter } from "./sha256-meter.ts";


async function meter(chunks: string[], expected: number): Promise<{ meter: Sha256Meter; passed: string }> {
  const m = new Sha256Meter(expected, "bucket/key");
  let passed = "";
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      passed += chunk.toString();
      callback();
    },
  });
  await pipeline(Readable.from(chunks.map((c) => Buffer.from(c))), m, sink);
  return { meter: m, passed };
}

describe("Sha256Meter", () => {
  it("passes the bytes through and returns their SHA-256 and count", async () => {
    const { meter: m, passed } = await meter(["hello ", "world"], 11);
    expect(passed).toBe("hello world");
    expect(m.result()).toEqual({ checksum: createHash("sha256").update("hello world").digest(), bytes: 11 });
  });

  it("hashes an empty stream", async () => {
    const { meter: m } = await meter([], 0);
    expect(m.result().checksum.toString("hex")).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  });

  it("fails instead of ending when the body is shorter than announced", async () => {
    const err = await meter(["hello"], 11).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ObjectLengthMismatchError);
    expect(err).toMatchObject({ expected: 11, received: 5, message: "object bucket/key announced 11 bytes but ended after 5" });
  });

  it("fails as soon as the body is longer than announced, without passing the extra bytes on", async () => {
    const err = await meter(["hello", " world"], 5).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: "ObjectLengthMismatchError", expected: 5, received: 11 });
  });
});
