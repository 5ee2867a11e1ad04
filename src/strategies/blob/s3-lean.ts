/**
 * The S3 requests made once per object — GetObject, HeadObject, the PutObject of an object held
 * in one buffer and the streamed PutObject of a larger one — signed with the SDK's own
 * SignatureV4 and sent over a node:http keep-alive agent, without the SDK's middleware stack.
 * Why: measured (docs/performance.md), a 64 KiB GetObject cost ~1.2-1.5 ms of CPU through the SDK
 * against ~0.6 ms this way, and a copy makes two such requests per object, a verification one; a
 * streamed PUT here hashes, frames and writes each source chunk in one step instead of passing it
 * through two Transforms and the SDK's body pipe. Everything else (listings, multipart uploads,
 * deletes, bucket checks) stays on the SDK.
 *
 * What callers relied on from the SDK is kept: the bucket's URL and signing region come from the
 * SDK's endpoint resolver (path-style or virtual-host, as the client would address it); an error
 * response becomes an S3ResponseError named by S3's code with `$metadata.httpStatusCode`, like the
 * SDK's service exceptions, so classifyS3Error sorts both alike; Node's socket errors pass through
 * unchanged; throttling, 5xx, timeouts and reset connections are retried as the SDK's standard
 * strategy does (same attempts, jittered exponential backoff) — only before a response body is
 * handed over, and only with a body that can be sent again (a Buffer: no stream is ever retried).
 * The abort signal destroys the request, and the response body until it has ended.
 *
 * GetObject on a plain-HTTP endpoint goes over PlainHttpGet (plain-http-get.ts), whose socket
 * reads grow to 1 MiB instead of node:http's 64 KiB: measured, it halves the CPU our process
 * spends per GiB read (copies and verifications of large objects).
 */
import type { Agent as HttpAgent, ClientRequest, IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, RequestOptions } from "node:http";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { createHash, createHmac, createSecretKey, type Hash, type Hmac, type KeyObject } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { extendedEncodeURIComponent } from "@smithy/core/protocols";
import { SignatureV4 } from "@smithy/signature-v4";
import type { Readable } from "node:stream";
import { ObjectLengthMismatchError, type StreamChecksum } from "../../util/sha256-meter.ts";
import { AwsChunkedEncoder, awsChunkedHeaders } from "./aws-chunked.ts";
import { PlainHttpGet } from "./plain-http-get.ts";
import { timeoutError } from "./s3-errors.ts";

export interface LeanS3Config {
  /** The bucket's URL as the SDK's endpoint resolver gives it: `http://host/bucket` or `http://bucket.host/`. */
  bucketUrl: URL;
  signingRegion: string;
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Shared with the store's SDK client (one socket pool per store); an https.Agent for https URLs. */
  agent: HttpAgent;
  maxAttempts: number;
  connectionTimeoutMs: number;
  socketTimeoutMs: number;
}

/** An S3 error response, shaped like the SDK's service exceptions: S3's error code as `name`. */
export class S3ResponseError extends Error {
  readonly $metadata: { httpStatusCode: number; requestId?: string; attempts: number };
  readonly $fault: "client" | "server";

  constructor(status: number, code: string | undefined, message: string, requestId: string | undefined, attempts: number) {
    super(message);
    // Like the SDK: a response without a body (HEAD) is named by its status.
    this.name = code ?? (status === 404 ? "NotFound" : String(status));
    this.$metadata = { httpStatusCode: status, requestId, attempts };
    this.$fault = status >= 500 ? "server" : "client";
  }
}

/** A response as the lean path hands it on: node:http's or PlainHttpGet's. */
interface LeanResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Readable;
}

function fromIncoming(res: IncomingMessage): LeanResponse {
  return { status: res.statusCode!, headers: res.headers, body: res };
}

/** What the SDK's standard retry strategy retries, and with which backoff base (ms). */
const THROTTLING_CODES = new Set([
  "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException", "TooManyRequestsException",
  "ProvisionedThroughputExceededException", "TransactionInProgressException", "RequestLimitExceeded",
  "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled", "SlowDown", "PriorRequestNotComplete",
  "EC2ThrottledException",
]);
const TRANSIENT_NAMES = new Set(["TimeoutError", "RequestTimeout", "RequestTimeoutException"]);
const TRANSIENT_NETWORK_CODES = new Set(["ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT"]);
const THROTTLING_DELAY_BASE = 500;
const TRANSIENT_DELAY_BASE = 100;
const MAX_RETRY_DELAY = 20_000;
/** Error bodies are a few hundred bytes of XML; anything longer is not read further. */
const MAX_ERROR_BODY = 64 * 1024;

function retryDelayBase(err: unknown): number | undefined {
  const e = err as { name?: unknown; code?: unknown; $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode;
  if (status === 429 || THROTTLING_CODES.has(e.name as string)) return THROTTLING_DELAY_BASE;
  if ((status !== undefined && status >= 500) || TRANSIENT_NAMES.has(e.name as string) || TRANSIENT_NETWORK_CODES.has(e.code as string)) {
    return TRANSIENT_DELAY_BASE;
  }
  return undefined;
}

/** The SDK's encoding of a key in a path (`{Key+}`): each segment URI-encoded, `!'()*` too. */
function encodeKeyPath(key: string): string {
  return key.split("/").map(extendedEncodeURIComponent).join("/");
}

/**
 * SHA-256 and HMAC-SHA256 for the signer, as @smithy/core's Sha256 but with each HMAC key turned
 * into a KeyObject once: the signer HMACs with the same two keys (the secret, the day's signing
 * key) on every request, and Node prepares a raw key anew for each. Measured: signing went from
 * ~24 % of a small-object sync's profile to ~7 %, the sync's process CPU down by a fifth.
 */
export function cachedKeySha256(): new (secret?: string | ArrayBuffer | ArrayBufferView) => { update(data: string | Uint8Array): void; digest(): Promise<Uint8Array>; reset(): void } {
  const keys = new Map<string, KeyObject>();
  const keyFor = (secret: string | ArrayBuffer | ArrayBufferView): KeyObject => {
    const bytes = typeof secret === "string" ? Buffer.from(secret) : ArrayBuffer.isView(secret) ? Buffer.from(secret.buffer, secret.byteOffset, secret.byteLength) : Buffer.from(secret);
    const id = bytes.toString("base64");
    let key = keys.get(id);
    if (!key) {
      // A new signing key every day (and its derivation steps): keep only the latest few.
      if (keys.size >= 16) keys.clear();
      key = createSecretKey(Buffer.from(bytes));
      keys.set(id, key);
    }
    return key;
  };
  return class {
    private readonly secret?: string | ArrayBuffer | ArrayBufferView;
    private hash: Hash | Hmac;
    constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
      this.secret = secret;
      this.hash = this.start();
    }
    private start(): Hash | Hmac {
      return this.secret === undefined ? createHash("sha256") : createHmac("sha256", keyFor(this.secret));
    }
    update(data: string | Uint8Array): void {
      this.hash.update(data);
    }
    digest(): Promise<Uint8Array> {
      return Promise.resolve(new Uint8Array(this.hash.digest()));
    }
    reset(): void {
      this.hash = this.start();
    }
  };
}

export class LeanS3 {
  readonly agent: HttpAgent;
  private readonly config: LeanS3Config;
  private readonly signer: SignatureV4;
  private readonly send: (options: RequestOptions) => ClientRequest;
  private readonly basePath: string;
  private readonly target: { hostname: string; port: number; host: string };
  /** GetObject's transport on a plain-HTTP endpoint; node:http (the agent) otherwise. */
  readonly plainGet: PlainHttpGet | undefined;

  constructor(config: LeanS3Config) {
    this.config = config;
    this.agent = config.agent;
    const url = config.bucketUrl;
    // S3 paths are signed as sent (already encoded once), as the SDK's S3 client does.
    this.signer = new SignatureV4({ service: "s3", region: config.signingRegion, credentials: config.credentials, sha256: cachedKeySha256(), uriEscapePath: false });
    this.send = url.protocol === "https:" ? httpsRequest : httpRequest;
    this.basePath = url.pathname.replace(/\/$/, "");
    const port = url.port ? Number(url.port) : url.protocol === "https:" ? 443 : 80;
    this.target = { hostname: url.hostname.replace(/^\[(.*)\]$/, "$1"), port, host: url.host };
    this.plainGet =
      url.protocol === "http:"
        ? new PlainHttpGet({
            hostname: this.target.hostname,
            port,
            maxIdle: Number.isFinite(config.agent.maxSockets) ? config.agent.maxSockets : 64,
            connectionTimeoutMs: config.connectionTimeoutMs,
            socketTimeoutMs: config.socketTimeoutMs,
          })
        : undefined;
  }

  /**
   * GetObject of `key` (the full key, prefix included): the response headers and the body, which
   * the caller must read to the end or destroy. Raises S3ResponseError for an error response.
   */
  async get(key: string, signal?: AbortSignal): Promise<{ headers: IncomingHttpHeaders; body: Readable }> {
    const res = await this.request("GET", key, {}, undefined, signal);
    return { headers: res.headers, body: res.body };
  }

  /** HeadObject of `key` with extra request `headers`; the response headers. */
  async head(key: string, headers: Record<string, string>, signal?: AbortSignal): Promise<IncomingHttpHeaders> {
    const res = await this.request("HEAD", key, headers, undefined, signal);
    // A HEAD response has no body; its socket goes back to the pool when it is read as ended.
    res.body.on("error", () => undefined).resume();
    return res.headers;
  }

  /** PutObject of `body` at `key` with request `headers` (content headers, checksums); retried as a whole. */
  async put(key: string, body: Buffer, headers: Record<string, string>, signal?: AbortSignal): Promise<IncomingHttpHeaders> {
    const res = await this.request("PUT", key, { ...headers, "content-length": String(body.length) }, body, signal);
    await drain(res.body);
    return res.headers;
  }

  /**
   * PutObject of the `length` bytes `body` delivers, streamed as they arrive: each chunk is hashed,
   * counted and written to the request, aws-chunked (aws-chunked.ts), and their SHA-256 follows the
   * last byte as the `x-amz-checksum-sha256` trailer, which the store checks before it commits the
   * object. Returns that SHA-256 and the length. The source is paused while the request's socket
   * is full. Sent once, never retried (a stream cannot be replayed).
   *
   * Fails, destroying both the request and `body` so the store sees no final chunk and commits
   * nothing, with ObjectLengthMismatchError (naming `what`) when the body holds fewer or more
   * bytes, the body's own error, the signal's reason, S3ResponseError for an error response
   * (a wrong checksum included), or Node's socket error.
   *
   * With `trailer: false`, for stores that refuse S3's additional checksums, the body goes out as
   * it is, with only its Content-Length for the store to check; the SHA-256 returned is still of
   * exactly what was sent.
   */
  async putStream(
    key: string,
    body: Readable,
    length: number,
    headers: Record<string, string>,
    what: string,
    signal?: AbortSignal,
    { trailer = true }: { trailer?: boolean } = {},
  ): Promise<StreamChecksum> {
    const path = `${this.basePath}/${encodeKeyPath(key)}`;
    const encoder = trailer ? new AwsChunkedEncoder(length) : undefined;
    let signed: OutgoingHttpHeaders;
    try {
      signal?.throwIfAborted();
      const contentEncoding = headers["content-encoding"];
      signed = await this.sign(
        "PUT",
        path,
        encoder
          ? {
              ...headers,
              ...awsChunkedHeaders(length),
              // S3 drops aws-chunked from what it stores; an encoding of the content itself stays.
              ...(contentEncoding ? { "content-encoding": `aws-chunked,${contentEncoding}` } : {}),
              "content-length": String(encoder.encodedLength),
            }
          : { ...headers, "content-length": String(length), "x-amz-content-sha256": "UNSIGNED-PAYLOAD" },
      );
      signal?.throwIfAborted();
    } catch (err) {
      body.destroy();
      throw err;
    }
    return new Promise<StreamChecksum>((resolve, reject) => {
      const hash = createHash("sha256");
      let bytes = 0;
      let sent: StreamChecksum | undefined;
      let answered = false;
      let settled = false;
      const req = this.send({ agent: this.agent, method: "PUT", hostname: this.target.hostname, port: this.target.port, path, headers: signed });
      const onData = (chunk: Buffer) => {
        bytes += chunk.length;
        if (bytes > length) return finish(new ObjectLengthMismatchError(what, length, bytes));
        hash.update(chunk);
        if (!(encoder ? encoder.write(chunk, req) : req.write(chunk))) body.pause();
      };
      const onEnd = () => {
        if (bytes !== length) return finish(new ObjectLengthMismatchError(what, length, bytes));
        sent = { checksum: hash.digest(), bytes };
        if (encoder) req.end(encoder.end(sent.checksum));
        else req.end();
      };
      // A source socket closed before the end ends some bodies with 'close' and no 'end'.
      const onClose = () => {
        if (!sent) finish(new ObjectLengthMismatchError(what, length, bytes));
      };
      const onAbort = () => finish(signal!.reason);
      const detach = () => body.off("data", onData).off("end", onEnd).off("error", finish).off("close", onClose);
      function finish(err: unknown, result?: StreamChecksum): void {
        if (settled) return;
        settled = true;
        detach();
        signal?.removeEventListener("abort", onAbort);
        if (result) return resolve(result);
        body.destroy();
        req.destroy();
        reject(err);
      }
      signal?.addEventListener("abort", onAbort, { once: true });
      this.watchSocket(req, finish);
      req.on("error", (err) => {
        // After an error response the socket may be reset: the response's error is the one to report.
        if (!answered) finish(err);
      });
      req.on("drain", () => body.resume());
      req.once("response", (res) => {
        answered = true;
        if (res.statusCode! >= 300) {
          // Stop sending, but keep the socket until S3's error has been read.
          detach();
          body.destroy();
          responseError(fromIncoming(res), `PUT ${path}`, 1).then(finish, finish);
          return;
        }
        drain(res).then(() => (sent ? finish(undefined, sent) : finish(new Error(`PUT ${path}: answered ${res.statusCode} before the body was sent`))), finish);
      });
      body.once("error", finish).once("close", onClose);
      // Bytes written before the request has its socket queue in the request itself, which has its
      // own idea of when to ask for 'drain' (nodejs/node#64645); from the socket on, they go to it.
      req.once("socket", () => {
        if (!settled) body.on("data", onData).once("end", onEnd);
      });
    });
  }

  /** Sends the request until it gets a 2xx response, an error that is not retried, or the last attempt. */
  private async request(method: string, key: string, headers: Record<string, string>, body: Buffer | undefined, signal?: AbortSignal): Promise<LeanResponse> {
    const path = `${this.basePath}/${encodeKeyPath(key)}`;
    for (let attempt = 1; ; attempt++) {
      signal?.throwIfAborted();
      let error: unknown;
      try {
        const res = await this.attempt(method, path, headers, body, signal);
        if (res.status < 300) return res;
        error = await responseError(res, `${method} ${path}`, attempt);
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        error = err;
      }
      const base = retryDelayBase(error);
      if (base === undefined || attempt >= this.config.maxAttempts) throw error;
      try {
        await sleep(Math.floor(Math.min(MAX_RETRY_DELAY, Math.random() * 2 ** (attempt - 1) * base)), undefined, { signal });
      } catch {
        throw signal!.reason;
      }
    }
  }

  private async attempt(method: string, path: string, headers: Record<string, string>, body: Buffer | undefined, signal?: AbortSignal): Promise<LeanResponse> {
    // The PUT's bytes are covered by its x-amz-checksum-sha256, which the store checks; GET and
    // HEAD have none. Hashing the body again for the signature would double the work.
    const signed = await this.sign(method, path, { ...headers, "x-amz-content-sha256": "UNSIGNED-PAYLOAD" });
    signal?.throwIfAborted();
    if (method === "GET" && this.plainGet && body === undefined) return this.plainGet.get(path, signed, signal);
    return new Promise<LeanResponse>((resolve, reject) => {
      const req = this.send({ agent: this.agent, method, hostname: this.target.hostname, port: this.target.port, path, headers: signed });
      let res: IncomingMessage | undefined;
      // Until the response body has ended, the signal (or a stalled socket) ends the request and,
      // once it is there, the body: a destroyed socket never goes back to the pool.
      const stop = (reason: unknown) => (res ?? req).destroy(reason as Error);
      const onAbort = () => stop(signal!.reason);
      signal?.addEventListener("abort", onAbort, { once: true });
      const release = () => signal?.removeEventListener("abort", onAbort);
      this.watchSocket(req, stop);
      req.on("error", (err) => {
        release();
        reject(err);
      });
      req.once("response", (response) => {
        res = response;
        response.once("close", release);
        resolve(fromIncoming(response));
      });
      req.end(body);
    });
  }

  private async sign(method: string, path: string, headers: Record<string, string>): Promise<OutgoingHttpHeaders> {
    const { hostname, port, host } = this.target;
    const signed = await this.signer.sign({ method, protocol: this.config.bucketUrl.protocol, hostname, port, path, query: {}, headers: { ...headers, host } });
    return signed.headers as OutgoingHttpHeaders;
  }

  /** Ends `req` through `stop` when its socket stalls, or when connecting takes too long. */
  private watchSocket(req: ClientRequest, stop: (reason: Error) => void): void {
    const { host } = this.target;
    req.setTimeout(this.config.socketTimeoutMs, () => stop(timeoutError(`no data from ${host} for ${this.config.socketTimeoutMs} ms`)));
    req.once("socket", (socket) => {
      if (!socket.connecting) return;
      const timer = setTimeout(() => req.destroy(timeoutError(`connecting to ${host} took more than ${this.config.connectionTimeoutMs} ms`)), this.config.connectionTimeoutMs);
      socket.once("connect", () => clearTimeout(timer));
      req.once("close", () => clearTimeout(timer));
    });
  }
}

/** Reads an error response's XML body (S3's `<Code>`) into an S3ResponseError. */
async function responseError(res: LeanResponse, what: string, attempts: number): Promise<S3ResponseError> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    if (size < MAX_ERROR_BODY) chunks.push(chunk);
    size += chunk.length;
  }
  const xml = Buffer.concat(chunks).toString("utf8");
  const element = (name: string) => new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)?.[1];
  const status = res.status;
  const requestId = element("RequestId") ?? (res.headers["x-amz-request-id"] as string | undefined);
  return new S3ResponseError(status, element("Code"), element("Message") ?? `${what}: HTTP ${status}`, requestId, attempts);
}

/** Reads a response body to its end (so its socket returns to the pool), or fails with its error. */
function drain(res: Readable): Promise<void> {
  return new Promise((resolve, reject) => {
    res.once("end", resolve);
    res.once("error", reject);
    res.resume();
  });
}
