/**
 * An HTTP proxy on 127.0.0.1 in front of a MinIO server, for what a healthy server will not do on
 * demand: answer with an error (503 SlowDown) before forwarding, flip a byte of a request body on
 * the way, hold a request without answering, deliver a GET's answer late (as read when it was
 * asked), or refuse S3's additional checksums as some
 * S3-compatible stores do; and it counts the PUT body bytes it forwarded and keeps each PUT's
 * headers. Requests are forwarded unchanged, Host header included, so their signatures still verify.
 */
import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Transform } from "node:stream";

export interface S3Proxy {
  endpoint: string;
  /** Method of every request received, in order. */
  requests: string[];
  /** The next `count` requests are answered `status` with S3's error `code`, not forwarded. */
  failNext(count: number, status: number, code: string): void;
  /**
   * Flip the byte at this offset of every PUT body from now on (as sent, aws-chunked framing
   * included); a negative offset counts from the end of a body with a Content-Length.
   */
  corruptPutByte: number | undefined;
  /** PUT body bytes forwarded to the server so far. */
  putBytes: number;
  /** Leave PUT requests unanswered from now on (the client sees no response). */
  holdPuts: boolean;
  /**
   * From now on, forward each GET at once and read the server's answer in full, but give it to
   * the client only once the returned function is called: the client then gets the object as it
   * was when it asked, however much later (a slow reader whose source has changed since).
   */
  holdGets(): () => void;
  /** GET answers read in full from the server and held from their client so far. */
  heldGets: number;
  /**
   * Answer like a store without S3's additional checksums (Backblaze B2's wording): a request with
   * an x-amz-checksum-* or x-amz-trailer header, or an aws-chunked body, gets 400 InvalidArgument.
   */
  refuseChecksums: boolean;
  /** The headers of every PUT received, in order. */
  putHeaders: IncomingHttpHeaders[];
  close(): Promise<void>;
}

export async function startS3Proxy(target: string): Promise<S3Proxy> {
  const upstream = new URL(target);
  const failures: { status: number; code: string; message?: string }[] = [];
  const held: IncomingMessage[] = [];
  let getHold: Promise<void> | undefined;
  const proxy: S3Proxy = {
    endpoint: "",
    requests: [],
    failNext: (count, status, code) => failures.push(...Array.from({ length: count }, () => ({ status, code }))),
    corruptPutByte: undefined,
    putBytes: 0,
    holdPuts: false,
    holdGets: () => {
      let release!: () => void;
      const hold = new Promise<void>((resolve) => (release = resolve));
      getHold = hold;
      return () => {
        if (getHold === hold) getHold = undefined;
        release();
      };
    },
    heldGets: 0,
    refuseChecksums: false,
    putHeaders: [],
    close: () =>
      new Promise<void>((resolve) => {
        for (const req of held) req.socket.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const server: Server = createServer((req, res) => {
    proxy.requests.push(req.method!);
    if (req.method === "PUT") proxy.putHeaders.push(req.headers);
    const unsupported = Object.keys(req.headers).find((name) => name.startsWith("x-amz-checksum-") || name === "x-amz-trailer");
    const failure =
      failures.shift() ??
      (proxy.refuseChecksums && (unsupported || /aws-chunked/.test(req.headers["content-encoding"] ?? ""))
        ? { status: 400, code: "InvalidArgument", message: `Unsupported header '${unsupported ?? "content-encoding"}' received for this API call.` }
        : undefined);
    if (failure) {
      req.resume();
      res.writeHead(failure.status, { "content-type": "application/xml" });
      res.end(`<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${failure.code}</Code><Message>${failure.message ?? "injected by the test proxy"}</Message><RequestId>proxy</RequestId></Error>`);
      return;
    }
    if (req.method === "PUT" && proxy.holdPuts) {
      held.push(req);
      return;
    }
    const hold = req.method === "GET" ? getHold : undefined;
    const forward = request({ hostname: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      if (hold) {
        // Read the whole answer now, so what the client gets later is what the server had when asked.
        const chunks: Buffer[] = [];
        answer.on("data", (chunk: Buffer) => chunks.push(chunk));
        answer.on("error", () => res.destroy());
        answer.on("end", () => {
          proxy.heldGets++;
          void hold.then(() => {
            res.writeHead(answer.statusCode!, answer.headers);
            res.end(Buffer.concat(chunks));
          });
        });
        return;
      }
      res.writeHead(answer.statusCode!, answer.headers);
      answer.pipe(res);
    });
    forward.on("error", () => res.destroy());
    const length = Number(req.headers["content-length"]);
    const at = req.method !== "PUT" || proxy.corruptPutByte === undefined ? -1 : proxy.corruptPutByte < 0 ? length + proxy.corruptPutByte : proxy.corruptPutByte;
    let offset = 0;
    const body = req.pipe(
      new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          if (at >= offset && at < offset + chunk.length) {
            chunk = Buffer.from(chunk);
            chunk[at - offset] = chunk[at - offset]! ^ 0xff;
          }
          offset += chunk.length;
          if (req.method === "PUT") proxy.putBytes += chunk.length;
          callback(null, chunk);
        },
      }),
    );
    body.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  proxy.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return proxy;
}
