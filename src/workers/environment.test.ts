import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigurationError, endpointsFromEnv, requireSecret, secretFromEnv, siteSpecFromEnv, typeSpecFromEnv } from "./environment.ts";

const dir = mkdtempSync(join(tmpdir(), "geo-env-test-"));
const file = (name: string, content: string) => {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
};

describe("worker environment", () => {
  it("reads a secret from NAME or from the mounted file NAME_FILE (file wins, trailing newline dropped)", () => {
    expect(secretFromEnv({ GEO_X: "inline" }, "GEO_X")).toBe("inline");
    expect(secretFromEnv({ GEO_X: "inline", GEO_X_FILE: file("x", "from-file\n") }, "GEO_X")).toBe("from-file");
    expect(secretFromEnv({}, "GEO_X")).toBeUndefined();
    expect(() => secretFromEnv({ GEO_X_FILE: join(dir, "missing") }, "GEO_X")).toThrow(/GEO_X_FILE points at .*missing, which cannot be read: ENOENT/);
    expect(() => requireSecret({}, "GEO_TRACKING_DB_URL", "the secondary's tracking database")).toThrow(
      new ConfigurationError("GEO_TRACKING_DB_URL (or GEO_TRACKING_DB_URL_FILE) is required: the secondary's tracking database"),
    );
  });

  it("accepts a bare spec or a whole manifest, in JSON or YAML, and refuses incomplete ones", () => {
    const spec = { name: "cool_widget", strategy: "blob", source: { table: "cool_widgets", objectKey: { column: "path" } } };
    expect(typeSpecFromEnv({ GEO_TYPE_SPEC: JSON.stringify(spec) }).name).toBe("cool_widget");
    expect(typeSpecFromEnv({ GEO_TYPE_SPEC: "kind: ReplicableType\nspec:\n  name: w\n  strategy: blob\n  source: {table: ws}\n" }).source.table).toBe("ws");
    expect(() => typeSpecFromEnv({ GEO_TYPE_SPEC: '{"name":"x"}' })).toThrow(/GEO_TYPE_SPEC must hold a ReplicableType spec with name, strategy and source.table/);
    expect(() => typeSpecFromEnv({ GEO_TYPE_SPEC: "{not yaml: [" })).toThrow(/GEO_TYPE_SPEC is not valid JSON or YAML/);
    expect(siteSpecFromEnv({}, "GEO_SITE_SPEC")).toBeUndefined();
  });

  it("builds storage endpoints per strategy and role, with credentials only from secrets", () => {
    const primary = { role: "primary" as const, database: { secretRef: { name: "a" } }, objectStorage: { endpoint: "http://p", bucket: "pb", credentialsSecretRef: { name: "c" } }, git: { baseURL: "git://p" } };
    const secondary = { role: "secondary" as const, database: { secretRef: { name: "b" } }, objectStorage: { endpoint: "http://s", bucket: "sb", prefix: "x/", credentialsSecretRef: { name: "d" } }, git: { mirrorRoot: "/m" } };
    const env = {
      GEO_PRIMARY_S3_ACCESS_KEY_ID: "pk",
      GEO_PRIMARY_S3_SECRET_ACCESS_KEY_FILE: file("ps", "psecret"),
      GEO_SECONDARY_S3_ACCESS_KEY_ID: "sk",
      GEO_SECONDARY_S3_SECRET_ACCESS_KEY: "ssecret",
      GEO_PRIMARY_GIT_PASSWORD: "token",
    };
    expect(endpointsFromEnv(env, secondary, primary, "blob")).toEqual({
      primaryS3: { endpoint: "http://p", region: "us-east-1", bucket: "pb", prefix: "", forcePathStyle: false, accessKeyId: "pk", secretAccessKey: "psecret" },
      secondaryS3: { endpoint: "http://s", region: "us-east-1", bucket: "sb", prefix: "x/", forcePathStyle: false, accessKeyId: "sk", secretAccessKey: "ssecret" },
    });
    expect(endpointsFromEnv(env, secondary, primary, "repository")).toEqual({ primaryGit: { baseURL: "git://p", password: "token" }, mirrorRoot: "/m" });
    expect(endpointsFromEnv(env, primary, primary, "blob").secondaryS3).toBeUndefined();
    expect(() => endpointsFromEnv({}, secondary, primary, "blob")).toThrow(/GEO_PRIMARY_S3_ACCESS_KEY_ID .* is required: credentials for bucket pb/);
    expect(() => endpointsFromEnv(env, { ...secondary, git: {} }, primary, "repository")).toThrow(/no git.mirrorRoot/);
  });
});
