import type { V1EnvVar } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import type { GeoSite } from "../../api/v1alpha1/resources.ts";
import type { GeoSiteSpec, ReplicableTypeSpec } from "../../api/v1alpha1/types.generated.ts";
import { blobStrategy } from "./definition.ts";
import { formatCopyLocation, parseCopyLocation } from "./locations.ts";
import { recordPrimaryStore, recordSecondaryStore, UnknownStoreValueError, type BlobSettings } from "./settings.ts";

const KEY = "k".repeat(40);
const s3 = (bucket: string, secret: string) => ({ endpoint: `http://${bucket}`, bucket, credentialsSecretRef: { name: secret } });
const primary: GeoSiteSpec = {
  role: "primary",
  database: { secretRef: { name: "a" } },
  objectStorage: s3("pb", "p-s3"),
  fileStorage: { root: "/var/uploads", persistentVolumeClaim: { claimName: "uploads" } },
};
const retrievalPrimary: GeoSiteSpec = {
  ...primary,
  fileStorage: { ...primary.fileStorage, retrieval: { url: "https://files.london.example:8443", tlsSecretRef: { name: "files-tls" } } },
};
const secondary: GeoSiteSpec = {
  role: "secondary",
  database: { secretRef: { name: "b" } },
  objectStorage: s3("sb", "s-s3"),
  fileStorage: { root: "/srv/copies", persistentVolumeClaim: { claimName: "copies" }, retrievalCredentialsSecretRef: { name: "tokyo-files-key" } },
};
const site = (name: string, spec: GeoSiteSpec, namespace = "geo"): GeoSite => ({ apiVersion: "geo.replication.dev/v1alpha1", kind: "GeoSite", metadata: { name, namespace }, spec });
const settings = (over: Partial<BlobSettings> = {}): BlobSettings => ({ objectKey: { template: "u/{id}/{file_name}" }, primaryStore: "ObjectStorage", secondaryStore: "SameAsPrimary", firstVerification: "StoreChecksum", ...over });
const files = settings({ primaryStore: "FileStorage" });
const mixed = settings({ storeColumn: "file_store" });
const spec = (over: Partial<ReplicableTypeSpec> = {}): ReplicableTypeSpec => ({ name: "u", strategy: "blob", source: { table: "us", objectKey: { template: "u/{id}/{file_name}" } }, ...over });
const refs = (env: readonly V1EnvVar[]) =>
  env.map((e) => [e.name, e.valueFrom?.secretKeyRef?.name, e.valueFrom?.secretKeyRef?.key, e.valueFrom?.secretKeyRef?.optional ?? false]);

describe("blob settings", () => {
  it("defaults to object storage on both sides and reads the store column", () => {
    expect(blobStrategy.parseSettings(spec())).toEqual(settings());
    expect(
      blobStrategy.parseSettings(
        spec({ blob: { primaryStore: "FileStorage", secondaryStore: "ObjectStorage", firstVerification: "ReadBack" }, source: { table: "us", objectKey: { column: "path" }, storeColumn: "file_store" } }),
      ),
    ).toEqual({
      objectKey: { column: "path" },
      primaryStore: "FileStorage",
      secondaryStore: "ObjectStorage",
      storeColumn: "file_store",
      firstVerification: "ReadBack",
    });
  });

  it("reads the store column as a model column", () => {
    expect(blobStrategy.modelColumns(settings())).toEqual(["id", "file_name"]);
    expect(blobStrategy.modelColumns(mixed)).toEqual(["id", "file_name", "file_store"]);
  });

  it("picks each record's stores: GitLab's file_store (1 local, 2 object storage), else primaryStore; SameAsPrimary follows it", () => {
    expect(recordPrimaryStore(mixed, { file_store: 1 })).toBe("FileStorage");
    expect(recordPrimaryStore(mixed, { file_store: "2" })).toBe("ObjectStorage");
    expect(recordPrimaryStore(settings({ storeColumn: "file_store", primaryStore: "FileStorage" }), { file_store: null })).toBe("FileStorage");
    expect(() => recordPrimaryStore(mixed, { file_store: 3 })).toThrow(UnknownStoreValueError);
    expect(recordPrimaryStore(files, { file_store: 2 })).toBe("FileStorage");
    expect(recordSecondaryStore(mixed, "FileStorage")).toBe("FileStorage");
    expect(recordSecondaryStore(settings({ secondaryStore: "ObjectStorage" }), "FileStorage")).toBe("ObjectStorage");
  });

  it("remembers which store holds a copy, keeping plain S3 keys valid", () => {
    expect(formatCopyLocation("ObjectStorage", "u/1/a.bin")).toBe("u/1/a.bin");
    expect(formatCopyLocation("FileStorage", "u/1/a.bin")).toBe("file:u/1/a.bin");
    expect(formatCopyLocation("ObjectStorage", "file:odd")).toBe("s3:file:odd");
    for (const [kind, key] of [["ObjectStorage", "u/1/a.bin"], ["FileStorage", "u/1/a.bin"], ["ObjectStorage", "file:odd"], ["ObjectStorage", "s3:x"]] as const) {
      expect(parseCopyLocation(formatCopyLocation(kind, key))).toEqual({ kind, key });
    }
    expect(parseCopyLocation("legacy/key")).toEqual({ kind: "ObjectStorage", key: "legacy/key" });
  });
});

describe("blob endpoints from env", () => {
  const s3Env = { GEO_PRIMARY_S3_ACCESS_KEY_ID: "pk", GEO_PRIMARY_S3_SECRET_ACCESS_KEY: "ps", GEO_SECONDARY_S3_ACCESS_KEY_ID: "sk", GEO_SECONDARY_S3_SECRET_ACCESS_KEY: "ss" };

  it("reads files directly from the primary's root, and needs no S3 credentials for a type of files only", () => {
    expect(blobStrategy.endpointsFromEnv({}, secondary, primary, files, "tokyo")).toEqual({
      primary: { FileStorage: { kind: "files", root: "/var/uploads" } },
      secondary: { FileStorage: { kind: "files", root: "/srv/copies" } },
    });
    expect(blobStrategy.endpointsFromEnv({}, primary, primary, files, "london")).toEqual({ primary: { FileStorage: { kind: "files", root: "/var/uploads" } } });
  });

  it("reads through the primary's retrieval server with this site's name, key and CA", () => {
    const env = { GEO_PRIMARY_FILES_KEY: `${KEY}\n`, GEO_PRIMARY_FILES_CA: "PEM" };
    expect(blobStrategy.endpointsFromEnv(env, secondary, retrievalPrimary, files, "tokyo").primary).toEqual({
      FileStorage: { kind: "retrieval", url: "https://files.london.example:8443", site: "tokyo", key: KEY, ca: "PEM" },
    });
    expect(blobStrategy.endpointsFromEnv({ GEO_PRIMARY_FILES_KEY: KEY }, secondary, retrievalPrimary, files, "tokyo").primary.FileStorage).not.toHaveProperty("ca");
    // The primary itself always reads its own directory.
    expect(blobStrategy.endpointsFromEnv({}, retrievalPrimary, retrievalPrimary, files, "london").primary.FileStorage).toEqual({ kind: "files", root: "/var/uploads" });
    expect(() => blobStrategy.endpointsFromEnv({}, secondary, retrievalPrimary, files, "tokyo")).toThrow(/GEO_PRIMARY_FILES_KEY \(or GEO_PRIMARY_FILES_KEY_FILE\) is required: this site's key for the primary's retrieval server at https:\/\/files.london.example:8443/);
    expect(() => blobStrategy.endpointsFromEnv({ GEO_PRIMARY_FILES_KEY: "short" }, secondary, retrievalPrimary, files, "tokyo")).toThrow(/GEO_PRIMARY_FILES_KEY: the secret key is 5 characters long/);
  });

  it("builds both kinds on each side for a type with a store column", () => {
    const endpoints = blobStrategy.endpointsFromEnv(s3Env, secondary, primary, mixed, "tokyo");
    expect(Object.keys(endpoints.primary).sort()).toEqual(["FileStorage", "ObjectStorage"]);
    expect(Object.keys(endpoints.secondary!).sort()).toEqual(["FileStorage", "ObjectStorage"]);
    const toBucket = blobStrategy.endpointsFromEnv({ GEO_SECONDARY_S3_ACCESS_KEY_ID: "sk", GEO_SECONDARY_S3_SECRET_ACCESS_KEY: "ss" }, secondary, primary, settings({ primaryStore: "FileStorage", secondaryStore: "ObjectStorage" }), "tokyo");
    expect(toBucket.primary.FileStorage).toEqual({ kind: "files", root: "/var/uploads" });
    expect(toBucket.secondary!.ObjectStorage!.bucket).toBe("sb");
  });

  it("takes each store's uploadChecksum from its GeoSite, SHA256 unless it says None", () => {
    const env = { GEO_PRIMARY_S3_ACCESS_KEY_ID: "pk", GEO_PRIMARY_S3_SECRET_ACCESS_KEY: "ps", GEO_SECONDARY_S3_ACCESS_KEY_ID: "sk", GEO_SECONDARY_S3_SECRET_ACCESS_KEY: "ss" };
    const older = { ...secondary, objectStorage: { ...secondary.objectStorage!, uploadChecksum: "None" as const } };
    const endpoints = blobStrategy.endpointsFromEnv(env, older, primary, settings(), "tokyo");
    expect(endpoints.secondary!.ObjectStorage).toMatchObject({ bucket: "sb", uploadChecksum: "None" });
    expect(endpoints.primary.ObjectStorage).toMatchObject({ bucket: "pb", uploadChecksum: "SHA256" });
  });

  it("says what is missing and why the type needs it", () => {
    expect(() => blobStrategy.endpointsFromEnv({}, secondary, { ...primary, fileStorage: undefined }, files, "tokyo")).toThrow("the primary GeoSite has no fileStorage.root, which this type needs (blob.primaryStore is FileStorage)");
    expect(() => blobStrategy.endpointsFromEnv({}, { ...secondary, fileStorage: undefined }, primary, files, "tokyo")).toThrow(
      "this secondary GeoSite has no fileStorage.root, which this type needs (blob.secondaryStore SameAsPrimary keeps copies in FileStorage like the primary)",
    );
    expect(() => blobStrategy.endpointsFromEnv(s3Env, secondary, { ...primary, objectStorage: undefined }, mixed, "tokyo")).toThrow(
      "the primary GeoSite has no objectStorage, which this type needs (source.storeColumn file_store may name ObjectStorage for any record)",
    );
  });
});

describe("blob worker storage", () => {
  it("mounts the primary's volume read-only on primary Jobs, with no S3 credentials for a type of files only", () => {
    const storage = blobStrategy.workerStorage(files, site("london", primary), site("london", primary));
    expect(storage.env).toEqual([]);
    expect(storage.volumes).toEqual([{ name: "primary-files", persistentVolumeClaim: { claimName: "uploads", readOnly: true } }]);
    expect(storage.mounts).toEqual([{ name: "primary-files", mountPath: "/var/uploads", readOnly: true }]);
  });

  it("mounts the primary's volume read-only and the secondary's read-write on secondary Jobs that read directly", () => {
    const storage = blobStrategy.workerStorage(files, site("tokyo", secondary), site("london", primary));
    expect(storage.env).toEqual([]);
    expect(storage.volumes).toEqual([
      { name: "primary-files", persistentVolumeClaim: { claimName: "uploads", readOnly: true } },
      { name: "files", persistentVolumeClaim: { claimName: "copies" } },
    ]);
    expect(storage.mounts).toEqual([
      { name: "primary-files", mountPath: "/var/uploads", readOnly: true },
      { name: "files", mountPath: "/srv/copies" },
    ]);
  });

  it("gives secondary Jobs that read through the retrieval server their key and the primary's CA, and no primary volume", () => {
    const storage = blobStrategy.workerStorage(files, site("tokyo", secondary), site("london", retrievalPrimary));
    expect(refs(storage.env)).toEqual([
      ["GEO_PRIMARY_FILES_KEY", "tokyo-files-key", "key", false],
      ["GEO_PRIMARY_FILES_CA", "files-tls", "ca.crt", true],
    ]);
    expect(storage.volumes).toEqual([{ name: "files", persistentVolumeClaim: { claimName: "copies" } }]);
  });

  it("asks for each side's S3 credentials only where the type uses object storage", () => {
    const toBucket = blobStrategy.workerStorage(settings({ primaryStore: "FileStorage", secondaryStore: "ObjectStorage" }), site("tokyo", secondary), site("london", primary));
    expect(refs(toBucket.env).map((r) => r[0])).toEqual(["GEO_SECONDARY_S3_ACCESS_KEY_ID", "GEO_SECONDARY_S3_SECRET_ACCESS_KEY"]);
    expect(toBucket.volumes.map((v) => v.name)).toEqual(["primary-files"]);
    const fromBucket = blobStrategy.workerStorage(settings({ secondaryStore: "FileStorage" }), site("tokyo", secondary), site("london", primary));
    expect(refs(fromBucket.env).map((r) => r[0])).toEqual(["GEO_PRIMARY_S3_ACCESS_KEY_ID", "GEO_PRIMARY_S3_SECRET_ACCESS_KEY"]);
    expect(fromBucket.volumes.map((v) => v.name)).toEqual(["files"]);
    const both = blobStrategy.workerStorage(mixed, site("tokyo", secondary), site("london", primary));
    expect(refs(both.env).map((r) => r[0])).toEqual(["GEO_PRIMARY_S3_ACCESS_KEY_ID", "GEO_PRIMARY_S3_SECRET_ACCESS_KEY", "GEO_SECONDARY_S3_ACCESS_KEY_ID", "GEO_SECONDARY_S3_SECRET_ACCESS_KEY"]);
    expect(both.volumes.map((v) => v.name)).toEqual(["primary-files", "files"]);
  });
});

describe("file storage shared with the primary", () => {
  const local = (root: string, claimName?: string): GeoSiteSpec["fileStorage"] => ({ root, ...(claimName ? { persistentVolumeClaim: { claimName } } : {}) });
  const shared = (x: GeoSiteSpec["fileStorage"], y: GeoSiteSpec["fileStorage"]) => blobStrategy.storageSharedWithPrimary!({ ...secondary, fileStorage: x }, { ...primary, fileStorage: y });

  it("refuses the primary's claim, the primary's directory and directories inside one another", () => {
    expect(shared(local("/srv/copies", "uploads"), local("/var/uploads", "uploads"))).toBe("its fileStorage.persistentVolumeClaim is the primary's (uploads); a secondary must write its copies to its own volume");
    expect(shared(local("/data"), local("/data"))).toBe("its fileStorage.root is the primary's directory (/data); a secondary must write its copies to its own directory");
    expect(shared(local("/data/copies"), local("/data"))).toBe("its fileStorage.root /data/copies and the primary's /data contain one another; a secondary must write its copies outside the primary's directory");
    expect(shared(local("/data", "copies"), local("/data", "uploads"))).toMatch(/^its fileStorage.root \/data is where the primary's files are read from directly/);
  });

  it("accepts separate directories and volumes", () => {
    expect(shared(local("/data-copies"), local("/data"))).toBeUndefined();
    expect(shared(local("/data", "copies"), { ...local("/data", "uploads"), retrieval: { url: "https://f", tlsSecretRef: { name: "t" } } })).toBeUndefined();
    expect(shared(undefined, local("/data"))).toBeUndefined();
  });
});

describe("the file retrieval server", () => {
  const london = site("london", retrievalPrimary);
  const sites = [
    london,
    site("tokyo", secondary),
    site("paris", { ...secondary, fileStorage: { root: "/c", retrievalCredentialsSecretRef: { name: "paris-key", key: "secret" } } }),
    site("oslo", { ...secondary, fileStorage: undefined }),
    site("elsewhere", secondary, "other-namespace"),
  ];

  it("runs on a primary with fileStorage.retrieval when a type reads files there", () => {
    const [server, ...rest] = blobStrategy.siteServers!(london, sites, [settings(), files]);
    expect(rest).toEqual([]);
    expect(server).toMatchObject({
      name: "geo-files-london",
      namespace: "geo",
      site: "london",
      args: ["serve-files", "--root", "/var/uploads", "--port", "8443", "--host", "0.0.0.0"],
      volumes: [{ name: "files", persistentVolumeClaim: { claimName: "uploads", readOnly: true } }],
      mounts: [{ name: "files", mountPath: "/var/uploads", readOnly: true }],
      port: 8443,
      readinessPath: "/v1/health",
    });
    expect(refs(server!.env)).toEqual([
      ["GEO_FILES_TLS_CERT", "files-tls", "tls.crt", false],
      ["GEO_FILES_TLS_KEY", "files-tls", "tls.key", false],
      ["GEO_FILES_SITE_KEY_paris", "paris-key", "secret", false],
      ["GEO_FILES_SITE_KEY_tokyo", "tokyo-files-key", "key", false],
    ]);
    expect(blobStrategy.siteServers!(london, sites, [mixed])).toHaveLength(1);
    const onPort = blobStrategy.siteServers!(site("london", { ...retrievalPrimary, fileStorage: { ...retrievalPrimary.fileStorage, retrieval: { ...retrievalPrimary.fileStorage!.retrieval!, port: 9443 } } }), sites, [files]);
    expect(onPort[0]!.args).toContain("9443");
    expect(onPort[0]!.port).toBe(9443);
  });

  it("is not wanted without retrieval, on a secondary, or when no type reads files on the primary", () => {
    expect(blobStrategy.siteServers!(site("london", primary), sites, [files])).toEqual([]);
    expect(blobStrategy.siteServers!(site("tokyo", secondary), sites, [files])).toEqual([]);
    expect(blobStrategy.siteServers!(london, sites, [settings(), settings({ secondaryStore: "FileStorage" })])).toEqual([]);
    expect(blobStrategy.siteServers!(london, sites, [])).toEqual([]);
  });
});

describe("the manager's check of file storage", () => {
  /** Secrets by name → key → value, resolved as the manager's SiteAccess would. */
  const access = (secrets: Record<string, Record<string, string>>) => ({
    async resolveEnv(_namespace: string, vars: readonly V1EnvVar[]) {
      const out: Record<string, string> = {};
      for (const v of vars) {
        const ref = v.valueFrom!.secretKeyRef!;
        const value = secrets[ref.name!]?.[ref.key];
        if (value === undefined) throw new Error(`Secret geo/${ref.name} has no key ${ref.key}`);
        out[v.name] = value;
      }
      return out;
    },
  });
  const noBuckets = (spec: GeoSiteSpec): GeoSiteSpec => ({ ...spec, objectStorage: undefined });

  it("checks that a secondary's retrieval key is long enough", async () => {
    const tokyo = site("tokyo", noBuckets(secondary));
    expect(await blobStrategy.probeStorage!(tokyo, access({ "tokyo-files-key": { key: KEY } }))).toBeUndefined();
    expect(await blobStrategy.probeStorage!(tokyo, access({ "tokyo-files-key": { key: "short" } }))).toBe(
      "key key of Secret tokyo-files-key (fileStorage.retrievalCredentialsSecretRef): the secret key is 5 characters long; use at least 32 (e.g. openssl rand -hex 32)",
    );
    await expect(blobStrategy.probeStorage!(tokyo, access({}))).rejects.toThrow("Secret geo/tokyo-files-key has no key key");
  });

  it("checks that the retrieval server's TLS Secret has a certificate and a key", async () => {
    const london = site("london", noBuckets(retrievalPrimary));
    expect(await blobStrategy.probeStorage!(london, access({ "files-tls": { "tls.crt": "C", "tls.key": "K" } }))).toBeUndefined();
    await expect(blobStrategy.probeStorage!(london, access({ "files-tls": { "tls.crt": "C" } }))).rejects.toThrow("Secret geo/files-tls has no key tls.key");
    // A volume cannot be checked from the manager: that is the workers' preflight.
    expect(await blobStrategy.probeStorage!(site("london", noBuckets(primary)), access({}))).toBeUndefined();
  });
});
