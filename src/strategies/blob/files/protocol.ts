/** The retrieval server's paths and headers, shared by server.ts and retrieval-source.ts. */

export const FILES_PATH_PREFIX = "/v1/files/";
export const HEALTH_PATH = "/v1/health";
/** Set on a 404 that means "no such file"; a 404 without it (e.g. a proxy's) means nothing. */
export const MISSING_HEADER = "geo-blob-missing";
/** Set on a 400 for a refused key, to the InvalidBlobKeyError reason (e.g. `outside-root`). */
export const REFUSED_KEY_HEADER = "geo-blob-refused-key";

/** The request path for a blob key: each segment percent-encoded, so the path signs and parses unambiguously. */
export function filesPath(segments: readonly string[]): string {
  return FILES_PATH_PREFIX + segments.map(encodeURIComponent).join("/");
}
