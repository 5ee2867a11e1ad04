import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { checksumFromShowRef, isChecksummedRef, ZERO_CHECKSUM } from "./checksum.ts";

const A = "1111111111111111111111111111111111111111";
const B = "2222222222222222222222222222222222222222";
const C = "3333333333333333333333333333333333333333";
const D = "4444444444444444444444444444444444444444";

const SHOW_REF = [
  `${A} HEAD`,
  `${A} refs/heads/main`,
  `${B} refs/heads/feature/x`,
  `${C} refs/tags/v1.0`,
  `${D} refs/keep-around/${D}`,
  `${B} refs/merge-requests/1/head`,
  `${C} refs/environments/production/deployments/1`,
  `${A} refs/notes/commits`,
  // Not counted:
  `${B} refs/remotes/origin/HEAD`,
  `${C} refs/pipelines/12`,
  `${D} refs/tmp/abc/head`,
].join("\n");

const COUNTED = SHOW_REF.split("\n").slice(0, 8);

/** Independent path 1: coreutils sha1sum per line, XOR as one big integer. */
function checksumWithSha1sum(lines: string[]): string {
  let sum = 0n;
  for (const line of lines) {
    const hex = execFileSync("sha1sum", [], { input: line, encoding: "utf8" }).split(" ")[0]!;
    sum ^= BigInt(`0x${hex}`);
  }
  return sum.toString(16).padStart(40, "0");
}

/** Independent path 2: hex digests XORed one hex digit at a time. */
function checksumByHexDigits(lines: string[]): string {
  const digits = new Array<number>(40).fill(0);
  for (const line of lines) {
    const hex = createHash("sha1").update(line, "utf8").digest("hex");
    for (let i = 0; i < 40; i++) digits[i]! ^= parseInt(hex[i]!, 16);
  }
  return digits.map((d) => d.toString(16)).join("");
}

describe("checksumFromShowRef", () => {
  it("is the XOR of SHA-1('<oid> <ref>') over HEAD and the counted namespaces, computed two other ways", () => {
    const expected = checksumWithSha1sum(COUNTED);
    expect(checksumByHexDigits(COUNTED)).toBe(expected);
    expect(checksumFromShowRef(SHOW_REF)).toBe(expected);
  });

  it("of one ref is that ref's SHA-1", () => {
    const line = `${A} refs/heads/main`;
    expect(checksumFromShowRef(`${line}\n`)).toBe(execFileSync("sha1sum", [], { input: line, encoding: "utf8" }).slice(0, 40));
  });

  it("is 40 zeros without refs, and without counted refs", () => {
    expect(checksumFromShowRef("")).toBe(ZERO_CHECKSUM);
    expect(checksumFromShowRef(`${A} refs/pipelines/1\n${B} refs/remotes/origin/HEAD\n`)).toBe(ZERO_CHECKSUM);
  });

  it("keeps leading zeros (always 40 characters)", () => {
    // Find a ref whose digest starts with a zero byte, which a big-integer encoding would drop.
    let line = "";
    for (let i = 0; ; i++) {
      line = `${A} refs/heads/branch-${i}`;
      if (createHash("sha1").update(line).digest()[0] === 0) break;
    }
    const sum = checksumFromShowRef(line);
    expect(sum).toHaveLength(40);
    expect(sum.startsWith("00")).toBe(true);
    expect(sum).toBe(checksumWithSha1sum([line]));
  });

  it("does not depend on order, and a ref listed twice cancels out", () => {
    const reversed = SHOW_REF.split("\n").reverse().join("\n");
    expect(checksumFromShowRef(reversed)).toBe(checksumFromShowRef(SHOW_REF));
    expect(checksumFromShowRef(`${A} refs/heads/a\n${A} refs/heads/a\n`)).toBe(ZERO_CHECKSUM);
  });

  it("gives the same value for ls-remote output (tabs, peeled tag lines, symref lines)", () => {
    const lsRemote = [
      `ref: refs/heads/main\tHEAD`,
      ...SHOW_REF.split("\n").map((l) => l.replace(" ", "\t")),
      `${D}\trefs/tags/v1.0^{}`,
    ].join("\n");
    expect(checksumFromShowRef(lsRemote)).toBe(checksumFromShowRef(SHOW_REF));
  });

  it("changes when any counted ref moves", () => {
    const moved = SHOW_REF.replace(`${B} refs/heads/feature/x`, `${C} refs/heads/feature/x`);
    expect(checksumFromShowRef(moved)).not.toBe(checksumFromShowRef(SHOW_REF));
  });

  it("refuses a listing it does not understand", () => {
    expect(() => checksumFromShowRef("fatal: not a git repository")).toThrow(/unexpected line/);
    expect(() => checksumFromShowRef(`${A.slice(1)} refs/heads/main`)).toThrow(/unexpected line/);
  });
});

describe("isChecksummedRef", () => {
  it("anchors the namespaces (unlike Gitaly's unanchored regexp)", () => {
    expect(isChecksummedRef("HEAD")).toBe(true);
    expect(isChecksummedRef("refs/heads/HEAD")).toBe(true);
    expect(isChecksummedRef("refs/remotes/origin/HEAD")).toBe(false);
    expect(isChecksummedRef("refs/pipelines/refs/heads/x")).toBe(false);
    expect(isChecksummedRef("refs/headsx/y")).toBe(false);
  });
});
