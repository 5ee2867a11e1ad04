/**
 * A TCP proxy on 127.0.0.1 in front of another local server, able to cut every open connection
 * at once: how a test kills the operator's watch connections without touching the API server.
 */
import { createConnection, createServer, type Socket } from "node:net";

export interface TcpProxy {
  port: number;
  /** Destroys every proxied connection; new ones are still accepted. */
  cutAll(): number;
  close(): Promise<void>;
}

export function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const pairs = new Set<[Socket, Socket]>();
  const server = createServer((client) => {
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
    client.pipe(upstream);
    upstream.pipe(client);
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const addr = server.address();
      resolve({
        port: typeof addr === "object" && addr ? addr.port : 0,
        cutAll() {
          const n = pairs.size;
          for (const [a, b] of [...pairs]) {
            a.destroy();
            b.destroy();
          }
          pairs.clear();
          return n;
        },
        close: () =>
          new Promise((r) => {
            for (const [a, b] of pairs) {
              a.destroy();
              b.destroy();
            }
            server.close(() => r());
          }),
      });
    });
  });
}
