import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { describe, expect, it } from "vitest";
import { FILE_READ_CHUNK, ObjectLengthMismatchError, Sha256Meter, sha256OfFile, sha256OfStream } from "./sha256-meter.ts";


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

describe("sha256OfFile", () => {
  const hashOf = async (data: Buffer, expected: number, signal?: AbortSignal) => {
    const dir = mkdtempSync(join(tmpdir(), "sha256-file-"));
    try {
      writeFileSync(join(dir, "f"), data);
      const handle = await open(join(dir, "f"));
      try {
        return await sha256OfFile(handle, expected, "f", signal);
      } finally {
        await handle.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it("hashes files of every size, across read chunks", async () => {
    for (const size of [0, 1, FILE_READ_CHUNK - 1, FILE_READ_CHUNK, 2 * FILE_READ_CHUNK + 3]) {
      const data = randomBytes(size);
      expect(await hashOf(data, size)).toEqual({ checksum: createHash("sha256").update(data).digest(), bytes: size });
    }
  });

  it("fails when the file is shorter or longer than expected", async () => {
    const data = randomBytes(FILE_READ_CHUNK + 10);
    await expect(hashOf(data, data.length + 1)).rejects.toBeInstanceOf(ObjectLengthMismatchError);
    await expect(hashOf(data, data.length - 1)).rejects.toBeInstanceOf(ObjectLengthMismatchError);
    await expect(hashOf(data, 5)).rejects.toBeInstanceOf(ObjectLengthMismatchError);
  });

  it("stops when the signal aborts", async () => {
    await expect(hashOf(randomBytes(10), 10, AbortSignal.abort(new Error("stop")))).rejects.toThrow("stop");
  });
});

describe("sha256OfStream", () => {
  const body = (chunks: string[]) => Readable.from(chunks.map((c) => Buffer.from(c)));

  it("returns the SHA-256 and count of what the body delivers", async () => {
    expect(await sha256OfStream(body(["hello ", "world"]), 11, "k")).toEqual({ checksum: createHash("sha256").update("hello world").digest(), bytes: 11 });
    expect((await sha256OfStream(body([]), 0, "k")).bytes).toBe(0);
  });

  it("fails when the body is shorter or longer than announced", async () => {
    await expect(sha256OfStream(body(["abc"]), 4, "k")).rejects.toMatchObject({ name: "ObjectLengthMismatchError", expected: 4, received: 3 });
    const long = body(["abc", "def"]);
    await expect(sha256OfStream(long, 4, "k")).rejects.toBeInstanceOf(ObjectLengthMismatchError);
    expect(long.destroyed).toBe(true);
  });

  it("passes the body's error on and stops on abort, destroying the body", async () => {
    const failing = new Readable({ read() { this.destroy(new Error("connection reset")); } });
    await expect(sha256OfStream(failing, 10, "k")).rejects.toThrow("connection reset");
    const endless = new Readable({ read() { this.push(Buffer.alloc(1)); } });
    endless.pause();
    const controller = new AbortController();
    const hashing = sha256OfStream(new Readable({ read() {} }), 10, "k", controller.signal);
    controller.abort(new Error("stop"));
    await expect(hashing).rejects.toThrow("stop");
    await expect(sha256OfStream(endless, 10, "k", AbortSignal.abort(new Error("early")))).rejects.toThrow("early");
    expect(endless.destroyed).toBe(true);
  });
});
