/**
 * A TCP proxy on 127.0.0.1 in front of another local server that a test can cut, stop, start again
 * on the same port, and slow down: how the operator test kills the manager's watch connections, and
 * how the fault suite makes a server (PostgreSQL, MinIO) "go away" mid-run or makes a copy last long
 * enough to be interfered with, without touching the shared servers other tests use.
 */
import { createConnection, createServer, type Server, type Socket } from "node:net";

export interface FaultProxy {
  port: number;
  /** Rewrites a URL's host:port to go through the proxy. */
  url(target: string): string;
  /** Destroys every proxied connection (new ones are still accepted); returns how many there were. */
  cutAll(): number;
  /** Refuses new connections and destroys open ones, as a stopped server would. */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
  /** Limits each direction of each connection to about `bytesPerSecond` (0: unlimited). */
  throttle(bytesPerSecond: number): void;
  close(): Promise<void>;
}

export async function startFaultProxy(target: { host: string; port: number }): Promise<FaultProxy> {
  const pairs = new Set<[Socket, Socket]>();
  let rate = 0;
  let server: Server | undefined;
  let port = 0;

  /** Forwards `from` → `to`, pausing `from` so the rate stays near the limit. */
  const pump = (from: Socket, to: Socket) => {
    from.on("data", (chunk: Buffer) => {
      const ok = to.write(chunk);
      if (rate > 0) {
        from.pause();
        setTimeout(() => from.resume(), Math.max(1, Math.round((chunk.length / rate) * 1000)));
      } else if (!ok) {
        from.pause();
        to.once("drain", () => from.resume());
      }
    });
    from.on("end", () => to.end());
  };

  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const s = createServer((client) => {
        const upstream = createConnection(target);
        const pair: [Socket, Socket] = [client, upstream];
        pairs.add(pair);
        const drop = () => {
          pairs.delete(pair);
          client.destroy();
          upstream.destroy();
        };
        client.on("error", drop).on("close", drop);
        upstream.on("error", drop).on("close", drop);
        pump(client, upstream);
        pump(upstream, client);
      });
      s.once("error", reject);
      s.listen(port, "127.0.0.1", () => {
        const addr = s.address();
        port = typeof addr === "object" && addr ? addr.port : port;
        server = s;
        resolve();
      });
    });

  const cutAll = () => {
    const n = pairs.size;
    for (const [a, b] of [...pairs]) {
      a.destroy();
      b.destroy();
    }
    pairs.clear();
    return n;
  };

  const stop = () =>
    new Promise<void>((resolve) => {
      const s = server;
      server = undefined;
      cutAll();
      if (!s) return resolve();
      s.close(() => resolve());
    });

  await listen();
  return {
    get port() {
      return port;
    },
    url(t: string) {
      const u = new URL(t);
      u.hostname = "127.0.0.1";
      u.port = String(port);
      return u.toString().replace(/\/$/, t.endsWith("/") ? "/" : "");
    },
    cutAll,
    stop,
    async start() {
      if (server) return;
      // The port may linger for a moment after close; retry briefly.
      for (let i = 0; ; i++) {
        try {
          return await listen();
        } catch (err) {
          if (i >= 20) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    },
    throttle(bytesPerSecond: number) {
      rate = bytesPerSecond;
    },
    close: stop,
  };
}

/** host and port of a URL (postgres://, http://). */
export function hostPort(url: string): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port) };
}
