/**
 * How a secondary proves to the primary's retrieval server which site it is: every request carries
 *
 *   Authorization: GeoFiles-HMAC-SHA256 site=<site>,expires=<unix seconds>,signature=<hex>
 *
 * where signature = HMAC-SHA256(the site's secret key, canonicalRequest(...)). The signature
 * covers the method and the path as sent (so it cannot be reused for another file), and an expiry
 * a few seconds ahead (so a leaked header is soon worthless). Each site has its own key, so one
 * site's key cannot impersonate another.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

export const AUTH_SCHEME = "GeoFiles-HMAC-SHA256";

/** Secret keys shorter than this are refused where they are loaded. */
export const MIN_SECRET_KEY_LENGTH = 32;

/** Default lifetime of a signature the client makes, and the server's limit on expiry ahead of now. */
export const DEFAULT_SIGNATURE_TTL_SECONDS = 60;
export const DEFAULT_MAX_SKEW_SECONDS = 300;

/** Names of GeoSites (DNS-1123 subdomains): what a site= value may be. */
const SITE_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

export interface SignedRequest {
  method: string;
  /** The request target as sent, without query string, e.g. `/v1/files/uploads/a%20b.png`. */
  path: string;
  /** Unix seconds after which the signature is refused. */
  expires: number;
  site: string;
}

/** The one text that is signed. Newlines cannot occur in any field (paths are percent-encoded). */
export function canonicalRequest(request: SignedRequest): string {
  return ["geo-files-v1", request.method.toUpperCase(), request.path, String(request.expires), request.site].join("\n");
}

export function signRequest(request: SignedRequest, secretKey: string | Buffer): string {
  return createHmac("sha256", secretKey).update(canonicalRequest(request)).digest("hex");
}

/** The Authorization header value for `request`. */
export function authorizationHeader(request: SignedRequest, secretKey: string | Buffer): string {
  return `${AUTH_SCHEME} site=${request.site},expires=${request.expires},signature=${signRequest(request, secretKey)}`;
}

export type AuthFailure = "missing" | "malformed" | "unknown-site" | "expired" | "too-far-ahead" | "bad-signature";

export type AuthResult = { ok: true; site: string } | { ok: false; reason: AuthFailure; site?: string };

export interface VerifyOptions {
  method: string;
  path: string;
  header: string | undefined;
  siteKeys: ReadonlyMap<string, string | Buffer>;
  /** Current time in unix seconds. */
  now: number;
  maxSkewSeconds: number;
}

/** Checks an Authorization header. Touches nothing but its arguments. */
export function verifyAuthorization(options: VerifyOptions): AuthResult {
  const { header } = options;
  if (!header) return { ok: false, reason: "missing" };
  const parsed = parseAuthorization(header);
  if (!parsed) return { ok: false, reason: "malformed" };
  const { site, expires, signature } = parsed;
  const key = options.siteKeys.get(site);
  if (key === undefined) return { ok: false, reason: "unknown-site", site };
  if (expires < options.now) return { ok: false, reason: "expired", site };
  if (expires > options.now + options.maxSkewSeconds) return { ok: false, reason: "too-far-ahead", site };
  const expected = Buffer.from(signRequest({ method: options.method, path: options.path, expires, site }, key), "hex");
  const given = Buffer.from(signature, "hex");
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: "bad-signature", site };
  return { ok: true, site };
}

/** The header's fields, or null when it is not exactly `<scheme> site=..,expires=..,signature=..`. */
export function parseAuthorization(header: string): { site: string; expires: number; signature: string } | null {
  const match = /^GeoFiles-HMAC-SHA256 site=([^,\s]+),expires=(\d{1,12}),signature=([0-9a-f]{64})$/.exec(header.trim());
  if (!match) return null;
  const site = match[1]!;
  if (!SITE_NAME.test(site)) return null;
  return { site, expires: Number(match[2]), signature: match[3]! };
}

/**
 * A secret key as read from a file or a Secret: surrounding whitespace (the newline `echo` adds)
 * is dropped, and a key too short to be secret is refused. Client and server both load keys
 * through this, so they agree on the bytes.
 */
export function parseSecretKey(text: string, what: string): string {
  const key = text.trim();
  if (key.length < MIN_SECRET_KEY_LENGTH) {
    throw new Error(`${what}: the secret key is ${key.length} characters long; use at least ${MIN_SECRET_KEY_LENGTH} (e.g. openssl rand -hex 32)`);
  }
  return key;
}

export function isSiteName(name: string): boolean {
  return SITE_NAME.test(name);
}
