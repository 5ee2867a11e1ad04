import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { RepositoryPathError } from "./errors.ts";
import { mirrorPath, primaryRepositoryURL, renderTemplate, repositoryRelativePath, temporaryPrefix, TEMPORARY_PREFIX, validateRelativePath } from "./paths.ts";

const HOSTILE: Array<[string, RegExp]> = [
  ["", /empty/],
  ["/etc/passwd", /absolute/],
  ["../outside.git", /'\.\.' segment/],
  ["a/../../outside.git", /'\.\.' segment/],
  ["a/./b.git", /'\.' segment/],
  ["a//b.git", /empty segment/],
  ["a/b.git/", /empty segment/],
  ["a\\..\\b.git", /backslash/],
  ["a/b\0.git", /control character/],
  ["a/b\n.git", /control character/],
  ["a/\x1b[31mred.git", /control character/],
  [`a/${"x".repeat(256)}.git`, /longer than 255/],
  ["a/.geo-tmp-b.git-123", /reserved prefix/],
];

describe("validateRelativePath", () => {
  it.each(HOSTILE)("refuses %j", (path, message) => {
    expect(() => validateRelativePath(path)).toThrow(RepositoryPathError);
    expect(() => validateRelativePath(path)).toThrow(message);
  });

  it("accepts GitLab's hashed storage paths", () => {
    expect(() => validateRelativePath("@hashed/6b/86/6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b.git")).not.toThrow();
    expect(() => validateRelativePath("group/sub group/project.wiki.git")).not.toThrow();
  });
});

describe("temporaryPrefix", () => {
  it("never matches another mirror's temporaries, even when one name is a prefix of the other", () => {
    const foo = temporaryPrefix("/m/group/foo");
    const fooBarTemporary = `${temporaryPrefix("/m/group/foo-bar")}Ab12Cd`;
    expect(fooBarTemporary.startsWith(foo)).toBe(false);
    expect(`${temporaryPrefix("/m/group/foo")}Ab12Cd`.startsWith(foo)).toBe(true);
    expect(temporaryPrefix("/m/group/foo-bar").startsWith(foo)).toBe(false);
  });

  it("has one length for every name and starts with the reserved prefix", () => {
    const long = temporaryPrefix(`/m/${"x".repeat(255)}`);
    expect(long).toHaveLength(temporaryPrefix("/m/a").length);
    expect(long.startsWith(TEMPORARY_PREFIX)).toBe(true);
    expect(() => validateRelativePath(`a/${long}Ab12Cd`)).toThrow(/reserved prefix/);
  });
});

describe("repositoryRelativePath", () => {
  const row = { id: 7n, disk_path: "@hashed/ab/cd/abcd", name: null };

  it("renders a template over columns", () => {
    expect(repositoryRelativePath({ template: "{disk_path}.git" }, row)).toBe("@hashed/ab/cd/abcd.git");
    expect(repositoryRelativePath({ template: "{base}/{disk_path}.git" }, row)).toBe("@hashed/ab/cd/abcd.git");
    expect(repositoryRelativePath({ template: "snippets/{id}.git" }, row)).toBe("snippets/7.git");
  });

  it("reads a column", () => {
    expect(repositoryRelativePath({ column: "disk_path" }, row)).toBe("@hashed/ab/cd/abcd");
  });

  it("fails on missing or null columns and on values that escape", () => {
    expect(() => repositoryRelativePath({ template: "{nope}.git" }, row)).toThrow(/does not have/);
    expect(() => repositoryRelativePath({ template: "{name}.git" }, row)).toThrow(/null/);
    expect(() => repositoryRelativePath({ column: "name" }, row)).toThrow(RepositoryPathError);
    expect(() => repositoryRelativePath({ template: "{disk_path}.git" }, { disk_path: "../../etc" })).toThrow(/'\.\.' segment/);
  });

  it("does not expand placeholders inside values", () => {
    expect(renderTemplate("{a}/{b}", { a: "{b}", b: "x" })).toBe("{b}/x");
  });
});

describe("primaryRepositoryURL", () => {
  it("joins base and path, encoding segments for http(s) only", () => {
    expect(primaryRepositoryURL("https://git.example.com/", "@hashed/ab/x y.git")).toBe("https://git.example.com/%40hashed/ab/x%20y.git");
    expect(primaryRepositoryURL("git://127.0.0.1:9418", "a/b.git")).toBe("git://127.0.0.1:9418/a/b.git");
  });

  it("refuses a base URL that is not one", () => {
    expect(() => primaryRepositoryURL("/srv/git", "a.git")).toThrow(RepositoryPathError);
  });
});

describe("mirrorPath", () => {
  const root = mkdtempSync(join(tmpdir(), "geo-paths-"));
  const mirrors = join(root, "mirrors");
  const outside = join(root, "outside");
  mkdirSync(join(mirrors, "group"), { recursive: true });
  mkdirSync(outside);
  symlinkSync(outside, join(mirrors, "escape"));
  symlinkSync(join(root, "nowhere"), join(mirrors, "dangling"));
  symlinkSync(join(mirrors, "group"), join(mirrors, "alias"));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it("is the path under the root", async () => {
    expect(await mirrorPath(mirrors, "group/project.git")).toBe(join(mirrors, "group/project.git"));
    expect(await mirrorPath(`${mirrors}/`, "new/deep/project.git")).toBe(join(mirrors, "new/deep/project.git"));
  });

  it("follows symlinks that stay inside the root", async () => {
    expect(await mirrorPath(mirrors, "alias/project.git")).toBe(join(mirrors, "alias/project.git"));
  });

  it("refuses paths that leave the root through a symlink", async () => {
    await expect(mirrorPath(mirrors, "escape/project.git")).rejects.toThrow(/resolves outside the mirror root/);
    await expect(mirrorPath(mirrors, "escape")).rejects.toThrow(RepositoryPathError);
    await expect(mirrorPath(mirrors, "dangling/x.git")).rejects.toThrow(/does not resolve/);
  });

  it("refuses a relative mirror root and hostile paths", async () => {
    await expect(mirrorPath("mirrors", "a.git")).rejects.toThrow(/absolute/);
    await expect(mirrorPath(mirrors, "../outside/a.git")).rejects.toThrow(RepositoryPathError);
  });
});
