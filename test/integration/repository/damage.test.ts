/**
 * A mirror that lost objects under matching refs: checksumSecondary throws CopyDamagedError (the
 * refs-only checksum alone would still match), a plain sync cannot repair it, and a sync with
 * `repair` rebuilds it so its checksum equals the primary's again. Also: a replacement cut short
 * by a crash is finished by the next sync.
 */
import { readdirSync, renameSync, rmSync, unlinkSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mirrorPath, remoteChecksum, repositoryChecksum, syncMirror, temporaryPrefix } from "../../../src/strategies/repository/index.ts";
import { CopyDamagedError, type Replicator } from "../../../src/strategies/replicator.ts";
import { commit, createRepository, git, NEVER, primaryFixture, record, secondaryReplicator, temporariesIn, type PrimaryFixture } from "./fixtures.ts";

let fx: PrimaryFixture;
let replicator: Replicator;

beforeAll(() => {
  fx = primaryFixture("damage");
  replicator = secondaryReplicator({ baseURL: fx.baseURL, mirrorRoot: fx.mirrorRoot });
});

afterAll(() => {
  rmSync(fx.root, { recursive: true, force: true });
  rmSync(fx.mirrorRoot, { recursive: true, force: true });
});

/** The loose object file of `oid` in a bare repository. */
const looseObject = (gitDir: string, oid: string): string => join(gitDir, "objects", oid.slice(0, 2), oid.slice(2));

async function expectRepairedBy(path: string): Promise<void> {
  const damaged = await replicator.checksumSecondary(record(path), NEVER).catch((e: unknown) => e);
  expect(damaged).toBeInstanceOf(CopyDamagedError);
  expect((damaged as Error).message).toContain(path);

  // A plain sync sees equal refs and fetches nothing: the damage stays.
  await replicator.sync(record(path), NEVER);
  await expect(replicator.checksumSecondary(record(path), NEVER)).rejects.toBeInstanceOf(CopyDamagedError);

  await replicator.sync(record(path), NEVER, { repair: true });
  expect(await replicator.checksumSecondary(record(path), NEVER)).toEqual(await replicator.checksumPrimary(record(path), NEVER));
  const mirror = await mirrorPath(fx.mirrorRoot, path);
  expect(temporariesIn(dirname(mirror))).toEqual([]);
}

describe("a mirror with missing objects", () => {
  it("is found damaged and rebuilt when a blob deep in history is gone (refs still resolve)", async () => {
    const path = "group/lost-blob.git";
    const primary = createRepository(fx.root, path);
    commit(primary, "main", 3);
    await replicator.sync(record(path), NEVER);
    // A small fetch stays loose (below fetch.unpackLimit), so single objects can be deleted.
    const older = commit(primary, "main");
    commit(primary, "main", 2);
    await replicator.sync(record(path), NEVER);
    const mirror = await mirrorPath(fx.mirrorRoot, path);
    const blob = git(mirror, "rev-parse", `${older}:file.txt`);
    unlinkSync(looseObject(mirror, blob));
    // The refs-only checksum cannot see it: this is what verification used to compare.
    expect(await repositoryChecksum(mirror)).toBe(await remoteChecksum(`${fx.baseURL}/${path}`));

    await expectRepairedBy(path);
    expect(git(mirror, "cat-file", "-t", blob)).toBe("blob");
  });

  it("is found damaged and rebuilt when its pack files are gone", async () => {
    const path = "group/lost-pack.git";
    const primary = createRepository(fx.root, path);
    commit(primary, "main", 5);
    commit(primary, "feature", 2);
    await replicator.sync(record(path), NEVER);
    const mirror = await mirrorPath(fx.mirrorRoot, path);
    const packDir = join(mirror, "objects", "pack");
    for (const file of readdirSync(packDir)) unlinkSync(join(packDir, file));

    await expectRepairedBy(path);
  });

  it("is found damaged when the mirror path holds something that is not a repository", async () => {
    const path = "group/not-a-repo.git";
    commit(createRepository(fx.root, path), "main");
    await replicator.sync(record(path), NEVER);
    const mirror = await mirrorPath(fx.mirrorRoot, path);
    rmSync(join(mirror, "objects"), { recursive: true });
    rmSync(join(mirror, "refs"), { recursive: true });
    await expect(replicator.checksumSecondary(record(path), NEVER)).rejects.toBeInstanceOf(CopyDamagedError);
    await replicator.sync(record(path), NEVER, { repair: true });
    expect(await replicator.checksumSecondary(record(path), NEVER)).toEqual(await replicator.checksumPrimary(record(path), NEVER));
  });
});

describe("a replacement cut short", () => {
  it("puts the retired mirror back when the crash fell between the two renames", async () => {
    const path = "group/crash-between.git";
    const primary = createRepository(fx.root, path);
    commit(primary, "main", 2);
    const url = `${fx.baseURL}/${path}`;
    const mirror = await mirrorPath(fx.mirrorRoot, path);
    await syncMirror({ url, mirrorPath: mirror });
    const retired = join(dirname(mirror), `${temporaryPrefix(mirror)}Xy12Zw-retired`);
    renameSync(mirror, retired); // as replaceWithStaged leaves it after its first rename

    commit(primary, "main");
    // The old mirror is back and fetched into, not cloned afresh.
    expect((await syncMirror({ url, mirrorPath: mirror })).outcome).toBe("fetched");
    expect(await repositoryChecksum(mirror)).toBe(await repositoryChecksum(primary));
    expect(temporariesIn(dirname(mirror))).toEqual([]);
  });

  it("moves nested mirrors out of a retired copy left behind after the new mirror went in", async () => {
    const outer = "crash-after/outer";
    const inner = "crash-after/outer/inner.git";
    const outerPrimary = createRepository(fx.root, outer);
    const innerPrimary = createRepository(fx.root, inner);
    commit(outerPrimary, "main");
    commit(innerPrimary, "main");
    await replicator.sync(record(inner), NEVER);
    await replicator.sync(record(outer), NEVER);
    const outerMirror = await mirrorPath(fx.mirrorRoot, outer);
    // As replaceWithStaged leaves it after both renames, before moving the nested mirror across.
    renameSync(outerMirror, join(dirname(outerMirror), `${temporaryPrefix(outerMirror)}Ab34Cd-retired`));
    git(outerPrimary, "clone", "--quiet", "--mirror", "--", outerPrimary, outerMirror);
    await expect(replicator.checksumSecondary(record(inner), NEVER)).rejects.toThrow(/no mirror/);

    await replicator.sync(record(outer), NEVER, { repair: true });
    expect(await replicator.checksumSecondary(record(inner), NEVER)).toEqual(await replicator.checksumPrimary(record(inner), NEVER));
    expect(await replicator.checksumSecondary(record(outer), NEVER)).toEqual(await replicator.checksumPrimary(record(outer), NEVER));
    expect(temporariesIn(dirname(outerMirror))).toEqual([]);
  });
});
