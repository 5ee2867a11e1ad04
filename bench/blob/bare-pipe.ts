/**
 * The floor of a copy in Node: a GetObject's body piped into a PutObject with plain `node:http`,
 * nothing hashed in the process, no aws-chunked framing, no checksum of ours. The store still
 * checks the write the way rclone's does: `Content-MD5` is the source's ETag (an MD5 for the
 * benchmark's single-part objects), so a corrupt write is refused and nothing comes for free.
 *
 * Not the product (the sync keeps a store-checked SHA-256 of every copy so a first verification
 * reads no bytes): it measures what moving the bytes through Node's HTTP client costs by itself,
 * which bounds what any change to our own code could gain against rclone.
 */
import { Agent, request, type IncomingMessage, type OutgoingHttpHeaders } from "node:http";
import { SignatureV4 } from "@smithy/signature-v4";
import { cachedKeySha256 } from "../../src/strategies/blob/s3-lean.ts";

export interface BareEndpoint {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
}

export class BarePipe {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 64 });
  private readonly src: Side;
  private readonly dst: Side;

  constructor(src: BareEndpoint & { bucket: string }, dst: BareEndpoint & { bucket: string }) {
    this.src = side(src);
    this.dst = side(dst);
  }

  async copy(key: string): Promise<void> {
    const res = await this.send(this.src, "GET", key, {});
    if (res.statusCode !== 200) throw new Error(`bare GET ${key}: HTTP ${res.statusCode}`);
    const etag = String(res.headers.etag ?? "").replace(/"/g, "");
    if (!/^[0-9a-f]{32}$/.test(etag)) throw new Error(`bare GET ${key}: ETag ${etag} is not an MD5`);
    const headers = { "content-length": String(res.headers["content-length"]), "content-md5": Buffer.from(etag, "hex").toString("base64") };
    const put = await this.send(this.dst, "PUT", key, headers, res);
    put.resume();
    if (put.statusCode !== 200) throw new Error(`bare PUT ${key}: HTTP ${put.statusCode}`);
  }

  close(): void {
    this.agent.destroy();
  }

  private async send(to: Side, method: string, key: string, headers: Record<string, string>, body?: IncomingMessage): Promise<IncomingMessage> {
    const path = `/${to.bucket}/${key}`;
    const signed = await to.signer.sign({
      method,
      protocol: "http:",
      hostname: to.url.hostname,
      port: Number(to.url.port),
      path,
      query: {},
      headers: { ...headers, host: to.url.host, "x-amz-content-sha256": "UNSIGNED-PAYLOAD" },
    });
    return new Promise((resolve, reject) => {
      const req = request({ agent: this.agent, method, hostname: to.url.hostname, port: to.url.port, path, headers: signed.headers as OutgoingHttpHeaders });
      req.once("error", reject).once("response", resolve);
      if (body) body.once("error", reject).pipe(req);
      else req.end();
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
