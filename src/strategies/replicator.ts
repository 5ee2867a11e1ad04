/**
 * The one interface every data type implements. The workers and the controller only ever talk to
 * a Replicator; which storage sits behind it is the strategy's business (see definition.ts).
 *
 * Every operation acts on one model record and is idempotent: running it twice has the effect of
 * running it once, so a retried or duplicated Job is harmless.
 */
import type { TypeRuntimeConfig } from "../api/v1alpha1/runtime.ts";
import type { Logger } from "../util/log.ts";

/** One row of the model table, with the columns the type's key/path template needs. */
export interface ModelRecord {
  id: number;
  columns: Record<string, unknown>;
}

export interface SyncResult {
  /** The primary has no data for this record (GitLab's missing_on_primary). */
  missingOnPrimary: boolean;
  bytes: number;
  /** Where the copy lives on the secondary (object key, mirror path), remembered for deletions. */
  location: string | null;
}

export interface SyncOptions {
  /** Rebuild the copy from the primary instead of updating it incrementally. */
  repair?: boolean;
}

export interface ChecksumResult {
  checksum: Buffer;
  bytes: number;
}

export interface ChecksumOptions {
  /**
   * The copy has not been verified since it was last written, and no earlier verification of it
   * failed. A strategy may then rely on a checksum its store checked at write time (the blob
   * strategy's `spec.blob.firstVerification`); otherwise it reads the copy.
   */
  firstSinceWrite?: boolean;
}

export interface Replicator {
  /** Model columns the strategy reads (beyond the id), e.g. the template's placeholders. */
  readonly columns: readonly string[];
  /**
   * Checks once per run that storage is reachable with the given credentials (bucket exists,
   * mirror root writable...). Throws an Error whose message says what to fix; the run stops.
   */
  preflight(signal: AbortSignal, options?: PreflightOptions): Promise<void>;
  /** Checksum of the record's data on the primary. Throws MissingOnPrimaryError when absent. */
  checksumPrimary(record: ModelRecord, signal: AbortSignal): Promise<ChecksumResult>;
  /**
   * Brings the secondary copy up to date with the primary. With `options.repair` the previous
   * verification found the copy damaged or different: rebuild it from the primary where an
   * incremental update could not fix damage (a git fetch never re-downloads objects it thinks it has).
   * Throws MissingOnPrimaryError only when the primary's answer is unambiguous, and
   * AmbiguousNotFoundError when "not found" may also mean "not allowed to see it".
   */
  sync(record: ModelRecord, signal: AbortSignal, options?: SyncOptions): Promise<SyncResult>;
  /**
   * Checksum of the secondary copy. Throws MissingCopyError when there is none, and CopyDamagedError
   * when the copy exists but is not whole (e.g. a mirror whose refs point at missing objects).
   */
  checksumSecondary(record: ModelRecord, signal: AbortSignal, options?: ChecksumOptions): Promise<ChecksumResult>;
  /** Operator-readable account of how the copy differs, stored on a mismatch (optional). */
  describeMismatch?(record: ModelRecord, signal: AbortSignal): Promise<unknown>;
  /** Removes the secondary copy at `location` (never touches the primary). Missing is fine. */
  removeCopy(location: string): Promise<void>;
  /**
   * Removes what interrupted writes left in the secondary's storage (a crashed worker's temporary
   * files), old enough that no write in progress can own them. Run once per complete consistency
   * pass; returns how many leftovers went. Optional: stores that leave nothing behind skip it.
   */
  removeLeftovers?(signal: AbortSignal): Promise<number>;
  close(): Promise<void>;
}

/** What a strategy needs to build its Replicator for one type and one secondary (or the primary). */
export interface ReplicatorContext<Settings = unknown, Endpoints = unknown> {
  type: TypeRuntimeConfig<Settings>;
  /** Name of the site this process acts for. */
  siteName: string;
  role: "primary" | "secondary";
  /** How to reach storage, built by the strategy's definition from the worker's env. */
  endpoints: Endpoints;
  log: Logger;
}

/** The record's data does not exist on the primary. */
export class MissingOnPrimaryError extends Error {
  override readonly name = "MissingOnPrimaryError";
}

/** The secondary has no copy to checksum. */
export class MissingCopyError extends Error {
  override readonly name = "MissingCopyError";
}

/** The record's key or path is unusable (hostile or malformed); the row fails, nothing is written. */
export class InvalidLocationError extends Error {
  override readonly name = "InvalidLocationError";
}

/**
 * The primary answered "not found" in a way that cannot be told apart from "you may not see it"
 * (GitLab's git HTTP answers 404 for a token without access). A failure with backoff, never
 * missing_on_primary: a wrong token must not make every row look deleted.
 */
export class AmbiguousNotFoundError extends Error {
  override readonly name = "AmbiguousNotFoundError";
}

/** The secondary copy exists but is not whole; verification puts the row back into sync with repair. */
export class CopyDamagedError extends Error {
  override readonly name = "CopyDamagedError";
}

export interface PreflightOptions {
  /**
   * How long to wait for a primary store that does not answer yet (a retrieval server that is
   * starting or restarting) before the run goes on without it. A sync asks for this: rows it
   * would otherwise fail now wait for a retry with backoff.
   */
  waitForUnreachableMs?: number;
}
