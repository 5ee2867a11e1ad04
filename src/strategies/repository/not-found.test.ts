import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { meaningOfNotFound } from "./not-found.ts";

const root = mkdtempSync(join(tmpdir(), "geo-not-found-"));
const base = join(root, "repositories");
mkdirSync(join(base, "group/present.git"), { recursive: true });
mkdirSync(join(root, "empty"));

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

describe("meaningOfNotFound", () => {
  it.each(["http://git.example/", "https://git.example/base", "git://127.0.0.1:9418/root", "ssh://git@git.example/srv"])(
    "is ambiguous over the network (%s): the server may be hiding it",
    async (baseURL) => {
      expect(await meaningOfNotFound(baseURL, "group/absent.git")).toBe("ambiguous");
    },
  );

  it("is definite over file:// when the base is a non-empty directory and the path does not exist", async () => {
    expect(await meaningOfNotFound(`file://${base}`, "group/absent.git")).toBe("missing");
    expect(await meaningOfNotFound(`file://${base}/`, "other-group/absent.git")).toBe("missing");
  });

  it.each([
    ["the base does not exist (a wrong baseURL)", () => `file://${root}/nowhere`, "group/absent.git"],
    ["the base is empty (perhaps an unmounted volume)", () => `file://${root}/empty`, "group/absent.git"],
    ["the path exists but git did not take it", () => `file://${base}`, "group/present.git"],
    ["the path has a percent sign", () => `file://${base}`, "group/a%41.git"],
    ["the file URL names a host", () => `file://host${base}`, "group/absent.git"],
  ])("is ambiguous over file:// when %s", async (_, baseURL, relativePath) => {
    expect(await meaningOfNotFound(baseURL(), relativePath)).toBe("ambiguous");
  });
});
