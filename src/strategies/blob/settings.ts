/**
 * A blob type's settings and which stores they use: the primary's store is `blob.primaryStore`, or
 * per record GitLab's `file_store` column (1 local file, 2 object storage); the secondary keeps a
 * record in `blob.secondaryStore`, or in the same kind of store as the primary (SameAsPrimary).
 */
import type { ReplicableTypeSpec } from "../../api/v1alpha1/types.generated.ts";
import type { ObjectKeySourceSpec } from "./object-keys.ts";

/** A kind of store, as `spec.blob` names it; each is one GeoSite field (objectStorage, fileStorage). */
export type StoreKind = "ObjectStorage" | "FileStorage";
export const STORE_KINDS: readonly StoreKind[] = ["ObjectStorage", "FileStorage"];

export interface BlobSettings {
  objectKey: ObjectKeySourceSpec;
  primaryStore: StoreKind;
  secondaryStore: StoreKind | "SameAsPrimary";
  /** GitLab's `file_store`: chooses the primary's store per record. */
  storeColumn?: string;
  /**
   * StoreChecksum: a copy's first verification after a write may use the SHA-256 its bucket
   * checked at upload instead of reading it back (re-verification always reads). ReadBack: never.
   */
  firstVerification: "StoreChecksum" | "ReadBack";
}

/** GitLab's ObjectStorage::Store values in `file_store` / `store` columns. */
export const FILE_STORE_LOCAL = 1;
export const FILE_STORE_REMOTE = 2;

export function parseBlobSettings(spec: ReplicableTypeSpec): BlobSettings {
  if (!spec.source.objectKey) throw new Error(`ReplicableType ${spec.name} has no source.objectKey`);
  const settings: BlobSettings = {
    objectKey: spec.source.objectKey,
    primaryStore: spec.blob?.primaryStore ?? "ObjectStorage",
    secondaryStore: spec.blob?.secondaryStore ?? "SameAsPrimary",
    firstVerification: spec.blob?.firstVerification ?? "StoreChecksum",
  };
  if (spec.source.storeColumn) settings.storeColumn = spec.source.storeColumn;
  return settings;
}

/** The kinds of store the type may read on the primary. */
export function primaryStoreKinds(settings: BlobSettings): StoreKind[] {
  return settings.storeColumn ? [...STORE_KINDS] : [settings.primaryStore];
}

/** The kinds of store the type may write on a secondary. */
export function secondaryStoreKinds(settings: BlobSettings): StoreKind[] {
  return settings.secondaryStore === "SameAsPrimary" ? primaryStoreKinds(settings) : [settings.secondaryStore];
}

/** A `storeColumn` value that is neither 1 nor 2 (nor empty). */
export class UnknownStoreValueError extends Error {
  override name = "UnknownStoreValueError";
}

/**
 * The primary's store for one record: from `storeColumn` when the column has a value, else
 * `primaryStore`. Throws UnknownStoreValueError for a value GitLab does not use.
 */
export function recordPrimaryStore(settings: BlobSettings, columns: Readonly<Record<string, unknown>>): StoreKind {
  if (!settings.storeColumn) return settings.primaryStore;
  const value = columns[settings.storeColumn];
  if (value === null || value === undefined || value === "") return settings.primaryStore;
  const n = Number(value);
  if (n === FILE_STORE_LOCAL) return "FileStorage";
  if (n === FILE_STORE_REMOTE) return "ObjectStorage";
  throw new UnknownStoreValueError(`${settings.storeColumn} = ${JSON.stringify(value)} is not a store (1 = local file, 2 = object storage)`);
}

/** The secondary's store for a record kept in `primary` on the primary. */
export function recordSecondaryStore(settings: BlobSettings, primary: StoreKind): StoreKind {
  return settings.secondaryStore === "SameAsPrimary" ? primary : settings.secondaryStore;
}
