/**
 * The blob Replicator's first verification of a copy (spec.blob.firstVerification): with
 * StoreChecksum it uses the SHA-256 the secondary's bucket checked at upload (a HEAD, no bytes
 * read); a copy without one, the ReadBack setting and every re-verification read the copy.
 */
import { createHash, randomUUID } from "node:crypto";
import { PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { afterEach, describe, expect, it } from "vitest";
import type { TypeRuntimeConfig } from "../../../src/api/v1alpha1/runtime.ts";
import { BlobReplicator } from "../../../src/strategies/blob/replicator.ts";
import type { S3BlobStore } from "../../../src/strategies/blob/s3-store.ts";
import type { BlobSettings } from "../../../src/strategies/blob/settings.ts";
import type { ModelRecord } from "../../../src/strategies/replicator.ts";
import { createLogger } from "../../../src/util/log.ts";
import { countRequests, randomBody, s3Env, seed, storeOn, type S3Info } from "./stores.ts";

const MiB = 1024 * 1024;
const sha256 = (data: Buffer | string) => createHash("sha256").update(data).digest();
const NEVER = new AbortController().signal;

let replicator: BlobReplicator | undefined;
afterEach(async () => {
  await replicator?.close();
  replicator = undefined;
});

const endpoint = (info: S3Info, prefix: string, uploadChecksum: "SHA256" | "None" = "SHA256") => ({
  kind: "s3" as const,
  endpoint: info.endpoint,
  region: info.region,
  bucket: info.bucket,
  prefix,
  forcePathStyle: true,
  uploadChecksum,
  accessKeyId: info.accessKeyId,
  secretAccessKey: info.secretAccessKey,
});

/** A secondary's Replicator under a fresh prefix, and a counter of its requests to the secondary's bucket. */
function secondaryReplicator(
  firstVerification: BlobSettings["firstVerification"],
  uploadChecksum: "SHA256" | "None" = "SHA256",
): { replicator: BlobReplicator; prefix: string; requests: Map<string, number> } {
  const { primary, secondary } = s3Env();
  const prefix = `blob-test/${randomUUID()}/`;
  const settings: BlobSettings = { objectKey: { column: "key" }, primaryStore: "ObjectStorage", secondaryStore: "SameAsPrimary", firstVerification };
  replicator = new BlobReplicator({
    type: { settings } as TypeRuntimeConfig<BlobSettings>,
    siteName: "tokyo",
    role: "secondary",
    endpoints: { primary: { ObjectStorage: endpoint(primary, prefix) }, secondary: { ObjectStorage: endpoint(secondary, prefix, uploadChecksum) } },
    log: createLogger({ name: "first-verification-test", level: "silent" }),
  });
  // The Replicator builds its own stores; count what the secondary's sends.
  const store = (replicator as unknown as { secondary: { ObjectStorage: S3BlobStore } }).secondary.ObjectStorage.store;
  return { replicator, prefix, requests: countRequests(store) };
}

const record = (key: string): ModelRecord => ({ id: 1, columns: { key } });

describe("first verification of a copy in a bucket", () => {
  it("with StoreChecksum uses the SHA-256 the bucket checked at upload, reading no bytes", async () => {
    const { replicator, prefix, requests } = secondaryReplicator("StoreChecksum");
    const data = randomBody(256 * 1024);
    await seed(storeOn(s3Env().primary, "primary", prefix), "a.bin", data);
    await replicator.sync(record("a.bin"), NEVER);
    requests.clear();

    expect(await replicator.checksumSecondary(record("a.bin"), NEVER, { firstSinceWrite: true })).toEqual({ checksum: sha256(data), bytes: data.length });
    expect(Object.fromEntries(requests)).toEqual({ HEAD: 1 });
  });

  it("re-verification always reads the bytes, and so finds a copy changed since it was written", async () => {
    const { replicator, prefix, requests } = secondaryReplicator("StoreChecksum");
    const data = randomBody(1000);
    await seed(storeOn(s3Env().primary, "primary", prefix), "a.bin", data);
    await replicator.sync(record("a.bin"), NEVER);
    requests.clear();

    expect(await replicator.checksumSecondary(record("a.bin"), NEVER)).toEqual({ checksum: sha256(data), bytes: data.length });
    expect(Object.fromEntries(requests)).toEqual({ GET: 1 });

    // Replaced behind our back, without a checksum: even a first verification reads it.
    const secondaryClient: S3Client = (replicator as unknown as { secondary: { ObjectStorage: S3BlobStore } }).secondary.ObjectStorage.store.client;
    await secondaryClient.send(new PutObjectCommand({ Bucket: s3Env().secondary.bucket, Key: `${prefix}a.bin`, Body: "tampered" }));
    requests.clear();
    expect(await replicator.checksumSecondary(record("a.bin"), NEVER, { firstSinceWrite: true })).toEqual({ checksum: sha256("tampered"), bytes: 8 });
    expect(Object.fromEntries(requests)).toEqual({ HEAD: 1, GET: 1 });
  });

  it("with ReadBack reads the copy even the first time", async () => {
    const { replicator, prefix, requests } = secondaryReplicator("ReadBack");
    const data = randomBody(1000);
    await seed(storeOn(s3Env().primary, "primary", prefix), "a.bin", data);
    await replicator.sync(record("a.bin"), NEVER);
    requests.clear();

    expect(await replicator.checksumSecondary(record("a.bin"), NEVER, { firstSinceWrite: true })).toEqual({ checksum: sha256(data), bytes: data.length });
    expect(Object.fromEntries(requests)).toEqual({ GET: 1 });
  });

  it("uses the SHA-256 a streamed copy sent as its trailer just the same", async () => {
    const { replicator, prefix, requests } = secondaryReplicator("StoreChecksum");
    const data = randomBody(9 * MiB);
    await seed(storeOn(s3Env().primary, "primary", prefix), "big.bin", data);
    await replicator.sync(record("big.bin"), NEVER);
    requests.clear();

    expect(await replicator.checksumSecondary(record("big.bin"), NEVER, { firstSinceWrite: true })).toEqual({ checksum: sha256(data), bytes: data.length });
    expect(Object.fromEntries(requests)).toEqual({ HEAD: 1 });
  });

  it.each([
    ["buffered", 256 * 1024],
    ["streamed", 9 * MiB],
  ])("reads a %s copy back when the secondary's store takes no upload checksum (uploadChecksum: None)", async (_, size) => {
    const { replicator, prefix, requests } = secondaryReplicator("StoreChecksum", "None");
    const data = randomBody(size);
    await seed(storeOn(s3Env().primary, "primary", prefix), "a.bin", data);
    expect(await replicator.sync(record("a.bin"), NEVER)).toMatchObject({ bytes: data.length });
    expect(requests.get("PUT")).toBe(1);
    requests.clear();

    expect(await replicator.checksumSecondary(record("a.bin"), NEVER, { firstSinceWrite: true })).toEqual({ checksum: sha256(data), bytes: data.length });
    expect(Object.fromEntries(requests)).toEqual({ HEAD: 1, GET: 1 });
  });
});
