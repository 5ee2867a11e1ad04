/**
 * GET requests over plain-HTTP keep-alive connections whose socket reads grow to 1 MiB, for the
 * lean S3 path's GetObject (s3-lean.ts) when the store's endpoint is `http:` (an in-cluster
 * MinIO or Ceph, the usual secondary store of an on-premises site).
 *
 * Why not node:http: its sockets read at most 64 KiB at a time into a new Buffer, and every read
 * goes through the response parser, an IncomingMessage push and, with its 16 KiB high-water mark,
 * a pause and resume of the socket. Measured (docs/performance.md, 16 × 64 MiB copied at
 * concurrency 10), the GET side of a copy cost our process ~1.5 s of CPU per GiB more that way
 * than with one read per up to 1 MiB; the copy's rate went from ~0.65× to ~0.85× `rclone copy`.
 * Node's sockets take a caller's buffer for each read (`onread`), which is what this uses.
 * TLS sockets deliver one 16 KiB record per read whatever buffer they are given, so `https:`
 * stays on node:http.
 *
 * What it speaks: one request at a time per connection (no pipelining), HTTP/1.1 responses
 * framed by Content-Length, chunked transfer coding, or the end of the connection; 1xx responses
 * skipped; `Connection: close` honoured. A connection returns to the pool only after its
 * response ended exactly where its framing said. A pooled connection that the server closed
 * while idle is noticed (its end or error removes it), and a request that finds it closed before
 * any byte of a response arrived is sent once more on a new connection, as Node's agent users
 * would otherwise see an ECONNRESET for a request the server never saw.
 *
 * Errors are Node's socket errors, `TimeoutError` for a connection that takes longer than
 * `connectionTimeoutMs` to open or a socket that is silent for `socketTimeoutMs`, and an
 * ECONNRESET-coded error when the connection ends before the response did (a body cut short
 * fails; it never ends early as if complete). The signal ends the request and, until it has
 * ended, the body.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";
import { channel } from "node:diagnostics_channel";
import { connect, type Socket } from "node:net";
import { Readable } from "node:stream";
import { timeoutError } from "./s3-errors.ts";

export interface PlainHttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** Exactly the response's body; read it to the end (its connection is then reused) or destroy it. */
  body: Readable;
}

export interface PlainHttpGetOptions {
  hostname: string;
  port: number;
  /** Idle connections kept for reuse; more are closed when their response ends. */
  maxIdle: number;
  connectionTimeoutMs: number;
  socketTimeoutMs: number;
  /** An idle connection is closed after this long (servers close theirs too: MinIO, nginx, S3 after a few seconds to minutes). */
  idleTimeoutMs?: number;
}

const KiB = 1024;
/** Reads start at node:http's size and double while they come back full, up to MAX_READ. */
const MIN_READ = 64 * KiB;
const MAX_READ = 1024 * KiB;
/** A response head larger than this is refused (S3's are well under 4 KiB). */
const MAX_HEAD = 64 * KiB;
const DEFAULT_IDLE_TIMEOUT_MS = 15_000;

/**
 * Every request sent, as `{ client, method, path, headers }` (`client` the PlainHttpGet): the
 * counterpart of node:http's `http.client.request.start`, which tests and tracing subscribe to.
 */
export const requestStartChannel = channel("geo-operator.plain-http-get.request.start");

export class PlainHttpGet {
  /** Idle connections, the most recently used last: it is the least likely to have been closed. */
  private readonly idle: Connection[] = [];
  /** Every connection not yet closed, idle or carrying a response. */
  private readonly live = new Set<Connection>();
  private readonly opts: PlainHttpGetOptions;

  constructor(opts: PlainHttpGetOptions) {
    this.opts = opts;
  }

  /**
   * Sends `GET path` with `headers` (which must include `host`) and resolves once the response's
   * head has arrived, whatever its status.
   */
  async get(path: string, headers: OutgoingHttpHeaders, signal?: AbortSignal): Promise<PlainHttpResponse> {
    const head = requestHead(path, headers);
    for (;;) {
      signal?.throwIfAborted();
      const reused = this.idle.pop();
      const connection = reused ?? (await this.open(signal));
      if (requestStartChannel.hasSubscribers) requestStartChannel.publish({ client: this, method: "GET", path, headers });
      try {
        return await connection.exchange(head, signal);
      } catch (err) {
        if (!(err instanceof ClosedBeforeResponseError)) throw err;
        if (reused) continue;
        throw err.cause;
      }
    }
  }

  /** Connections open now, and how many of them wait idle in the pool. */
  connections(): { open: number; idle: number } {
    return { open: this.live.size, idle: this.idle.length };
  }

  /** Closes the idle connections; responses still being read finish first. */
  close(): void {
    for (const connection of this.idle.splice(0)) connection.destroy();
  }

  private open(signal: AbortSignal | undefined): Promise<Connection> {
    const { hostname, port, connectionTimeoutMs, socketTimeoutMs } = this.opts;
    return new Promise((resolve, reject) => {
      const connection = new Connection(hostname, port, socketTimeoutMs, this.opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS, (c) => this.release(c), (c) => {
        const index = this.idle.indexOf(c);
        if (index >= 0) this.idle.splice(index, 1);
        this.live.delete(c);
      });
      this.live.add(connection);
      const timer = setTimeout(() => fail(timeoutError(`connecting to ${hostname}:${port} took more than ${connectionTimeoutMs} ms`)), connectionTimeoutMs);
      const onAbort = () => fail(signal!.reason);
      signal?.addEventListener("abort", onAbort, { once: true });
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      function fail(err: unknown): void {
        done();
        connection.destroy();
        reject(err);
      }
      const onError = (err: Error) => fail(err);
      connection.socket.once("error", onError).once("connect", () => {
        done();
        connection.socket.off("error", onError);
        resolve(connection);
      });
    });
  }

  private release(connection: Connection): void {
    if (this.idle.length >= this.opts.maxIdle) connection.destroy();
    else this.idle.push(connection);
  }
}

/** The connection closed (or failed) before any byte of the response: the server may never have seen the request. */
class ClosedBeforeResponseError extends Error {
  override name = "ClosedBeforeResponseError";
  readonly code: string;

  constructor(cause: unknown) {
    super(`the connection closed before a response arrived: ${(cause as Error)?.message ?? cause}`, { cause });
    this.code = (cause as { code?: string })?.code ?? "ECONNRESET";
  }
}

type Framing = { kind: "length"; left: number } | { kind: "chunked"; decoder: ChunkedDecoder } | { kind: "close" } | { kind: "none" };

/** One keep-alive connection: at most one request in flight, its response parsed from large reads. */
class Connection {
  readonly socket: Socket;
  /** How much a body read asks for: doubles while reads come back full, halves when they come back less than half full. */
  private readSize = MIN_READ;
  private lastReadSize = MIN_READ;
  /** Set while a request is in flight: the bytes of its response go there. */
  private exchangeState: Exchange | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** The server ended the connection (rather than an error or our own destroy). */
  endedByServer = false;
  private readonly socketTimeoutMs: number;
  private readonly idleTimeoutMs: number;
  private readonly onReusable: (c: Connection) => void;
  private readonly onClosed: (c: Connection) => void;

  constructor(hostname: string, port: number, socketTimeoutMs: number, idleTimeoutMs: number, onReusable: (c: Connection) => void, onClosed: (c: Connection) => void) {
    this.socketTimeoutMs = socketTimeoutMs;
    this.idleTimeoutMs = idleTimeoutMs;
    this.onReusable = onReusable;
    this.onClosed = onClosed;
    this.socket = connect({
      host: hostname,
      port,
      noDelay: true,
      onread: {
        // A new buffer per read: the body's consumer holds on to what it was given.
        buffer: () => Buffer.allocUnsafe(this.nextReadSize()),
        callback: (n: number, buffer: Uint8Array) => this.onBytes((buffer as Buffer).subarray(0, n)),
      },
    });
    this.socket.on("error", (err) => this.onGone(err));
    this.socket.on("end", () => {
      this.endedByServer = true;
      this.onGone(Object.assign(new Error("the server closed the connection"), { code: "ECONNRESET" }));
    });
    this.socket.on("close", () => this.onGone(Object.assign(new Error("the connection closed"), { code: "ECONNRESET" })));
    this.socket.on("timeout", () => this.socket.destroy(timeoutError(`no data from ${hostname}:${port} for ${this.socketTimeoutMs} ms`)));
  }

  /** Sends `head` and resolves with the response once its head has been read. */
  exchange(head: Buffer, signal: AbortSignal | undefined): Promise<PlainHttpResponse> {
    if (this.closed) return Promise.reject(new ClosedBeforeResponseError(new Error("closed while idle")));
    clearTimeout(this.idleTimer);
    this.socket.ref();
    this.socket.setTimeout(this.socketTimeoutMs);
    return new Promise<PlainHttpResponse>((resolve, reject) => {
      const exchange = new Exchange(this, resolve, reject, signal);
      this.exchangeState = exchange;
      this.socket.write(head);
    });
  }

  destroy(err?: Error): void {
    this.socket.destroy(err);
  }

  /** Called by the exchange when its response ended exactly where its framing said. */
  finished(reusable: boolean): void {
    this.exchangeState = undefined;
    if (!reusable || this.closed) return this.destroy();
    this.socket.setTimeout(0);
    // Keep reading while idle (paused by a slow reader before), so a close by the server is seen.
    this.socket.resume();
    // An idle connection must not keep the process alive, nor stay open for ever.
    this.socket.unref();
    this.idleTimer = setTimeout(() => this.destroy(), this.idleTimeoutMs).unref();
    this.onReusable(this);
  }

  /**
   * The next read's buffer: a response head (and, for a small object, its body) fits in
   * MIN_READ; once the body's length is known, no more than what is left of it, so a 64 KiB
   * object does not leave a 1 MiB buffer behind for the collector (measured: GC was a fifth of
   * a small-object sync's CPU).
   */
  private nextReadSize(): number {
    const left = this.exchangeState?.bodyBytesLeft();
    this.lastReadSize = left === undefined ? MIN_READ : Math.max(1, Math.min(this.readSize, left));
    return this.lastReadSize;
  }

  private onBytes(data: Buffer): boolean {
    // Grow while reads come back full (a body streaming in), shrink when they do not.
    if (this.lastReadSize === this.readSize) {
      if (data.length === this.readSize) this.readSize = Math.min(this.readSize * 2, MAX_READ);
      else if (data.length < this.readSize / 2) this.readSize = Math.max(this.readSize / 2, MIN_READ);
    }
    const exchange = this.exchangeState;
    if (!exchange) {
      // Bytes nobody asked for: the connection cannot be trusted for another request.
      this.destroy();
      return false;
    }
    return exchange.feed(data);
  }

  private onGone(err: Error): void {
    const first = !this.closed;
    this.closed = true;
    clearTimeout(this.idleTimer);
    if (first) this.onClosed(this);
    const exchange = this.exchangeState;
    this.exchangeState = undefined;
    exchange?.fail(err);
    if (!this.socket.destroyed) this.socket.destroy();
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }
}

/** One request's response: its head, then its body into a Readable. */
class Exchange {
  private head: Buffer[] = [];
  private headLength = 0;
  private body: Readable | undefined;
  private framing: Framing | undefined;
  private reusable = false;
  private ended = false;
  private readonly onAbort: () => void;
  private readonly connection: Connection;
  private readonly resolve: (r: PlainHttpResponse) => void;
  private readonly reject: (err: unknown) => void;
  private readonly signal: AbortSignal | undefined;

  constructor(connection: Connection, resolve: (r: PlainHttpResponse) => void, reject: (err: unknown) => void, signal: AbortSignal | undefined) {
    this.connection = connection;
    this.resolve = resolve;
    this.reject = reject;
    this.signal = signal;
    this.onAbort = () => this.abort(signal!.reason);
    signal?.addEventListener("abort", this.onAbort, { once: true });
  }

  /** Body bytes still to come when the framing says so (Content-Length); undefined before the head or for other framings. */
  bodyBytesLeft(): number | undefined {
    const framing = this.framing;
    if (this.ended || !framing) return undefined;
    return framing.kind === "length" ? framing.left : Infinity;
  }

  /** Takes bytes from the socket; false pauses it (the body's reader is behind). */
  feed(data: Buffer): boolean {
    if (this.ended) {
      this.connection.destroy();
      return false;
    }
    if (!this.body) {
      const rest = this.readHead(data);
      if (rest === undefined || this.ended) return true;
      data = rest;
    }
    return this.feedBody(data);
  }

  fail(err: Error): void {
    if (this.ended) return;
    this.end();
    // A connection found closed before any byte of a response may be retried on a new one; a
    // silent server (TimeoutError) is not asked again.
    if (!this.body) this.reject(this.headLength === 0 && err.name !== "TimeoutError" ? new ClosedBeforeResponseError(err) : err);
    else if (this.framing?.kind === "close" && !this.body.destroyed) this.body.push(null);
    // A silent server's TimeoutError and Node's socket errors as they are; an end is a reset.
    else this.body.destroy(err.name === "TimeoutError" || !this.connection.endedByServer ? err : Object.assign(new Error(`the connection ended before the response body did`, { cause: err }), { code: "ECONNRESET" }));
  }

  private abort(reason: unknown): void {
    if (this.ended) return;
    this.end();
    if (!this.body) this.reject(reason);
    else this.body.destroy(reason as Error);
    this.connection.destroy();
  }

  private end(): void {
    this.ended = true;
    this.signal?.removeEventListener("abort", this.onAbort);
  }

  /** Collects the head; once complete, resolves the response and returns the bytes after it. */
  private readHead(data: Buffer): Buffer | undefined {
    this.head.push(data);
    this.headLength += data.length;
    for (;;) {
      const all = this.head.length === 1 ? this.head[0]! : Buffer.concat(this.head);
      const end = all.indexOf("\r\n\r\n");
      if (end < 0) {
        this.head = [all];
        if (this.headLength > MAX_HEAD) this.protocolError(`a response head longer than ${MAX_HEAD} bytes`);
        return undefined;
      }
      const parsed = parseHead(all.toString("latin1", 0, end));
      const rest = all.subarray(end + 4);
      if (!parsed) {
        this.protocolError(`a malformed response head: ${JSON.stringify(all.toString("latin1", 0, Math.min(end, 200)))}`);
        return undefined;
      }
      if (parsed.status < 200) {
        // 100 Continue and other interim responses: the real one follows.
        this.head = [rest];
        this.headLength = rest.length;
        continue;
      }
      this.head = [];
      this.framing = framingOf(parsed);
      this.reusable = parsed.keepAlive && this.framing.kind !== "close";
      const body = new Readable({
        // Up to two full reads waiting for the consumer before the socket is paused.
        highWaterMark: 2 * MAX_READ,
        read: () => this.connection.resume(),
        destroy: (err, callback) => {
          // Destroyed before its end: the rest of the response is still coming, so the connection cannot be reused.
          if (!this.ended) {
            this.end();
            this.connection.destroy();
          }
          callback(err);
        },
      });
      this.body = body;
      this.resolve({ status: parsed.status, headers: parsed.headers, body });
      if (this.framing.kind === "none" || (this.framing.kind === "length" && this.framing.left === 0)) this.complete(rest);
      return rest;
    }
  }

  private feedBody(data: Buffer): boolean {
    const framing = this.framing!;
    const body = this.body!;
    if (data.length === 0 || this.ended) return true;
    let more = true;
    switch (framing.kind) {
      case "length": {
        const take = Math.min(framing.left, data.length);
        more = body.push(take === data.length ? data : data.subarray(0, take));
        framing.left -= take;
        if (framing.left === 0) this.complete(data.subarray(take));
        break;
      }
      case "chunked": {
        let pieces: Buffer[];
        try {
          pieces = framing.decoder.decode(data);
        } catch (err) {
          this.protocolError((err as Error).message);
          return false;
        }
        for (const piece of pieces) more = body.push(piece) && more;
        if (framing.decoder.done) this.complete(framing.decoder.rest);
        break;
      }
      case "close":
        more = body.push(data);
        break;
      case "none":
        this.complete(data);
        return false;
    }
    if (!more && !this.ended) this.connection.pause();
    return more || this.ended;
  }

  /** The response ended where its framing said; `extra` are bytes after it (none from a well-behaved server). */
  private complete(extra: Buffer): void {
    if (this.ended) return;
    this.end();
    this.body!.push(null);
    this.connection.finished(this.reusable && extra.length === 0);
  }

  private protocolError(what: string): void {
    if (this.ended) return;
    const err = Object.assign(new Error(`HTTP protocol error: ${what}`), { code: "HPE_INVALID" });
    this.end();
    if (this.body) this.body.destroy(err);
    else this.reject(err);
    this.connection.destroy();
  }
}

interface ParsedHead {
  status: number;
  headers: IncomingHttpHeaders;
  keepAlive: boolean;
}

/** Status line and header fields, names lower-cased and repeated fields joined as node:http joins them. */
export function parseHead(text: string): ParsedHead | undefined {
  const lines = text.split("\r\n");
  const status = /^HTTP\/1\.([01]) (\d{3})(?: |$)/.exec(lines[0]!);
  if (!status) return undefined;
  const headers: Record<string, string | string[]> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon <= 0) return undefined;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    const previous = headers[name];
    if (name === "set-cookie") headers[name] = [...((previous as string[] | undefined) ?? []), value];
    else headers[name] = previous === undefined ? value : `${previous as string}, ${value}`;
  }
  const connection = String(headers.connection ?? "").toLowerCase();
  const keepAlive = status[1] === "1" ? !/\bclose\b/.test(connection) : /\bkeep-alive\b/.test(connection);
  return { status: Number(status[2]), headers: headers as IncomingHttpHeaders, keepAlive };
}

function framingOf(head: ParsedHead): Framing {
  if (head.status === 204 || head.status === 304) return { kind: "none" };
  const coding = head.headers["transfer-encoding"];
  if (coding !== undefined) {
    if (/(?:^|,)\s*chunked\s*$/i.test(coding)) return { kind: "chunked", decoder: new ChunkedDecoder() };
    return { kind: "close" };
  }
  const length = head.headers["content-length"];
  if (length !== undefined) {
    if (!/^\d+$/.test(length)) return { kind: "close" };
    return { kind: "length", left: Number(length) };
  }
  return { kind: "close" };
}

/**
 * The chunked transfer coding (RFC 9112 §7.1), decoded incrementally: `decode` returns the data
 * in the bytes given; after the last chunk and the trailer section, `done` is set and `rest`
 * holds whatever followed.
 */
export class ChunkedDecoder {
  done = false;
  rest: Buffer = Buffer.alloc(0);
  private state: "size" | "data" | "data-end" | "trailer" = "size";
  private line = "";
  private left = 0;

  decode(data: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let i = 0;
    while (i < data.length && !this.done) {
      if (this.state === "data") {
        const take = Math.min(this.left, data.length - i);
        out.push(data.subarray(i, i + take));
        i += take;
        this.left -= take;
        if (this.left === 0) this.state = "data-end";
        continue;
      }
      // size, data-end and trailer are lines.
      const nl = data.indexOf(10, i);
      const upto = nl < 0 ? data.length : nl + 1;
      this.line += data.toString("latin1", i, upto);
      i = upto;
      if (this.line.length > 4096) throw new Error("a chunk-size or trailer line longer than 4096 bytes");
      if (nl < 0) break;
      const line = this.line.replace(/\r?\n$/, "");
      this.line = "";
      if (this.state === "size") {
        const size = /^([0-9a-fA-F]{1,12})(?:\s*;.*)?$/.exec(line);
        if (!size) throw new Error(`a malformed chunk size ${JSON.stringify(line.slice(0, 40))}`);
        this.left = parseInt(size[1]!, 16);
        this.state = this.left === 0 ? "trailer" : "data";
      } else if (this.state === "data-end") {
        if (line !== "") throw new Error("chunk data longer than its size");
        this.state = "size";
      } else if (line === "") {
        this.done = true;
      }
    }
    if (this.done) this.rest = data.subarray(i);
    return out;
  }
}

function requestHead(path: string, headers: OutgoingHttpHeaders): Buffer {
  if (/\s/.test(path)) throw new Error(`refusing a request path with white space or a line break: ${JSON.stringify(path)}`);
  let head = `GET ${path} HTTP/1.1\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) {
      const line = `${name}: ${String(v)}`;
      if (/[\r\n]/.test(line)) throw new Error(`refusing a request header with a line break: ${name}`);
      head += `${line}\r\n`;
    }
  }
  return Buffer.from(`${head}\r\n`, "latin1");
}
