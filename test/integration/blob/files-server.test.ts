/**
 * The retrieval server and its client over real HTTPS on 127.0.0.1, with certificates made by
 * openssl for the test: who may read, what a 404 means, ranges, confinement, TLS verification.
 */
import { createHash, randomBytes } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import { createServer as createHttpsServer, request } from "node:https";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidBlobKeyError } from "../../../src/strategies/blob/files/keys.ts";
import { RetrievalSource, type RetrievalSourceOptions } from "../../../src/strategies/blob/files/retrieval-source.ts";
import { serveFiles, type FilesServer } from "../../../src/strategies/blob/files/server.ts";
import { authorizationHeader } from "../../../src/strategies/blob/files/signing.ts";
import { BlobMissingError, CredentialsRefusedError } from "../../../src/strategies/blob/files/store.ts";
import { createTestCertificates, type TestCertificates } from "../../support/tls.ts";

const sha256 = (data: Buffer | string) => createHash("sha256").update(data).digest();
const KEY_A = randomBytes(32).toString("hex");
const KEY_B = randomBytes(32).toString("hex");
const BIG = randomBytes(5 * 1024 * 1024 + 11);
const SMALL = Buffer.from("0123456789abcdefghij");

let certs: TestCertificates;
let otherCerts: TestCertificates;
let base: string;
let root: string;
let server: FilesServer;
const logLines: Record<string, unknown>[] = [];
const sources: RetrievalSource[] = [];

beforeAll(async () => {
  certs = createTestCertificates();
  otherCerts = createTestCertificates();
  base = mkdtempSync(join(tmpdir(), "geo-files-server-"));
  root = join(base, "root");
  mkdirSync(join(root, "uploads/nested"), { recursive: true });
  mkdirSync(join(base, "outside"));
  writeFileSync(join(base, "outside/secret.txt"), "TOP SECRET outside the root");
  writeFileSync(join(root, "uploads/big.bin"), BIG);
  writeFileSync(join(root, "uploads/small.txt"), SMALL);
  writeFileSync(join(root, "uploads/nested/a b ü#?.txt"), "odd name");
  writeFileSync(join(root, "empty"), "");
  symlinkSync(join(base, "outside"), join(root, "escape"));
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString("utf8").split("\n").filter(Boolean)) logLines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  server = await serveFiles({
    root,
    host: "127.0.0.1",
    port: 0,
    tls: { cert: certs.cert, key: certs.key },
    siteKeys: new Map([["secondary-a", KEY_A], ["secondary-b", KEY_B]]),
    log: pino({ level: "debug" }, sink),
  });
});

afterAll(async () => {
  for (const s of sources) s.close();
  await server?.close();
  certs?.remove();
  otherCerts?.remove();
  if (base) rmSync(base, { recursive: true, force: true });
});

function client(overrides: Partial<RetrievalSourceOptions> = {}): RetrievalSource {
  const source = new RetrievalSource({ url: server.url, site: "secondary-a", secretKey: KEY_A, ca: certs.ca, ...overrides });
  sources.push(source);
  return source;
}

async function readAll(source: RetrievalSource, key: string): Promise<{ data: Buffer; length: number }> {
  const { body, length } = await source.open(key);
  return { data: Buffer.concat(await body.toArray()), length };
}

/** A raw signed request, for what the client does not send (ranges, HEAD, odd paths). */
function raw(method: string, path: string, headers: Record<string, string> = {}, site = "secondary-a", key = KEY_A): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }> {
  const expires = Math.floor(Date.now() / 1000) + 30;
  return new Promise((resolve, reject) => {
    // host/port/path given apart: a URL string would have its ".." segments normalised away.
    const target = { hostname: "127.0.0.1", port: server.port, path, method, ca: certs.ca };
    const req = request({ ...target, headers: { authorization: authorizationHeader({ method, path, expires, site }, key), ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

describe("authorised reads", () => {
  it("streams a file whose SHA-256 matches, with its length, and logs one line for the request", async () => {
    const { body, length } = await client().open("uploads/big.bin");
    expect(length).toBe(BIG.length);
    const hash = createHash("sha256");
    await pipeline(body, hash);
    expect(hash.digest()).toEqual(sha256(BIG));
    await expect.poll(() => logLines.find((l) => l.key === "uploads/big.bin")).toMatchObject({ site: "secondary-a", key: "uploads/big.bin", status: 200, bytes: BIG.length, method: "GET" });
  });

  it("reads keys with spaces, unicode and URL-special characters, and empty files", async () => {
    expect((await readAll(client(), "uploads/nested/a b ü#?.txt")).data.toString()).toBe("odd name");
    expect(await readAll(client(), "empty")).toEqual({ data: Buffer.alloc(0), length: 0 });
  });

  it("honours single byte ranges and answers 416 to an unsatisfiable one", async () => {
    const part = await raw("GET", "/v1/files/uploads/small.txt", { range: "bytes=5-9" });
    expect(part.status).toBe(206);
    expect(part.headers["content-range"]).toBe(`bytes 5-9/${SMALL.length}`);
    expect(part.body.toString()).toBe("56789");
    const suffix = await raw("GET", "/v1/files/uploads/small.txt", { range: "bytes=-3" });
    expect(suffix.status).toBe(206);
    expect(suffix.body.toString()).toBe("hij");
    const open = await raw("GET", "/v1/files/uploads/big.bin", { range: `bytes=${BIG.length - 100}-` });
    expect(open.status).toBe(206);
    expect(open.body.equals(BIG.subarray(BIG.length - 100))).toBe(true);
    const bad = await raw("GET", "/v1/files/uploads/small.txt", { range: `bytes=${SMALL.length}-` });
    expect(bad.status).toBe(416);
    expect(bad.headers["content-range"]).toBe(`bytes */${SMALL.length}`);
  });

  it("answers HEAD with the length and no body", async () => {
    const head = await raw("HEAD", "/v1/files/uploads/small.txt");
    expect(head.status).toBe(200);
    expect(head.headers["content-length"]).toBe(String(SMALL.length));
    expect(head.body.length).toBe(0);
  });

  it("reports a missing file as BlobMissingError, with a marked 404", async () => {
    const err = await client().open("uploads/nope.bin").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BlobMissingError);
    const res = await raw("GET", "/v1/files/uploads/nope.bin");
    expect(res.status).toBe(404);
    expect(res.headers["geo-blob-missing"]).toBe("true");
  });

  it("probes with an authenticated request", async () => {
    await client().probe();
  });

  it("answers the readiness probe (no Authorization) with 200, but checks a signature when one is sent", async () => {
    const status = (headers: Record<string, string>) =>
      new Promise<number>((resolve, reject) => {
        request(`${server.url}/v1/health`, { ca: certs.ca, headers }, (res) => {
          res.resume();
          resolve(res.statusCode!);
        }).on("error", reject).end();
      });
    expect(await status({})).toBe(200);
    const expires = Math.floor(Date.now() / 1000) + 30;
    expect(await status({ authorization: authorizationHeader({ method: "GET", path: "/v1/health", expires, site: "secondary-a" }, KEY_B) })).toBe(401);
    await expect(client({ secretKey: KEY_B }).probe()).rejects.toBeInstanceOf(CredentialsRefusedError);
  });
});

describe("refused credentials", () => {
  it("refuses a secondary that signs with the wrong key (401), without saying whether the file exists", async () => {
    const wrong = client({ secretKey: KEY_B });
    for (const key of ["uploads/small.txt", "uploads/nope.bin"]) {
      const err = await wrong.open(key).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CredentialsRefusedError);
      expect(err).not.toBeInstanceOf(BlobMissingError);
      expect((err as CredentialsRefusedError).status).toBe(401);
      expect((err as Error).message).toMatch(/refused this site's credentials \(401 unauthorized: bad-signature\)/);
    }
    await expect(wrong.probe()).rejects.toBeInstanceOf(CredentialsRefusedError);
    await expect.poll(() => logLines.find((l) => l.key === undefined && l.reason === "bad-signature")).toMatchObject({ site: "secondary-a", status: 401 });
  });

  it("refuses an unknown site", async () => {
    const err = await client({ site: "stranger" }).open("uploads/small.txt").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CredentialsRefusedError);
    expect((err as Error).message).toMatch(/unknown-site/);
  });

  it("refuses an expired signature and one expiring too far ahead", async () => {
    const late = client({ now: () => Date.now() - 10 * 60_000 });
    await expect(late.open("uploads/small.txt")).rejects.toThrow(/401 unauthorized: expired/);
    const early = client({ signatureTtlSeconds: 3600 });
    await expect(early.open("uploads/small.txt")).rejects.toThrow(/401 unauthorized: too-far-ahead/);
  });

  it("refuses a request without Authorization and a signature made for another path", async () => {
    const none = await new Promise<number>((resolve, reject) => {
      request(`${server.url}/v1/files/uploads/small.txt`, { ca: certs.ca }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      }).on("error", reject).end();
    });
    expect(none).toBe(401);
    const expires = Math.floor(Date.now() / 1000) + 30;
    const other = authorizationHeader({ method: "GET", path: "/v1/files/uploads/small.txt", expires, site: "secondary-a" }, KEY_A);
    const status = await new Promise<number>((resolve, reject) => {
      request(`${server.url}/v1/files/uploads/big.bin`, { ca: certs.ca, headers: { authorization: other } }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      }).on("error", reject).end();
    });
    expect(status).toBe(401);
  });
});

describe("confinement", () => {
  it("refuses paths that leave the root (400), never serving a file outside", async () => {
    for (const path of ["/v1/files/../outside/secret.txt", "/v1/files/%2e%2e/outside/secret.txt", "/v1/files/uploads/..%2F..%2Foutside/secret.txt", "/v1/files/escape/secret.txt"]) {
      const res = await raw("GET", path);
      expect(res.status, path).toBe(400);
      expect(res.body.toString()).not.toMatch(/SECRET/);
    }
    expect((await raw("GET", "/v1/files/escape/secret.txt")).headers["geo-blob-refused-key"]).toBe("outside-root");
    const err = await client().open("escape/secret.txt").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidBlobKeyError);
    expect((err as InvalidBlobKeyError).reason).toBe("outside-root");
  });

  it("checks credentials before the path: an unauthenticated escape attempt gets 401", async () => {
    expect((await raw("GET", "/v1/files/escape/secret.txt", {}, "secondary-a", KEY_B)).status).toBe(401);
  });
});

describe("TLS", () => {
  it("refuses a server whose certificate the given CA did not sign", async () => {
    const distrustful = client({ ca: otherCerts.ca });
    const err = await distrustful.open("uploads/small.txt").catch((e: unknown) => e);
    expect(err).not.toBeInstanceOf(BlobMissingError);
    expect((err as Error).message).toMatch(/TLS verification failed \(UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
    await expect(distrustful.probe()).rejects.toThrow(/TLS verification failed/);
  });

  it("refuses a certificate that does not name the host it is reached at", async () => {
    await expect(client({ servername: "files.example.com" }).probe()).rejects.toThrow(/TLS verification failed \(ERR_TLS_CERT_ALTNAME_INVALID/);
  });

  it("reports an unreachable server as such", async () => {
    const stopped = await serveFiles({ root, host: "127.0.0.1", port: 0, tls: { cert: certs.cert, key: certs.key }, siteKeys: new Map(), log: pino({ level: "silent" }) });
    await stopped.close();
    await expect(client({ url: stopped.url }).probe()).rejects.toThrow(/the server is unreachable \(ECONNREFUSED\)/);
  });
});

describe("close", () => {
  it("lets a download in flight finish and refuses new connections", async () => {
    const own = await serveFiles({ root, host: "127.0.0.1", port: 0, tls: { cert: certs.cert, key: certs.key }, siteKeys: new Map([["secondary-a", KEY_A]]), log: pino({ level: "silent" }) });
    const { body } = await client({ url: own.url }).open("uploads/big.bin");
    let closed = false;
    const closing = own.close().then(() => (closed = true));

    const hash = createHash("sha256");
    await pipeline(body, hash);

    expect(hash.digest()).toEqual(sha256(BIG));
    await closing;
    expect(closed).toBe(true);
    await expect(client({ url: own.url }).probe()).rejects.toThrow(/unreachable/);
  });
});

describe("responses the client must not trust", () => {
  /** An HTTPS server with the test certificate that answers every request with `respond`. */
  async function impostor(respond: Parameters<typeof createHttpsServer>[1]): Promise<{ url: string; close: () => Promise<void> }> {
    const s = createHttpsServer({ cert: certs.cert, key: certs.key }, respond);
    await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
    return {
      url: `https://127.0.0.1:${(s.address() as AddressInfo).port}`,
      close: () => new Promise<void>((resolve) => {
        s.closeAllConnections();
        s.close(() => resolve());
      }),
    };
  }

  it("treats a 404 without the server's marker as an ordinary error, not as missing", async () => {
    const fake = await impostor((_req, res) => {
      res.statusCode = 404;
      res.end("not found");
    });
    try {
      const err = await client({ url: fake.url }).open("uploads/small.txt").catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect(err).not.toBeInstanceOf(BlobMissingError);
    } finally {
      await fake.close();
    }
  });

  it("fails the body when fewer bytes arrive than Content-Length announced", async () => {
    const fake = await impostor((_req, res) => {
      res.writeHead(200, { "content-length": "100" });
      res.write(Buffer.alloc(40));
      setTimeout(() => res.socket?.destroy(), 50);
    });
    try {
      const { body, length } = await client({ url: fake.url }).open("uploads/small.txt");
      expect(length).toBe(100);
      await expect(body.toArray()).rejects.toThrow();
    } finally {
      await fake.close();
    }
  });
});
