/**
 * Copies that end before the source has been read completely: the caller aborts, the source
 * ends early, sends too much or fails, the source server hangs (SIGSTOP), or the source server
 * dies (SIGKILL). Each must fail and leave the
 * destination key with its previous content (or absent), never an object built from part of
 * the source, and no multipart upload left open.
 */
import { createHash, randomUUID } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import type { S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inject } from "vitest";
import { startMinio, type S3Endpoint } from "../../../hack/localenv/minio.ts";
import { copyObject, writeObject } from "../../../src/strategies/blob/copy.ts";
import type { ObjectStore } from "../../../src/strategies/blob/object-store.ts";
import { classifyS3Error } from "../../../src/strategies/blob/s3-errors.ts";
import { ObjectLengthMismatchError } from "../../../src/util/sha256-meter.ts";
import { startS3Proxy, type S3Proxy } from "./s3-proxy.ts";
import { pendingUploads, randomBody, read, s3Env, seed, storeOn, testStores } from "./stores.ts";

const MiB = 1024 * 1024;
const multipart = { multipartThreshold: 5 * MiB, partSize: 5 * MiB, queueSize: 1 };

/**
 * A source stream like a GetObject body: `data` in 64 KiB chunks up to `deliver` bytes, then it
 * ends, stalls until destroyed, or fails with the given error.
 */
function sourceOf(data: Buffer, behaviour: { deliver: number; then: "end" | "stall" | Error }): Readable {
  let offset = 0;
  return new Readable({
    read() {
      if (offset < behaviour.deliver) {
        const size = Math.min(64 * 1024, behaviour.deliver - offset);
        this.push(data.subarray(offset, offset + size));
        offset += size;
      } else if (behaviour.then === "end") this.push(null);
      else if (behaviour.then !== "stall") this.destroy(behaviour.then);
    },
  });
}

/** A secondary's store reached through the test proxy, which counts the PUT bytes it forwards. */
async function proxiedSecondary(): Promise<{ dst: ObjectStore; proxy: S3Proxy; close(): Promise<void> }> {
  const proxy = await startS3Proxy(s3Env().secondary.endpoint);
  const dst = storeOn({ ...s3Env().secondary, endpoint: proxy.endpoint }, "secondary", `blob-test/${randomUUID()}/`);
  return {
    dst,
    proxy,
    async close() {
      dst.client.destroy();
      await proxy.close();
    },
  };
}

/** Calls `action` when the client is about to send part `partNumber` of a multipart upload. */
function onUploadPart(client: S3Client, partNumber: number, action: () => void): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const input = args.input as { PartNumber?: number };
      if (context.commandName === "UploadPartCommand" && input.PartNumber === partNumber) action();
      return next(args);
    },
    { step: "initialize", name: `onUploadPart-${randomUUID()}` },
  );
}

describe("a copy aborted by its caller", () => {
  it("mid streamed single PUT leaves the previous content in place and destroys the source", async () => {
    const { dst, proxy, close } = await proxiedSecondary();
    try {
      await seed(dst, "k", "previous content");
      const data = randomBody(24 * MiB);
      const source = sourceOf(data, { deliver: 4 * MiB, then: "stall" });
      const controller = new AbortController();
      const reason = new Error("shutting down");

      const writing = writeObject(dst, "k", source, data.length, { signal: controller.signal });
      // The store has received part of the body when the abort comes.
      await expect.poll(() => proxy.putBytes).toBeGreaterThanOrEqual(4 * MiB);
      controller.abort(reason);

      await expect(writing).rejects.toBe(reason);
      expect(source.destroyed).toBe(true);
      expect((await read(dst, "k"))?.toString()).toBe("previous content");
      // The request's socket was destroyed, not handed back to the pool.
      await expect.poll(() => Object.values(dst.lean.agent.sockets).reduce((n, list) => n + (list?.length ?? 0), 0)).toBe(0);
    } finally {
      await close();
    }
  });

  it("mid multipart upload leaves no object and no open upload", async () => {
    const stores = testStores();
    const { src, dst } = stores;
    try {
      await seed(src, "k", randomBody(24 * MiB));
      const controller = new AbortController();
      const reason = new Error("shutting down");
      let partsStarted = 0;
      onUploadPart(dst.client, 1, () => partsStarted++);
      onUploadPart(dst.client, 2, () => controller.abort(reason));

      await expect(copyObject(src, dst, "k", { ...multipart, signal: controller.signal })).rejects.toBe(reason);

      expect(partsStarted).toBe(1);
      expect(await read(dst, "k")).toBeUndefined();
      expect(await pendingUploads(dst, "k")).toEqual([]);
    } finally {
      stores.destroy();
    }
  });

  it("before it starts sends nothing", async () => {
    const stores = testStores();
    try {
      await seed(stores.src, "k", "x");
      const controller = new AbortController();
      controller.abort(new Error("too late"));
      await expect(copyObject(stores.src, stores.dst, "k", { signal: controller.signal })).rejects.toThrow("too late");
      expect(await read(stores.dst, "k")).toBeUndefined();
    } finally {
      stores.destroy();
    }
  });
});

describe("a streamed single PUT whose source does not deliver its announced length", () => {
  it.each([
    ["ends early", { deliver: 4 * MiB, then: "end" as const }, 24 * MiB],
    ["sends more than announced", { deliver: 24 * MiB, then: "end" as const }, 20 * MiB],
  ])("%s: fails with ObjectLengthMismatchError and the previous content stays", async (_case, behaviour, announced) => {
    const { dst, proxy, close } = await proxiedSecondary();
    try {
      await seed(dst, "k", "previous content");
      const source = sourceOf(randomBody(behaviour.deliver), behaviour);

      const err = await writeObject(dst, "k", source, announced).then(
        () => new Error("the write succeeded"),
        (e: unknown) => e,
      );

      expect(err).toBeInstanceOf(ObjectLengthMismatchError);
      expect(err).toMatchObject({ expected: announced });
      // The store had received part of the body (what was still in flight when the request was destroyed aside).
      await expect.poll(() => proxy.putBytes).toBeGreaterThan(MiB);
      expect((await read(dst, "k"))?.toString()).toBe("previous content");
    } finally {
      await close();
    }
  });

  it("fails mid-body (the primary reset the connection): that error, classified unreachable, and the previous content stays", async () => {
    const { dst, proxy, close } = await proxiedSecondary();
    try {
      await seed(dst, "k", "previous content");
      const reset = Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" });
      const source = sourceOf(randomBody(4 * MiB), { deliver: 4 * MiB, then: reset });

      const err = await writeObject(dst, "k", source, 24 * MiB).then(
        () => new Error("the write succeeded"),
        (e: unknown) => e,
      );

      expect(err).toBe(reset);
      expect(classifyS3Error(err)).toBe("unreachable");
      // The store had received part of the body (what was still in flight when the request was destroyed aside).
      await expect.poll(() => proxy.putBytes).toBeGreaterThan(MiB);
      expect((await read(dst, "k"))?.toString()).toBe("previous content");
    } finally {
      await close();
    }
  });
});

describe("a copy whose source server fails mid-stream", () => {
  // A MinIO of our own, so that stopping it does not disturb other test files.
  let source: S3Endpoint;
  let stateDir: string;
  const bucket = "geo-flaky-primary";
  const data = randomBody(48 * MiB);
  const checksum = createHash("sha256").update(data).digest();

  const sourceStore = (prefix: string): ObjectStore =>
    storeOn({ ...s3Env().primary, endpoint: source.endpoint, accessKeyId: source.accessKeyId, secretAccessKey: source.secretAccessKey, bucket }, "primary", prefix, {
      socketTimeoutMs: 1500,
      maxAttempts: 1,
    });

  beforeAll(async () => {
    const binary = process.env.GEO_TEST_MINIO;
    if (!binary) throw new Error("GEO_TEST_MINIO is not set; run through the integration project");
    stateDir = mkdtempSync(join(inject("env").dir, "blob-flaky-"));
    source = await startMinio({ name: "blob-flaky", stateDir, binary, buckets: [bucket] });
  });

  afterAll(async () => {
    source?.process.resume();
    await source?.stop();
  });

  it("hangs (SIGSTOP): the copy times out and leaves no object", async () => {
    const prefix = `blob-test/${randomUUID()}/`;
    const src = sourceStore(prefix);
    const destination = storeOn(s3Env().secondary, "secondary", prefix);
    try {
      await seed(src, "k", data);
      let paused = false;
      onUploadPart(destination.client, 2, () => {
        if (!paused) source.process.pause();
        paused = true;
      });
      const started = Date.now();

      const err = await copyObject(src, destination, "k", multipart).then(
        () => new Error("the copy succeeded"),
        (e: unknown) => e,
      );

      expect(err).toMatchObject({ name: "TimeoutError" });
      expect(classifyS3Error(err)).toBe("unreachable");
      expect(Date.now() - started).toBeLessThan(30_000);
      expect(await read(destination, "k")).toBeUndefined();
      expect(await pendingUploads(destination, "k")).toEqual([]);
    } finally {
      source.process.resume();
      src.client.destroy();
      destination.client.destroy();
    }
  });

  it("dies (SIGKILL): the copy fails, leaves no object, and succeeds after a restart", async () => {
    const prefix = `blob-test/${randomUUID()}/`;
    let src = sourceStore(prefix);
    const destination = storeOn(s3Env().secondary, "secondary", prefix);
    try {
      await seed(src, "k", data);
      let killed = false;
      onUploadPart(destination.client, 2, () => {
        if (!killed) process.kill(source.process.pid, "SIGKILL");
        killed = true;
      });

      const err = await copyObject(src, destination, "k", multipart).then(
        () => new Error("the copy succeeded"),
        (e: unknown) => e,
      );
      expect(source.process.running === false || (await waitExit(source))).toBe(true);
      expect(err).toMatchObject({ code: "ECONNRESET" });
      expect(classifyS3Error(err)).toBe("unreachable");
      expect(await read(destination, "k")).toBeUndefined();
      expect(await pendingUploads(destination, "k")).toEqual([]);

      source = await startMinio({ name: "blob-flaky", stateDir, binary: process.env.GEO_TEST_MINIO!, buckets: [bucket], port: source.port });
      src.client.destroy();
      src = sourceStore(prefix);
      const result = await copyObject(src, destination, "k", multipart);
      expect(result).toEqual({ checksum, bytes: data.length, multipart: true });
      expect(createHash("sha256").update((await read(destination, "k"))!).digest()).toEqual(checksum);
    } finally {
      src.client.destroy();
      destination.client.destroy();
    }
  });
});

async function waitExit(endpoint: S3Endpoint): Promise<boolean> {
  await endpoint.process.stop(5000);
  return !endpoint.process.running;
}
