/**
 * Where a repository lives: its path relative to a site (from the model row), the URL the
 * secondary fetches it from, and its mirror directory on the secondary.
 *
 * The relative path comes from the ReplicableType's `source.repositoryPath`: a column, or a
 * template such as `{disk_path}.git` whose placeholders are column names. A leading `{base}/` is
 * accepted and ignored (so `{base}/{disk_path}.git` reads the same): the primary URL is always
 * `<primary GeoSite git.baseURL>/<relative path>`, the mirror `<mirrorRoot>/<relative path>`.
 *
 * The path is data from the primary's database, so it is validated before it touches a URL or
 * the filesystem; a bad one throws RepositoryPathError, which fails that row only.
 */
import { createHash } from "node:crypto";
import { lstat, realpath } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { RepositoryPathError } from "./errors.ts";

/** Where the relative path comes from: exactly one of a column or a template. */
export type RepositoryPathSource = { column: string; template?: undefined } | { template: string; column?: undefined };

/** Prefix of the temporary directories a clone goes into, next to the final mirror. */
export const TEMPORARY_PREFIX = ".geo-tmp-";

/**
 * Prefix of one mirror's temporaries: TEMPORARY_PREFIX, a fixed-length digest of the mirror's
 * directory name, `-`. The digest has a fixed length so no mirror's prefix is a prefix of
 * another's (`foo`'s name-based prefix `.geo-tmp-foo-` also matched `foo-bar`'s temporaries, and
 * clearing one mirror's leftovers removed the other's clone in progress), and it keeps the name
 * short whatever the segment's length. Siblings share a parent, so the name alone tells them apart.
 */
export function temporaryPrefix(mirrorPath: string): string {
  return `${TEMPORARY_PREFIX}${createHash("sha256").update(basename(mirrorPath)).digest("hex").slice(0, 20)}-`;
}

const MAX_SEGMENT_BYTES = 255;
const MAX_PATH_BYTES = 4_000;
const PLACEHOLDER = /\{([a-z_][a-z0-9_]*)\}/g;

/** Substitutes `{column}` placeholders from the row. A missing or null column is an error. */
export function renderTemplate(template: string, row: Readonly<Record<string, unknown>>): string {
  return template.replace(PLACEHOLDER, (_, column: string) => {
    const value = row[column];
    if (value === undefined) throw new RepositoryPathError(`template ${JSON.stringify(template)} names column ${column}, which the row does not have`);
    if (value === null) throw new RepositoryPathError(`column ${column} is null, so template ${JSON.stringify(template)} has no value`);
    if (typeof value !== "string" && typeof value !== "number" && typeof value !== "bigint") {
      throw new RepositoryPathError(`column ${column} is a ${typeof value}, not text or a number`);
    }
    return String(value);
  });
}

/** The validated relative path of a row's repository. */
export function repositoryRelativePath(source: RepositoryPathSource, row: Readonly<Record<string, unknown>>): string {
  let path: string;
  if (source.column !== undefined) {
    const value = row[source.column];
    if (typeof value !== "string") throw new RepositoryPathError(`column ${source.column} must hold the repository path as text, got ${value === null ? "null" : typeof value}`);
    path = value;
  } else {
    path = renderTemplate(source.template.replace(/^\{base\}\/+/, ""), row);
  }
  validateRelativePath(path);
  return path;
}

/**
 * Refuses what could escape the mirror root or confuse git and URLs: empty, absolute, backslashes,
 * NUL and control characters, empty / `.` / `..` segments, over-long segments, and segments
 * starting with the temporary-directory prefix.
 */
export function validateRelativePath(path: string): void {
  const show = JSON.stringify(path.slice(0, 200));
  if (path === "") throw new RepositoryPathError("repository path is empty");
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(path)) throw new RepositoryPathError(`repository path ${show} contains a NUL or control character`);
  if (path.includes("\\")) throw new RepositoryPathError(`repository path ${show} contains a backslash`);
  if (path.startsWith("/") || isAbsolute(path)) throw new RepositoryPathError(`repository path ${show} is absolute; it must be relative to the mirror root`);
  if (Buffer.byteLength(path) > MAX_PATH_BYTES) throw new RepositoryPathError(`repository path ${show}… is longer than ${MAX_PATH_BYTES} bytes`);
  for (const segment of path.split("/")) {
    if (segment === "") throw new RepositoryPathError(`repository path ${show} has an empty segment (leading, trailing or double slash)`);
    if (segment === "." || segment === "..") throw new RepositoryPathError(`repository path ${show} contains a '${segment}' segment`);
    if (Buffer.byteLength(segment) > MAX_SEGMENT_BYTES) throw new RepositoryPathError(`repository path ${show} has a segment longer than ${MAX_SEGMENT_BYTES} bytes`);
    if (segment.startsWith(TEMPORARY_PREFIX)) throw new RepositoryPathError(`repository path ${show} uses the reserved prefix ${TEMPORARY_PREFIX}`);
  }
}

/**
 * The URL a secondary fetches a repository from: the primary's base URL, one slash, the relative
 * path. For http(s) each segment is percent-encoded (git hands the URL to curl as is); git:// ssh://
 * and file:// paths are passed through, git does not decode them.
 */
export function primaryRepositoryURL(baseURL: string, relativePath: string): string {
  validateRelativePath(relativePath);
  const base = baseURL.replace(/\/+$/, "");
  if (/^(https?|git|ssh|file):\/\/./i.test(base) === false) {
    throw new RepositoryPathError(`primary git.baseURL must be an http(s)://, git://, ssh:// or file:// URL`);
  }
  const path = /^https?:/i.test(base) ? relativePath.split("/").map(encodeURIComponent).join("/") : relativePath;
  return `${base}/${path}`;
}

/**
 * The mirror directory of a relative path under `mirrorRoot`, after checking that it stays inside
 * the root on disk too: the nearest existing ancestor (or the mirror itself, if it exists) is
 * resolved through symlinks and must still be under the resolved root.
 */
export async function mirrorPath(mirrorRootSetting: string, relativePath: string): Promise<string> {
  if (!isAbsolute(mirrorRootSetting)) throw new RepositoryPathError(`mirror root ${JSON.stringify(mirrorRootSetting)} must be an absolute path`);
  const mirrorRoot = resolve(mirrorRootSetting);
  validateRelativePath(relativePath);
  const target = join(mirrorRoot, relativePath);
  assertInside(mirrorRoot, target, relativePath);

  let root: string;
  try {
    root = await realpath(mirrorRoot);
  } catch (err) {
    throw new RepositoryPathError(`mirror root ${JSON.stringify(mirrorRoot)} is not usable: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  let existing = target;
  while (existing !== mirrorRoot && !(await exists(existing))) existing = dirname(existing);
  if (existing !== mirrorRoot) {
    let resolved: string;
    try {
      resolved = await realpath(existing);
    } catch {
      throw new RepositoryPathError(`repository path ${JSON.stringify(relativePath)} goes through ${JSON.stringify(existing)}, a symlink that does not resolve`);
    }
    assertInside(root, resolved, relativePath, existing);
  }
  return target;
}

function assertInside(root: string, candidate: string, relativePath: string, via?: string): void {
  const rel = relative(root, candidate);
  if (rel === "" || rel === ".." || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
    const how = via ? ` (through ${JSON.stringify(via)}, which resolves to ${JSON.stringify(candidate)})` : "";
    throw new RepositoryPathError(`repository path ${JSON.stringify(relativePath)} resolves outside the mirror root${how}`);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
}
