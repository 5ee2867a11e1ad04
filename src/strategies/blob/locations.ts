/**
 * Where a secondary's copy lives, as remembered in the registry for deletions: the store's kind
 * and the key. S3 copies keep the plain key they have always had; file copies are `file:<key>`.
 * An S3 key that itself starts with `file:` or `s3:` is written `s3:<key>` so it cannot be read
 * as a file copy.
 */
import type { StoreKind } from "./settings.ts";

const FILE_PREFIX = "file:";
const S3_PREFIX = "s3:";

export interface CopyLocation {
  kind: StoreKind;
  key: string;
}

export function formatCopyLocation(kind: StoreKind, key: string): string {
  if (kind === "FileStorage") return FILE_PREFIX + key;
  return key.startsWith(FILE_PREFIX) || key.startsWith(S3_PREFIX) ? S3_PREFIX + key : key;
}

export function parseCopyLocation(location: string): CopyLocation {
  if (location.startsWith(FILE_PREFIX)) return { kind: "FileStorage", key: location.slice(FILE_PREFIX.length) };
  if (location.startsWith(S3_PREFIX)) return { kind: "ObjectStorage", key: location.slice(S3_PREFIX.length) };
  return { kind: "ObjectStorage", key: location };
}
