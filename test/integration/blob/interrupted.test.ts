/**
 * Copies that end before the source has been read completely: the caller aborts, the source
 * server hangs (SIGSTOP), or the source server dies (SIGKILL). Each must fail and leave the
 * destination key with its previous content (or absent), never an object built from part of
 * the source, and no multipart upload left open.
 */
import { createHash, randomUUID } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { join } from "node:path";
import { Transform, type Readable } from "node:stream";
import type { S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inject } from "vitest";
import { startMinio, type S3Endpoint } from "../../../hack/localenv/minio.ts";
import { copyObject } from "../../../src/strategies/blob/copy.ts";
import type { ObjectStore } from "../../../src/strategies/blob/object-store.ts";
import { classifyS3Error } from "../../../src/strategies/blob/s3-errors.ts";
import { pendingUploads, randomBody, read, s3Env, seed, storeOn, testStores } from "./stores.ts";

const MiB = 1024 * 1024;
const multipart = { multipartThreshold: 5 * MiB, partSize: 5 * MiB, queueSize: 1 };

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

/** Calls `action` once a PutObject request body has put more than `bytes` on the wire. */
function onPutBodyBytes(client: S3Client, bytes: number, action: () => void): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const request = args.request as { body?: unknown };
      if (context.commandName === "PutObjectCommand" && request.body && typeof (request.body as Readable).pipe === "function") {
        let sent = 0;
        let fired = false;
        const counter = new Transform({
          transform(chunk: Buffer, _encoding, callback) {
            sent += chunk.length;
            if (sent > bytes && !fired) {
              fired = true;
              action();
            }
            callback(null, chunk);
          },
        });
        request.body = (request.body as Readable).pipe(counter);
      }
      return next(args);
    },
    { step: "finalizeRequest", priority: "low", name: `onPutBodyBytes-${randomUUID()}` },
  );
}

describe("a copy aborted by its caller", () => {
  it("mid single PUT leaves the previous content in place", async () => {
    const stores = testStores();
    const { src, dst } = stores;
    try {
      const data = randomBody(24 * MiB);
      await seed(src, "k", data);
      await seed(dst, "k", "previous content");
      const controller = new AbortController();
      const reason = new Error("shutting down");
      onPutBodyBytes(dst.client, 4 * MiB, () => controller.abort(reason));

      await expect(copyObject(src, dst, "k", { multipartThreshold: 64 * MiB, signal: controller.signal })).rejects.toBe(reason);

      expect(controller.signal.aborted).toBe(true);
      expect((await read(dst, "k"))?.toString()).toBe("previous content");
    } finally {
      stores.destroy();
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
