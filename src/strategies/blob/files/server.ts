/**
 * The retrieval server a primary runs when a secondary cannot mount its volume: GitLab Geo's
 * retrieve API for files on local storage. HTTPS only; every request for a file is authenticated
 * (signing.ts) before the filesystem is touched, so an unauthenticated caller learns nothing about which files
 * exist. Files are served read-only from a FileSource, with its confinement to the root.
 *
 *   GET|HEAD /v1/files/<key>   the file (Range: bytes=... honoured); 404 with the
 *                              `Geo-Blob-Missing: true` header only when the file does not exist
 *   GET|HEAD /v1/health        200 when the root is readable, 503 when it is not. Without an
 *                              Authorization header it answers anyone (the readiness probe); with
 *                              one, the signature is checked first (a secondary's probe of its key)
 *
 * Statuses: 401 refused credentials, 400 a key that is refused (e.g. leaves the root), 416 an
 * unsatisfiable range, 500 anything else. One log line per request.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { pipeline } from "node:stream/promises";
import type { Logger } from "../../../util/log.ts";
import { FileSource, type OpenedBlobFile } from "./file-store.ts";
import { InvalidBlobKeyError } from "./keys.ts";
import { FILES_PATH_PREFIX, HEALTH_PATH, MISSING_HEADER, REFUSED_KEY_HEADER } from "./protocol.ts";
import { parseRange } from "./ranges.ts";
import { AUTH_SCHEME, DEFAULT_MAX_SKEW_SECONDS, verifyAuthorization } from "./signing.ts";
import { BlobMissingError } from "./store.ts";
import { FILE_READ_CHUNK } from "../../../util/sha256-meter.ts";


export interface ServeFilesOptions {
  /** Absolute path of the directory whose files are served. */
  root: string;
  host: string;
  /** 0 picks a free port (see FilesServer.port). */
  port: number;
  /** PEM certificate chain and private key. */
  tls: { cert: string | Buffer; key: string | Buffer };
  /**
   * Secret key of each secondary site, by site name. Read on every request, so a caller may update
   * the map in place (e.g. when the Secret changes).
   */
  siteKeys: ReadonlyMap<string, string | Buffer>;
  log: Logger;
  /** How far ahead of now a signature's expiry may be (default 300 s). */
  maxSkewSeconds?: number;
  /** Milliseconds since the epoch (default Date.now); tests pass a fake clock. */
  now?: () => number;
  /** How long close() lets requests in flight finish before cutting them (default 10 s). */
  closeGraceMs?: number;
}

export interface FilesServer {
  readonly host: string;
  readonly port: number;
  /** `https://host:port`, for a client. */
  readonly url: string;
  /** Stops accepting connections, lets requests in flight finish (up to the grace period), resolves when closed. */
  close(): Promise<void>;
}

interface RequestLog {
  method: string;
  site?: string;
  key?: string;
  status: number;
  bytes: number;
  range?: string;
  reason?: string;
}

/** Starts the server; resolves once it listens. */
export async function serveFiles(options: ServeFilesOptions): Promise<FilesServer> {
  const source = new FileSource(options.root);
  const now = options.now ?? Date.now;
  const maxSkewSeconds = options.maxSkewSeconds ?? DEFAULT_MAX_SKEW_SECONDS;
  const log = options.log.child({ component: "files-server" });

  const server: Server = createServer({ cert: options.tls.cert, key: options.tls.key, minVersion: "TLSv1.2" }, (req, res) => {
    const started = now();
    const entry: RequestLog = { method: req.method ?? "", status: 0, bytes: 0 };
    handle(req, res, entry)
      .catch((err: unknown) => {
        entry.reason = (err as Error).message;
        if (!res.headersSent) reply(res, entry, 500, "internal error");
        else res.destroy();
      })
      .finally(() => {
        const line = { ...entry, ms: now() - started };
        if (entry.status >= 500 || entry.status === 0) log.error(line, "files request failed");
        else if (entry.status === 401 || entry.status === 400) log.warn(line, "files request refused");
        else log.info(line, "files request");
      });
  });
  // A client that stops reading holds a file descriptor; give up on it after a minute of silence.
  server.setTimeout(60_000);
  server.on("tlsClientError", (err) => log.debug({ err: err.message }, "TLS handshake failed"));

  async function handle(req: IncomingMessage, res: ServerResponse, entry: RequestLog): Promise<void> {
    const method = req.method ?? "";
    const path = (req.url ?? "").split("?", 1)[0]!;
    if (path === HEALTH_PATH && req.headers.authorization === undefined && (method === "GET" || method === "HEAD")) {
      // The readiness probe: says only whether the root is readable, names no file.
      await health(res, entry);
      return;
    }
    const auth = verifyAuthorization({
      method,
      path,
      header: req.headers.authorization,
      siteKeys: options.siteKeys,
      now: Math.floor(now() / 1000),
      maxSkewSeconds,
    });
    if (auth.site) entry.site = auth.site;
    if (!auth.ok) {
      entry.reason = auth.reason;
      res.setHeader("www-authenticate", AUTH_SCHEME);
      reply(res, entry, 401, `unauthorized: ${auth.reason}`);
      return;
    }
    if (method !== "GET" && method !== "HEAD") {
      res.setHeader("allow", "GET, HEAD");
      reply(res, entry, 405, "method not allowed");
      return;
    }
    if (path === HEALTH_PATH) {
      await health(res, entry);
      return;
    }
    if (!path.startsWith(FILES_PATH_PREFIX)) {
      reply(res, entry, 404, "no such endpoint");
      return;
    }
    let key: string;
    try {
      key = decodeURIComponent(path.slice(FILES_PATH_PREFIX.length));
    } catch {
      reply(res, entry, 400, "malformed percent-encoding in the path");
      return;
    }
    entry.key = key;
    let file: OpenedBlobFile;
    try {
      file = await source.openFile(key);
    } catch (err) {
      if (err instanceof BlobMissingError) {
        res.setHeader(MISSING_HEADER, "true");
        reply(res, entry, 404, "no such file");
      } else if (err instanceof InvalidBlobKeyError) {
        entry.reason = err.reason;
        res.setHeader(REFUSED_KEY_HEADER, err.reason);
        reply(res, entry, 400, `refused key: ${err.reason}`);
      } else {
        throw err;
      }
      return;
    }
    await sendFile(req, res, entry, file);
  }

  async function health(res: ServerResponse, entry: RequestLog): Promise<void> {
    try {
      await source.probe();
      reply(res, entry, 200, "ok");
    } catch (err) {
      entry.reason = (err as Error).message;
      reply(res, entry, 503, "root directory unavailable");
    }
  }

  async function sendFile(req: IncomingMessage, res: ServerResponse, entry: RequestLog, file: OpenedBlobFile): Promise<void> {
    const { handle, size } = file;
    try {
      const rangeHeader = req.headers.range;
      if (rangeHeader !== undefined) entry.range = rangeHeader;
      const range = parseRange(rangeHeader, size);
      res.setHeader("accept-ranges", "bytes");
      if (range.kind === "unsatisfiable") {
        res.setHeader("content-range", `bytes */${size}`);
        reply(res, entry, 416, "range not satisfiable");
        return;
      }
      const start = range.kind === "partial" ? range.start : 0;
      const end = range.kind === "partial" ? range.end : size - 1;
      entry.status = range.kind === "partial" ? 206 : 200;
      res.statusCode = entry.status;
      res.setHeader("content-type", "application/octet-stream");
      res.setHeader("content-length", String(end - start + 1));
      if (range.kind === "partial") res.setHeader("content-range", `bytes ${start}-${end}/${size}`);
      if (req.method === "HEAD" || end < start) {
        res.end();
        return;
      }
      // 1 MiB reads (the stream default is 64 KiB): each read is a trip through libuv's thread pool.
      const stream = handle.createReadStream({ start, end, autoClose: false, highWaterMark: FILE_READ_CHUNK });
      try {
        await pipeline(stream, res);
      } finally {
        entry.bytes = stream.bytesRead;
      }
    } finally {
      await handle.close();
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = options.host.includes(":") ? `[${options.host}]` : options.host;
  return {
    host: options.host,
    port: address.port,
    url: `https://${host}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.closeAllConnections(), options.closeGraceMs ?? 10_000);
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        server.closeIdleConnections();
      }),
  };
}

function reply(res: ServerResponse, entry: RequestLog, status: number, message: string): void {
  entry.status = status;
  res.statusCode = status;
  res.setHeader("content-type", "text/plain; charset=utf-8");
  res.end(`${message}\n`);
}
