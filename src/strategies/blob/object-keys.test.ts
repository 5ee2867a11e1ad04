import { describe, expect, it } from "vitest";
import {
  InvalidObjectKeyError,
  MAX_KEY_BYTES,
  compileObjectKeySource,
  fullObjectKey,
  validateObjectKey,
  validatePrefix,
  type InvalidObjectKeyReason,
} from "./object-keys.ts";

function refusal(fn: () => unknown): InvalidObjectKeyError {
  try {
    fn();
  } catch (err) {
    if (err instanceof InvalidObjectKeyError) return err;
    throw err;
  }
  throw new Error("expected InvalidObjectKeyError, nothing was thrown");
}

describe("validateObjectKey", () => {
  it.each([
    "cool_widgets/1/report.pdf",
    "with space/and  two spaces.txt",
    "ünïcödé/日本語/🎉.bin",
    "url-special/+%20?#&=~!$'()*,;@[].txt",
    "%2e%2e/literally-percent-encoded",
    "a//empty-segment-is-legal",
    "trailing/slash/",
    "dots.in.names/..hidden/file..txt/...",
    "x",
  ])("keeps %j byte-exact", (key) => {
    expect(validateObjectKey(key)).toBe(key);
  });

  const refused: [string, string, InvalidObjectKeyReason, RegExp][] = [
    ["empty", "", "empty", /the key is empty/],
    ["a leading slash", "/etc/passwd", "leading-slash", /starts with '\/'/],
    ["a '..' segment", "a/../b", "dot-segment", /'\.\.' path segment/],
    ["a leading '..'", "../outside", "dot-segment", /'\.\.' path segment/],
    ["a trailing '..'", "a/..", "dot-segment", /'\.\.' path segment/],
    ["only '..'", "..", "dot-segment", /'\.\.' path segment/],
    ["a '.' segment", "a/./b", "dot-segment", /'\.' path segment/],
    ["NUL", "a\u0000b", "control-character", /control character U\+0000 at index 1/],
    ["a newline", "a\nb", "control-character", /U\+000a/],
    ["DEL", "a\u007f", "control-character", /U\+007f/],
    ["a C1 control", "a\u0085b", "control-character", /U\+0085/],
    ["a backslash", "a\\..\\b", "backslash", /backslash/],
    ["a lone surrogate", "a\ud800b", "malformed-unicode", /lone surrogate/],
    ["1025 bytes", "k".repeat(MAX_KEY_BYTES + 1), "too-long", /1025 UTF-8 bytes, more than 1024/],
    ["1026 bytes of 2-byte characters", "é".repeat(513), "too-long", /1026 UTF-8 bytes/],
  ];
  it.each(refused)("refuses a key with %s", (_, key, reason, message) => {
    const err = refusal(() => validateObjectKey(key));
    expect(err.reason).toBe(reason);
    expect(err.key).toBe(key);
    expect(err.message).toMatch(message);
    expect(err.name).toBe("InvalidObjectKeyError");
  });

  it("accepts exactly 1024 UTF-8 bytes, multi-byte characters counted as bytes", () => {
    expect(validateObjectKey("k".repeat(MAX_KEY_BYTES))).toHaveLength(MAX_KEY_BYTES);
    expect(validateObjectKey("é".repeat(512))).toHaveLength(512);
    expect(refusal(() => validateObjectKey("🎉".repeat(257))).reason).toBe("too-long");
  });

  it("shows control characters escaped and long keys shortened in the message", () => {
    expect(refusal(() => validateObjectKey("a\u0000b")).message).toContain('"a\\u0000b"');
    const long = refusal(() => validateObjectKey(`${"x".repeat(2000)}/../y`));
    expect(long.message.length).toBeLessThan(400);
  });
});

describe("validatePrefix", () => {
  it.each(["", "uploads/", "a/b/", "ünï code/"])("accepts %j", (prefix) => {
    expect(validatePrefix(prefix)).toBe(prefix);
  });

  it.each([
    ["uploads", "no-trailing-slash"],
    ["/uploads/", "leading-slash"],
    ["/", "leading-slash"],
    ["a/../", "dot-segment"],
    ["../", "dot-segment"],
    ["./", "dot-segment"],
    ["a\\b/", "backslash"],
    ["a\tb/", "control-character"],
  ] as const)("refuses %j (%s)", (prefix, reason) => {
    const err = refusal(() => validatePrefix(prefix));
    expect(err.reason).toBe(reason);
    expect(err.message).toMatch(/^invalid prefix /);
  });
});

describe("fullObjectKey", () => {
  it("puts the key under the prefix", () => {
    expect(fullObjectKey("uploads/", "cool_widgets/1/a b.txt")).toBe("uploads/cool_widgets/1/a b.txt");
    expect(fullObjectKey("", "k")).toBe("k");
  });

  it.each(["../escape", "/rooted", "a/../../escape", "a\\..\\..\\x", ""])("never leaves the prefix for %j", (key) => {
    expect(() => fullObjectKey("uploads/", key)).toThrow(InvalidObjectKeyError);
  });

  it("always starts with the prefix when it succeeds", () => {
    const keys = ["a", "a/b", "..a", "a..", "...", ".a/.b", "%2e%2e/x", " /x", "a//b"];
    for (const key of keys) expect(fullObjectKey("p/", key).startsWith("p/")).toBe(true);
  });

  it("counts the prefix toward the 1024-byte limit", () => {
    const key = "k".repeat(1020);
    expect(fullObjectKey("abc/", key)).toHaveLength(1024);
    const err = refusal(() => fullObjectKey("abcd/", key));
    expect(err.reason).toBe("too-long");
    expect(err.message).toMatch(/prefix "abcd\/" plus key is 1025 UTF-8 bytes/);
  });
});

describe("compileObjectKeySource", () => {
  it("reads one column", () => {
    const source = compileObjectKeySource({ column: "file_store_key" });
    expect(source.columns).toEqual(["file_store_key"]);
    expect(source.keyFor({ id: "7", file_store_key: "a/b c.txt" })).toBe("a/b c.txt");
  });

  it("fills a template from columns, numbers and bigints included", () => {
    const source = compileObjectKeySource({ template: "cool_widgets/{id}/{file_name}" });
    expect(source.columns).toEqual(["id", "file_name"]);
    expect(source.keyFor({ id: "42", file_name: "résumé 1.pdf" })).toBe("cool_widgets/42/résumé 1.pdf");
    expect(source.keyFor({ id: 42, file_name: "x" })).toBe("cool_widgets/42/x");
    expect(source.keyFor({ id: 9007199254740993n, file_name: "x" })).toBe("cool_widgets/9007199254740993/x");
  });

  it("lists a column used twice once", () => {
    expect(compileObjectKeySource({ template: "{id}/{id}-{name}" }).columns).toEqual(["id", "name"]);
  });

  it("does not interpret placeholders inside values", () => {
    const source = compileObjectKeySource({ template: "w/{a}/{b}" });
    expect(source.keyFor({ a: "{b}", b: "$&" })).toBe("w/{b}/$&");
  });

  it.each([
    [{ file_name: "../../etc/passwd", id: 1 }, "dot-segment"],
    [{ file_name: "..", id: 1 }, "dot-segment"],
    [{ file_name: "a\u0000", id: 1 }, "control-character"],
    [{ file_name: "a\\b", id: 1 }, "backslash"],
    [{ file_name: null, id: 1 }, "missing-column"],
    [{ id: 1 }, "missing-column"],
    [{ file_name: { toString: (): string => "x" }, id: 1 }, "missing-column"],
  ] as const)("refuses the row %j (%s)", (row, reason) => {
    const source = compileObjectKeySource({ template: "cool_widgets/{id}/{file_name}" });
    const err = refusal(() => source.keyFor(row));
    expect(err.reason).toBe(reason);
  });

  it("names the column that is null", () => {
    const source = compileObjectKeySource({ column: "path" });
    expect(() => source.keyFor({ path: null })).toThrow("cannot build the object key: column path is null");
    expect(refusal(() => source.keyFor({ path: "" })).reason).toBe("empty");
    expect(refusal(() => source.keyFor({ path: "/abs" })).reason).toBe("leading-slash");
  });

  it.each([
    [{}, /exactly one of column or template/],
    [{ column: "a", template: "{a}" }, /exactly one of column or template/],
    [{ column: "a-b" }, /not a column name/],
    [{ template: "static/key" }, /no \{column\} placeholder/],
    [{ template: "w/{id}/{file name}" }, /brace outside/],
    [{ template: "w/{id}/}" }, /brace outside/],
    [{ template: "w/{{id}}" }, /brace outside/],
  ])("refuses the configuration %j", (spec, message) => {
    expect(() => compileObjectKeySource(spec)).toThrow(message);
  });
});
