/**
 * Reads a primary's files through its retrieval server (server.ts): what a secondary uses when it
 * cannot mount the primary's volume. Every request is signed with this site's own key
 * (signing.ts); the server's certificate is verified against the CA given here (or the system's
 * CAs), never skipped.
 *
 * Only a 404 that the server marks as "no such file" becomes BlobMissingError. Refused credentials
 * (401/403) raise CredentialsRefusedError; other statuses and network or TLS failures raise
 * ordinary errors, which the caller retries with its own backoff.
 */
import type { IncomingMessage } from "node:http";
import { Agent, request } from "node:https";
import { pipeline } from "node:stream";
import { INVALID_BLOB_KEY_REASONS, InvalidBlobKeyError, blobKeySegments, type InvalidBlobKeyReason } from "./keys.ts";
import { Sha256Meter } from "../../../util/sha256-meter.ts";
import { HEALTH_PATH, MISSING_HEADER, REFUSED_KEY_HEADER, filesPath } from "./protocol.ts";
import { DEFAULT_SIGNATURE_TTL_SECONDS, authorizationHeader } from "./signing.ts";
import { BlobMissingError, CredentialsRefusedError, StoreUnreachableError, type BlobReadStream, type BlobSource } from "./store.ts";

export interface RetrievalSourceOptions {
  /** The primary's retrieval server, `https://host:port`. */
  url: string;
  /** This (secondary) site's name, as the server knows it. */
  site: string;
  /** This site's secret key (see parseSecretKey). */
  secretKey: string | Buffer;
  /** PEM of the CA that signed the server's certificate; absent: the system's trusted CAs. */
  ca?: string | Buffer;
  /** Name to check the certificate against, when it differs from the URL's host. */
  servername?: string;
  /** Sockets kept open to the server (default 16). */
  maxSockets?: number;
  /** Fail a request or body that moves no bytes for this long (default 60 s). */
  idleTimeoutMs?: number;
  /** Lifetime of each signature (default 60 s; the server refuses more than its max skew). */
  signatureTtlSeconds?: number;
  /** Milliseconds since the epoch (default Date.now). */
  now?: () => number;
}

export class RetrievalSource implements BlobSource {
  private readonly url: URL;
  private readonly options: RetrievalSourceOptions;
  private readonly agent: Agent;

  constructor(options: RetrievalSourceOptions) {
    this.url = new URL(options.url);
    if (this.url.protocol !== "https:") throw new Error(`retrieval server URL ${options.url} must use https`);
    this.options = options;
    this.agent = new Agent({
      keepAlive: true,
      maxSockets: options.maxSockets ?? 16,
      ...(options.ca ? { ca: options.ca } : {}),
      rejectUnauthorized: true,
      ...(options.servername ? { servername: options.servername } : {}),
    });
  }

  describe(): string {
    return `retrieval server ${this.url.origin} (as site ${this.options.site})`;
  }

  async open(key: string, signal?: AbortSignal): Promise<BlobReadStream> {
    const segments = blobKeySegments(key);
    const res = await this.request("GET", filesPath(segments), signal);
    if (res.statusCode === 200) {
      const header = res.headers["content-length"];
      if (header === undefined || !/^\d+$/.test(header)) {
        res.destroy();
        throw new Error(`${this.describe()}: GET ${JSON.stringify(key)} answered without a Content-Length`);
      }
      const length = Number(header);
      const meter = new Sha256Meter(length, `${key} from ${this.describe()}`, { hash: false });
      pipeline(res, meter, () => undefined);
      return { body: meter, length };
    }
    const text = await shortBody(res);
    if (res.statusCode === 404 && res.headers[MISSING_HEADER] === "true") throw new BlobMissingError(this.describe(), key);
    this.throwRefusal(res, text);
    const reason = res.headers[REFUSED_KEY_HEADER];
    if (res.statusCode === 400 && typeof reason === "string" && (INVALID_BLOB_KEY_REASONS as readonly string[]).includes(reason)) {
      throw new InvalidBlobKeyError(reason as InvalidBlobKeyReason, key, `the retrieval server refused it (${reason})`);
    }
    throw new Error(`${this.describe()}: GET ${JSON.stringify(key)} answered ${res.statusCode}: ${text}`);
  }

  /** An authenticated request to the server's health endpoint; the error says what to fix. */
  async probe(signal?: AbortSignal): Promise<void> {
    const res = await this.request("GET", HEALTH_PATH, signal);
    const text = await shortBody(res);
    if (res.statusCode === 200) return;
    this.throwRefusal(res, text);
    if (res.statusCode === 503) throw new Error(`${this.describe()}: the primary's files are unavailable (${text}); check the volume on the primary`);
    throw new Error(`${this.describe()}: health check answered ${res.statusCode}: ${text}`);
  }

  /** Closes the kept-alive sockets. */
  close(): void {
    this.agent.destroy();
  }

  private throwRefusal(res: IncomingMessage, text: string): void {
    if (res.statusCode === 401 || res.statusCode === 403) {
      throw new CredentialsRefusedError(
        `${this.describe()} refused this site's credentials (${res.statusCode} ${text}); check that the site's secret key matches the one the primary holds for site ${this.options.site}, and the clocks`,
        res.statusCode,
      );
    }
  }

  private request(method: string, path: string, signal: AbortSignal | undefined): Promise<IncomingMessage> {
    signal?.throwIfAborted();
    const nowMs = (this.options.now ?? Date.now)();
    const expires = Math.floor(nowMs / 1000) + (this.options.signatureTtlSeconds ?? DEFAULT_SIGNATURE_TTL_SECONDS);
    const authorization = authorizationHeader({ method, path, expires, site: this.options.site }, this.options.secretKey);
    return new Promise((resolve, reject) => {
      const req = request({
        protocol: "https:",
        hostname: this.url.hostname.replace(/^\[(.*)\]$/, "$1"),
        port: this.url.port || 443,
        method,
        path,
        agent: this.agent,
        ...(this.options.ca ? { ca: this.options.ca } : {}),
        rejectUnauthorized: true,
        ...(this.options.servername ? { servername: this.options.servername } : {}),
        headers: { authorization },
        timeout: this.options.idleTimeoutMs ?? 60_000,
        ...(signal ? { signal } : {}),
      });
      req.once("response", resolve);
      req.once("error", (err) => reject(this.connectionError(err, method, path)));
      req.once("timeout", () => req.destroy(Object.assign(new Error("no bytes moved within the idle timeout"), { code: "ETIMEDOUT" })));
      req.end();
    });
  }

  /** The error with a message that says which side to fix; the original stays as `cause`. */
  private connectionError(err: Error, method: string, path: string): Error {
    if (err.name === "AbortError") return err;
    const code = (err as { code?: unknown }).code;
    const what = `${this.describe()}: ${method} ${path}`;
    if (typeof code === "string" && (TLS_CODES.has(code) || code.startsWith("ERR_TLS_") || code.startsWith("ERR_SSL_"))) {
      return new Error(`${what}: TLS verification failed (${code}: ${err.message}); the server's certificate must be signed by the configured CA and name ${this.options.servername ?? this.url.hostname}`, { cause: err });
    }
    if (typeof code === "string" && UNREACHABLE_CODES.has(code)) {
      return new StoreUnreachableError(`${what}: the server is unreachable (${code}); is the retrieval server running on the primary, and is the address right?`, { cause: err });
    }
    return new Error(`${what}: ${err.message}`, { cause: err });
  }
}

/** OpenSSL's certificate verification failures as Node reports them. */
const TLS_CODES = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_SIGNATURE_FAILURE",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "HOSTNAME_MISMATCH",
]);

const UNREACHABLE_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "EPIPE"]);

/** Up to 1 KiB of a (short, textual) error body; the rest is discarded. */
async function shortBody(res: IncomingMessage): Promise<string> {
  let text = "";
  for await (const chunk of res as AsyncIterable<Buffer>) {
    if (text.length < 1024) text += chunk.toString("utf8");
  }
  return text.trim().slice(0, 1024);
}
