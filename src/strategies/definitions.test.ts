import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { assembleKinds } from "../api/v1alpha1/crds.ts";
import type { GeoSite } from "../api/v1alpha1/resources.ts";
import type { GeoSiteSpec } from "../api/v1alpha1/types.generated.ts";
import { blobStrategy } from "./blob/definition.ts";
import { STRATEGIES, strategyFor } from "./catalog.ts";
import { KINDS } from "./crds.ts";
import { repositoryStrategy } from "./repository/definition.ts";
import { typeRuntimeConfig } from "./type-config.ts";

const dir = mkdtempSync(join(tmpdir(), "geo-strategies-test-"));
const file = (name: string, content: string) => {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
};

const primary: GeoSiteSpec = { role: "primary", database: { secretRef: { name: "a" } }, objectStorage: { endpoint: "http://p", bucket: "pb", credentialsSecretRef: { name: "c" } }, git: { baseURL: "git://p", credentialsSecretRef: { name: "g" } } };
const secondary: GeoSiteSpec = { role: "secondary", database: { secretRef: { name: "b" } }, objectStorage: { endpoint: "http://s", bucket: "sb", prefix: "x/", credentialsSecretRef: { name: "d" } }, git: { mirrorRoot: "/m", persistentVolumeClaim: { claimName: "mirrors" } } };
const site = (name: string, spec: GeoSiteSpec): GeoSite => ({ apiVersion: "geo.replication.dev/v1alpha1", kind: "GeoSite", metadata: { name, namespace: "geo" }, spec });

describe("the catalog", () => {
  it("resolves each name to exactly one definition, and refuses none or two", () => {
    for (const s of STRATEGIES) expect(strategyFor(s.name)).toBe(s);
    expect(() => strategyFor("ftp")).toThrow('no strategy handles strategy "ftp"');
    expect(() => strategyFor("blob", [blobStrategy, blobStrategy])).toThrow('2 strategies claim strategy "blob"');
  });

  it("names each CRD fragment after its definition, and the strategy enum after the catalog", () => {
    for (const s of STRATEGIES) expect(s.crd.name).toBe(s.name);
    const rtype = KINDS.find((k) => k.kind === "ReplicableType")!;
    expect(rtype.spec.properties!.strategy!.enum).toEqual(STRATEGIES.map((s) => s.name));
    expect(() => assembleKinds([blobStrategy.crd, blobStrategy.crd])).toThrow(/strategy names must be unique/);
    expect(() => assembleKinds([blobStrategy.crd, { ...repositoryStrategy.crd, geoSite: { spec: { objectStorage: {} } } }])).toThrow(/spec.objectStorage is declared twice/);
  });

  it("fills a type's strategy settings and _states layout", () => {
    const blob = typeRuntimeConfig({ name: "w", strategy: "blob", source: { table: "ws", objectKey: { template: "w/{id}/{file_name}" } } });
    expect(blob.settings).toEqual({ objectKey: { template: "w/{id}/{file_name}" }, primaryStore: "ObjectStorage", secondaryStore: "SameAsPrimary", firstVerification: "StoreChecksum" });
    expect(blob.schema.statesLayout).toBe("keyed-by-model-id");
    const repo = typeRuntimeConfig({ name: "r", strategy: "repository", source: { table: "rs", repositoryPath: { template: "{base}/{disk_path}.git" } } });
    expect(repo.settings).toEqual({ repositoryPath: { template: "{base}/{disk_path}.git" }, housekeepingEveryFetches: 10 });
    expect(repo.schema.statesLayout).toBe("serial-id");
    expect(strategyFor(repo.strategy).modelColumns(repo.settings)).toEqual(["disk_path"]);
    expect(strategyFor(blob.strategy).modelColumns(blob.settings)).toEqual(["id", "file_name"]);
    expect(() => typeRuntimeConfig({ name: "w", strategy: "blob", source: { table: "ws" } })).toThrow("ReplicableType w has no source.objectKey");
  });
});

describe("blob endpoints and worker storage", () => {
  const env = {
    GEO_PRIMARY_S3_ACCESS_KEY_ID: "pk",
    GEO_PRIMARY_S3_SECRET_ACCESS_KEY_FILE: file("ps", "psecret"),
    GEO_SECONDARY_S3_ACCESS_KEY_ID: "sk",
    GEO_SECONDARY_S3_SECRET_ACCESS_KEY: "ssecret",
  };

  const s3Only = { objectKey: { column: "k" }, primaryStore: "ObjectStorage", secondaryStore: "SameAsPrimary", firstVerification: "StoreChecksum" } as const;

  it("builds S3 endpoints per role, credentials only from secrets", () => {
    expect(blobStrategy.endpointsFromEnv(env, secondary, primary, s3Only, "tokyo")).toEqual({
      primary: { ObjectStorage: { kind: "s3", endpoint: "http://p", region: "us-east-1", bucket: "pb", prefix: "", forcePathStyle: false, uploadChecksum: "SHA256", accessKeyId: "pk", secretAccessKey: "psecret" } },
      secondary: { ObjectStorage: { kind: "s3", endpoint: "http://s", region: "us-east-1", bucket: "sb", prefix: "x/", forcePathStyle: false, uploadChecksum: "SHA256", accessKeyId: "sk", secretAccessKey: "ssecret" } },
    });
    expect(blobStrategy.endpointsFromEnv(env, primary, primary, s3Only, "london").secondary).toBeUndefined();
    expect(() => blobStrategy.endpointsFromEnv({}, secondary, primary, s3Only, "tokyo")).toThrow(/GEO_PRIMARY_S3_ACCESS_KEY_ID .* is required: credentials for bucket pb/);
    expect(() => blobStrategy.endpointsFromEnv(env, { ...secondary, objectStorage: undefined }, primary, s3Only, "tokyo")).toThrow(/this secondary GeoSite has no objectStorage/);
  });

  it("gives a Job exactly the Secret references endpointsFromEnv reads", () => {
    const storage = blobStrategy.workerStorage(s3Only, site("tokyo", secondary), site("london", primary));
    expect(storage.env.map((e) => [e.name, e.valueFrom?.secretKeyRef?.name, e.valueFrom?.secretKeyRef?.key])).toEqual([
      ["GEO_PRIMARY_S3_ACCESS_KEY_ID", "c", "AWS_ACCESS_KEY_ID"],
      ["GEO_PRIMARY_S3_SECRET_ACCESS_KEY", "c", "AWS_SECRET_ACCESS_KEY"],
      ["GEO_SECONDARY_S3_ACCESS_KEY_ID", "d", "AWS_ACCESS_KEY_ID"],
      ["GEO_SECONDARY_S3_SECRET_ACCESS_KEY", "d", "AWS_SECRET_ACCESS_KEY"],
    ]);
    expect(storage.volumes).toEqual([]);
  });
});

describe("repository endpoints and worker storage", () => {
  const repoSettings = { repositoryPath: { column: "path" }, housekeepingEveryFetches: 10 };
  it("builds the primary's git endpoint and the secondary's mirror root", () => {
    expect(repositoryStrategy.endpointsFromEnv({ GEO_PRIMARY_GIT_PASSWORD: "token" }, secondary, primary, repoSettings, "tokyo")).toEqual({ primary: { baseURL: "git://p", password: "token" }, mirrorRoot: "/m" });
    expect(repositoryStrategy.endpointsFromEnv({}, primary, primary, repoSettings, "london")).toEqual({ primary: { baseURL: "git://p" } });
    expect(() => repositoryStrategy.endpointsFromEnv({}, { ...secondary, git: {} }, primary, repoSettings, "tokyo")).toThrow(/no git.mirrorRoot/);
    expect(() => repositoryStrategy.endpointsFromEnv({}, secondary, { ...primary, git: undefined }, repoSettings, "tokyo")).toThrow(/no git.baseURL/);
  });

  it("mounts the mirror volume on secondaries only, git credentials by optional reference", () => {
    const settings = { repositoryPath: { column: "path" }, housekeepingEveryFetches: 10 };
    const onSecondary = repositoryStrategy.workerStorage(settings, site("tokyo", secondary), site("london", primary));
    expect(onSecondary.volumes).toEqual([{ name: "mirrors", persistentVolumeClaim: { claimName: "mirrors" } }]);
    expect(onSecondary.mounts).toEqual([{ name: "mirrors", mountPath: "/m" }]);
    expect(onSecondary.env.map((e) => e.valueFrom?.secretKeyRef)).toEqual([
      { name: "g", key: "username", optional: true },
      { name: "g", key: "password", optional: true },
    ]);
    expect(repositoryStrategy.workerStorage(settings, site("london", primary), site("london", primary)).volumes).toEqual([]);
  });

  it("says primary data may change (pushes); blobs may not", () => {
    expect(repositoryStrategy.primaryDataMayChange).toBe(true);
    expect(blobStrategy.primaryDataMayChange).toBe(false);
  });
});

describe("storage shared with the primary", () => {
  it("blob: the same bucket and prefix at the same endpoint (trailing slash and case ignored)", () => {
    const same = { ...secondary, objectStorage: { ...primary.objectStorage!, endpoint: "HTTP://p/" } };
    expect(blobStrategy.storageSharedWithPrimary!(same, primary)).toBe("its objectStorage is the primary's bucket (pb at http://p); a secondary must write to its own bucket");
    expect(blobStrategy.storageSharedWithPrimary!({ ...same, objectStorage: { ...same.objectStorage, prefix: "other/" } }, primary)).toBeUndefined();
    expect(blobStrategy.storageSharedWithPrimary!(secondary, primary)).toBeUndefined();
  });

  it("repository: a mirror root that contains the primary's file:// repository root", () => {
    const filePrimary = { ...primary, git: { baseURL: "file:///srv/git/repositories" } };
    expect(repositoryStrategy.storageSharedWithPrimary!({ ...secondary, git: { mirrorRoot: "/srv/git/" } }, filePrimary)).toBe("its git.mirrorRoot /srv/git contains the primary's repository root file:///srv/git/repositories");
    expect(repositoryStrategy.storageSharedWithPrimary!(secondary, filePrimary)).toBeUndefined();
    expect(repositoryStrategy.storageSharedWithPrimary!({ ...secondary, git: { mirrorRoot: "/srv/git" } }, primary)).toBeUndefined();
  });
});
