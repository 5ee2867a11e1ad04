/**
 * What the blob strategy needs from any storage that holds whole files under keys: a source it
 * reads (the primary, or a secondary being verified) and a target it writes (a secondary). A
 * directory on a volume (file-store.ts) and the primary's retrieval server (retrieval-source.ts)
 * implement them; the blob Replicator copies from one to the other without knowing which is which.
 *
 * Errors are typed so that callers decide by class, never by message text: BlobMissingError is the
 * only "this data does not exist" answer; everything else (refused credentials, unreachable server,
 * unreadable volume) is an ordinary error worth retrying later.
 */
import type { Readable } from "node:stream";

export interface BlobChecksum {
  /** SHA-256, 32 bytes. */
  checksum: Buffer;
  bytes: number;
}

export interface BlobReadStream {
  /** Exactly `length` bytes; the stream fails instead of ending early when fewer arrive. */
  body: Readable;
  length: number;
}

/** The read side of a store. */
export interface BlobSource {
  /**
   * Starts reading the blob at `key`. Throws BlobMissingError only when the data is unambiguously
   * absent, InvalidBlobKeyError for a key that must not be used; anything else is an ordinary error.
   * The caller consumes or destroys `body`.
   */
  open(key: string, signal?: AbortSignal): Promise<BlobReadStream>;
  /** Checks that the store can be used at all; throws an Error whose message says what to fix. */
  probe(signal?: AbortSignal): Promise<void>;
  /** For log lines and status messages, e.g. `directory /data/uploads (read-only)`. Holds no secret. */
  describe(): string;
}

/** A store the strategy writes to: only ever a secondary's. */
export interface BlobTarget extends BlobSource {
  /**
   * Stores `body` at `key` atomically: readers see the old content or the whole new one, never a
   * part. Fails (and leaves nothing behind) when the body holds more or fewer than `length` bytes
   * or `signal` aborts. Returns the SHA-256 of what was written.
   */
  write(key: string, body: Readable, length: number, signal?: AbortSignal): Promise<BlobChecksum>;
  /** Removes the blob at `key`. A blob that is already gone is fine. */
  remove(key: string): Promise<void>;
  /** Reads the blob once and returns its SHA-256. Throws BlobMissingError when it is absent. */
  sha256(key: string, signal?: AbortSignal): Promise<BlobChecksum>;
}

/** The blob does not exist in the store, and the store is sure of it. */
export class BlobMissingError extends Error {
  override name = "BlobMissingError";
  readonly key: string;
  readonly store: string;

  constructor(store: string, key: string, options?: ErrorOptions) {
    super(`blob ${JSON.stringify(key)} does not exist in ${store}`, options);
    this.store = store;
    this.key = key;
  }
}

/** The body delivered fewer or more bytes than announced (raised by the shared meter). */
export { ObjectLengthMismatchError as BlobLengthMismatchError } from "../../../util/sha256-meter.ts";

/**
 * The retrieval server refused this site's credentials (HTTP 401/403). Not a sign that the blob is
 * missing: the site's key or the server's list of site keys needs fixing.
 */
export class CredentialsRefusedError extends Error {
  override name = "CredentialsRefusedError";
  readonly status: number;

  constructor(message: string, status: number) {
    super(message);
    this.status = status;
  }
}

/**
 * Nothing answered at the retrieval server's address (refused, reset, no route, no such name):
 * the server may be starting or restarting, or the address is wrong. Not a sign that a blob is
 * missing either.
 */
export class StoreUnreachableError extends Error {
  override name = "StoreUnreachableError";
}
