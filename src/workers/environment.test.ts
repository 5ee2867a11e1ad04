import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigurationError, requireSecret, secretFromEnv, siteSpecFromEnv, typeSpecFromEnv } from "./environment.ts";

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
});
