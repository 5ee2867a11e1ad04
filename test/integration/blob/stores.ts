/**
 * Object stores on the shared MinIO servers for blob tests. Each test gets its own key prefix so
 * that files run in parallel on the same buckets.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import type { ClientRequest } from "node:http";
import { GetObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import { inject, onTestFinished } from "vitest";
import type { LocalEnvironmentInfo } from "../../../hack/localenv/index.ts";
import { createObjectStore, type ObjectStore, type ObjectStoreOptions } from "../../../src/strategies/blob/object-store.ts";
import { requestStartChannel } from "../../../src/strategies/blob/plain-http-get.ts";

export type S3Info = NonNullable<LocalEnvironmentInfo["s3"]>["primary"];

export function s3Env(): { primary: S3Info; secondary: S3Info } {
  const s3 = inject("env").s3;
  if (!s3) throw new Error("the integration environment was started without MinIO");
  return s3;
}

export function storeOn(info: S3Info, role: ObjectStore["role"], prefix: string, options: ObjectStoreOptions = {}): ObjectStore {
  return createObjectStore(
    { endpoint: info.endpoint, region: info.region, bucket: info.bucket, prefix, forcePathStyle: true },
    { accessKeyId: info.accessKeyId, secretAccessKey: info.secretAccessKey },
    role,
    options,
  );
}

/** A primary and a secondary store under a fresh prefix, e.g. `blob-test/<uuid>/`. */
export function testStores(options: ObjectStoreOptions = {}): { src: ObjectStore; dst: ObjectStore; prefix: string; destroy(): void } {
  const { primary, secondary } = s3Env();
  const prefix = `blob-test/${randomUUID()}/`;
  const src = storeOn(primary, "primary", prefix, options);
  const dst = storeOn(secondary, "secondary", prefix, options);
  return {
    src,
    dst,
    prefix,
    destroy() {
      src.client.destroy();
      dst.client.destroy();
    },
  };
}

/** Writes an object under the store's prefix with its own client, bypassing the role check. */
export async function seed(store: ObjectStore, key: string, body: Buffer | string): Promise<void> {
  await store.client.send(new PutObjectCommand({ Bucket: store.bucket, Key: store.prefix + key, Body: body }));
}

export function randomBody(bytes: number): Buffer {
  return randomBytes(bytes);
}

/** The object's bytes, or undefined when there is no such key. */
export async function read(store: ObjectStore, key: string): Promise<Buffer | undefined> {
  try {
    const r = await store.client.send(new GetObjectCommand({ Bucket: store.bucket, Key: store.prefix + key }));
    return Buffer.from(await r.Body!.transformToByteArray());
  } catch (err) {
    if ((err as { name?: string }).name === "NoSuchKey") return undefined;
    throw err;
  }
}

/** Every key under the store's prefix, prefix removed. */
export async function listKeys(store: ObjectStore): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await store.client.send(new ListObjectsV2Command({ Bucket: store.bucket, Prefix: store.prefix, ContinuationToken: token }));
    for (const o of page.Contents ?? []) keys.push(o.Key!.slice(store.prefix.length));
    token = page.NextContinuationToken;
  } while (token);
  return keys.sort();
}

/**
 * Multipart uploads of `key` begun and neither completed nor aborted. MinIO lists uploads only
 * for an exact object name, not for a prefix, so the key must be given.
 */
export async function pendingUploads(store: ObjectStore, key: string): Promise<string[]> {
  const r = await store.client.send(new ListMultipartUploadsCommand({ Bucket: store.bucket, Prefix: store.prefix + key }));
  return (r.Uploads ?? []).map((u) => u.UploadId!);
}

const PLAIN_GET_START = requestStartChannel.name as string;

/**
 * Calls `onRequest` for every HTTP request the store sends from now until the end of the test,
 * whichever of its clients sends it: the SDK and the lean path share the store's agent, and
 * GetObject on a plain-HTTP endpoint goes over the lean path's PlainHttpGet. Both report each
 * request they start on a diagnostics channel; this keeps those of this store.
 */
function onStoreRequests(store: ObjectStore, onRequest: (method: string, headers: Record<string, unknown>) => void): void {
  const onStart = (message: unknown) => {
    const request = (message as { request: ClientRequest & { agent?: unknown } }).request;
    if (request.agent === store.lean.agent) onRequest(request.method, request.getHeaders());
  };
  const onPlainStart = (message: unknown) => {
    const { client, method, headers } = message as { client: unknown; method: string; headers: Record<string, unknown> };
    if (client === store.lean.plainGet) onRequest(method, headers);
  };
  subscribe("http.client.request.start", onStart);
  subscribe(PLAIN_GET_START, onPlainStart);
  onTestFinished(() => {
    unsubscribe("http.client.request.start", onStart);
    unsubscribe(PLAIN_GET_START, onPlainStart);
  });
}

/**
 * Counts the HTTP requests the store sends from now until the end of the test, by method (GET,
 * HEAD, PUT...), whichever of its clients sends them. Retried attempts count each.
 */
export function countRequests(store: ObjectStore): Map<string, number> {
  const counts = new Map<string, number>();
  onStoreRequests(store, (method) => counts.set(method, (counts.get(method) ?? 0) + 1));
  return counts;
}

/**
 * The method and headers of every HTTP request the store sends from now until the end of the
 * test, as countRequests sees them: Node reports a request once its body has been ended, so a
 * request abandoned mid-body is not in the list. The SDK's requests carry its user agent; the
 * lean path's none.
 */
export function watchRequests(store: ObjectStore): { method: string; headers: Record<string, unknown> }[] {
  const seen: { method: string; headers: Record<string, unknown> }[] = [];
  onStoreRequests(store, (method, headers) => seen.push({ method, headers }));
  return seen;
}
