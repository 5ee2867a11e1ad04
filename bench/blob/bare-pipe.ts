/**
 * The floor of a copy on our transport: a GetObject's body, read as the product reads it on a
 * plain-HTTP endpoint (PlainHttpGet, socket reads up to 1 MiB), piped into a PutObject with plain
 * `node:http`, nothing hashed in the process, no aws-chunked framing, no checksum of ours. The
 * store still checks the write the way rclone's does: `Content-MD5` is the source's ETag (an MD5
 * for the benchmark's single-part objects), so a corrupt write is refused and nothing comes for
 * free.
 *
 * Not the product (the sync keeps a store-checked SHA-256 of every copy so a first verification
 * reads no bytes): it measures what moving the bytes costs by itself, which bounds what any change
 * to the rest of our code could gain against rclone.
 */
import { Agent, request, type IncomingMessage, type OutgoingHttpHeaders } from "node:http";
import { SignatureV4 } from "@smithy/signature-v4";
import { cachedKeySha256 } from "../../src/strategies/blob/s3-lean.ts";
import { PlainHttpGet } from "../../src/strategies/blob/plain-http-get.ts";
import type { Readable } from "node:stream";

export interface BareEndpoint {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
}

export class BarePipe {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 64 });
  private readonly src: Side;
  private readonly dst: Side;
  /** The source's GETs, as the product reads a plain-HTTP endpoint. */
  private readonly getter: PlainHttpGet;

  constructor(src: BareEndpoint & { bucket: string }, dst: BareEndpoint & { bucket: string }) {
    this.src = side(src);
    this.dst = side(dst);
    this.getter = new PlainHttpGet({ hostname: this.src.url.hostname, port: Number(this.src.url.port), maxIdle: 64, connectionTimeoutMs: 10_000, socketTimeoutMs: 60_000 });
  }

  async copy(key: string): Promise<void> {
    const path = `/${this.src.bucket}/${key}`;
    const res = await this.getter.get(path, await this.signed(this.src, "GET", path, {}));
    if (res.status !== 200) {
      res.body.destroy();
      throw new Error(`bare GET ${key}: HTTP ${res.status}`);
    }
    const etag = String(res.headers.etag ?? "").replace(/"/g, "");
    if (!/^[0-9a-f]{32}$/.test(etag)) throw new Error(`bare GET ${key}: ETag ${etag} is not an MD5`);
    const headers = { "content-length": String(res.headers["content-length"]), "content-md5": Buffer.from(etag, "hex").toString("base64") };
    const put = await this.send(this.dst, "PUT", key, headers, res.body);
    put.resume();
    if (put.statusCode !== 200) throw new Error(`bare PUT ${key}: HTTP ${put.statusCode}`);
  }

  close(): void {
    this.agent.destroy();
    this.getter.close();
  }

  private async signed(to: Side, method: string, path: string, headers: Record<string, string>): Promise<OutgoingHttpHeaders> {
    const signed = await to.signer.sign({
      method,
      protocol: "http:",
      hostname: to.url.hostname,
      port: Number(to.url.port),
      path,
      query: {},
      headers: { ...headers, host: to.url.host, "x-amz-content-sha256": "UNSIGNED-PAYLOAD" },
    });
    return signed.headers as OutgoingHttpHeaders;
  }

  private async send(to: Side, method: string, key: string, headers: Record<string, string>, body: Readable): Promise<IncomingMessage> {
    const path = `/${to.bucket}/${key}`;
    const signed = await this.signed(to, method, path, headers);
    return new Promise((resolve, reject) => {
      const req = request({ agent: this.agent, method, hostname: to.url.hostname, port: to.url.port, path, headers: signed });
      req.once("error", reject).once("response", resolve);
      body.once("error", reject).pipe(req);
    });
  }
}

interface Side {
  url: URL;
  bucket: string;
  signer: SignatureV4;
}

function side(e: BareEndpoint & { bucket: string }): Side {
  const credentials = { accessKeyId: e.accessKeyId, secretAccessKey: e.secretAccessKey };
  return { url: new URL(e.endpoint), bucket: e.bucket, signer: new SignatureV4({ service: "s3", region: "us-east-1", credentials, sha256: cachedKeySha256(), uriEscapePath: false }) };
}
