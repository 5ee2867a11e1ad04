/**
 * Git repositories end to end through the worker commands, each run as its own process, against
 * the real git daemon and two real PostgreSQL servers.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createRepositoryWorld, registryRows, retryNow, type World } from "../../support/worker-world.ts";

const env = inject("env");
const NAME = "design_repository";
let world: World;
let mirrorRoot: string;
let work: string;
const run = Math.random().toString(36).slice(2, 8);

const git = (args: string[], cwd: string) =>
  execFileSync("git", ["-c", "user.name=Geo Test", "-c", "user.email=geo@example.com", "-c", "init.defaultBranch=main", ...args], { cwd, encoding: "utf8" }).trim();

/** A bare repository on the primary's git server with one commit per message; returns its disk path. */
async function addRepository(commits: string[], diskPath = `group-${run}/project-${randomBytes(3).toString("hex")}`): Promise<{ id: number; diskPath: string; clone: string }> {
  const bare = join(env.git!.root, `${diskPath}.git`);
  execFileSync("git", ["init", "-q", "--bare", "-b", "main", bare]);
  const clone = join(work, diskPath.replaceAll("/", "_"));
  git(["clone", "-q", bare, clone], work);
  for (const m of commits) git(["commit", "-q", "--allow-empty", "-m", m], clone);
  if (commits.length) git(["push", "-q", "origin", "main"], clone);
  const { rows } = await world.dbs.primary.query<{ id: string }>(`INSERT INTO design_repositories (namespace_id, disk_path) VALUES (1, $1) RETURNING id`, [diskPath]);
  return { id: Number(rows[0]!.id), diskPath, clone };
}

async function runOk(kind: Parameters<World["run"]>[0]) {
  const res = await world.run(kind);
  expect(res.code, `${kind} failed: ${res.stderr}`).toBe(0);
  return res;
}

async function fullRound() {
  await runOk("verify-primary");
  await runOk("consistency");
  await runOk("sync");
  return runOk("verify");
}

const mirrorHead = (diskPath: string, ref = "refs/heads/main") => git(["--git-dir", join(mirrorRoot, `${diskPath}.git`), "rev-parse", ref], work);

beforeAll(async () => {
  mirrorRoot = mkdtempSync(join(tmpdir(), "geo-mirrors-"));
  work = mkdtempSync(join(tmpdir(), "geo-work-"));
  world = await createRepositoryWorld(env, mirrorRoot, { typeOverrides: { deletion: { gracePeriod: "0s" } } });
});
afterAll(async () => {
  await world?.close();
  rmSync(mirrorRoot, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
});

describe("repository workers", () => {
  it("mirror and verify repositories, an empty one included", async () => {
    const a = await addRepository(["one", "two"]);
    const empty = await addRepository([]);
    const verify = await fullRound();
    expect(verify.stdout).toMatch(/verified=2 failed=0/);
    const rows = await registryRows(world.dbs.tracking, NAME);
    for (const r of [a, empty]) expect(rows.get(r.id)).toMatchObject({ state: 2, verification_state: 2, missing_on_primary: false });
    expect(mirrorHead(a.diskPath)).toBe(git(["rev-parse", "HEAD"], a.clone));
    expect(rows.get(empty.id)!.verification_checksum.toString("hex")).toBe("0".repeat(40));
  });

  it("carries a push on the primary to the secondary through re-verification", async () => {
    const a = await addRepository(["base"]);
    await fullRound();
    git(["commit", "-q", "--allow-empty", "-m", "pushed later"], a.clone);
    git(["push", "-q", "origin", "main"], a.clone);
    // minimumReverificationInterval is 1s in this world: the primary checksums again, the
    // secondary sees the primary's checksum changed and resyncs.
    await new Promise((r) => setTimeout(r, 1100));
    await runOk("verify-primary");
    await runOk("verify");
    expect((await registryRows(world.dbs.tracking, NAME)).get(a.id)!.state).toBe(0);
    await runOk("sync");
    await runOk("verify");
    expect(mirrorHead(a.diskPath)).toBe(git(["rev-parse", "HEAD"], a.clone));
    expect((await registryRows(world.dbs.tracking, NAME)).get(a.id)).toMatchObject({ state: 2, verification_state: 2 });
  });

  it("finds a mirror that lost objects its refs point at, syncs it again with repair and verifies it", async () => {
    const a = await addRepository(["first", "second"]);
    await fullRound();
    const mirror = join(mirrorRoot, `${a.diskPath}.git`);
    // Damage the refs cannot show: every pack and loose object goes, the refs stay.
    for (const dir of [join(mirror, "objects", "pack")]) {
      for (const f of readdirSync(dir)) rmSync(join(dir, f), { force: true });
    }
    for (const d of readdirSync(join(mirror, "objects")).filter((x) => /^[0-9a-f]{2}$/.test(x))) rmSync(join(mirror, "objects", d), { recursive: true, force: true });
    // Re-verification is due after 1 s in this world.
    await new Promise((r) => setTimeout(r, 1100));
    await runOk("verify-primary");
    const verify = await runOk("verify");
    expect(verify.stdout).toMatch(/failed=1/);
    const damaged = (await registryRows(world.dbs.tracking, NAME)).get(a.id)!;
    expect(damaged).toMatchObject({ state: 0, verification_state: 3, checksum_mismatch: true });
    await runOk("sync");
    await runOk("verify");
    expect((await registryRows(world.dbs.tracking, NAME)).get(a.id)).toMatchObject({ state: 2, verification_state: 2, checksum_mismatch: false });
    expect(git(["rev-list", "--objects", "--all", "--quiet"], mirror)).toBe("");
  });

  it("fails, and does not mark missing_on_primary, a repository the primary's git server says it cannot find", async () => {
    // Over a network transport "not found" may mean "not allowed to see it" (a token without
    // access, a wrong baseURL): an ordinary failure with backoff, never synced-and-missing.
    const { rows } = await world.dbs.primary.query<{ id: string }>(`INSERT INTO design_repositories (namespace_id, disk_path) VALUES (1, $1) RETURNING id`, [`nowhere-${run}/gone`]);
    const id = Number(rows[0]!.id);
    await runOk("consistency");
    await runOk("sync");
    const row = (await registryRows(world.dbs.tracking, NAME)).get(id)!;
    expect(row).toMatchObject({ state: 3, missing_on_primary: false });
    expect(row.last_sync_failure).toMatch(/not found on the primary, or the credentials cannot see it/);
    expect(existsSync(join(mirrorRoot, `nowhere-${run}/gone.git`))).toBe(false);
  });

  it("detects a mirror whose ref was moved by hand, records which ref differs, and repairs it", async () => {
    const a = await addRepository(["first", "second"]);
    await fullRound();
    const mirror = join(mirrorRoot, `${a.diskPath}.git`);
    const first = git(["rev-parse", "HEAD~1"], a.clone);
    git(["--git-dir", mirror, "update-ref", "refs/heads/main", first], work);
    await world.dbs.tracking.query(`UPDATE ${NAME}_registry SET verification_state = 0 WHERE ${NAME}_id = $1`, [a.id]);
    const verify = await runOk("verify");
    expect(verify.stdout).toMatch(/failed=1/);
    expect((await registryRows(world.dbs.tracking, NAME)).get(a.id)).toMatchObject({ state: 3, checksum_mismatch: true });
    const details = await world.dbs.tracking.query(`SELECT mismatch FROM geo_operator_replicas WHERE type_name = $1 AND model_id = $2`, [NAME, a.id]);
    expect(JSON.stringify(details.rows[0].mismatch)).toContain("refs/heads/main");
    expect(JSON.stringify(details.rows[0].mismatch)).toContain(first);
    await retryNow(world.dbs.tracking, NAME);
    await runOk("sync");
    await runOk("verify");
    expect(mirrorHead(a.diskPath)).toBe(git(["rev-parse", "HEAD"], a.clone));
    expect((await registryRows(world.dbs.tracking, NAME)).get(a.id)).toMatchObject({ state: 2, verification_state: 2, checksum_mismatch: false });
  });

  it("removes the mirror of a repository whose record was deleted on the primary, and nothing on the primary", async () => {
    const a = await addRepository(["doomed"]);
    await fullRound();
    expect(existsSync(join(mirrorRoot, `${a.diskPath}.git`))).toBe(true);
    await world.dbs.primary.query(`DELETE FROM design_repositories WHERE id = $1`, [a.id]);
    // Deletion needs the evidence of two passes (this world's grace period is 0 s).
    const first = await runOk("consistency");
    expect(first.stdout).not.toMatch(/deleted=/);
    expect(existsSync(join(mirrorRoot, `${a.diskPath}.git`))).toBe(true);
    const consistency = await runOk("consistency");
    expect(consistency.stdout).toMatch(/deleted=1/);
    expect(existsSync(join(mirrorRoot, `${a.diskPath}.git`))).toBe(false);
    expect(existsSync(join(env.git!.root, `${a.diskPath}.git`))).toBe(true);
  });

  it("refuses a repository path that would leave the mirror root", async () => {
    const { rows } = await world.dbs.primary.query<{ id: string }>(`INSERT INTO design_repositories (namespace_id, disk_path) VALUES (1, '../../etc/evil') RETURNING id`);
    const id = Number(rows[0]!.id);
    await runOk("consistency");
    await runOk("sync");
    const row = (await registryRows(world.dbs.tracking, NAME)).get(id)!;
    expect(row.state).toBe(3);
    expect(row.last_sync_failure).toMatch(/\.\./);
    expect(existsSync(join(mirrorRoot, "..", "..", "etc", "evil.git"))).toBe(false);
  });
});
