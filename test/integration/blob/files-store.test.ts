/** FileSource and FileStore on a real directory: atomic writes, confinement to the root, missing vs unavailable. */
import { createHash, randomBytes } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { text } from "node:stream/consumers";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FileSource, FileStore } from "../../../src/strategies/blob/files/file-store.ts";
import { InvalidBlobKeyError } from "../../../src/strategies/blob/files/keys.ts";
import { BlobLengthMismatchError, BlobMissingError } from "../../../src/strategies/blob/files/store.ts";

const sha256 = (data: Buffer | string) => createHash("sha256").update(data).digest();

let base: string;
let root: string;
let outside: string;

beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), "geo-files-"));
  root = join(base, "root");
  outside = join(base, "outside");
  mkdirSync(root);
  mkdirSync(outside);
  writeFileSync(join(outside, "secret.txt"), "outside the root");
});
afterEach(() => rmSync(base, { recursive: true, force: true }));

/** Every entry under `dir`, recursively, as relative paths (readdir follows symlinked directories). */
function tree(dir: string): string[] {
  return readdirSync(dir, { recursive: true }).map(String).sort();
}

function chunks(data: Buffer, size = 64 * 1024): Readable {
  return Readable.from((function* () {
    for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
  })());
}

describe("FileStore round trip", () => {
  it("writes atomically, reads back and hashes the same SHA-256, leaving no temporary file", async () => {
    const store = new FileStore(root);
    const data = randomBytes(3 * 1024 * 1024 + 7);

    const written = await store.write("uploads/2026/a b ü.bin", chunks(data), data.length);

    expect(written).toEqual({ checksum: sha256(data), bytes: data.length });
    // Compared through hashes: toEqual on megabytes of Buffer is slow.
    expect(sha256(readFileSync(join(root, "uploads/2026/a b ü.bin")))).toEqual(sha256(data));
    expect(await store.sha256("uploads/2026/a b ü.bin")).toEqual({ checksum: sha256(data), bytes: data.length });
    const opened = await store.open("uploads/2026/a b ü.bin");
    expect(opened.length).toBe(data.length);
    expect(sha256(Buffer.concat(await opened.body.toArray()))).toEqual(sha256(data));
    expect(tree(root)).toEqual(["uploads", "uploads/2026", "uploads/2026/a b ü.bin"]);
  });

  it("writes bodies in chunks of any size, smaller and larger than a write, whole and in order", async () => {
    const store = new FileStore(root);
    const MiB = 1024 * 1024;
    const sizes = [1, MiB - 1, 3, MiB, 2 * MiB + 5, 16 * 1024, MiB - 16 * 1024, 7];
    const parts = sizes.map((n) => randomBytes(n));
    const data = Buffer.concat(parts);

    const written = await store.write("mixed/blob", Readable.from(parts), data.length);

    expect(written).toEqual({ checksum: sha256(data), bytes: data.length });
    expect(sha256(readFileSync(join(root, "mixed/blob")))).toEqual(sha256(data));
  });

  it("reads a file in 1 MiB chunks, not the stream default of 64 KiB", async () => {
    const store = new FileStore(root);
    const data = randomBytes(3 * 1024 * 1024 + 1);
    writeFileSync(join(root, "big"), data);

    const opened = await store.open("big");
    const received = (await opened.body.toArray()) as Buffer[];

    expect(sha256(Buffer.concat(received))).toEqual(sha256(data));
    expect(Math.max(...received.map((c) => c.length))).toBe(1024 * 1024);
    expect(received.length).toBe(4);
  });

  it("replaces an existing file and writes an empty one", async () => {
    const store = new FileStore(root);
    await store.write("f", Readable.from([Buffer.from("old")]), 3);
    await store.write("f", Readable.from([Buffer.from("new!")]), 4);
    await store.write("empty", Readable.from([]), 0);
    expect(readFileSync(join(root, "f"), "utf8")).toBe("new!");
    expect(await store.sha256("empty")).toEqual({ checksum: sha256(""), bytes: 0 });
    expect(tree(root)).toEqual(["empty", "f"]);
  });

  it("fails on a body longer or shorter than announced and leaves nothing behind", async () => {
    const store = new FileStore(root);
    await expect(store.write("d/long", Readable.from([Buffer.from("12345")]), 4)).rejects.toBeInstanceOf(BlobLengthMismatchError);
    await expect(store.write("d/short", Readable.from([Buffer.from("123")]), 4)).rejects.toBeInstanceOf(BlobLengthMismatchError);
    expect(tree(root)).toEqual(["d"]);
  });

  it("leaves no partial and no temporary file when the write is aborted midway, and keeps the old content", async () => {
    const store = new FileStore(root);
    await store.write("k/blob", Readable.from([Buffer.from("previous")]), 8);
    const controller = new AbortController();
    let sent = 0;
    const body = new Readable({
      read() {
        if (sent === 3) {
          // Three chunks are in; abort while the writer waits for the rest.
          controller.abort();
          return;
        }
        sent++;
        this.push(randomBytes(64 * 1024));
      },
    });

    await expect(store.write("k/blob", body, 10 * 64 * 1024, controller.signal)).rejects.toThrow(/abort/i);

    expect(sent).toBe(3);
    expect(body.destroyed).toBe(true);
    expect(tree(root)).toEqual(["k", "k/blob"]);
    expect(readFileSync(join(root, "k/blob"), "utf8")).toBe("previous");
  });

  it("removes a file, and a missing one is fine", async () => {
    const store = new FileStore(root);
    await store.write("a/b", Readable.from([Buffer.from("x")]), 1);
    await store.remove("a/b");
    await store.remove("a/b");
    await store.remove("never/was/here");
    expect(existsSync(join(root, "a/b"))).toBe(false);
  });
});

describe("removeStaleTempFiles", () => {
  it("removes old temporary files anywhere under the root, keeping recent ones, data and what symlinks point to", async () => {
    mkdirSync(join(root, "a/b"), { recursive: true });
    symlinkSync(outside, join(root, "link"));
    writeFileSync(join(outside, ".geo-tmp-not-ours"), "x");
    const hourAgo = new Date(Date.now() - 3_600_000);
    for (const path of [".geo-tmp-1", "a/b/.geo-tmp-2"]) {
      writeFileSync(join(root, path), "partial");
      utimesSync(join(root, path), hourAgo, hourAgo);
    }
    writeFileSync(join(root, "a/.geo-tmp-fresh"), "being written");
    writeFileSync(join(root, "a/b/data"), "keep");
    utimesSync(join(root, "a/b/data"), hourAgo, hourAgo);

    expect(await new FileStore(root).removeStaleTempFiles(600_000)).toBe(2);

    expect(tree(join(root, "a"))).toEqual([".geo-tmp-fresh", "b", "b/data"]);
    expect(existsSync(join(root, ".geo-tmp-1"))).toBe(false);
    expect(tree(outside)).toEqual([".geo-tmp-not-ours", "secret.txt"]);
  });
});

describe("missing versus unavailable", () => {
  it("raises BlobMissingError for a missing file, or a file standing where a directory should be", async () => {
    const store = new FileStore(root);
    writeFileSync(join(root, "plain"), "x");
    await expect(store.open("nope/x")).rejects.toBeInstanceOf(BlobMissingError);
    await expect(store.sha256("nope")).rejects.toBeInstanceOf(BlobMissingError);
    await expect(store.open("plain/x")).rejects.toBeInstanceOf(BlobMissingError);
  });

  it("raises an ordinary error, not BlobMissingError, when the root itself is gone or the key is a directory", async () => {
    mkdirSync(join(root, "dir"));
    const store = new FileSource(root);
    const err = await store.open("dir").catch((e: unknown) => e);
    expect(err).not.toBeInstanceOf(BlobMissingError);
    expect(String(err)).toMatch(/not a regular file/);

    const gone = new FileSource(join(base, "unmounted"));
    const err2 = await gone.open("a").catch((e: unknown) => e);
    expect(err2).toBeInstanceOf(Error);
    expect(err2).not.toBeInstanceOf(BlobMissingError);
    await expect(gone.probe()).rejects.toThrow(/unmounted \(read-only\): the directory is not available \(ENOENT\); is the volume mounted\?/);
  });

  it("probes a readable root and a writable one without leaving files", async () => {
    await new FileSource(root).probe();
    await new FileStore(root).probe();
    expect(tree(root)).toEqual([]);
  });
});

describe("confinement to the root", () => {
  it("refuses ../ for read, write and remove, and creates nothing outside", async () => {
    const store = new FileStore(root);
    for (const key of ["../outside/secret.txt", "a/../../outside/x", "/etc/passwd"]) {
      await expect(store.open(key)).rejects.toBeInstanceOf(InvalidBlobKeyError);
      await expect(store.write(key, Readable.from([Buffer.from("x")]), 1)).rejects.toBeInstanceOf(InvalidBlobKeyError);
      await expect(store.remove(key)).rejects.toBeInstanceOf(InvalidBlobKeyError);
    }
    expect(tree(outside)).toEqual(["secret.txt"]);
    expect(tree(root)).toEqual([]);
  });

  it("refuses to read through a symlink that leaves the root", async () => {
    symlinkSync(outside, join(root, "link"));
    symlinkSync(join(outside, "secret.txt"), join(root, "evil.txt"));
    const source = new FileSource(root);
    for (const key of ["link/secret.txt", "evil.txt"]) {
      const err = await source.open(key).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidBlobKeyError);
      expect((err as InvalidBlobKeyError).reason).toBe("outside-root");
      await expect(new FileStore(root).sha256(key)).rejects.toBeInstanceOf(InvalidBlobKeyError);
    }
  });

  it("refuses to write or remove through a symlinked directory that leaves the root", async () => {
    symlinkSync(outside, join(root, "link"));
    const store = new FileStore(root);
    await expect(store.write("link/new.txt", Readable.from([Buffer.from("x")]), 1)).rejects.toMatchObject({ reason: "outside-root" });
    await expect(store.write("link/sub/new.txt", Readable.from([Buffer.from("x")]), 1)).rejects.toMatchObject({ reason: "outside-root" });
    await expect(store.remove("link/secret.txt")).rejects.toMatchObject({ reason: "outside-root" });
    expect(tree(outside)).toEqual(["secret.txt"]);
    expect(readFileSync(join(outside, "secret.txt"), "utf8")).toBe("outside the root");
  });

  it("replaces a symlinked file by writing, never writing through it", async () => {
    symlinkSync(join(outside, "secret.txt"), join(root, "evil.txt"));
    const store = new FileStore(root);
    await store.write("evil.txt", Readable.from([Buffer.from("replaced")]), 8);
    expect(lstatSync(join(root, "evil.txt")).isSymbolicLink()).toBe(false);
    expect(readFileSync(join(root, "evil.txt"), "utf8")).toBe("replaced");
    expect(readFileSync(join(outside, "secret.txt"), "utf8")).toBe("outside the root");
  });

  it("follows a symlink that stays inside the root", async () => {
    mkdirSync(join(root, "real"));
    writeFileSync(join(root, "real/f"), "inside");
    symlinkSync(join(root, "real"), join(root, "alias"));
    const store = new FileStore(root);
    expect(await text((await store.open("alias/f")).body)).toBe("inside");
    await store.write("alias/g", Readable.from([Buffer.from("via alias")]), 9);
    expect(readFileSync(join(root, "real/g"), "utf8")).toBe("via alias");
  });

  it("offers no way to write or delete on a read-only source", () => {
    const source = new FileSource(root) as unknown as Record<string, unknown>;
    expect(source.write).toBeUndefined();
    expect(source.remove).toBeUndefined();
  });
});
