import { describe, expect, it } from "vitest";
import type { ReplicableTypeSchemaConfig } from "./config.ts";
import { InvalidIdentifierError, deriveIdentifiers, foreignKeyName, quoteIdent, resolveConfig, textLimitConstraintName } from "./identifiers.ts";

const base: ReplicableTypeSchemaConfig = { name: "cool_widget", statesLayout: "keyed-by-model-id", source: { table: "cool_widgets" }, deletionPolicy: "Retain" };

describe("identifiers", () => {
  it("fills in defaults", () => {
    expect(resolveConfig(base)).toEqual({
      name: "cool_widget",
      plural: "cool_widgets",
      statesLayout: "keyed-by-model-id",
      source: { schema: "public", table: "cool_widgets", idColumn: "id" },
      deletionPolicy: "Retain",
      verificationEnabled: true,
      changeCapture: "trigger",
      captureColumns: [],
    });
  });

  it("captures the columns the type reads, sorted, never the id, and refuses unsafe names", () => {
    expect(resolveConfig({ ...base, captureColumns: ["path", "id", "bucket", "path"] }).captureColumns).toEqual(["bucket", "path"]);
    expect(() => resolveConfig({ ...base, captureColumns: ["x; drop"] })).toThrow(InvalidIdentifierError);
    expect(() => resolveConfig({ ...base, changeCapture: "logical" as never })).toThrow(/changeCapture/);
  });

  it("derives Rails' names", () => {
    const ids = deriveIdentifiers("cool_widget");
    expect(ids.registryIndexes.modelId).toBe("index_cool_widget_registry_on_cool_widget_id");
    expect(ids.registryIndexes.pendingVerification).toBe("cool_widget_registry_pending_verification");
    expect(ids.statesIndexes.needsVerification).toBe("index_cool_widget_states_needs_verification");
    // GitLab's add_text_limit and Rails' foreign key naming: sha256 of a fixed identifier, first 10 hex digits.
    expect(textLimitConstraintName("cool_widget_registry", "last_sync_failure")).toMatch(/^check_[0-9a-f]{10}$/);
    expect(foreignKeyName("cool_widget_states", "cool_widget_id")).toMatch(/^fk_rails_[0-9a-f]{10}$/);
  });

  it("accepts 20 characters and refuses 21, naming the 63-byte limit", () => {
    expect(() => resolveConfig({ ...base, name: "a".repeat(20) })).not.toThrow();
    expect(() => resolveConfig({ ...base, name: "a".repeat(21) })).toThrow(/limit is 20.*63-byte identifier limit/);
  });

  it.each(["Cool_widget", "cool-widget", "cool__widget", "_cool", "9lives", "cool widget", 'x";--', "widgét", ""])(
    "refuses the non-snake_case name %j",
    (name) => {
      expect(() => resolveConfig({ ...base, name })).toThrow(InvalidIdentifierError);
    },
  );

  it("refuses hostile or over-long source identifiers", () => {
    expect(() => resolveConfig({ ...base, source: { table: 'w"; DROP TABLE x; --' } })).toThrow(/source\.table/);
    expect(() => resolveConfig({ ...base, source: { table: "t".repeat(64) } })).toThrow(/63-byte/);
    expect(() => resolveConfig({ ...base, source: { table: "w", namespaceParentColumn: "parent_id" } })).toThrow(/namespaceTable/);
  });

  it("quotes identifiers by doubling quotes", () => {
    expect(quoteIdent('a"b')).toBe('"a""b"');
  });
});
