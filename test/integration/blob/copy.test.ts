import { createHash, randomUUID } from "node:crypto";
import { HeadObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { afterEach, describe, expect, it, onTestFinished } from "vitest";
import { PrimaryWriteRefusedError, copyObject, deleteObject } from "../../../src/strategies/blob/copy.ts";
import { InvalidObjectKeyError } from "../../../src/strategies/blob/object-keys.ts";
import { classifyS3Error } from "../../../src/strategies/blob/s3-errors.ts";
import { S3ResponseError } from "../../../src/strategies/blob/s3-lean.ts";
import { sha256Object } from "../../../src/strategies/blob/s3-read.ts";
import { startS3Proxy } from "./s3-proxy.ts";
import { countRequests, listKeys, pendingUploads, randomBody, read, s3Env, seed, storeOn, testStores, watchRequests } from "./stores.ts";

const MiB = 1024 * 1024;
const sha256 = (data: Buffer | string) => createHash("sha256").update(data).digest();

let stores: ReturnType<typeof testStores>;
afterEach(() => stores?.destroy());

describe("copyObject", () => {
  it("copies a zero-byte object", async () => {
    stores = testStores();
    const { src, dst } = stores;
    await seed(src, "empty", "");

    const result = await copyObject(src, dst, "empty");

    expect(result).toEqual({ checksum: sha256(""), bytes: 0, multipart: false });
    expect(await read(dst, "empty")).toEqual(Buffer.alloc(0));
    expect(await sha256Object(dst, "empty")).toEqual({ checksum: sha256(""), bytes: 0 });
  });

  it("copies a multipart-sized object and both sides hash to the source's SHA-256", async () => {
    stores = testStores();
    const { src, dst } = stores;
    const data = randomBody(20 * MiB + 3);
    await seed(src, "big.bin", data);

    const result = await copyObject(src, dst, "big.bin", { multipartThreshold: 5 * MiB, partSize: 5 * MiB, queueSize: 2 });

    expect(result.multipart).toBe(true);
    expect(result.bytes).toBe(data.length);
    expect(result.checksum).toEqual(sha256(data));
    expect(result.checksum).toHaveLength(32);
    expect(await sha256Object(src, "big.bin")).toEqual({ checksum: sha256(data), bytes: data.length });
    expect(await sha256Object(dst, "big.bin")).toEqual({ checksum: sha256(data), bytes: data.length });
    // Five parts, so a multipart upload really happened and was completed.
    const head = await dst.client.send(new HeadObjectCommand({ Bucket: dst.bucket, Key: dst.prefix + "big.bin" }));
    expect(head.ETag).toMatch(/-5"$/);
    expect(await pendingUploads(dst, "big.bin")).toEqual([]);
  });

  it("uses a single PUT below the threshold and keeps content headers and metadata", async () => {
    stores = testStores();
    const { src, dst } = stores;
    const data = randomBody(MiB);
    await src.client.send(
      new PutObjectCommand({
        Bucket: src.bucket,
        Key: src.prefix + "doc.txt",
        Body: data,
        ContentType: "text/plain; charset=utf-8",
        ContentDisposition: 'attachment; filename="doc.txt"',
        Metadata: { origin: "primary" },
      }),
    );
    const requests = countRequests(dst);

    const result = await copyObject(src, dst, "doc.txt");

    expect(result).toEqual({ checksum: sha256(data), bytes: data.length, multipart: false });
    expect(Object.fromEntries(requests)).toEqual({ PUT: 1 });
    const head = await dst.client.send(new HeadObjectCommand({ Bucket: dst.bucket, Key: dst.prefix + "doc.txt" }));
    expect(head.ContentType).toBe("text/plain; charset=utf-8");
    expect(head.ContentDisposition).toBe('attachment; filename="doc.txt"');
    expect(head.Metadata).toEqual({ origin: "primary" });
  });

  it("sends a small object with its SHA-256, which the store checked and keeps", async () => {
    stores = testStores();
    const { src, dst } = stores;
    const data = randomBody(300 * 1024);
    await seed(src, "small.bin", data);

    const result = await copyObject(src, dst, "small.bin");

    expect(result).toEqual({ checksum: sha256(data), bytes: data.length, multipart: false });
    const head = await dst.client.send(new HeadObjectCommand({ Bucket: dst.bucket, Key: dst.prefix + "small.bin", ChecksumMode: "ENABLED" }));
    expect(head.ChecksumSHA256).toBe(sha256(data).toString("base64"));
  });

  it("is refused by the store when the bytes change after they were hashed, and the old copy stays", async () => {
    stores = testStores();
    const { src, dst, prefix } = stores;
    await seed(src, "k", randomBody(100 * 1024));
    await seed(dst, "k", "old copy");
    // Corruption between our hash and the store (a bad NIC, a proxy): one byte of the request
    // body flips on its way to the secondary's MinIO.
    const proxy = await startS3Proxy(s3Env().secondary.endpoint);
    const viaProxy = storeOn({ ...s3Env().secondary, endpoint: proxy.endpoint }, "secondary", prefix);
    try {
      proxy.corruptPutByte = 0;
      await expect(copyObject(src, viaProxy, "k")).rejects.toMatchObject({ $metadata: { httpStatusCode: 400 } });
      expect(proxy.requests).toEqual(["PUT"]);
    } finally {
      viaProxy.client.destroy();
      await proxy.close();
    }
    expect((await read(dst, "k"))?.toString()).toBe("old copy");
  });

  it("streams a larger object in one lean PUT with its SHA-256 as a trailer, which the store checked and keeps, content headers included", async () => {
    stores = testStores();
    const { src, dst } = stores;
    const data = randomBody(9 * MiB + 5);
    await src.client.send(
      new PutObjectCommand({ Bucket: src.bucket, Key: src.prefix + "streamed.bin", Body: data, ContentType: "application/x-tar", ContentEncoding: "gzip", Metadata: { origin: "primary" } }),
    );
    const requests = watchRequests(dst);

    expect(await copyObject(src, dst, "streamed.bin")).toEqual({ checksum: sha256(data), bytes: data.length, multipart: false });

    // One request, from the lean path (the SDK's carry its user agent), with a Content-Length
    // (the SDK sent aws-chunked inside HTTP chunked framing).
    expect(requests.map((r) => r.method)).toEqual(["PUT"]);
    const put = requests[0]!.headers;
    expect(put).toMatchObject({
      "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
      "x-amz-decoded-content-length": String(data.length),
      "x-amz-trailer": "x-amz-checksum-sha256",
      "content-encoding": "aws-chunked,gzip",
    });
    expect(put["user-agent"]).toBeUndefined();
    expect(put["transfer-encoding"]).toBeUndefined();
    expect(Number(put["content-length"])).toBeGreaterThan(data.length);
    const head = await dst.client.send(new HeadObjectCommand({ Bucket: dst.bucket, Key: dst.prefix + "streamed.bin", ChecksumMode: "ENABLED" }));
    expect(head).toMatchObject({ ChecksumSHA256: sha256(data).toString("base64"), ContentType: "application/x-tar", ContentEncoding: "gzip", Metadata: { origin: "primary" }, ContentLength: data.length });
    expect(await sha256Object(dst, "streamed.bin")).toEqual({ checksum: sha256(data), bytes: data.length });
  });

  it.each([
    ["a data byte", 100],
    ["the trailer's checksum", -10],
  ])("a streamed copy is refused by the store when %s changes on the way, and the old copy stays", async (_what, at) => {
    stores = testStores();
    const { src, dst, prefix } = stores;
    await seed(src, "k", randomBody(9 * MiB));
    await seed(dst, "k", "old copy");
    const proxy = await startS3Proxy(s3Env().secondary.endpoint);
    const viaProxy = storeOn({ ...s3Env().secondary, endpoint: proxy.endpoint }, "secondary", prefix);
    try {
      proxy.corruptPutByte = at;
      const err = await copyObject(src, viaProxy, "k").then(
        () => new Error("the copy succeeded"),
        (e: unknown) => e,
      );
      expect(err).toMatchObject({ $metadata: { httpStatusCode: 400 } });
      expect(classifyS3Error(err)).toBe("other");
      expect(proxy.requests).toEqual(["PUT"]);
      expect(proxy.putBytes).toBeGreaterThan(9 * MiB);
    } finally {
      viaProxy.client.destroy();
      await proxy.close();
    }
    expect((await read(dst, "k"))?.toString()).toBe("old copy");
  });

  it("replaces an outdated copy on the secondary", async () => {
    stores = testStores();
    const { src, dst } = stores;
    await seed(src, "k", "new content");
    await seed(dst, "k", "old content that is longer");

    await copyObject(src, dst, "k");

    expect((await read(dst, "k"))?.toString()).toBe("new content");
  });

  it("places the key under each store's own prefix", async () => {
    const { primary, secondary } = s3Env();
    const id = randomUUID();
    const src = storeOn(primary, "primary", `blob-test/${id}/uploads/`);
    const dst = storeOn(secondary, "secondary", `blob-test/${id}/geo/replica/`);
    try {
      await seed(src, "a/b.txt", "x");
      await copyObject(src, dst, "a/b.txt");
      expect(await listKeys(storeOn(secondary, "secondary", `blob-test/${id}/`))).toEqual(["geo/replica/a/b.txt"]);
    } finally {
      src.client.destroy();
      dst.client.destroy();
    }
  });

  it("copies keys with spaces, unicode and URL-special characters byte-exact", async () => {
    stores = testStores();
    const { src, dst } = stores;
    const keys = [
      "with space/file name.txt",
      "ünïcödé/日本語/ファイル.bin",
      "emoji/🎉 party.png",
      "nfc-vs-nfd/e\u0301.txt",
      "nfc-vs-nfd/\u00e9.txt",
      "special/+plus%percent?query#hash&amp=eq~tilde!$'()*,;@[].txt",
      "special/%2e%2e/encoded-dots",
    ].sort();
    for (const [i, key] of keys.entries()) await seed(src, key, `content ${i}`);

    for (const [i, key] of keys.entries()) {
      const result = await copyObject(src, dst, key);
      expect(result.checksum).toEqual(sha256(`content ${i}`));
    }

    const copied = await listKeys(dst);
    expect(copied.map((k) => Buffer.from(k, "utf8").toString("hex"))).toEqual(keys.map((k) => Buffer.from(k, "utf8").toString("hex")));
    for (const [i, key] of keys.entries()) expect((await read(dst, key))?.toString()).toBe(`content ${i}`);
  });

  it.each([
    ["../escape", "dot-segment"],
    ["a/../../escape", "dot-segment"],
    ["./here", "dot-segment"],
    ["/rooted", "leading-slash"],
    ["", "empty"],
    ["nul\u0000byte", "control-character"],
    ["new\nline", "control-character"],
    ["back\\slash", "backslash"],
    ["k".repeat(1025), "too-long"],
  ])("refuses the hostile key %j without sending a request", async (key, reason) => {
    stores = testStores();
    const { src, dst } = stores;
    const srcRequests = countRequests(src);
    const dstRequests = countRequests(dst);

    await expect(copyObject(src, dst, key)).rejects.toMatchObject({ name: "InvalidObjectKeyError", reason });
    await expect(deleteObject(dst, key)).rejects.toBeInstanceOf(InvalidObjectKeyError);
    await expect(sha256Object(src, key)).rejects.toBeInstanceOf(InvalidObjectKeyError);

    expect(srcRequests.size + dstRequests.size).toBe(0);
    expect(await listKeys(dst)).toEqual([]);
  });
});

describe("a store that refuses S3's additional checksums (objectStorage.uploadChecksum)", () => {
  const md5 = (data: Buffer) => createHash("md5").update(data).digest("base64");

  async function refusingStore(prefix: string, uploadChecksum: "SHA256" | "None") {
    const proxy = await startS3Proxy(s3Env().secondary.endpoint);
    proxy.refuseChecksums = true;
    const store = { ...storeOn({ ...s3Env().secondary, endpoint: proxy.endpoint }, "secondary", prefix), uploadChecksum };
    onTestFinished(async () => {
      store.client.destroy();
      await proxy.close();
    });
    return { proxy, store };
  }

  it.each([
    ["buffered", 300 * 1024],
    ["streamed", 9 * MiB],
  ])("by default a %s copy fails with the store's refusal and what to set, and the old copy stays", async (_, size) => {
    stores = testStores();
    const { src, dst, prefix } = stores;
    await seed(src, "k", randomBody(size));
    await seed(dst, "k", "old copy");
    const refusing = await refusingStore(prefix, "SHA256");

    const err = await copyObject(src, refusing.store, "k").then(
      () => new Error("the copy succeeded"),
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(S3ResponseError);
    expect(err).toMatchObject({ name: "InvalidArgument", $metadata: { httpStatusCode: 400 } });
    expect((err as Error).message).toMatch(/Unsupported header .*uploadChecksum: None/);
    expect(classifyS3Error(err)).toBe("other");
    expect(refusing.proxy.requests).toEqual(["PUT"]);
    expect((await read(dst, "k"))?.toString()).toBe("old copy");
  });

  it("with None a buffered copy carries Content-MD5 instead, and no checksum header", async () => {
    stores = testStores();
    const { src, dst, prefix } = stores;
    const data = randomBody(300 * 1024);
    await seed(src, "small.bin", data);
    const refusing = await refusingStore(prefix, "None");

    expect(await copyObject(src, refusing.store, "small.bin")).toEqual({ checksum: sha256(data), bytes: data.length, multipart: false });

    const [put] = refusing.proxy.putHeaders;
    expect(put).toMatchObject({ "content-md5": md5(data), "content-length": String(data.length) });
    expect(Object.keys(put!).filter((h) => h.startsWith("x-amz-checksum"))).toEqual([]);
    expect(await read(dst, "small.bin")).toEqual(data);
    const head = await dst.client.send(new HeadObjectCommand({ Bucket: dst.bucket, Key: dst.prefix + "small.bin", ChecksumMode: "ENABLED" }));
    expect(head.ChecksumSHA256).toBeUndefined();
  });

  it("with None the store still refuses a buffered copy whose bytes changed on the way (Content-MD5)", async () => {
    stores = testStores();
    const { src, dst, prefix } = stores;
    await seed(src, "k", randomBody(100 * 1024));
    await seed(dst, "k", "old copy");
    const refusing = await refusingStore(prefix, "None");
    refusing.proxy.corruptPutByte = 0;

    await expect(copyObject(src, refusing.store, "k")).rejects.toMatchObject({ name: "BadDigest", $metadata: { httpStatusCode: 400 } });
    expect((await read(dst, "k"))?.toString()).toBe("old copy");
  });

  it("with None a streamed copy goes out plain with its length, content headers kept, and returns the SHA-256 of what was sent", async () => {
    stores = testStores();
    const { src, dst, prefix } = stores;
    const data = randomBody(9 * MiB + 5);
    await src.client.send(new PutObjectCommand({ Bucket: src.bucket, Key: src.prefix + "big.bin", Body: data, ContentType: "application/x-tar", ContentEncoding: "gzip" }));
    const refusing = await refusingStore(prefix, "None");

    expect(await copyObject(src, refusing.store, "big.bin")).toEqual({ checksum: sha256(data), bytes: data.length, multipart: false });

    expect(refusing.proxy.requests).toEqual(["PUT"]);
    const [put] = refusing.proxy.putHeaders;
    expect(put).toMatchObject({ "content-length": String(data.length), "x-amz-content-sha256": "UNSIGNED-PAYLOAD", "content-encoding": "gzip" });
    expect(put!["x-amz-trailer"]).toBeUndefined();
    expect(refusing.proxy.putBytes).toBe(data.length);
    const head = await dst.client.send(new HeadObjectCommand({ Bucket: dst.bucket, Key: dst.prefix + "big.bin", ChecksumMode: "ENABLED" }));
    expect(head).toMatchObject({ ContentType: "application/x-tar", ContentEncoding: "gzip", ContentLength: data.length });
    expect(head.ChecksumSHA256).toBeUndefined();
    expect(await sha256Object(dst, "big.bin")).toEqual({ checksum: sha256(data), bytes: data.length });
  });
});

describe("writes to a primary", () => {
  it("are refused for copies and deletes before any request, and the primary's object stays", async () => {
    stores = testStores();
    const { src: primary, dst: secondary } = stores;
    await seed(primary, "keep.txt", "primary data");
    await seed(secondary, "keep.txt", "secondary data");
    const primaryRequests = countRequests(primary);
    const secondaryRequests = countRequests(secondary);

    await expect(copyObject(secondary, primary, "keep.txt")).rejects.toBeInstanceOf(PrimaryWriteRefusedError);
    await expect(copyObject(primary, primary, "keep.txt")).rejects.toThrow(/refusing to write .*keep\.txt: that bucket belongs to the primary site/);
    await expect(deleteObject(primary, "keep.txt")).rejects.toThrow(/refusing to delete /);

    expect(primaryRequests.size + secondaryRequests.size).toBe(0);
    expect((await read(primary, "keep.txt"))?.toString()).toBe("primary data");
  });
});

describe("deleteObject", () => {
  it("removes the object from a secondary and succeeds again when it is gone", async () => {
    stores = testStores();
    const { dst } = stores;
    await seed(dst, "gone.txt", "x");
    await seed(dst, "stays.txt", "y");

    await deleteObject(dst, "gone.txt");
    await deleteObject(dst, "gone.txt");

    expect(await listKeys(dst)).toEqual(["stays.txt"]);
  });
});
