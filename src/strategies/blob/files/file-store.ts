/**
 * Blobs kept as files under a root directory (a mounted volume), GitLab's local storage.
 *
 * FileSource only reads: it is what a primary gets, and it has no method that writes or deletes.
 * FileStore adds the writes a secondary needs. Every operation checks the key lexically (keys.ts),
 * then resolves symlinks and refuses a real path outside realpath(root), for reads and writes
 * alike. Writes go to a temporary file in the destination directory, are hashed and counted while
 * they stream, fsynced, renamed into place and the directory fsynced, so a reader sees the old
 * file or the whole new one and a crash leaves at most a `.geo-tmp-*` file behind.
 */
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { access, lstat, mkdir, open, readdir, readlink, realpath, rename, rm, unlink, type FileHandle } from "node:fs/promises";
import { isAbsolute, join, resolve, sep } from "node:path";
import { type Readable, addAbortSignal, pipeline as pipelineCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { InvalidBlobKeyError, TEMP_PREFIX, blobKeySegments } from "./keys.ts";
import { FILE_READ_CHUNK, Sha256Meter, sha256OfFile } from "../../../util/sha256-meter.ts";
import { BlobMissingError, type BlobChecksum, type BlobReadStream, type BlobSource, type BlobTarget } from "./store.ts";

/**
 * Bytes per write to a file. A socket delivers 64 KiB at a time and each write is a round trip
 * through libuv's thread pool: 1 GiB written in 64 KiB writes took 1.7-2.6 s of CPU here, in 1 MiB
 * writes 0.4 s.
 */
export const FILE_WRITE_CHUNK = 1024 * 1024;

/**
 * Writes everything `source` yields to `file` at its current position, gathered into writes of
 * `chunkSize` bytes (a chunk at least that large, arriving with nothing gathered, goes as it is).
 * Each write completes before the next chunk is read, so memory stays at one staging buffer.
 */
export async function writeCoalesced(file: FileHandle, source: AsyncIterable<Buffer>, chunkSize: number): Promise<void> {
  const staging = Buffer.allocUnsafe(Math.max(1, chunkSize));
  let filled = 0;
  for await (const chunk of source) {
    if (filled === 0 && chunk.length >= staging.length) {
      await writeAll(file, chunk);
      continue;
    }
    for (let offset = 0; offset < chunk.length; ) {
      const copied = chunk.copy(staging, filled, offset);
      filled += copied;
      offset += copied;
      if (filled === staging.length) {
        await writeAll(file, staging);
        filled = 0;
      }
    }
  }
  if (filled > 0) await writeAll(file, staging.subarray(0, filled));
}

/** FileHandle.write may write less than asked; this writes all of `data`. */
async function writeAll(file: FileHandle, data: Buffer): Promise<void> {
  for (let offset = 0; offset < data.length; ) {
    const { bytesWritten } = await file.write(data, offset, data.length - offset);
    offset += bytesWritten;
  }
}

/** An open regular file inside the root; the caller closes `handle`. */
export interface OpenedBlobFile {
  handle: FileHandle;
  size: number;
}

/** Read-only access to the blobs under `root`. */
export class FileSource implements BlobSource {
  readonly root: string;

  constructor(root: string) {
    if (!isAbsolute(root)) throw new Error(`blob root ${JSON.stringify(root)} must be an absolute path`);
    this.root = resolve(root);
  }

  describe(): string {
    return `directory ${this.root} (read-only)`;
  }

  async probe(signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    const root = await this.realRoot();
    try {
      await access(root, constants.R_OK | constants.X_OK);
    } catch (err) {
      throw new Error(`${this.describe()}: cannot read the directory (${codeOf(err) ?? String(err)}); give the worker's user read access to the volume`, { cause: err });
    }
  }

  async open(key: string, signal?: AbortSignal): Promise<BlobReadStream> {
    const { handle, size } = await this.openFile(key, signal);
    // 1 MiB reads, not the stream default of 64 KiB: every read is a round trip through libuv's
    // thread pool, measured at ~3 s of CPU per GiB in 64 KiB reads against ~1 s in 1 MiB ones.
    const file = handle.createReadStream({ highWaterMark: FILE_READ_CHUNK });
    if (signal) addAbortSignal(signal, file);
    // The file may be truncated or appended to while it streams; the meter turns that into an error.
    const meter = new Sha256Meter(size, `${key} in ${this.describe()}`, { hash: false });
    pipelineCallback(file, meter, () => undefined);
    return { body: meter, length: size };
  }

  /**
   * Reads the blob at `key` once and returns its SHA-256 (sha256OfFile: large reads, no stream).
   * Throws BlobMissingError when it is absent, BlobLengthMismatchError when it changes size meanwhile.
   */
  async sha256(key: string, signal?: AbortSignal): Promise<BlobChecksum> {
    const { handle, size } = await this.openFile(key, signal);
    try {
      return await sha256OfFile(handle, size, `${key} in ${this.describe()}`, signal);
    } finally {
      await handle.close();
    }
  }

  /**
   * Opens the regular file at `key` for reading. Throws BlobMissingError when nothing is there,
   * InvalidBlobKeyError for a key that is refused or whose real path leaves the root, and an
   * ordinary Error when the root is unavailable or the key names something other than a file.
   */
  async openFile(key: string, signal?: AbortSignal): Promise<OpenedBlobFile> {
    signal?.throwIfAborted();
    const segments = blobKeySegments(key);
    const root = await this.realRoot();
    let real: string;
    try {
      real = await realpath(join(root, ...segments));
    } catch (err) {
      if (isMissing(err)) throw new BlobMissingError(this.describe(), key, { cause: err });
      throw err;
    }
    assertInside(root, real, key);
    let handle: FileHandle;
    try {
      // O_NOFOLLOW: a symlink swapped in after realpath() is refused, not followed.
      handle = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (err) {
      if (isMissing(err)) throw new BlobMissingError(this.describe(), key, { cause: err });
      throw err;
    }
    try {
      await assertOpenedInside(handle, root, key);
      const stat = await handle.stat();
      if (!stat.isFile()) throw new Error(`blob ${JSON.stringify(key)} in ${this.describe()} is not a regular file`);
      return { handle, size: stat.size };
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  /** realpath(root), or an Error saying the volume is not there. */
  protected async realRoot(): Promise<string> {
    let root: string;
    try {
      root = await realpath(this.root);
    } catch (err) {
      throw new Error(`${this.describe()}: the directory is not available (${codeOf(err) ?? String(err)}); is the volume mounted?`, { cause: err });
    }
    const handle = await open(root, constants.O_RDONLY | constants.O_DIRECTORY).catch((err: unknown) => {
      throw new Error(`${this.describe()}: cannot open the directory (${codeOf(err) ?? String(err)})`, { cause: err });
    });
    await handle.close();
    return root;
  }
}

/** Read and write access to the blobs under `root`: a secondary's store. */
export class FileStore extends FileSource implements BlobTarget {
  override describe(): string {
    return `directory ${this.root}`;
  }

  override async probe(signal?: AbortSignal): Promise<void> {
    await super.probe(signal);
    const root = await this.realRoot();
    const probe = join(root, `${TEMP_PREFIX}probe-${randomBytes(6).toString("hex")}`);
    try {
      const handle = await open(probe, "wx", 0o600);
      await handle.close();
    } catch (err) {
      throw new Error(`${this.describe()}: cannot create files (${codeOf(err) ?? String(err)}); the volume must be writable by the worker's user`, { cause: err });
    } finally {
      await rm(probe, { force: true });
    }
  }

  async write(key: string, body: Readable, length: number, signal?: AbortSignal): Promise<BlobChecksum> {
    let tmp: string | undefined;
    let handle: FileHandle | undefined;
    try {
      signal?.throwIfAborted();
      const segments = blobKeySegments(key);
      const root = await this.realRoot();
      const dir = await this.ensureDirectory(root, segments.slice(0, -1), key);
      tmp = join(dir, `${TEMP_PREFIX}${randomBytes(8).toString("hex")}`);
      // "wx" is O_CREAT|O_EXCL: never reuses or follows an existing entry.
      handle = await open(tmp, "wx", 0o644);
      const file = handle;
      const meter = new Sha256Meter(length, `${key} (written to ${this.describe()})`);
      await pipeline(
        body,
        meter,
        (source: AsyncIterable<Buffer>) => writeCoalesced(file, source, Math.min(FILE_WRITE_CHUNK, length)),
        signal ? { signal } : {},
      );
      await file.sync();
      handle = undefined;
      await file.close();
      signal?.throwIfAborted();
      await rename(tmp, join(dir, segments.at(-1)!));
      tmp = undefined;
      await syncDirectory(dir);
      return meter.result();
    } catch (err) {
      body.destroy();
      throw err;
    } finally {
      await handle?.close().catch(() => undefined);
      if (tmp !== undefined) await rm(tmp, { force: true });
    }
  }

  async remove(key: string): Promise<void> {
    const segments = blobKeySegments(key);
    const root = await this.realRoot();
    let dir: string;
    try {
      dir = await realpath(join(root, ...segments.slice(0, -1)));
    } catch (err) {
      if (isMissing(err)) return;
      throw err;
    }
    assertInside(root, dir, key);
    try {
      // unlink() removes a symlink itself, never what it points to.
      await unlink(join(dir, segments.at(-1)!));
    } catch (err) {
      if (isMissing(err)) return;
      throw err;
    }
  }

  /**
   * Deletes the temporary files that writes interrupted by a crash left behind (a failed write
   * removes its own), when they were last modified more than `olderThanMs` ago, so that a write
   * still in progress elsewhere is not disturbed. Symlinks are not followed. Returns how many
   * were removed.
   */
  async removeStaleTempFiles(olderThanMs: number, now: number = Date.now()): Promise<number> {
    const root = await this.realRoot();
    let removed = 0;
    const walk = async (dir: string): Promise<void> => {
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) await walk(path);
        else if (entry.isFile() && entry.name.startsWith(TEMP_PREFIX)) {
          const stat = await lstat(path).catch(() => undefined);
          if (stat && now - stat.mtimeMs > olderThanMs) {
            await rm(path, { force: true });
            removed++;
          }
        }
      }
    };
    await walk(root);
    return removed;
  }

  /**
   * Creates the directories of a key one level at a time, checking each real path before going
   * deeper, so a symlink inside the root that points outside is refused before anything is created
   * through it. Returns the real path of the last directory.
   */
  private async ensureDirectory(root: string, segments: readonly string[], key: string): Promise<string> {
    let current = root;
    for (const segment of segments) {
      const next = join(current, segment);
      let real: string;
      try {
        real = await realpath(next);
      } catch (err) {
        if (codeOf(err) !== "ENOENT") throw err;
        await mkdir(next).catch((e: unknown) => {
          if (codeOf(e) !== "EEXIST") throw e;
        });
        // Still ENOENT here means a dangling symlink; the error says so by its path.
        real = await realpath(next);
      }
      assertInside(root, real, key);
      current = real;
    }
    return current;
  }
}

/** True when `path` (a real path) is `root` or below it. */
export function isInside(root: string, path: string): boolean {
  const base = root.endsWith(sep) ? root : root + sep;
  return path === root || path.startsWith(base);
}

function assertInside(root: string, real: string, key: string): void {
  if (!isInside(root, real)) throw new InvalidBlobKeyError("outside-root", key, "its real path leaves the root directory");
}

/**
 * Where the kernel says the open file lives (Linux): closes the gap between realpath() and open()
 * in which a directory on the path could have been replaced by a symlink.
 */
async function assertOpenedInside(handle: FileHandle, root: string, key: string): Promise<void> {
  if (process.platform !== "linux") return;
  let opened: string;
  try {
    opened = await readlink(`/proc/self/fd/${handle.fd}`);
  } catch {
    return; // no /proc: the realpath() check before open() stands alone
  }
  assertInside(root, opened, key);
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** ENOENT, or ENOTDIR when a file stands where the key needs a directory: nothing is there. */
function isMissing(err: unknown): boolean {
  const code = codeOf(err);
  return code === "ENOENT" || code === "ENOTDIR";
}
