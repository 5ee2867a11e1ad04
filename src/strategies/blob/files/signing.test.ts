import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { authorizationHeader, canonicalRequest, parseAuthorization, parseSecretKey, verifyAuthorization, type SignedRequest } from "./signing.ts";

const KEY = "k".repeat(40);
const OTHER = "o".repeat(40);
const NOW = 1_800_000_000;
const request: SignedRequest = { method: "GET", path: "/v1/files/a%20b/c.png", expires: NOW + 60, site: "secondary-1" };

function verify(header: string | undefined, overrides: Partial<Parameters<typeof verifyAuthorization>[0]> = {}) {
  return verifyAuthorization({
    method: "GET",
    path: request.path,
    header,
    siteKeys: new Map([["secondary-1", KEY], ["secondary-2", OTHER]]),
    now: NOW,
    maxSkewSeconds: 300,
    ...overrides,
  });
}

describe("canonicalRequest", () => {
  it("is a versioned, newline-separated list of method, path, expiry and site", () => {
    expect(canonicalRequest(request)).toBe(`geo-files-v1\nGET\n/v1/files/a%20b/c.png\n${NOW + 60}\nsecondary-1`);
    expect(canonicalRequest({ ...request, method: "head" })).toContain("\nHEAD\n");
  });

  it("is what the header's signature is an HMAC-SHA256 of", () => {
    const mac = createHmac("sha256", KEY).update(canonicalRequest(request)).digest("hex");
    expect(authorizationHeader(request, KEY)).toBe(`GeoFiles-HMAC-SHA256 site=secondary-1,expires=${NOW + 60},signature=${mac}`);
  });
});

describe("verifyAuthorization", () => {
  it("accepts a header signed with the site's key", () => {
    expect(verify(authorizationHeader(request, KEY))).toEqual({ ok: true, site: "secondary-1" });
  });

  it("refuses another site's key, an unknown site and a missing or malformed header", () => {
    expect(verify(authorizationHeader(request, OTHER))).toEqual({ ok: false, reason: "bad-signature", site: "secondary-1" });
    expect(verify(authorizationHeader({ ...request, site: "secondary-2" }, KEY))).toMatchObject({ ok: false, reason: "bad-signature" });
    expect(verify(authorizationHeader({ ...request, site: "stranger" }, KEY))).toEqual({ ok: false, reason: "unknown-site", site: "stranger" });
    expect(verify(undefined)).toEqual({ ok: false, reason: "missing" });
    expect(verify("Bearer abc")).toEqual({ ok: false, reason: "malformed" });
    expect(verify(authorizationHeader(request, KEY).replace(/.$/, ""))).toEqual({ ok: false, reason: "malformed" });
  });

  it("binds the signature to the method, the path and the expiry", () => {
    const header = authorizationHeader(request, KEY);
    expect(verify(header, { method: "HEAD" })).toMatchObject({ reason: "bad-signature" });
    expect(verify(header, { path: "/v1/files/other" })).toMatchObject({ reason: "bad-signature" });
    expect(verify(header.replace(`expires=${NOW + 60}`, `expires=${NOW + 61}`))).toMatchObject({ reason: "bad-signature" });
  });

  it("refuses an expired signature and one that expires too far ahead", () => {
    expect(verify(authorizationHeader({ ...request, expires: NOW - 1 }, KEY))).toMatchObject({ ok: false, reason: "expired" });
    expect(verify(authorizationHeader({ ...request, expires: NOW }, KEY))).toMatchObject({ ok: true });
    expect(verify(authorizationHeader({ ...request, expires: NOW + 300 }, KEY))).toMatchObject({ ok: true });
    expect(verify(authorizationHeader({ ...request, expires: NOW + 301 }, KEY))).toMatchObject({ ok: false, reason: "too-far-ahead" });
  });
});

describe("parseAuthorization", () => {
  it("refuses a site that is not a GeoSite name", () => {
    const sig = "0".repeat(64);
    expect(parseAuthorization(`GeoFiles-HMAC-SHA256 site=Site_1,expires=1,signature=${sig}`)).toBeNull();
    expect(parseAuthorization(`GeoFiles-HMAC-SHA256 site=site-1,expires=1,signature=${sig}`)).toEqual({ site: "site-1", expires: 1, signature: sig });
  });
});

describe("parseSecretKey", () => {
  it("drops surrounding whitespace and refuses short keys", () => {
    expect(parseSecretKey(`${KEY}\n`, "site a")).toBe(KEY);
    expect(() => parseSecretKey("short\n", "site a")).toThrow(/site a: the secret key is 5 characters long; use at least 32/);
  });
});
