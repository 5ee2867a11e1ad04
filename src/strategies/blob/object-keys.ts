/**
 * Object keys of a blob replicable type: derived from a model row through one column or a
 * template over columns, checked, and placed under the site's prefix.
 *
 * Keys are copied byte-exact (spaces, unicode and URL-special characters included). What is
 * refused is what could escape the prefix on a store that interprets paths, or what S3 cannot
 * hold: empty keys, a leading "/", "." and ".." segments, control characters, backslashes, text
 * that is not well-formed unicode, and keys longer than S3's 1024 UTF-8 bytes.
 */

/** S3's limit on a whole key, prefix included. */
export const MAX_KEY_BYTES = 1024;

export type InvalidObjectKeyReason =
  | "empty"
  | "leading-slash"
  | "dot-segment"
  | "control-character"
  | "backslash"
  | "malformed-unicode"
  | "too-long"
  | "no-trailing-slash"
  | "missing-column";

/**
 * A key (or the row it came from) that must not be copied. The caller records it as a failure of
 * that one row; it is not retryable until the row changes.
 */
export class InvalidObjectKeyError extends Error {
  override name = "InvalidObjectKeyError";
  readonly reason: InvalidObjectKeyReason;
  readonly key: string;

  constructor(reason: InvalidObjectKeyReason, key: string, message: string) {
    super(message);
    this.reason = reason;
    this.key = key;
  }
}

/** `spec.source.objectKey` of a ReplicableType: exactly one of the two is set. */
export interface ObjectKeySourceSpec {
  column?: string;
  template?: string;
}

/** A compiled key source: which columns to select, and the key for a selected row. */
export interface ObjectKeySource {
  readonly columns: readonly string[];
  keyFor(row: Readonly<Record<string, unknown>>): string;
}

const PLACEHOLDER = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/**
 * Compiles `objectKey` from a ReplicableType. Throws a plain Error for a configuration mistake
 * (neither or both set, a template without placeholders or with stray braces); `keyFor` throws
 * InvalidObjectKeyError for a row whose key must not be copied.
 */
export function compileObjectKeySource(spec: ObjectKeySourceSpec): ObjectKeySource {
  if ((spec.column === undefined) === (spec.template === undefined)) {
    throw new Error("objectKey needs exactly one of column or template");
  }
  if (spec.column !== undefined) {
    const column = spec.column;
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(column)) throw new Error(`objectKey.column ${JSON.stringify(column)} is not a column name`);
    return { columns: [column], keyFor: (row) => validateObjectKey(columnText(row, column)) };
  }
  const template = spec.template!;
  const columns = [...new Set(Array.from(template.matchAll(PLACEHOLDER), (m) => m[1]!))];
  if (columns.length === 0) throw new Error(`objectKey.template ${JSON.stringify(template)} has no {column} placeholder`);
  if (/[{}]/.test(template.replace(PLACEHOLDER, ""))) {
    throw new Error(`objectKey.template ${JSON.stringify(template)} has a brace outside a {column} placeholder`);
  }
  return {
    columns,
    keyFor: (row) => validateObjectKey(template.replace(PLACEHOLDER, (_, column: string) => columnText(row, column))),
  };
}

function columnText(row: Readonly<Record<string, unknown>>, column: string): string {
  const value = row[column];
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "bigint") return String(value);
  const what = value === null || value === undefined ? "null" : `a ${typeof value}`;
  throw new InvalidObjectKeyError("missing-column", "", `cannot build the object key: column ${column} is ${what}, not text or a number`);
}

/** Returns `key` unchanged when it may be copied; otherwise throws InvalidObjectKeyError. */
export function validateObjectKey(key: string): string {
  if (key === "") throw new InvalidObjectKeyError("empty", key, "invalid object key: the key is empty");
  if (key.startsWith("/")) throw new InvalidObjectKeyError("leading-slash", key, `invalid object key ${quote(key)}: it starts with '/'`);
  checkCharacters(key, "key");
  const bytes = Buffer.byteLength(key, "utf8");
  if (bytes > MAX_KEY_BYTES) throw new InvalidObjectKeyError("too-long", key, `invalid object key: it is ${bytes} UTF-8 bytes, more than ${MAX_KEY_BYTES}`);
  return key;
}

/** Checks a GeoSite's `objectStorage.prefix`: "" or relative segments ending in "/". */
export function validatePrefix(prefix: string): string {
  if (prefix === "") return prefix;
  if (!prefix.endsWith("/")) throw new InvalidObjectKeyError("no-trailing-slash", prefix, `invalid prefix ${quote(prefix)}: a prefix must end with '/'`);
  if (prefix.startsWith("/")) throw new InvalidObjectKeyError("leading-slash", prefix, `invalid prefix ${quote(prefix)}: it starts with '/'`);
  checkCharacters(prefix.slice(0, -1), "prefix");
  return prefix;
}

/**
 * The key stored in the bucket: `prefix + key`, with both checked, so the result always starts
 * with `prefix` and never climbs out of it.
 */
export function fullObjectKey(prefix: string, key: string): string {
  validatePrefix(prefix);
  validateObjectKey(key);
  const full = prefix + key;
  const bytes = Buffer.byteLength(full, "utf8");
  if (bytes > MAX_KEY_BYTES) {
    throw new InvalidObjectKeyError("too-long", key, `invalid object key: prefix ${quote(prefix)} plus key is ${bytes} UTF-8 bytes, more than ${MAX_KEY_BYTES}`);
  }
  return full;
}

function checkCharacters(value: string, what: "key" | "prefix"): void {
  const subject = `invalid ${what === "key" ? "object key" : "prefix"} ${quote(value)}:`;
  if (!value.isWellFormed()) {
    throw new InvalidObjectKeyError("malformed-unicode", value, `${subject} it contains a lone surrogate, which has no UTF-8 form`);
  }
  const control = firstControlCharacter(value);
  if (control >= 0) {
    const code = value.charCodeAt(control).toString(16).padStart(4, "0");
    throw new InvalidObjectKeyError("control-character", value, `${subject} it contains control character U+${code} at index ${control}`);
  }
  if (value.includes("\\")) throw new InvalidObjectKeyError("backslash", value, `${subject} it contains a backslash`);
  const segment = value.split("/").find((s) => s === "." || s === "..");
  if (segment !== undefined) throw new InvalidObjectKeyError("dot-segment", value, `${subject} it contains a '${segment}' path segment`);
}

/** Index of the first C0 control (NUL included), DEL or C1 control; -1 when there is none. */
function firstControlCharacter(value: string): number {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) return i;
  }
  return -1;
}

/** The value as a JSON string (control characters escaped), shortened for a log line. */
function quote(value: string): string {
  return JSON.stringify(value.length > 200 ? `${value.slice(0, 200)}…` : value);
}
