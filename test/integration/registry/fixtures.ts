import type pg from "pg";
import type { ReplicableTypeSchemaConfig } from "../../../src/registry/config.ts";
import { applySchema } from "../../../src/registry/schema-manager.ts";
import { withClient } from "./databases.ts";

/** A namespaced, sharded model table on the primary, like GitLab's project-scoped models. */
export async function createModelTables(primary: pg.Pool, table = "cool_widgets"): Promise<void> {
  await primary.query(`CREATE TABLE IF NOT EXISTS namespaces (id bigint PRIMARY KEY, parent_id bigint REFERENCES namespaces(id))`);
  await primary.query(
    `CREATE TABLE ${table} (id bigserial PRIMARY KEY, namespace_id bigint REFERENCES namespaces(id), repository_storage text NOT NULL DEFAULT 'default')`,
  );
}

export function widgetType(overrides: Partial<ReplicableTypeSchemaConfig> = {}): ReplicableTypeSchemaConfig {
  return {
    name: "cool_widget",
    statesLayout: "keyed-by-model-id",
    source: {
      table: "cool_widgets",
      namespaceColumn: "namespace_id",
      namespaceTable: "namespaces",
      namespaceParentColumn: "parent_id",
      shardColumn: "repository_storage",
    },
    deletionPolicy: "Retain",
    ...overrides,
  };
}

/** Model tables plus both schemas. */
export async function setUpType(primary: pg.Pool, tracking: pg.Pool, config: ReplicableTypeSchemaConfig): Promise<void> {
  await createModelTables(primary, config.source.table);
  await withClient(primary, (c) => applySchema(c, config, "primary"));
  await withClient(tracking, (c) => applySchema(c, config, "secondary"));
}

/** Inserts `count` model rows server-side; returns their ids ascending. */
export async function insertWidgets(primary: pg.Pool, count: number, values: { namespaceId?: number; shard?: string } = {}): Promise<number[]> {
  const { rows } = await primary.query<{ id: string }>(
    `INSERT INTO cool_widgets (namespace_id, repository_storage)
     SELECT $2::bigint, $3::text FROM generate_series(1, $1::integer) RETURNING id`,
    [count, values.namespaceId ?? null, values.shard ?? "default"],
  );
  return rows.map((r) => Number(r.id)).sort((a, b) => a - b);
}

/** Fixed clock helper: `at(0)` is the base instant, `at(s)` s seconds later. */
export function clockAt(base = new Date("2025-01-01T00:00:00Z")): (seconds: number) => Date {
  return (seconds) => new Date(base.getTime() + seconds * 1000);
}

export const noJitter = (): number => 0;
