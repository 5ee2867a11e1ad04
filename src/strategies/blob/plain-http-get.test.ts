/**
 * PlainHttpGet against a real TCP server on loopback whose answers each test scripts byte for
 * byte: framing (length, chunked, close), connection reuse, servers that close, stall or cut a
 * body short, aborts, back-pressure, and the large reads that are the reason it exists.
 */
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { ChunkedDecoder, parseHead, PlainHttpGet } from "./plain-http-get.ts";

const MiB = 1024 * 1024;

interface Scripted {
  port: number;
  /** Connections accepted so far. */
  connections: Socket[];
  /** Request heads received, in order, with the index of the connection each came on. */
  requests: { head: string; connection: number }[];
}

type Responder = (socket: Socket, request: { head: string; index: number; connection: number }) => void;

const servers: Server[] = [];
const clients: PlainHttpGet[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

/** A server that hands every request head (GET: no body) to `respond` with the socket. */
async function scripted(respond: Responder): Promise<Scripted> {
  const state: Scripted = { port: 0, connections: [], requests: [] };
  const server = createServer((socket) => {
    const connection = state.connections.push(socket) - 1;
    let pending = "";
    socket.on("error", () => undefined);
    socket.on("data", (data) => {
      pending += data.toString("latin1");
      for (let end = pending.indexOf("\r\n\r\n"); end >= 0; end = pending.indexOf("\r\n\r\n")) {
        const head = pending.slice(0, end);
        pending = pending.slice(end + 4);
        const index = state.requests.push({ head, connection }) - 1;
        respond(socket, { head, index, connection });
      }
    });
  });
  servers.push(server);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  state.port = (server.address() as AddressInfo).port;
  return state;
}

function client(port: number, opts: Partial<ConstructorParameters<typeof PlainHttpGet>[0]> = {}): PlainHttpGet {
  const c = new PlainHttpGet({ hostname: "127.0.0.1", port, maxIdle: 8, connectionTimeoutMs: 2_000, socketTimeoutMs: 2_000, ...opts });
  clients.push(c);
  return c;
}

const headers = (port: number) => ({ host: `127.0.0.1:${port}`, "x-test": "1" });

async function readAll(body: NodeJS.ReadableStream): Promise<{ data: Buffer; chunks: number[] }> {
  const parts: Buffer[] = [];
  for await (const chunk of body as AsyncIterable<Buffer>) parts.push(chunk);
  return { data: Buffer.concat(parts), chunks: parts.map((p) => p.length) };
}

/** Resolves when the server's side of a connection has closed (a reset included). */
const closed = (socket: Socket) => new Promise<void>((resolve) => (socket.destroyed ? resolve() : socket.once("close", () => resolve())));

const ok = (body: Buffer, extra = "") => Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\netag: "abc"\r\n${extra}\r\n`), body]);

describe("parseHead", () => {
  it("reads the status, lower-cases names, joins repeated fields and knows HTTP/1.0 from 1.1 keep-alive", () => {
    const head = parseHead("HTTP/1.1 206 Partial Content\r\nContent-Length: 5\r\nX-Amz-Meta-A: 1\r\nx-amz-meta-a: 2\r\nSet-Cookie: a\r\nset-cookie: b");
    expect(head).toEqual({ status: 206, headers: { "content-length": "5", "x-amz-meta-a": "1, 2", "set-cookie": ["a", "b"] }, keepAlive: true });
    expect(parseHead("HTTP/1.1 200 OK\r\nConnection: close")?.keepAlive).toBe(false);
    expect(parseHead("HTTP/1.0 200 OK\r\ncontent-length: 1")?.keepAlive).toBe(false);
    expect(parseHead("HTTP/1.0 200 OK\r\nConnection: keep-alive")?.keepAlive).toBe(true);
    expect(parseHead("HTTP/2 200\r\n")).toBeUndefined();
    expect(parseHead("HTTP/1.1 200 OK\r\nno colon here")).toBeUndefined();
  });
});

describe("ChunkedDecoder", () => {
  const encoded = Buffer.from("5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-trailer: t\r\n\r\nNEXT");

  it("decodes the same bytes however the input is split, and keeps what follows the end", () => {
    for (let split = 1; split < encoded.length; split++) {
      const decoder = new ChunkedDecoder();
      const out = [...decoder.decode(encoded.subarray(0, split)), ...decoder.decode(encoded.subarray(split))];
      expect(Buffer.concat(out).toString(), `split at ${split}`).toBe("helloabcdefghijklmnopqrstuvwxyz");
      expect(decoder.done).toBe(true);
      expect(decoder.rest.toString()).toBe(split > encoded.length - 4 ? encoded.subarray(split).toString() : "NEXT");
    }
  });

  it("refuses a malformed size and data longer than its size", () => {
    expect(() => new ChunkedDecoder().decode(Buffer.from("zz\r\n"))).toThrow(/malformed chunk size/);
    expect(() => new ChunkedDecoder().decode(Buffer.from("2\r\nabc\r\n"))).toThrow(/longer than its size/);
  });
});

describe("PlainHttpGet", () => {
  it("reads an 8 MiB body in reads far larger than node:http's 64 KiB, and reuses the connection", async () => {
    const body = randomBytes(8 * MiB);
    const server = await scripted((socket) => socket.write(ok(body)));
    const get = client(server.port);
    for (let i = 0; i < 2; i++) {
      const res = await get.get("/bucket/key", headers(server.port));
      expect(res.status).toBe(200);
      expect(res.headers.etag).toBe('"abc"');
      const { data, chunks } = await readAll(res.body);
      expect(data.equals(body)).toBe(true);
      expect(Math.max(...chunks)).toBeGreaterThan(256 * 1024);
    }
    expect(server.requests.map((r) => r.connection)).toEqual([0, 0]);
    expect(server.requests[0]!.head).toMatch(/^GET \/bucket\/key HTTP\/1\.1\r\nhost: 127\.0\.0\.1:\d+\r\nx-test: 1$/);
  });

  it("after a large body, a small one on the same connection is read into buffers no larger than it needs", async () => {
    const large = randomBytes(8 * MiB);
    const small = randomBytes(64 * 1024);
    const server = await scripted((socket, { index }) => socket.write(ok(index === 0 ? large : small)));
    const get = client(server.port);
    await readAll((await get.get("/large", headers(server.port))).body);
    const backing: number[] = [];
    const res = await get.get("/small", headers(server.port));
    for await (const chunk of res.body as AsyncIterable<Buffer>) backing.push(chunk.buffer.byteLength);
    expect(server.connections).toHaveLength(1);
    // Each read's buffer is its own allocation (> 4 KiB: not from Node's shared pool).
    expect(Math.max(...backing)).toBeLessThanOrEqual(64 * 1024);
  });

  it("decodes a chunked body, skips a 100 Continue, and reuses the connection after both", async () => {
    const server = await scripted((socket, { index }) =>
      socket.write(index === 0 ? "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n" : "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\ncontent-length: 4\r\n\r\nnope"),
    );
    const get = client(server.port);
    const first = await get.get("/a", headers(server.port));
    expect((await readAll(first.body)).data.toString()).toBe("abcde");
    const second = await get.get("/b", headers(server.port));
    expect(second.status).toBe(404);
    expect((await readAll(second.body)).data.toString()).toBe("nope");
    expect(server.connections).toHaveLength(1);
  });

  it("opens a new connection after Connection: close, and reads a body framed by the end of the connection", async () => {
    const server = await scripted((socket, { index }) => {
      if (index === 0) socket.write(ok(Buffer.from("first"), "connection: close\r\n"));
      else socket.end("HTTP/1.1 200 OK\r\n\r\nuntil the end");
    });
    const get = client(server.port);
    expect((await readAll((await get.get("/a", headers(server.port))).body)).data.toString()).toBe("first");
    expect((await readAll((await get.get("/b", headers(server.port))).body)).data.toString()).toBe("until the end");
    expect(server.connections).toHaveLength(2);
  });

  it("fails a body cut short by the server, never ending it as if complete", async () => {
    const server = await scripted((socket) => {
      socket.write(Buffer.concat([Buffer.from("HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n"), randomBytes(300_000)]));
      setTimeout(() => socket.end(), 50);
    });
    const res = await client(server.port).get("/a", headers(server.port));
    await expect(readAll(res.body)).rejects.toMatchObject({ code: "ECONNRESET" });
  });

  it("sends a request again on a new connection when the pooled one was closed by the server, before or as it arrived", async () => {
    // Request 1 closes its connection right after the response (the server's idle timeout);
    // request 2 finds the next connection closed as it arrives, with no response at all.
    const server = await scripted((socket, { index }) => {
      if (index === 0) socket.write(ok(Buffer.from("one")), () => setTimeout(() => socket.destroy(), 20));
      else if (index === 2) socket.destroy();
      else socket.write(ok(Buffer.from(`n${index}`)));
    });
    const get = client(server.port);
    expect((await readAll((await get.get("/a", headers(server.port))).body)).data.toString()).toBe("one");
    await new Promise((r) => setTimeout(r, 100));
    expect((await readAll((await get.get("/b", headers(server.port))).body)).data.toString()).toBe("n1");
    expect((await readAll((await get.get("/c", headers(server.port))).body)).data.toString()).toBe("n3");
    expect(server.requests.map((r) => r.connection)).toEqual([0, 1, 1, 2]);
  });

  it("does not retry a new connection that closes without a response: the caller sees ECONNRESET", async () => {
    const server = await scripted((socket) => socket.destroy());
    await expect(client(server.port).get("/a", headers(server.port))).rejects.toMatchObject({ code: "ECONNRESET" });
    expect(server.requests).toHaveLength(1);
  });

  it("times out a silent server, before the head and in the middle of a body", async () => {
    const server = await scripted((socket, { index }) => {
      if (index > 0) socket.write("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc");
    });
    const get = client(server.port, { socketTimeoutMs: 300 });
    await expect(get.get("/silent", headers(server.port))).rejects.toMatchObject({ name: "TimeoutError" });
    const res = await get.get("/stalls", headers(server.port));
    await expect(readAll(res.body)).rejects.toMatchObject({ name: "TimeoutError" });
  });

  it("passes Node's error through when nothing listens", async () => {
    const started = Date.now();
    const get = new PlainHttpGet({ hostname: "127.0.0.1", port: 1, maxIdle: 1, connectionTimeoutMs: 500, socketTimeoutMs: 500 });
    await expect(get.get("/", { host: "x" })).rejects.toMatchObject({ code: "ECONNREFUSED" });
    expect(Date.now() - started).toBeLessThan(500);
  });

  it("ends the request and the body on abort, and the connection is not reused", async () => {
    const server = await scripted((socket, { index }) => {
      if (index === 0) socket.write("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nsome");
      else socket.write(ok(Buffer.from("fresh")));
    });
    const get = client(server.port);
    const controller = new AbortController();
    const res = await get.get("/a", headers(server.port), controller.signal);
    const reading = readAll(res.body);
    controller.abort(new Error("stop"));
    await expect(reading).rejects.toThrow("stop");
    await closed(server.connections[0]!);
    expect((await readAll((await get.get("/b", headers(server.port))).body)).data.toString()).toBe("fresh");
    expect(server.connections).toHaveLength(2);
  });

  it("closes the connection of a body dropped before its end", async () => {
    const server = await scripted((socket, { index }) => socket.write(index === 0 ? ok(randomBytes(4 * MiB)) : ok(Buffer.from("next"))));
    const get = client(server.port);
    const res = await get.get("/a", headers(server.port));
    res.body.destroy();
    await closed(server.connections[0]!);
    expect((await readAll((await get.get("/b", headers(server.port))).body)).data.toString()).toBe("next");
  });

  it("stops reading while the body's reader is behind: the server cannot push more than buffers hold", async () => {
    let written = 0;
    let blocked = false;
    const server = await scripted((socket) => {
      socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${256 * MiB}\r\n\r\n`);
      const chunk = Buffer.alloc(MiB);
      const push = () => {
        while (written < 256 * MiB) {
          written += chunk.length;
          if (!socket.write(chunk)) {
            blocked = true;
            socket.once("drain", push);
            return;
          }
        }
      };
      push();
    });
    const res = await client(server.port).get("/big", headers(server.port));
    await new Promise((r) => setTimeout(r, 500));
    // Our 2 MiB high-water mark plus what the kernel's socket buffers hold on both sides.
    expect(blocked).toBe(true);
    expect(written).toBeLessThan(48 * MiB);
    res.body.destroy();
  });

  it("refuses a response head that never ends", async () => {
    const server = await scripted((socket) => socket.write(`HTTP/1.1 200 OK\r\nx-long: ${"a".repeat(100 * 1024)}`));
    await expect(client(server.port).get("/a", headers(server.port))).rejects.toMatchObject({ code: "HPE_INVALID" });
  });

  it("refuses a header value with a line break before sending anything", async () => {
    const server = await scripted(() => undefined);
    await expect(client(server.port).get("/a", { host: "x", "x-bad": "a\r\nx-injected: 1" })).rejects.toThrow(/line break/);
    expect(server.requests).toHaveLength(0);
  });

  it("close() ends the idle connections", async () => {
    const server = await scripted((socket) => socket.write(ok(Buffer.from("x"))));
    const get = client(server.port);
    await readAll((await get.get("/a", headers(server.port))).body);
    const gone = closed(server.connections[0]!);
    get.close();
    await gone;
  });
});
