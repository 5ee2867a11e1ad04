/**
 * The blob strategy's Replicator: objects in the primary's S3 bucket, copied to each secondary's
 * bucket, with a SHA-256 of the full content on both sides. Built by definition.ts.
 */
import { HeadBucketCommand } from "@aws-sdk/client-s3";
import { classifyS3Error, ObjectMissingError } from "./s3-errors.ts";
import { sha256Object } from "./s3-read.ts";
import {
  InvalidLocationError,
  MissingCopyError,
  MissingOnPrimaryError,
  type ChecksumResult,
  type ModelRecord,
  type Replicator,
  type ReplicatorContext,
  type SyncResult,
} from "../replicator.ts";
import type { BlobEndpoints, BlobSettings, BlobStoreEndpoint } from "./definition.ts";
import { copyObject, deleteObject } from "./copy.ts";
import { compileObjectKeySource, InvalidObjectKeyError, type ObjectKeySource } from "./object-keys.ts";
import { createObjectStore, type ObjectStore } from "./object-store.ts";

type BlobContext = ReplicatorContext<BlobSettings, BlobEndpoints>;

function storeFor(endpoint: BlobStoreEndpoint, role: "primary" | "secondary", ctx: BlobContext): ObjectStore {
  if (endpoint.kind !== "s3") throw new Error(`no blob store of kind ${String(endpoint.kind)}`);
  return createObjectStore(
    { endpoint: endpoint.endpoint, region: endpoint.region, bucket: endpoint.bucket, prefix: endpoint.prefix, forcePathStyle: endpoint.forcePathStyle },
    { accessKeyId: endpoint.accessKeyId, secretAccessKey: endpoint.secretAccessKey },
    role,
    { logger: ctx.log },
  );
}

export class BlobReplicator implements Replicator {
  readonly columns: readonly string[];
  private readonly keys: ObjectKeySource;
  private readonly primary: ObjectStore;
  private readonly secondary?: ObjectStore;

  constructor(ctx: BlobContext) {
    this.keys = compileObjectKeySource(ctx.type.settings.objectKey);
    this.columns = this.keys.columns;
    this.primary = storeFor(ctx.endpoints.primary, "primary", ctx);
    if (ctx.role === "secondary") {
      if (!ctx.endpoints.secondary) throw new Error("the blob strategy needs this secondary's object storage");
      this.secondary = storeFor(ctx.endpoints.secondary, "secondary", ctx);
    }
  }

  private keyOf(record: ModelRecord): string {
    try {
      return this.keys.keyFor(record.columns);
    } catch (err) {
      if (err instanceof InvalidObjectKeyError) throw new InvalidLocationError(err.message);
      throw err;
    }
  }

  private requireSecondary(): ObjectStore {
    if (!this.secondary) throw new Error("this operation runs on a secondary site");
    return this.secondary;
  }

  async preflight(signal: AbortSignal): Promise<void> {
    for (const store of [this.primary, this.secondary].filter((s): s is ObjectStore => !!s)) {
      try {
        await store.client.send(new HeadBucketCommand({ Bucket: store.bucket }), { abortSignal: signal });
      } catch (err) {
        // HeadBucket has no body, so a missing bucket is only a 404 status (named "NotFound").
        const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
        const kind = status === 404 ? "missing-bucket" : classifyS3Error(err);
        const problem =
          kind === "missing-bucket" ? "does not exist"
          : kind === "bad-credentials" ? "rejects the credentials (check the Secret's AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
          : kind === "unreachable" ? "cannot be reached"
          : `cannot be used (${(err as Error).name})`;
        throw new Error(`the ${store.role}'s bucket ${store.bucket} ${problem}`, { cause: err });
      }
    }
  }

  async checksumPrimary(record: ModelRecord, signal: AbortSignal): Promise<ChecksumResult> {
    try {
      const { checksum, bytes } = await sha256Object(this.primary, this.keyOf(record), { signal });
      return { checksum, bytes };
    } catch (err) {
      if (err instanceof ObjectMissingError) throw new MissingOnPrimaryError(err.message);
      throw err;
    }
  }

  async sync(record: ModelRecord, signal: AbortSignal): Promise<SyncResult> {
    const key = this.keyOf(record);
    try {
      const result = await copyObject(this.primary, this.requireSecondary(), key, { signal });
      return { missingOnPrimary: false, bytes: result.bytes, location: key };
    } catch (err) {
      if (err instanceof ObjectMissingError) throw new MissingOnPrimaryError(err.message);
      throw err;
    }
  }

  async checksumSecondary(record: ModelRecord, signal: AbortSignal): Promise<ChecksumResult> {
    try {
      const { checksum, bytes } = await sha256Object(this.requireSecondary(), this.keyOf(record), { signal });
      return { checksum, bytes };
    } catch (err) {
      if (err instanceof ObjectMissingError) throw new MissingCopyError(err.message);
      throw err;
    }
  }

  async removeCopy(location: string): Promise<void> {
    await deleteObject(this.requireSecondary(), location);
  }

  async close(): Promise<void> {
    this.primary.client.destroy();
    this.secondary?.client.destroy();
  }
}
