/**
 * The primary's checksum computed from `git ls-remote` (all the operator has is network access)
 * equals the on-disk checksum of `git show-ref --head`, over git:// and smart HTTP, with every
 * kind of ref the checksum counts and some it does not.
 */
import { rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startGitHttpServer, type GitHttpServer } from "../../../hack/localenv/git-http.ts";
import { checksumFromShowRef, primaryRepositoryURL, remoteChecksum, repositoryChecksum, showRef } from "../../../src/strategies/repository/index.ts";
import { commit, createRepository, git, primaryFixture, type PrimaryFixture } from "./fixtures.ts";

let fx: PrimaryFixture;
let http: GitHttpServer;

beforeAll(async () => {
  fx = primaryFixture("checksum");
  http = await startGitHttpServer({ root: fx.root });
});

afterAll(async () => {
  await http.stop();
  rmSync(fx.root, { recursive: true, force: true });
  rmSync(fx.mirrorRoot, { recursive: true, force: true });
});

describe("remoteChecksum", () => {
  it("equals the on-disk checksum for a repository with every kind of ref", async () => {
    const primary = createRepository(fx.root, "full.git");
    const tip = commit(primary, "main", 3);
    const feature = commit(primary, "feature/deep/name", 2);
    git(primary, "tag", "-a", "v1", "-m", "annotated", tip);
    git(primary, "-c", "advice.nestedTag=false", "tag", "-a", "v1-of-tag", "-m", "tag of a tag", "v1");
    git(primary, "update-ref", "refs/tags/lightweight", feature);
    git(primary, "notes", "add", "-m", "a note", tip);
    git(primary, "update-ref", `refs/keep-around/${feature}`, feature);
    git(primary, "update-ref", "refs/merge-requests/7/head", feature);
    git(primary, "update-ref", "refs/environments/production/deployments/3", tip);
    git(primary, "update-ref", "refs/pipelines/99", tip); // not counted, but advertised

    const onDisk = await repositoryChecksum(primary);
    expect(onDisk).toBe(checksumFromShowRef(await showRef(primary)));
    expect(await remoteChecksum(primaryRepositoryURL(fx.baseURL, "full.git"))).toBe(onDisk);
    expect(await remoteChecksum(primaryRepositoryURL(http.baseURL, "full.git"))).toBe(onDisk);
  });

  it("equals the on-disk checksum when HEAD is detached", async () => {
    const primary = createRepository(fx.root, "detached.git");
    const tip = commit(primary, "main", 2);
    commit(primary, "main");
    git(primary, "update-ref", "--no-deref", "HEAD", tip);
    expect(await remoteChecksum(primaryRepositoryURL(fx.baseURL, "detached.git"))).toBe(await repositoryChecksum(primary));
  });

  it("equals the on-disk checksum when HEAD points at a branch that does not exist", async () => {
    const primary = createRepository(fx.root, "unborn-head.git");
    commit(primary, "other");
    expect(await remoteChecksum(primaryRepositoryURL(fx.baseURL, "unborn-head.git"))).toBe(await repositoryChecksum(primary));
  });

  it("rejects a path that is not a repository instead of calling it empty", async () => {
    await expect(repositoryChecksum(fx.mirrorRoot)).rejects.toThrow(/not a git repository/);
  });
});
