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
    expect(ddl).toContain(`VALUES ('cool_widget', 'secondary', 1);\n-- migration 2`);
    expect(ddl).toContain(`VALUES ('cool_widget', 'secondary', 2);\nCOMMIT;`);
  });

  it("skips applied migrations", () => {
    expect(pendingMigrationStatements(resolveConfig(blob), "secondary", new Set([1, 2]))).toEqual([]);
    expect(pendingMigrationStatements(resolveConfig(blob), "secondary", new Set([1])).at(-1)).toMatch(/VALUES \('cool_widget', 'secondary', 2\)/);
  });

  it("refuses bad names without rendering", () => {
    expect(() => renderSchemaDDL({ ...blob, name: "Bad Name" }, "secondary")).toThrow(/snake_case/);
  });

  it("primary: change capture after the migrations, statement-level triggers with transition tables on the columns the type reads", () => {
    const ddl = renderSchemaDDL({ ...blob, captureColumns: ["file_name"] }, "primary");
    expect(ddl).toContain("-- change capture (changeCapture: trigger)");
    expect(ddl.indexOf("-- change capture")).toBeGreaterThan(ddl.indexOf("-- migration 1"));
    expect(ddl).toContain(`CREATE OR REPLACE FUNCTION public."geo_operator_capture_cool_widget"() RETURNS trigger`);
    expect(ddl).toContain("SECURITY DEFINER SET search_path = pg_catalog, pg_temp");
    expect(ddl).toContain(`WHERE ROW(n."file_name") IS DISTINCT FROM ROW(o."file_name")`);
    expect(ddl).toContain(
      `CREATE TRIGGER "geo_operator_cool_widget_updated" AFTER UPDATE ON "public"."cool_widgets" REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT`,
    );
    expect(ddl.match(/CREATE TRIGGER "geo_operator_cool_widget_/g)).toHaveLength(3);
    expect(ddl).toContain(`SELECT 'cool_widget', 'model', sum(d.n) FROM (\n  SELECT count(*) FROM "public"."cool_widgets"\n  UNION ALL SELECT -c.n FROM public.geo_operator_row_counts AS c`);
  });

  it("both roles: migration 2 counts the table's rows by state with statement-level triggers, then takes a baseline", () => {
    for (const [role, table, columns] of [
      ["secondary", `"public"."cool_widget_registry"`, "state, verification_state"],
      ["primary", `"public"."cool_widget_states"`, "verification_state"],
    ] as const) {
      const ddl = renderSchemaDDL({ ...blob, changeCapture: "none" }, role);
      const migration2 = ddl.slice(ddl.indexOf("-- migration 2"));
      expect(migration2.match(/CREATE TRIGGER "geo_operator_count_\w+" AFTER (INSERT|UPDATE|DELETE|TRUNCATE) ON /g)).toHaveLength(4);
      expect(migration2).toContain(`AFTER UPDATE ON ${table} REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT`);
      expect(migration2.indexOf("INSERT INTO public.geo_operator_row_counts")).toBeGreaterThan(migration2.lastIndexOf("CREATE TRIGGER"));
      expect(migration2).toContain(`SELECT ${columns}, count(*) FROM ${table} GROUP BY ${columns}`);
    }
  });

  it("primary with changeCapture none: no trigger is created, existing ones are dropped, the type is still registered for publishing", () => {
    const ddl = renderSchemaDDL({ ...blob, changeCapture: "none" }, "primary");
    expect(ddl).not.toContain(`CREATE TRIGGER "geo_operator_cool_widget_`);
    expect(ddl).toContain(`DROP TRIGGER IF EXISTS "geo_operator_cool_widget_inserted" ON "public"."cool_widgets"`);
    expect(ddl).toContain("INSERT INTO public.geo_operator_capture_types");
  });
});
