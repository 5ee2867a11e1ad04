/**
 * Repository faults: a mirror that lost objects its refs still point at, and a primary git server
 * that answers 404 (what GitLab answers for a token that cannot see the project). These use the
 * Replicator contract's CopyDamagedError / AmbiguousNotFoundError / sync({ repair }) (branch
 * `repo`).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createRepositoryWorld, registryRows, retryNow, type World } from "../support/worker-world.ts";
import { requestResync } from "../../src/registry/sync-state.ts";
import { typeRuntimeConfig } from "../../src/strategies/type-config.ts";
import { connected, expectInvariants } from "./invariants.ts";
import { scenario } from "./report.ts";
import { converge, faultTypeOverrides, quietPools, round, runOk, runWorker, sleep, stateCounts, summaryField } from "./world.ts";

const env = inject("env");
const NAME = "design_repository";
let work: string;
let source: string;
const mirrorRoots: string[] = [];
const worlds: World[] = [];
const run = randomBytes(3).toString("hex");

const git = (args: string[], cwd = work) =>
  execFileSync("git", ["-c", "user.name=Geo", "-c", "user.email=geo@example.com", "-c", "init.defaultBranch=main", ...args], { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "geo-faults-git-"));
  // One source repository with a few commits carrying content; primaries are bare clones of it.
  source = join(work, "source");
  git(["init", "-q", source]);
  for (let i = 0; i < 3; i++) {
    execFileSync("sh", ["-c", `head -c 20000 /dev/urandom > f${i}.bin`], { cwd: source });
    git(["add", "."], source);
    git(["commit", "-q", "-m", `commit ${i}`], source);
  }
});
afterAll(async () => {
  for (const w of worlds) await w.close().catch(() => undefined);
  for (const d of mirrorRoots) rmSync(d, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
});

async function repoWorld(baseURL?: string): Promise<World> {
  const mirrorRoot = mkdtempSync(join(tmpdir(), "geo-faults-mirrors-"));
  mirrorRoots.push(mirrorRoot);
  const w = await createRepositoryWorld(env, mirrorRoot, {
    ...(baseURL ? { baseURL } : {}),
    typeOverrides: faultTypeOverrides({ verification: { minimumReverificationInterval: "1s" } }),
  });
  worlds.push(quietPools(w));
  return w;
}

async function addRepositories(w: World, n: number): Promise<Array<{ id: number; diskPath: string }>> {
  const out = [];
  for (let i = 0; i < n; i++) {
    const diskPath = `faults-${run}/p-${randomBytes(4).toString("hex")}`;
    git(["clone", "-q", "--bare", source, join(env.git!.root, `${diskPath}.git`)]);
    const { rows } = await w.dbs.primary.query<{ id: string }>(`INSERT INTO design_repositories (namespace_id, disk_path) VALUES (1, $1) RETURNING id`, [diskPath]);
    out.push({ id: Number(rows[0]!.id), diskPath });
  }
  return out;
}

/** A smart-HTTP git server that answers every request 404, as GitLab does for a token without access. */
async function notFoundServer(): Promise<{ baseURL: string; server: Server }> {
  const server = createServer((_req, res) => {
    res.writeHead(404, { "Content-Type": "text/plain" });
    res.end("The project you were looking for could not be found or you don't have permission to view it.\n");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const addr = server.address();
  return { baseURL: `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}`, server };
}

describe("fault suite: repositories", () => {
  it("12 repository objects removed from a mirror", () =>
    scenario(
      "12 repository objects removed from a mirror",
      {
        done: "3 repositories mirrored and verified; every pack and loose object deleted from one mirror (refs intact); re-verification due; verify, sync, verify",
        expected: "verification finds the damage (CopyDamagedError), the row is synced again with repair (fresh clone), then verified; the mirror is whole",
      },
      async (o) => {
        const w = await repoWorld();
        const repos = await addRepositories(w, 3);
        await round(w);
        const mirror = join(w.secondarySite.git!.mirrorRoot!, `${repos[0]!.diskPath}.git`);
        const objects = join(mirror, "objects");
        for (const d of readdirSync(objects)) if (d !== "info") rmSync(join(objects, d), { recursive: true, force: true });
        o.note(`mirror connected after removal: ${connected(mirror)}`);
        await sleep(1100);
        const verify = await runOk(w, "verify");
        const row = (await registryRows(w.dbs.tracking, NAME)).get(repos[0]!.id)!;
        o.note(`verify: failed=${summaryField(verify, "failed")}, row state=${row.state} verification_state=${row.verification_state}`);
        expect(row.verification_state).not.toBe(2);
        await runOk(w, "sync");
        await converge(w, 2);
        o.note(`after repair: mirror connected=${connected(mirror)}, ${JSON.stringify(await stateCounts(w))}`);
        expect(connected(mirror)).toBe(true);
        await expectInvariants(env, w, o);
      },
    ));

  it("13 git 404 for a token without access", () =>
    scenario(
      "13 git 404 for a token without access",
      {
        done: "2 repositories mirrored; git.baseURL → a server answering 404 to everything; both resynced; then 21 more records; sync; then baseURL back and rounds",
        expected: "failures with backoff, never missing_on_primary, mirrors kept; with 23 items all not found the run stops (exit 1); once the primary answers, all are mirrored",
      },
      async (o) => {
        const w = await repoWorld();
        const first = await addRepositories(w, 2);
        await round(w);
        const goodBase = w.primarySite.git!.baseURL;
        const { baseURL, server } = await notFoundServer();
        try {
          w.primarySite = { ...w.primarySite, git: { ...w.primarySite.git, baseURL } };
          await requestResync(w.dbs.tracking, typeRuntimeConfig(w.type).schema, first.map((r) => r.id));
          const sync = await runWorker(w, "sync");
          const rows = [...(await registryRows(w.dbs.tracking, NAME)).values()];
          o.note(`2 resynced against 404: exit ${sync.code}, states ${rows.map((r) => `${r.state}${r.missing_on_primary ? "+missing" : ""}`).join(",")}`);
          expect(rows.every((r) => r.state === 3 && !r.missing_on_primary && r.retry_at > new Date())).toBe(true);
          await expectInvariants(env, w, o, { mustHave: first.map((r) => r.id) });

          await addRepositories(w, 21);
          await runOk(w, "consistency");
          await retryNow(w.dbs.tracking, NAME);
          const many = await runWorker(w, "sync");
          const after = [...(await registryRows(w.dbs.tracking, NAME)).values()];
          const missing = after.filter((r) => r.missing_on_primary).length;
          o.note(`23 against 404: exit ${many.code} (${/configuration is probably wrong/.test(many.stderr) ? "says the configuration is probably wrong" : "no configuration message"}), missing_on_primary=${missing}`);
          expect(many.code).toBe(1);
          expect(many.stderr).toMatch(/configuration is probably wrong \(check the primary GeoSite.s git\.baseURL or its token/);
          expect(missing).toBe(0);
        } finally {
          server.close();
          w.primarySite = { ...w.primarySite, git: { ...w.primarySite.git, baseURL: goodBase } };
        }
        await converge(w, 2);
        const end = await stateCounts(w);
        o.note(`primary back: synced=${end.synced} verified=${end.verified}`);
        expect(end).toMatchObject({ synced: 23, verified: 23 });
        await expectInvariants(env, w, o);
      },
    ));
});
