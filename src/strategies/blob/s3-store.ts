/**
 * A site's S3 bucket as a BlobSource / BlobTarget (files/store.ts), so that the Replicator copies
 * between buckets and directories through one interface. The write paths refuse a primary's
 * bucket (copy.ts checks the store's role). Between two buckets the Replicator still calls
 * copyObject directly, which also carries the object's content headers.
 */
import { HeadBucketCommand } from "@aws-sdk/client-s3";
import type { Readable } from "node:stream";
import { sha256OfStream } from "../../util/sha256-meter.ts";
import { deleteObject, writeObject } from "./copy.ts";
import { BlobMissingError, type BlobChecksum, type BlobReadStream, type BlobTarget } from "./files/store.ts";
import { fullObjectKey } from "./object-keys.ts";
import type { ObjectStore } from "./object-store.ts";
import { classifyS3Error, ObjectMissingError } from "./s3-errors.ts";
import { openObject, sha256Object } from "./s3-read.ts";

export class S3BlobStore implements BlobTarget {
  readonly store: ObjectStore;

  constructor(store: ObjectStore) {
    this.store = store;
  }

  describe(): string {
    return `the ${this.store.role}'s bucket ${this.store.bucket}`;
  }

  async probe(signal?: AbortSignal): Promise<void> {
    const { client, bucket, role } = this.store;
    try {
      await client.send(new HeadBucketCommand({ Bucket: bucket }), { abortSignal: signal });
    } catch (err) {
      // HeadBucket has no body, so a missing bucket is only a 404 status (named "NotFound").
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      const kind = status === 404 ? "missing-bucket" : classifyS3Error(err);
      const problem =
        kind === "missing-bucket" ? "does not exist"
        : kind === "bad-credentials" ? "rejects the credentials (check the Secret's AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
        : kind === "unreachable" ? "cannot be reached"
        : `cannot be used (${(err as Error).name})`;
      throw new Error(`the ${role}'s bucket ${bucket} ${problem}`, { cause: err });
    }
  }

  async open(key: string, signal?: AbortSignal): Promise<BlobReadStream> {
    try {
      const object = await openObject(this.store, fullObjectKey(this.store.prefix, key), signal);
      return { body: object.body, length: object.length };
    } catch (err) {
      if (err instanceof ObjectMissingError) throw new BlobMissingError(this.describe(), key, { cause: err });
      throw err;
    }
  }

  async write(key: string, body: Readable, length: number, signal?: AbortSignal): Promise<BlobChecksum> {
    const { checksum, bytes } = await writeObject(this.store, key, body, length, signal ? { signal } : {});
    return { checksum, bytes };
  }

  async remove(key: string): Promise<void> {
    await deleteObject(this.store, key);
  }

  async sha256(key: string, signal?: AbortSignal): Promise<BlobChecksum> {
    try {
      const { checksum, bytes } = await sha256Object(this.store, key, signal ? { signal } : {});
      return { checksum, bytes };
    } catch (err) {
      if (err instanceof ObjectMissingError) throw new BlobMissingError(this.describe(), key, { cause: err });
      throw err;
    }
  }

  close(): void {
    this.store.client.destroy();
  }
}

/** Reads the blob at `key` once and returns its SHA-256 and length. */
export async function sha256Of(source: { open: BlobTarget["open"]; describe(): string }, key: string, signal?: AbortSignal): Promise<BlobChecksum> {
  const { body, length } = await source.open(key, signal);
  return sha256OfStream(body, length, `${key} in ${source.describe()}`, signal);
}
