/**
 * The lean request path (s3-lean.ts) against the real MinIO servers: what it sends is what the SDK
 * reads back, its errors look like the SDK's to classifyS3Error, the store refuses a wrong
 * checksum, a streamed PUT is sent once and its source stopped on an error, retries happen where
 * the SDK would retry, an abort ends the request or the body, and sockets go back to the pool or
 * are destroyed.
 */
import { createHash, randomUUID } from "node:crypto";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { request, type ClientRequest } from "node:http";
import { Readable } from "node:stream";
import { GetObjectCommand, HeadObjectCommand } from "@aws-sdk/client-s3";
import { Sha256 } from "@smithy/core/checksum";
import { SignatureV4 } from "@smithy/signature-v4";
import { afterEach, describe, expect, it } from "vitest";
import { copyObject } from "../../../src/strategies/blob/copy.ts";
import { createObjectStore, type ObjectStore, type S3Credentials } from "../../../src/strategies/blob/object-store.ts";
import { classifyS3Error } from "../../../src/strategies/blob/s3-errors.ts";
import { S3ResponseError } from "../../../src/strategies/blob/s3-lean.ts";
import { startS3Proxy, type S3Proxy } from "./s3-proxy.ts";
import { countRequests, randomBody, read, s3Env, seed, storeOn, type S3Info } from "./stores.ts";

const MiB = 1024 * 1024;
const sha256 = (data: Buffer | string) => createHash("sha256").update(data).digest();

const stores: ObjectStore[] = [];
const proxies: S3Proxy[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) s.client.destroy();
  for (const p of proxies.splice(0)) await p.close();
});

function store(info: S3Info, options: Parameters<typeof storeOn>[3] = {}): ObjectStore {
  const s = storeOn(info, "secondary", `blob-test/${randomUUID()}/`, options);
  stores.push(s);
  return s;
}

async function proxied(info: S3Info, options: Parameters<typeof storeOn>[3] = {}): Promise<{ proxy: S3Proxy; store: ObjectStore; direct: ObjectStore }> {
  const proxy = await startS3Proxy(info.endpoint);
  proxies.push(proxy);
  const direct = store(info);
  const viaProxy = storeOn({ ...info, endpoint: proxy.endpoint }, "secondary", direct.prefix, options);
  stores.push(viaProxy);
  return { proxy, store: viaProxy, direct };
}

async function bodyOf(response: { body: AsyncIterable<Buffer> }): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of response.body) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** `data` in pieces of `size` bytes, as a socket would deliver it. */
function chunksOf(data: Buffer, size: number): Buffer[] {
  const pieces: Buffer[] = [];
  for (let at = 0; at < data.length; at += size) pieces.push(data.subarray(at, at + size));
  return pieces;
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error("expected a rejection");
    },
    (err: unknown) => err,
  );
}

/** Sockets of the store's agent that are lent to a request right now, and those kept for reuse. */
function sockets(s: ObjectStore): { inUse: number; free: number } {
  const count = (pool: NodeJS.Dict<unknown[]>) => Object.values(pool).reduce((n, list) => n + (list?.length ?? 0), 0);
  return { inUse: count(s.lean.agent.sockets), free: count(s.lean.agent.freeSockets) };
}

/** Temporary credentials with a session token, from MinIO's STS (AssumeRole, signed with SigV4). */
async function assumeRole(info: S3Info): Promise<S3Credentials> {
  const url = new URL(info.endpoint);
  const body = "Action=AssumeRole&Version=2011-06-15&DurationSeconds=900";
  const signer = new SignatureV4({ service: "sts", region: info.region, credentials: info, sha256: Sha256 });
  const signed = await signer.sign({
    method: "POST",
    protocol: url.protocol,
    hostname: url.hostname,
    port: Number(url.port),
    path: "/",
    query: {},
    headers: { host: url.host, "content-type": "application/x-www-form-urlencoded" },
    body,
  });
  const xml = await new Promise<string>((resolve, reject) => {
    const req = request({ hostname: url.hostname, port: url.port, method: "POST", path: "/", headers: signed.headers }, (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (d: string) => (text += d)).on("end", () => resolve(text)).on("error", reject);
    });
    req.on("error", reject).end(body);
  });
  const element = (name: string) => new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)?.[1];
  const credentials = { accessKeyId: element("AccessKeyId")!, secretAccessKey: element("SecretAccessKey")!, sessionToken: element("SessionToken")! };
  expect(credentials.sessionToken, xml).toBeTruthy();
  return credentials;
}

describe("the lean path's round trips", () => {
  it("puts with a checksum and content headers, heads the stored SHA-256 and gets the bytes back, as the SDK sees them", async () => {
    const s = store(s3Env().secondary);
    const data = randomBody(200 * 1024);
    const key = `${s.prefix}dir/a b+c%d?e#f!'()*.bin`;

    await s.lean.put(key, data, { "x-amz-checksum-sha256": sha256(data).toString("base64"), "content-type": "image/png", "x-amz-meta-origin": "primary" });

    const head = await s.lean.head(key, { "x-amz-checksum-mode": "ENABLED" });
    expect(head["x-amz-checksum-sha256"]).toBe(sha256(data).toString("base64"));
    expect(head["content-length"]).toBe(String(data.length));
    const got = await s.lean.get(key);
    expect(got.headers["content-type"]).toBe("image/png");
    expect(await bodyOf(got)).toEqual(data);
    const sdk = await s.client.send(new HeadObjectCommand({ Bucket: s.bucket, Key: key, ChecksumMode: "ENABLED" }));
    expect(sdk).toMatchObject({ ContentType: "image/png", Metadata: { origin: "primary" }, ChecksumSHA256: sha256(data).toString("base64") });
  });

  it("reads what the SDK wrote, a zero-byte object included", async () => {
    const s = store(s3Env().primary);
    await seed(s, "empty", "");
    await seed(s, "full", "some bytes");
    expect(await bodyOf(await s.lean.get(`${s.prefix}empty`))).toEqual(Buffer.alloc(0));
    expect((await bodyOf(await s.lean.get(`${s.prefix}full`))).toString()).toBe("some bytes");
  });

  it("signs with a session token when the credentials carry one, and a wrong token is refused", async () => {
    const info = s3Env().secondary;
    const credentials = await assumeRole(info);
    const prefix = `blob-test/${randomUUID()}/`;
    const spec = { endpoint: info.endpoint, region: info.region, bucket: info.bucket, prefix, forcePathStyle: true };
    const s = createObjectStore(spec, credentials, "secondary");
    stores.push(s);
    const data = randomBody(1000);

    await s.lean.put(`${prefix}t.bin`, data, { "x-amz-checksum-sha256": sha256(data).toString("base64") });
    expect(await bodyOf(await s.lean.get(`${prefix}t.bin`))).toEqual(data);

    const forged = createObjectStore(spec, { ...credentials, sessionToken: `${credentials.sessionToken}x` }, "secondary", { maxAttempts: 1 });
    stores.push(forged);
    const err = await rejection(forged.lean.get(`${prefix}t.bin`));
    expect(err).toMatchObject({ $metadata: { httpStatusCode: 403 } });
    expect(classifyS3Error(err)).toBe("bad-credentials");
  });

  it.each([
    ["path-style", true, (s: ObjectStore) => `127.0.0.1 /${s.bucket}/${s.prefix}a%20b/c%21 ${new URL(s3Env().primary.endpoint).host}`],
    // No server answers for a virtual host here (*.invalid never resolves): the request made is what counts.
    ["virtual-host", false, (s: ObjectStore) => `${s.bucket}.minio.invalid /${s.prefix}a%20b/c%21 ${s.bucket}.minio.invalid:9000`],
  ])("addresses the bucket as the SDK does: %s", async (_style, forcePathStyle, expected) => {
    const info = s3Env().primary;
    const endpoint = forcePathStyle ? info.endpoint : "http://minio.invalid:9000";
    const s = createObjectStore(
      { endpoint, region: info.region, bucket: info.bucket, prefix: `blob-test/${randomUUID()}/`, forcePathStyle },
      info,
      "primary",
      { maxAttempts: 1 },
    );
    stores.push(s);
    const requests: string[] = [];
    const onStart = (m: unknown) => {
      const r = (m as { request: ClientRequest & { agent?: unknown } }).request;
      if (r.agent === s.lean.agent) requests.push(`${r.host} ${r.path} ${String(r.getHeader("host"))}`);
    };
    subscribe("http.client.request.start", onStart);
    try {
      await s.lean.head(`${s.prefix}a b/c!`, {}).catch(() => undefined);
      await s.client.send(new HeadObjectCommand({ Bucket: s.bucket, Key: `${s.prefix}a b/c!` })).catch(() => undefined);
    } finally {
      unsubscribe("http.client.request.start", onStart);
    }
    expect(requests).toHaveLength(2);
    expect(requests[0]).toBe(requests[1]);
    expect(requests[0]).toBe(expected(s));
  });
});

describe("the lean path's errors are the SDK's", () => {
  it("a missing key is NoSuchKey (GET) or NotFound (HEAD), both missing-object, like the SDK's", async () => {
    const s = store(s3Env().primary);
    const get = await rejection(s.lean.get(`${s.prefix}none`));
    expect(get).toBeInstanceOf(S3ResponseError);
    expect(get).toMatchObject({ name: "NoSuchKey", $metadata: { httpStatusCode: 404 }, $fault: "client" });
    const head = await rejection(s.lean.head(`${s.prefix}none`, {}));
    expect(head).toMatchObject({ name: "NotFound", $metadata: { httpStatusCode: 404 } });
    const sdk = await rejection(s.client.send(new GetObjectCommand({ Bucket: s.bucket, Key: `${s.prefix}none` })));
    expect((get as Error).name).toBe((sdk as Error).name);
    for (const err of [get, head, sdk]) expect(classifyS3Error(err)).toBe("missing-object");
  });

  it("a missing bucket is NoSuchBucket, a wrong secret SignatureDoesNotMatch (403), neither retried", async () => {
    const info = s3Env().primary;
    const noBucket = store({ ...info, bucket: `geo-missing-${Date.now()}` });
    expect(await rejection(noBucket.lean.get("k"))).toMatchObject({ name: "NoSuchBucket", $metadata: { httpStatusCode: 404, attempts: 1 } });
    const wrongSecret = store({ ...info, secretAccessKey: "not-the-secret-0000" });
    const requests = countRequests(wrongSecret);
    // A body as large as a buffered PUT gets (8 MiB): the store answers before reading it all.
    const err = await rejection(wrongSecret.lean.put("k", randomBody(8 * MiB), {}));
    expect(err).toMatchObject({ name: "SignatureDoesNotMatch", $metadata: { httpStatusCode: 403 } });
    expect(classifyS3Error(err)).toBe("bad-credentials");
    expect(Object.fromEntries(requests)).toEqual({ PUT: 1 });
  });

  it("a wrong x-amz-checksum-sha256 is refused by the store and nothing is written; the previous object stays", async () => {
    const s = store(s3Env().secondary);
    const data = randomBody(64 * 1024);
    const wrong = sha256("something else").toString("base64");

    const err = await rejection(s.lean.put(`${s.prefix}new`, data, { "x-amz-checksum-sha256": wrong }));
    expect(err).toMatchObject({ $metadata: { httpStatusCode: 400 } });
    expect(classifyS3Error(err)).toBe("other");
    expect(await read(s, "new")).toBeUndefined();

    await seed(s, "old", "previous");
    await expect(s.lean.put(`${s.prefix}old`, data, { "x-amz-checksum-sha256": wrong })).rejects.toMatchObject({ $metadata: { httpStatusCode: 400 } });
    expect((await read(s, "old"))?.toString()).toBe("previous");
  });
});

describe("the lean path's streamed PUT", () => {
  it("sends the body's chunks as they come, returns their SHA-256, which the store checked, and hands the socket back", async () => {
    const s = store(s3Env().secondary);
    const data = randomBody(3 * MiB + 17);
    const source = Readable.from(chunksOf(data, 64 * 1024));

    const sent = await s.lean.putStream(`${s.prefix}s.bin`, source, data.length, { "content-type": "image/png" }, "test source");

    expect(sent).toEqual({ checksum: sha256(data), bytes: data.length });
    await expect.poll(() => sockets(s)).toEqual({ inUse: 0, free: 1 });
    const head = await s.lean.head(`${s.prefix}s.bin`, { "x-amz-checksum-mode": "ENABLED" });
    expect(head).toMatchObject({ "x-amz-checksum-sha256": sha256(data).toString("base64"), "content-length": String(data.length), "content-type": "image/png" });
    expect((await bodyOf(await s.lean.get(`${s.prefix}s.bin`))).equals(data)).toBe(true);
  });

  it("a wrong secret is S3's SignatureDoesNotMatch (bad-credentials), not the reset socket, and the source is destroyed", async () => {
    const info = s3Env().secondary;
    const wrongSecret = store({ ...info, secretAccessKey: "not-the-secret-0000" });
    const source = Readable.from(chunksOf(randomBody(24 * MiB), 64 * 1024));

    const err = await rejection(wrongSecret.lean.putStream(`${wrongSecret.prefix}k`, source, 24 * MiB, {}, "test source"));

    expect(err).toMatchObject({ name: "SignatureDoesNotMatch", $metadata: { httpStatusCode: 403, attempts: 1 } });
    expect(classifyS3Error(err)).toBe("bad-credentials");
    expect(source.destroyed).toBe(true);
  });

  it("is never retried: a 503 fails it with S3's error after one request", async () => {
    const { proxy, store: s, direct } = await proxied(s3Env().secondary);
    await seed(direct, "k", "previous");
    proxy.failNext(1, 503, "SlowDown");
    const source = Readable.from(chunksOf(randomBody(2 * MiB), 64 * 1024));

    const err = await rejection(s.lean.putStream(`${s.prefix}k`, source, 2 * MiB, {}, "test source"));

    expect(err).toMatchObject({ name: "SlowDown", $metadata: { httpStatusCode: 503, attempts: 1 } });
    expect(proxy.requests).toEqual(["PUT"]);
    expect((await read(direct, "k"))?.toString()).toBe("previous");
  });
});

describe("the lean path's retries", () => {
  it("retries 503 SlowDown and 500 like the SDK, for GET, HEAD and a buffered PUT", async () => {
    const { proxy, store: s } = await proxied(s3Env().secondary);
    const data = randomBody(1000);
    const checksum = { "x-amz-checksum-sha256": sha256(data).toString("base64") };

    proxy.failNext(1, 503, "SlowDown");
    await s.lean.put(`${s.prefix}k`, data, checksum);
    proxy.failNext(2, 500, "InternalError");
    expect(await bodyOf(await s.lean.get(`${s.prefix}k`))).toEqual(data);
    proxy.failNext(1, 503, "SlowDown");
    expect((await s.lean.head(`${s.prefix}k`, {}))["content-length"]).toBe("1000");

    expect(proxy.requests).toEqual(["PUT", "PUT", "GET", "GET", "GET", "HEAD", "HEAD"]);
  });

  it("gives up after the store's attempts with S3's error, which is classified unreachable", async () => {
    const { proxy, store: s } = await proxied(s3Env().secondary, { maxAttempts: 2 });
    proxy.failNext(5, 503, "SlowDown");
    const err = await rejection(s.lean.get(`${s.prefix}k`));
    expect(err).toMatchObject({ name: "SlowDown", $metadata: { httpStatusCode: 503, attempts: 2 }, $fault: "server" });
    expect(classifyS3Error(err)).toBe("unreachable");
    expect(proxy.requests).toEqual(["GET", "GET"]);
  });

  it("does not retry a client error", async () => {
    const { proxy, store: s } = await proxied(s3Env().secondary);
    proxy.failNext(1, 400, "InvalidArgument");
    await expect(s.lean.get(`${s.prefix}k`)).rejects.toMatchObject({ name: "InvalidArgument", $metadata: { httpStatusCode: 400 } });
    expect(proxy.requests).toEqual(["GET"]);
  });
});

describe("the lean path's aborts and sockets", () => {
  it("an abort before the answer rejects with the signal's reason", async () => {
    const s = store(s3Env().primary);
    const controller = new AbortController();
    const reason = new Error("shutting down");
    const pending = s.lean.get(`${s.prefix}k`, controller.signal);
    controller.abort(reason);
    await expect(pending).rejects.toBe(reason);
    await expect(s.lean.get(`${s.prefix}k`, controller.signal)).rejects.toBe(reason);
  });

  it("an abort mid-GET ends the body with the reason and destroys its socket", async () => {
    const s = store(s3Env().primary);
    await seed(s, "big", randomBody(32 * MiB));
    const controller = new AbortController();
    const reason = new Error("shutting down");
    const { body } = await s.lean.get(`${s.prefix}big`, controller.signal);
    let received = 0;
    const err = await rejection(
      (async () => {
        for await (const chunk of body as AsyncIterable<Buffer>) {
          received += chunk.length;
          if (received > MiB) controller.abort(reason);
        }
      })(),
    );
    expect(err).toBe(reason);
    expect(received).toBeLessThan(32 * MiB);
    // The seed's socket may be kept for reuse; the aborted GET's is gone.
    await expect.poll(() => sockets(s).inUse).toBe(0);
    expect(sockets(s).free).toBeLessThanOrEqual(1);
  });

  it("an abort while a copy's PUT waits for its answer fails the copy with the reason, and the old copy stays", async () => {
    const { proxy, store: dst, direct } = await proxied(s3Env().secondary);
    const src = storeOn(s3Env().primary, "primary", dst.prefix);
    stores.push(src);
    await seed(src, "k", randomBody(1000));
    await seed(direct, "k", "old copy");
    proxy.holdPuts = true;
    const controller = new AbortController();
    const reason = new Error("shutting down");

    const copying = copyObject(src, dst, "k", { signal: controller.signal });
    await expect.poll(() => proxy.requests).toEqual(["PUT"]);
    controller.abort(reason);

    await expect(copying).rejects.toBe(reason);
    expect((await read(direct, "k"))?.toString()).toBe("old copy");
    // The destroyed socket leaves the pool when it has closed.
    await expect.poll(() => sockets(dst).inUse).toBe(0);
  });

  it("leaks no socket over many requests: bodies read, bodies dropped, errors, HEADs and PUTs", async () => {
    const s = store(s3Env().secondary);
    const data = randomBody(256 * 1024);
    const checksum = { "x-amz-checksum-sha256": sha256(data).toString("base64") };
    await s.lean.put(`${s.prefix}k`, data, checksum);
    const concurrency = 16;
    let next = 0;
    const work = async () => {
      for (let i = next++; i < 400; i = next++) {
        switch (i % 5) {
          case 0:
            expect(await bodyOf(await s.lean.get(`${s.prefix}k`))).toHaveLength(data.length);
            break;
          case 1: {
            const { body } = await s.lean.get(`${s.prefix}k`);
            await new Promise((resolve) => body.once("data", resolve));
            body.destroy();
            break;
          }
          case 2:
            await expect(s.lean.get(`${s.prefix}none-${i}`)).rejects.toMatchObject({ name: "NoSuchKey" });
            break;
          case 3:
            await s.lean.head(`${s.prefix}k`, {});
            break;
          default:
            await s.lean.put(`${s.prefix}p-${i % 20}`, data, checksum);
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, work));
    await expect.poll(() => sockets(s).inUse).toBe(0);
    expect(sockets(s).free).toBeGreaterThan(0);
    expect(sockets(s).free).toBeLessThanOrEqual(concurrency);
    // GETs go over PlainHttpGet's own connections on this plain-HTTP endpoint: none left in use.
    await expect.poll(() => s.lean.plainGet!.connections().open - s.lean.plainGet!.connections().idle).toBe(0);
    expect(s.lean.plainGet!.connections().idle).toBeGreaterThan(0);
    expect(s.lean.plainGet!.connections().idle).toBeLessThanOrEqual(concurrency);
  });
});
