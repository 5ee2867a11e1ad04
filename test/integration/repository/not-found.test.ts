/**
 * The not-found rule against real servers: "not found" over smart HTTP or git:// (a wrong
 * baseURL, credentials the server accepts but that cannot see the repository, a path the daemon
 * does not serve) is AmbiguousNotFoundError from both sync and checksumPrimary, never
 * MissingOnPrimaryError, and an existing mirror stays as it was. Only a file:// baseURL whose
 * directory shows the repository absent gives MissingOnPrimaryError.
 */
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startGitHttpServer, type GitHttpServer } from "../../../hack/localenv/git-http.ts";
import { mirrorPath, repositoryChecksum } from "../../../src/strategies/repository/index.ts";
import { AmbiguousNotFoundError, MissingOnPrimaryError, type Replicator } from "../../../src/strategies/replicator.ts";
import { commit, createRepository, NEVER, primaryFixture, record, secondaryReplicator, temporariesIn, type PrimaryFixture } from "./fixtures.ts";

const USERNAME = "geo-secondary";
const PASSWORD = "token-with-read-access";
const PATH = "group/project.git";

let fx: PrimaryFixture;
let http: GitHttpServer;
/** The same credentials, accepted by a server that does not show them this repository. */
let hiding: GitHttpServer;
let primary: string;

beforeAll(async () => {
  fx = primaryFixture("not-found");
  http = await startGitHttpServer({ root: fx.root, username: USERNAME, password: PASSWORD });
  // GitLab answers 404 for a project the token cannot see; a server whose root lacks the
  // repository but accepts the credentials gives git exactly that answer.
  const otherRoot = join(fx.root, "visible-to-others");
  createRepository(otherRoot, "someone-else/project.git");
  hiding = await startGitHttpServer({ root: otherRoot, username: USERNAME, password: PASSWORD });
  primary = createRepository(fx.root, PATH);
  commit(primary, "main", 2);
});

afterAll(async () => {
  await http.stop();
  await hiding.stop();
  rmSync(fx.root, { recursive: true, force: true });
  rmSync(fx.mirrorRoot, { recursive: true, force: true });
});

const credentials = { username: USERNAME, password: PASSWORD };

async function expectAmbiguous(replicator: Replicator, path: string): Promise<void> {
  const synced = await replicator.sync(record(path), NEVER).catch((e: unknown) => e);
  expect(synced).toBeInstanceOf(AmbiguousNotFoundError);
  expect((synced as Error).message).toMatch(/not found on the primary, or the credentials cannot see it; check git\.baseURL and the credentials Secret/);
  const checksummed = await replicator.checksumPrimary(record(path), NEVER).catch((e: unknown) => e);
  expect(checksummed).toBeInstanceOf(AmbiguousNotFoundError);
  expect((checksummed as Error).message).not.toContain(PASSWORD);
}

describe("not found over the network is ambiguous", () => {
  it.each([
    ["a wrong baseURL", () => `${http.baseURL}/wrong-prefix`, PATH],
    ["credentials the server accepts but that cannot see the repository", () => hiding.baseURL, PATH],
    ["a repository absent on the server", () => http.baseURL, "group/absent.git"],
  ])("over smart HTTP: %s", async (_, baseURL, path) => {
    const mirrorRoot = join(fx.mirrorRoot, `http-${path.length}-${Math.random().toString(36).slice(2, 8)}`);
    mkdirSync(mirrorRoot);
    await expectAmbiguous(secondaryReplicator({ baseURL: baseURL(), mirrorRoot, ...credentials }), path);
    const mirror = await mirrorPath(mirrorRoot, path);
    expect(existsSync(mirror)).toBe(false);
    expect(temporariesIn(dirname(mirror))).toEqual([]);
  });

  it("over git:// (the daemon's 'access denied or repository not exported')", async () => {
    await expectAmbiguous(secondaryReplicator({ baseURL: fx.baseURL, mirrorRoot: fx.mirrorRoot }), "group/never-created.git");
  });

  it("leaves an existing mirror exactly as it was", async () => {
    const mirrorRoot = join(fx.mirrorRoot, "existing");
    mkdirSync(mirrorRoot);
    const right = secondaryReplicator({ baseURL: http.baseURL, mirrorRoot, ...credentials });
    await right.sync(record(PATH), NEVER);
    const mirror = await mirrorPath(mirrorRoot, PATH);
    const before = await repositoryChecksum(mirror);
    commit(primary, "main"); // the mirror is now behind: a wrong answer must not "fix" it either way

    await expectAmbiguous(secondaryReplicator({ baseURL: `${http.baseURL}/wrong-prefix`, mirrorRoot, ...credentials }), PATH);
    await expectAmbiguous(secondaryReplicator({ baseURL: hiding.baseURL, mirrorRoot, ...credentials }), PATH);
    expect(await repositoryChecksum(mirror)).toBe(before);
    expect(await right.checksumSecondary(record(PATH), NEVER)).toEqual({ checksum: Buffer.from(before, "hex"), bytes: 0 });
  });
});

describe("not found over file://", () => {
  it("is MissingOnPrimaryError when the base directory shows the repository absent", async () => {
    const replicator = secondaryReplicator({ baseURL: `file://${fx.root}`, mirrorRoot: fx.mirrorRoot });
    const path = "group/deleted.git";
    await expect(replicator.sync(record(path), NEVER)).rejects.toBeInstanceOf(MissingOnPrimaryError);
    await expect(replicator.checksumPrimary(record(path), NEVER)).rejects.toBeInstanceOf(MissingOnPrimaryError);
    // The same replicator still mirrors what exists: the base is right.
    await replicator.sync(record(PATH), NEVER);
    expect(await replicator.checksumSecondary(record(PATH), NEVER)).toEqual(await replicator.checksumPrimary(record(PATH), NEVER));
  });

  it("is ambiguous when the base directory itself is not there (a wrong baseURL)", async () => {
    const replicator = secondaryReplicator({ baseURL: `file://${fx.root}/no-such-base`, mirrorRoot: fx.mirrorRoot });
    await expect(replicator.sync(record(PATH), NEVER)).rejects.toBeInstanceOf(AmbiguousNotFoundError);
    await expect(replicator.checksumPrimary(record(PATH), NEVER)).rejects.toBeInstanceOf(AmbiguousNotFoundError);
  });
});
