/** `geo-operator event publish`, as a post-receive hook or an application job runs it. */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../../hack/localenv/tools.ts";
import { readEvents } from "../../../src/registry/event-log.ts";
import { applySchema } from "../../../src/registry/schema-manager.ts";
import { createTestDatabases, withClient, type TestDatabases } from "../registry/databases.ts";

const run = promisify(execFile);
let dbs: TestDatabases;

async function publish(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [join(REPO_ROOT, "bin/geo-operator.js"), "event", "publish", ...args], { env: { PATH: process.env.PATH ?? "", ...env } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

beforeAll(async () => {
  dbs = await createTestDatabases();
  await dbs.primary.query(`CREATE TABLE repos (id bigserial PRIMARY KEY, path text NOT NULL)`);
  await withClient(dbs.primary, (c) => applySchema(c, { name: "repo", statesLayout: "serial-id", source: { table: "repos" }, deletionPolicy: "Retain", captureColumns: ["path"] }, "primary"));
});
afterAll(async () => {
  await dbs?.drop();
});

describe("geo-operator event publish", () => {
  it("publishes an updated event and prints its id", async () => {
    const out = await publish(["--type", "repo", "--id", "42"], { GEO_PRIMARY_DB_URL: dbs.primaryUrl });
    expect(out.code).toBe(0);
    const id = Number(/event (\d+)/.exec(out.stdout)![1]);
    expect((await readEvents(dbs.primary, id - 1, 1)).map((e) => [e.typeName, e.modelId, e.event])).toEqual([["repo", 42, "updated"]]);
  });

  it("exit 2 for an unknown type, a bad id or a missing database URL; exit 1 for an unreachable database", async () => {
    expect((await publish(["--type", "nope", "--id", "1"], { GEO_PRIMARY_DB_URL: dbs.primaryUrl })).code).toBe(2);
    expect((await publish(["--type", "repo", "--id", "x"], { GEO_PRIMARY_DB_URL: dbs.primaryUrl })).code).toBe(2);
    const missing = await publish(["--type", "repo", "--id", "1"], {});
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("GEO_PRIMARY_DB_URL");
    expect((await publish(["--type", "repo", "--id", "1"], { GEO_PRIMARY_DB_URL: "postgres://nobody@127.0.0.1:1/x" })).code).toBe(1);
  });
});
