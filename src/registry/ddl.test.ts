import { describe, expect, it } from "vitest";
import type { ReplicableTypeSchemaConfig } from "./config.ts";
import { pendingMigrationStatements, renderSchemaDDL } from "./ddl.ts";
import { resolveConfig } from "./identifiers.ts";

const blob: ReplicableTypeSchemaConfig = { name: "cool_widget", statesLayout: "keyed-by-model-id", source: { table: "cool_widgets" }, deletionPolicy: "Retain" };
const repository: ReplicableTypeSchemaConfig = { ...blob, statesLayout: "serial-id" };

describe("renderSchemaDDL", () => {
  it("secondary: the registry with missing_on_primary, 255-character checks and six indexes", () => {
    const ddl = renderSchemaDDL(blob, "secondary");
    expect(ddl).toContain(`CREATE TABLE "public"."cool_widget_registry" (`);
    expect(ddl).toContain("missing_on_primary boolean DEFAULT false NOT NULL,");
    expect(ddl).toContain(`CHECK ((char_length("last_sync_failure") <= 255))`);
    expect(ddl).toContain(
      `CREATE INDEX "cool_widget_registry_needs_verification" ON "public"."cool_widget_registry" USING btree (verification_state) WHERE ((state = 2) AND (verification_state = ANY (ARRAY[0, 3])));`,
    );
    expect(ddl.match(/CREATE (UNIQUE )?INDEX/g)).toHaveLength(6);
    expect(ddl).not.toContain("_states");
  });

  it("primary: blob keys _states by the model id, repository adds an id and a unique index", () => {
    const b = renderSchemaDDL(blob, "primary");
    expect(b).toContain(`CONSTRAINT "cool_widget_states_pkey" PRIMARY KEY ("cool_widget_id")`);
    expect(b).toContain("verification_retry_count smallint,");
    expect(b).toContain(`REFERENCES "public"."cool_widgets"("id") ON DELETE CASCADE`);
    const r = renderSchemaDDL(repository, "primary");
    expect(r).toContain("id bigserial PRIMARY KEY,");
    expect(r).toContain("verification_retry_count smallint DEFAULT 0 NOT NULL,");
    expect(r).toContain(`CREATE UNIQUE INDEX "index_cool_widget_states_on_cool_widget_id"`);
  });

  it("is wrapped in a locked transaction and records the version", () => {
    const ddl = renderSchemaDDL(blob, "secondary");
    expect(ddl.startsWith("-- geo-operator schema")).toBe(true);
    expect(ddl).toMatch(/BEGIN;\nSELECT pg_advisory_xact_lock\(hashtext\('geo-operator\/schema'\)\);/);
    expect(ddl).toContain(`VALUES ('cool_widget', 'secondary', 1);\nCOMMIT;`);
  });

  it("skips applied migrations", () => {
    expect(pendingMigrationStatements(resolveConfig(blob), "secondary", new Set([1]))).toEqual([]);
  });

  it("refuses bad names without rendering", () => {
    expect(() => renderSchemaDDL({ ...blob, name: "Bad Name" }, "secondary")).toThrow(/snake_case/);
  });
});
