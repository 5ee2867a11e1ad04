/**
 * Keys of blobs kept in a directory: relative paths, checked before any filesystem call. What is
 * refused is anything that could name a file outside the root or that the filesystem would
 * interpret differently from the text: absolute paths, "." and ".." segments, empty segments
 * ("a//b", a trailing "/"), NUL and other control characters, backslashes, malformed unicode, and
 * segments that look like this module's own temporary files. The check is lexical; the file
 * store also resolves symlinks and refuses a real path outside the root.
 */

/** Names of files being written start with this; a cleanup may delete them, keys never use it. */
export const TEMP_PREFIX = ".geo-tmp-";

/** Linux's PATH_MAX and NAME_MAX, in UTF-8 bytes. */
export const MAX_KEY_BYTES = 4095;
export const MAX_SEGMENT_BYTES = 255;

export const INVALID_BLOB_KEY_REASONS = [
  "empty",
  "absolute",
  "empty-segment",
  "dot-segment",
  "control-character",
  "backslash",
  "malformed-unicode",
  "too-long",
  "reserved-name",
  "outside-root",
] as const;

export type InvalidBlobKeyReason = (typeof INVALID_BLOB_KEY_REASONS)[number];

/** A key that must not be used with a file store. Retrying will not help until the key changes. */
export class InvalidBlobKeyError extends Error {
  override name = "InvalidBlobKeyError";
  readonly reason: InvalidBlobKeyReason;
  readonly key: string;

  constructor(reason: InvalidBlobKeyReason, key: string, detail: string) {
    super(`invalid blob key ${quote(key)}: ${detail}`);
    this.reason = reason;
    this.key = key;
  }
}

/** Returns the key's path segments when it may be used; otherwise throws InvalidBlobKeyError. */
export function blobKeySegments(key: string): string[] {
  if (key === "") throw new InvalidBlobKeyError("empty", key, "the key is empty");
  if (key.startsWith("/")) throw new InvalidBlobKeyError("absolute", key, "it starts with '/'");
  if (!key.isWellFormed()) throw new InvalidBlobKeyError("malformed-unicode", key, "it contains a lone surrogate, which has no UTF-8 form");
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) {
      throw new InvalidBlobKeyError("control-character", key, `it contains control character U+${c.toString(16).padStart(4, "0")} at index ${i}`);
    }
  }
  if (key.includes("\\")) throw new InvalidBlobKeyError("backslash", key, "it contains a backslash");
  if (Buffer.byteLength(key, "utf8") > MAX_KEY_BYTES) throw new InvalidBlobKeyError("too-long", key, `it is longer than ${MAX_KEY_BYTES} UTF-8 bytes`);
  const segments = key.split("/");
  for (const segment of segments) {
    if (segment === "") throw new InvalidBlobKeyError("empty-segment", key, "it contains an empty path segment");
    if (segment === "." || segment === "..") throw new InvalidBlobKeyError("dot-segment", key, `it contains a '${segment}' path segment`);
    if (segment.startsWith(TEMP_PREFIX)) throw new InvalidBlobKeyError("reserved-name", key, `a segment starts with ${TEMP_PREFIX}, reserved for temporary files`);
    if (Buffer.byteLength(segment, "utf8") > MAX_SEGMENT_BYTES) {
      throw new InvalidBlobKeyError("too-long", key, `a segment is longer than ${MAX_SEGMENT_BYTES} UTF-8 bytes`);
    }
  }
  return segments;
}

/** Returns `key` unchanged when it may be used; otherwise throws InvalidBlobKeyError. */
export function validateBlobKey(key: string): string {
  blobKeySegments(key);
  return key;
}

function quote(value: string): string {
  return JSON.stringify(value.length > 200 ? `${value.slice(0, 200)}…` : value);
}
