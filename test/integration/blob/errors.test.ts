import { randomUUID } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { freePort } from "../../../hack/localenv/ports.ts";
import { copyObject } from "../../../src/strategies/blob/copy.ts";
import { createObjectStore, type ObjectStore } from "../../../src/strategies/blob/object-store.ts";
import { ObjectMissingError, classifyS3Error } from "../../../src/strategies/blob/s3-errors.ts";
import { sha256Object } from "../../../src/strategies/blob/s3-read.ts";
import { listKeys, s3Env, seed, testStores, type S3Info } from "./stores.ts";

const created: ObjectStore[] = [];
afterEach(() => {
  for (const s of created.splice(0)) s.client.destroy();
});

function variant(info: S3Info, role: ObjectStore["role"], prefix: string, change: Partial<S3Info>): ObjectStore {
  const i = { ...info, ...change };
  const store = createObjectStore(
    { endpoint: i.endpoint, region: i.region, bucket: i.bucket, prefix, forcePathStyle: true },
    { accessKeyId: i.accessKeyId, secretAccessKey: i.secretAccessKey },
    role,
    { maxAttempts: 1, connectionTimeoutMs: 2000 },
  );
  created.push(store);
  return store;
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error("expected a rejection");
    },
    (err: unknown) => err,
  );
}

describe("a missing object", () => {
  it("raises ObjectMissingError naming bucket, key and site", async () => {
    const stores = testStores();
    created.push(stores.src, stores.dst);
    const err = await rejection(sha256Object(stores.src, "not/there.txt"));
    expect(err).toBeInstanceOf(ObjectMissingError);
    expect((err as Error).message).toBe(`object ${stores.src.bucket}/${stores.prefix}not/there.txt does not exist on the primary`);
    expect(classifyS3Error(err)).toBe("missing-object");
  });

  it("fails a copy without writing anything", async () => {
    const stores = testStores();
    created.push(stores.src, stores.dst);
    const err = await rejection(copyObject(stores.src, stores.dst, "not/there.txt"));
    expect(err).toBeInstanceOf(ObjectMissingError);
    expect(await listKeys(stores.dst)).toEqual([]);
  });
});

describe("S3 failures keep the SDK's error and are classified", () => {
  const prefix = () => `blob-test/${randomUUID()}/`;

  it("a wrong secret is bad-credentials", async () => {
    const { primary } = s3Env();
    const err = await rejection(sha256Object(variant(primary, "primary", prefix(), { secretAccessKey: "not-the-secret-0000" }), "k"));
    expect(err).toMatchObject({ name: "SignatureDoesNotMatch", $metadata: { httpStatusCode: 403 } });
    expect(classifyS3Error(err)).toBe("bad-credentials");
  });

  it("an unknown access key is bad-credentials", async () => {
    const { primary } = s3Env();
    const err = await rejection(sha256Object(variant(primary, "primary", prefix(), { accessKeyId: "nobody" }), "k"));
    expect(err).toMatchObject({ name: "InvalidAccessKeyId" });
    expect(classifyS3Error(err)).toBe("bad-credentials");
  });

  it("a missing bucket is missing-bucket, on either side of a copy", async () => {
    const { primary, secondary } = s3Env();
    const p = prefix();
    const err = await rejection(sha256Object(variant(primary, "primary", p, { bucket: `geo-missing-${Date.now()}` }), "k"));
    expect(err).toMatchObject({ name: "NoSuchBucket" });
    expect(classifyS3Error(err)).toBe("missing-bucket");

    const src = variant(primary, "primary", p, {});
    await seed(src, "k", "data");
    const copyErr = await rejection(copyObject(src, variant(secondary, "secondary", p, { bucket: `geo-missing-${Date.now()}` }), "k"));
    expect(copyErr).toMatchObject({ name: "NoSuchBucket" });
    expect(classifyS3Error(copyErr)).toBe("missing-bucket");
  });

  it("a copy to a secondary with bad credentials is bad-credentials and writes nothing", async () => {
    const { primary, secondary } = s3Env();
    const p = prefix();
    const src = variant(primary, "primary", p, {});
    await seed(src, "k", "data");
    const err = await rejection(copyObject(src, variant(secondary, "secondary", p, { secretAccessKey: "wrong-wrong-wrong" }), "k"));
    expect(classifyS3Error(err)).toBe("bad-credentials");
    expect(await listKeys(variant(secondary, "secondary", p, {}))).toEqual([]);
  });

  it("an endpoint nobody listens on is unreachable", async () => {
    const { primary } = s3Env();
    const port = await freePort();
    const err = await rejection(sha256Object(variant(primary, "primary", prefix(), { endpoint: `http://127.0.0.1:${port}` }), "k"));
    expect(err).toMatchObject({ code: "ECONNREFUSED" });
    expect(classifyS3Error(err)).toBe("unreachable");
  });
});
