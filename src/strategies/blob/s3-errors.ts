/**
 * What went wrong talking to object storage, decided from error names, Node error codes and HTTP
 * status codes (never message text), so that sync and verification can tell "the primary lost
 * this object" from "the endpoint is down" or "the Secret holds the wrong key".
 */

/** The object is not in the bucket. Retrying will not help until someone uploads it again. */
export class ObjectMissingError extends Error {
  override name = "ObjectMissingError";
  readonly bucket: string;
  readonly key: string;
  readonly role: "primary" | "secondary";

  constructor(bucket: string, key: string, role: "primary" | "secondary", options?: ErrorOptions) {
    super(`object ${bucket}/${key} does not exist on the ${role}`, options);
    this.bucket = bucket;
    this.key = key;
    this.role = role;
  }
}

export type S3ErrorClass = "missing-object" | "missing-bucket" | "bad-credentials" | "unreachable" | "other";

const MISSING_OBJECT = new Set(["ObjectMissingError", "NoSuchKey"]);
const MISSING_BUCKET = new Set(["NoSuchBucket"]);
const BAD_CREDENTIALS = new Set([
  "InvalidAccessKeyId",
  "SignatureDoesNotMatch",
  "AccessDenied",
  "InvalidToken",
  "ExpiredToken",
  "InvalidSecurity",
  "CredentialsProviderError",
]);
/** Node socket errors and the SDK's own timeouts: the endpoint did not answer. */
const UNREACHABLE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EHOSTDOWN",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EPIPE",
]);
const UNREACHABLE_NAMES = new Set(["TimeoutError", "RequestTimeout", "ServiceUnavailable", "SlowDown"]);

/** The error our own S3 transports raise for a connect or a silence that took too long: named as the SDK names its own, so it is classified alike. */
export function timeoutError(message: string): Error {
  return Object.assign(new Error(message), { name: "TimeoutError" });
}

interface ErrorShape {
  name?: unknown;
  code?: unknown;
  cause?: unknown;
  errors?: unknown;
  $metadata?: { httpStatusCode?: unknown };
}

/**
 * Sorts an error from the S3 client (or from this codebase's wrappers) into what the caller acts
 * on. A HEAD request's 404 carries no body, so it comes back as "NotFound" whether the key or
 * the bucket is missing; it is classified as missing-object.
 */
export function classifyS3Error(err: unknown): S3ErrorClass {
  for (let e: unknown = err, depth = 0; e !== null && typeof e === "object" && depth < 5; depth++) {
    const found = classifyOne(e as ErrorShape);
    if (found !== "other") return found;
    e = (e as ErrorShape).cause;
  }
  return "other";
}

function classifyOne(e: ErrorShape): S3ErrorClass {
  const name = typeof e.name === "string" ? e.name : "";
  const status = typeof e.$metadata?.httpStatusCode === "number" ? e.$metadata.httpStatusCode : undefined;
  if (MISSING_OBJECT.has(name) || (name === "NotFound" && status === 404)) return "missing-object";
  if (MISSING_BUCKET.has(name)) return "missing-bucket";
  if (BAD_CREDENTIALS.has(name) || status === 401 || status === 403) return "bad-credentials";
  if (UNREACHABLE_NAMES.has(name) || (typeof e.code === "string" && UNREACHABLE_CODES.has(e.code))) return "unreachable";
  if (status === 502 || status === 503 || status === 504) return "unreachable";
  // Connecting to a name with several addresses fails with one error per address.
  if (Array.isArray(e.errors) && e.errors.length > 0 && e.errors.every((inner) => classifyS3Error(inner) === "unreachable")) {
    return "unreachable";
  }
  return "other";
}
