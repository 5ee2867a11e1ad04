import { describe, expect, it } from "vitest";
import { InvalidBlobKeyError, blobKeySegments, validateBlobKey } from "./keys.ts";

function reasonOf(key: string): string {
  try {
    validateBlobKey(key);
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidBlobKeyError);
    return (err as InvalidBlobKeyError).reason;
  }
  return "accepted";
}

describe("validateBlobKey", () => {
  it("accepts relative paths, unicode, spaces and dots inside names", () => {
    expect(blobKeySegments("uploads/2026/a b.png")).toEqual(["uploads", "2026", "a b.png"]);
    expect(validateBlobKey("ünïcødé/..hidden/x..y/.env")).toBe("ünïcødé/..hidden/x..y/.env");
  });

  it.each([
    ["", "empty"],
    ["/etc/passwd", "absolute"],
    ["a//b", "empty-segment"],
    ["a/b/", "empty-segment"],
    ["../secret", "dot-segment"],
    ["a/../../b", "dot-segment"],
    ["a/./b", "dot-segment"],
    ["..", "dot-segment"],
    ["a\u0000b", "control-character"],
    ["a\nb", "control-character"],
    ["a\\..\\b", "backslash"],
    ["a\ud800b", "malformed-unicode"],
    [".geo-tmp-1234", "reserved-name"],
    ["dir/.geo-tmp-x/file", "reserved-name"],
    ["x".repeat(256), "too-long"],
    [Array.from({ length: 2100 }, () => "ab").join("/"), "too-long"],
  ])("refuses %j (%s)", (key, reason) => {
    expect(reasonOf(key)).toBe(reason);
  });

  it("puts the key, quoted, in the message", () => {
    expect(() => validateBlobKey("../x")).toThrow(/invalid blob key "\.\.\/x": it contains a '\.\.' path segment/);
  });
});
