/**
 * A type's verification switch (spec.verification.enabled) through the worker commands: rows
 * checksummed again once it is turned back on, and repository mirrors that follow pushes while it
 * is off (push detection otherwise lives in the verify passes). Real PostgreSQL, MinIO and git.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { ReplicableTypeSpec } from "../../../src/api/v1alpha1/types.generated.ts";
import { createBlobWorld, createRepositoryWorld, registryRows, type World } from "../../support/worker-world.ts";

const env = inject("env");

async function runOk(world: World, kind: Parameters<World["run"]>[0]) {
  const res = await world.run(kind);
  expect(res.code, `${kind} failed: ${res.stderr}`).toBe(0);
  return res;
}

function withVerification(type: ReplicableTypeSpec, enabled: boolean): ReplicableTypeSpec {
  return { ...type, verification: { ...type.verification, enabled } };
}

describe("verification turned off and on again", () => {
  let world: World;
  beforeAll(async () => {
    world = await createBlobWorld(env);
  });
  afterAll(async () => {
    await world?.close();
  });

  async function addWidget(): Promise<number> {
    const fileName = `w-${randomBytes(3).toString("hex")}.bin`;
    const { rows } = await world.dbs.primary.query<{ id: string }>(`INSERT INTO cool_widgets (namespace_id, file_name) VALUES (1, $1) RETURNING id`, [fileName]);
    const id = Number(rows[0]!.id);
    await world.primaryS3.send(new PutObjectCommand({ Bucket: env.s3!.primary.bucket, Key: `${world.prefix}cool_widgets/${id}/${fileName}`, Body: randomBytes(1024) }));
    return id;
  }

  const statesOf = async () => {
    const { rows } = await world.dbs.primary.query<{ id: string; verification_state: number; verified_at: Date | null }>(
      `SELECT cool_widget_id AS id, verification_state, verified_at FROM cool_widget_states ORDER BY 1`,
    );
    return new Map(rows.map((r) => [Number(r.id), r]));
  };

  it("checksums on the primary, and verifies on the secondary, rows disabled or created while verification was off", async () => {
    const before = await addWidget();
    for (const kind of ["verify-primary", "consistency", "sync", "verify"] as const) await runOk(world, kind);
    expect((await statesOf()).get(before)).toMatchObject({ verification_state: 2 });

    world.type = withVerification(world.type, false);
    const whileOff = await addWidget();
    await runOk(world, "verify-primary");
    await runOk(world, "consistency");
    await runOk(world, "sync");
    const off = await statesOf();
    // Off: the row verified earlier is disabled, and the new one is created disabled.
    expect(off.get(before)).toMatchObject({ verification_state: 4 });
    expect(off.get(whileOff)).toMatchObject({ verification_state: 4 });
    expect((await registryRows(world.dbs.tracking)).get(whileOff)).toMatchObject({ state: 2 });

    world.type = withVerification(world.type, true);
    const primary = await runOk(world, "verify-primary");
    expect(primary.stdout).toMatch(/claimed=2 /);
    const on = await statesOf();
    for (const id of [before, whileOff]) expect(on.get(id), `states row ${id}`).toMatchObject({ verification_state: 2 });
    expect(on.get(before)!.verified_at!.getTime()).toBeGreaterThan(off.get(before)!.verified_at!.getTime());
    await runOk(world, "verify");
    const rows = await registryRows(world.dbs.tracking);
    for (const id of [before, whileOff]) expect(rows.get(id), `registry row ${id}`).toMatchObject({ state: 2, verification_state: 2 });
  });
});

describe("repository mirrors with verification off", () => {
  let world: World;
  let mirrorRoot: string;
  let work: string;
  const git = (args: string[], cwd: string) =>
    execFileSync("git", ["-c", "user.name=Geo Test", "-c", "user.email=geo@example.com", "-c", "init.defaultBranch=main", ...args], { cwd, encoding: "utf8" }).trim();
  const refs = (gitDir: string) => git(["--git-dir", gitDir, "for-each-ref", "--format=%(objectname) %(refname)"], work);

  beforeAll(async () => {
    mirrorRoot = mkdtempSync(join(tmpdir(), "geo-mirrors-"));
    work = mkdtempSync(join(tmpdir(), "geo-work-"));
    // Mirrors are refreshed once they are older than the verification interval: 1 s here.
    world = await createRepositoryWorld(env, mirrorRoot, { typeOverrides: { verification: { enabled: false }, intervals: { verification: "1s" } } });
  });
  afterAll(async () => {
    await world?.close();
    rmSync(mirrorRoot, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });

  it("carries a push on the primary to the mirror through sync alone", async () => {
    const diskPath = `group-${randomBytes(3).toString("hex")}/project`;
    const bare = join(env.git!.root, `${diskPath}.git`);
    execFileSync("git", ["init", "-q", "--bare", "-b", "main", bare]);
    const clone = join(work, "clone");
    git(["clone", "-q", bare, clone], work);
    git(["commit", "-q", "--allow-empty", "-m", "first"], clone);
    git(["push", "-q", "origin", "main"], clone);
    const { rows } = await world.dbs.primary.query<{ id: string }>(`INSERT INTO design_repositories (namespace_id, disk_path) VALUES (1, $1) RETURNING id`, [diskPath]);
    const id = Number(rows[0]!.id);
    const mirror = join(mirrorRoot, `${diskPath}.git`);

    await runOk(world, "consistency");
    await runOk(world, "sync");
    expect((await registryRows(world.dbs.tracking, "design_repository")).get(id)).toMatchObject({ state: 2 });
    expect(refs(mirror)).toBe(refs(bare));

    git(["commit", "-q", "--allow-empty", "-m", "pushed later"], clone);
    git(["checkout", "-q", "-b", "topic"], clone);
    git(["commit", "-q", "--allow-empty", "-m", "on a new branch"], clone);
    git(["push", "-q", "origin", "main", "topic"], clone);
    expect(refs(mirror)).not.toBe(refs(bare));
    await new Promise((r) => setTimeout(r, 1100));
    await runOk(world, "sync");
    expect(refs(mirror)).toBe(refs(bare));
    expect((await registryRows(world.dbs.tracking, "design_repository")).get(id)).toMatchObject({ state: 2 });
  });
});
