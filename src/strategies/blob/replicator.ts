/**
 * The blob strategy's Replicator: each record's blob is read from the primary's store (a bucket,
 * a directory, or the primary's retrieval server) and written to the secondary's (a bucket or a
 * directory), with a SHA-256 of the full content on both sides. Which store a record uses comes
 * from the type's settings (settings.ts); the copy itself is source.open → target.write, or
 * copyObject between two buckets (streamed, multipart for large objects, one hash while copying).
 *
 * The primary's stores are BlobSources only (FileSource has no write or remove), so nothing here
 * can change primary data. Errors are mapped by class: a blob that is surely absent becomes
 * MissingOnPrimaryError / MissingCopyError; a refused key InvalidLocationError; everything else
 * (refused credentials, an unavailable volume, network failures) stays an ordinary failure that
 * the row retries with backoff.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { createObjectStore } from "./object-store.ts";
import {
  InvalidLocationError,
  MissingCopyError,
  MissingOnPrimaryError,
  type ChecksumOptions,
  type ChecksumResult,
  type ModelRecord,
  type PreflightOptions,
  type Replicator,
  type ReplicatorContext,
  type SyncResult,
} from "../replicator.ts";
import { copyObject } from "./copy.ts";
import type { BlobEndpoints, S3StoreEndpoint } from "./endpoints.ts";
import { FileSource, FileStore } from "./files/file-store.ts";
import { InvalidBlobKeyError } from "./files/keys.ts";
import { RetrievalSource } from "./files/retrieval-source.ts";
import { BlobMissingError, CredentialsRefusedError, StoreUnreachableError, type BlobSource, type BlobTarget } from "./files/store.ts";
import { formatCopyLocation, parseCopyLocation } from "./locations.ts";
import { compileObjectKeySource, InvalidObjectKeyError, type ObjectKeySource } from "./object-keys.ts";
import { ObjectMissingError } from "./s3-errors.ts";
import { storedSha256 } from "./s3-read.ts";
import { S3BlobStore, sha256Of } from "./s3-store.ts";
import { recordPrimaryStore, recordSecondaryStore, STORE_KINDS, UnknownStoreValueError, type BlobSettings, type StoreKind } from "./settings.ts";

type BlobContext = ReplicatorContext<BlobSettings, BlobEndpoints>;

function s3Store(endpoint: S3StoreEndpoint, role: "primary" | "secondary", ctx: BlobContext): S3BlobStore {
  return new S3BlobStore(
    createObjectStore(
      { endpoint: endpoint.endpoint, region: endpoint.region, bucket: endpoint.bucket, prefix: endpoint.prefix, forcePathStyle: endpoint.forcePathStyle, uploadChecksum: endpoint.uploadChecksum },
      { accessKeyId: endpoint.accessKeyId, secretAccessKey: endpoint.secretAccessKey },
      role,
      { logger: ctx.log },
    ),
  );
}

/** The Replicator's error for a store's error; `side` says whose data was missing. */
function mapped(err: unknown, side: "primary" | "secondary"): unknown {
  if (err instanceof BlobMissingError || err instanceof ObjectMissingError) {
    // A bucket's answer keeps S3's own wording (bucket, key and site).
    const message = err.cause instanceof ObjectMissingError ? err.cause.message : err.message;
    return side === "primary" ? new MissingOnPrimaryError(message, { cause: err }) : new MissingCopyError(message, { cause: err });
  }
  if (err instanceof InvalidBlobKeyError || err instanceof InvalidObjectKeyError || err instanceof UnknownStoreValueError) return new InvalidLocationError(err.message, { cause: err });
  return err;
}

/**
 * Age after which a temporary file on a secondary volume is a crash's leftover: a write in progress
 * moves the file's mtime with every chunk, and no write outlives its worker run (--max-run, 10 minutes
 * by default).
 */
const STALE_TEMP_FILE_MS = 2 * 60 * 60_000;

export class BlobReplicator implements Replicator {
  readonly columns: readonly string[];
  private readonly settings: BlobSettings;
  private readonly keys: ObjectKeySource;
  private readonly primary: Partial<Record<StoreKind, BlobSource>> = {};
  private readonly secondary?: Partial<Record<StoreKind, BlobTarget>>;
  /** The secondary's volume, when it keeps copies on one (the only store with leftovers to clean). */
  private readonly secondaryVolume?: FileStore;
  private readonly closers: (() => void)[] = [];
  private readonly log: BlobContext["log"];

  constructor(ctx: BlobContext) {
    this.settings = ctx.type.settings;
    this.keys = compileObjectKeySource(this.settings.objectKey);
    const storeColumn = this.settings.storeColumn;
    this.columns = storeColumn && !this.keys.columns.includes(storeColumn) ? [...this.keys.columns, storeColumn] : this.keys.columns;
    this.log = ctx.log;
    const { primary, secondary } = ctx.endpoints;
    if (primary.ObjectStorage) this.primary.ObjectStorage = this.closing(s3Store(primary.ObjectStorage, "primary", ctx));
    if (primary.FileStorage?.kind === "files") this.primary.FileStorage = new FileSource(primary.FileStorage.root);
    if (primary.FileStorage?.kind === "retrieval") {
      const { url, site, key, ca } = primary.FileStorage;
      this.primary.FileStorage = this.closing(new RetrievalSource({ url, site, secretKey: key, ...(ca ? { ca } : {}) }));
    }
    if (ctx.role === "secondary") {
      if (!secondary) throw new Error("the blob strategy needs this secondary's stores");
      this.secondary = {};
      if (secondary.ObjectStorage) this.secondary.ObjectStorage = this.closing(s3Store(secondary.ObjectStorage, "secondary", ctx));
      if (secondary.FileStorage) this.secondary.FileStorage = this.secondaryVolume = new FileStore(secondary.FileStorage.root);
    }
  }

  private closing<T extends { close(): void }>(store: T): T {
    this.closers.push(() => store.close());
    return store;
  }

  /** The record's key and the stores it lives in on each side. */
  private locate(record: ModelRecord): { key: string; kind: StoreKind; source: BlobSource; copyKind: StoreKind } {
    try {
      const key = this.keys.keyFor(record.columns);
      const kind = recordPrimaryStore(this.settings, record.columns);
      const source = this.primary[kind];
      if (!source) throw new Error(`record ${record.id} is in the primary's ${kind}, which this worker was not given`);
      return { key, kind, source, copyKind: recordSecondaryStore(this.settings, kind) };
    } catch (err) {
      throw mapped(err, "primary");
    }
  }

  private target(kind: StoreKind): BlobTarget {
    const target = this.secondary?.[kind];
    if (!this.secondary) throw new Error("this operation runs on a secondary site");
    if (!target) throw new Error(`this secondary has no ${kind} store for this type`);
    return target;
  }

  async preflight(signal: AbortSignal, options: PreflightOptions = {}): Promise<void> {
    const stores: BlobSource[] = [...STORE_KINDS.map((k) => this.primary[k]), ...STORE_KINDS.map((k) => this.secondary?.[k])].filter((s): s is BlobSource => !!s);
    const deadline = Date.now() + (options.waitForUnreachableMs ?? 0);
    for (const store of stores) await this.probeStore(store, signal, deadline);
  }

  /** Probes one store, waiting until `deadline` for one that does not answer yet. */
  private async probeStore(store: BlobSource, signal: AbortSignal, deadline: number): Promise<void> {
    for (let waited = false; ; waited = true) {
      try {
        await store.probe(signal);
        if (waited) this.log.info("the primary's retrieval server answers");
        return;
      } catch (err) {
        // Refused credentials fail each row with a backoff and a message on the row (a rotated
        // key takes a minute to reach the server); they are never read as missing data.
        if (err instanceof CredentialsRefusedError) {
          this.log.warn({ err: err.message }, "the primary's retrieval server refuses this site's credentials; rows will fail until it accepts them");
          return;
        }
        if (!(err instanceof StoreUnreachableError)) throw err;
        // Nor does an unreachable retrieval server stop the run: it is a Deployment that may be
        // starting (the operator creates it with the sites) or restarting. A sync waits for it a
        // little (PreflightOptions.waitForUnreachableMs); then rows that read it fail with a
        // backoff, and the rest (object-stored records, consistency, verifying copies) proceed.
        if (Date.now() >= deadline || signal.aborted) {
          this.log.warn({ err: err.message }, "the primary's retrieval server is unreachable; rows that read it will fail and be retried");
          return;
        }
        if (!waited) this.log.info({ err: err.message, waitSeconds: Math.ceil((deadline - Date.now()) / 1000) }, "the primary's retrieval server does not answer yet; waiting for it");
        await sleep(1000, undefined, { signal }).catch(() => undefined);
      }
    }
  }

  async checksumPrimary(record: ModelRecord, signal: AbortSignal): Promise<ChecksumResult> {
    const { key, source } = this.locate(record);
    try {
      // A file is hashed in large reads; other sources (a bucket, the retrieval server) as a stream.
      return await (source instanceof FileSource ? source.sha256(key, signal) : sha256Of(source, key, signal));
    } catch (err) {
      throw mapped(err, "primary");
    }
  }

  async sync(record: ModelRecord, signal: AbortSignal): Promise<SyncResult> {
    const { key, source, copyKind } = this.locate(record);
    const target = this.target(copyKind);
    try {
      let bytes: number;
      if (source instanceof S3BlobStore && target instanceof S3BlobStore) {
        ({ bytes } = await copyObject(source.store, target.store, key, { signal }));
      } else {
        const blob = await source.open(key, signal);
        ({ bytes } = await target.write(key, blob.body, blob.length, signal));
      }
      return { missingOnPrimary: false, bytes, location: formatCopyLocation(copyKind, key) };
    } catch (err) {
      throw mapped(err, "primary");
    }
  }

  /**
   * The copy's SHA-256. On its first verification since it was written (options.firstSinceWrite)
   * and with `spec.blob.firstVerification: StoreChecksum`, a copy in a bucket is judged by the
   * SHA-256 the bucket checked at upload (copy.ts sends one with every single-PUT copy), read with
   * a HEAD; a copy without one, a file, and every re-verification are read back in full.
   */
  async checksumSecondary(record: ModelRecord, signal: AbortSignal, options: ChecksumOptions = {}): Promise<ChecksumResult> {
    const { key, copyKind } = this.locate(record);
    try {
      const target = this.target(copyKind);
      if (options.firstSinceWrite && this.settings.firstVerification === "StoreChecksum" && target instanceof S3BlobStore) {
        const stored = await storedSha256(target.store, key, { signal });
        if (stored) return stored;
      }
      return await target.sha256(key, signal);
    } catch (err) {
      throw mapped(err, "secondary");
    }
  }

  async removeCopy(location: string): Promise<void> {
    const { kind, key } = parseCopyLocation(location);
    await this.target(kind).remove(key);
  }

  /** Temporary files of writes a crash interrupted, on a secondary volume (S3 leaves none: a PUT is atomic). */
  async removeLeftovers(): Promise<number> {
    return (await this.secondaryVolume?.removeStaleTempFiles(STALE_TEMP_FILE_MS)) ?? 0;
  }

  async close(): Promise<void> {
    for (const close of this.closers) close();
  }
}
