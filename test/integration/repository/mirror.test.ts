/**
 * syncMirror against the shared git daemon: first clone, incremental fetches, force-pushes,
 * deletions, tags and notes, HEAD moves, empty and missing repositories, a mirror corrupted by
 * hand, interrupted clones, and housekeeping.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateRepository } from "../../../bench/repository/generate.ts";
import {
  GitAbortedError,
  GitCommandError,
  GitTimeoutError,
  mirrorPath,
  parseRefListing,
  primaryRepositoryURL,
  refDifferences,
  remoteChecksum,
  removeMirror,
  repositoryChecksum,
  RepositoryPathError,
  showRef,
  syncMirror,
  temporaryPrefix,
  ZERO_CHECKSUM,
  type Ref,
} from "../../../src/strategies/repository/index.ts";
import { readLocalRefs } from "../../../src/strategies/repository/refs.ts";
import { commit, commitObject, createRepository, git, primaryFixture, processesMentioning, temporariesIn, type PrimaryFixture } from "./fixtures.ts";

let fx: PrimaryFixture;

beforeAll(() => {
  fx = primaryFixture("mirror");
});

afterAll(() => {
  rmSync(fx.root, { recursive: true, force: true });
  rmSync(fx.mirrorRoot, { recursive: true, force: true });
});

/** A new primary repository and where its mirror goes. */
async function repository(relativePath: string): Promise<{ primary: string; url: string; mirror: string }> {
  return {
    primary: createRepository(fx.root, relativePath),
    url: primaryRepositoryURL(fx.baseURL, relativePath),
    mirror: await mirrorPath(fx.mirrorRoot, relativePath),
  };
}

async function expectInSync(primary: string, mirror: string): Promise<void> {
  const expected = await repositoryChecksum(primary);
  expect(await repositoryChecksum(mirror)).toBe(expected);
  expect(await showRef(mirror)).toBe(await showRef(primary));
  // The no-spawn reader that decides whether to fetch sees exactly what git sees.
  const byName = (refs: Ref[]): Ref[] => [...refs].sort((a, b) => a.name.localeCompare(b.name));
  const fromFiles = await readLocalRefs(mirror);
  expect(fromFiles).toBeDefined();
  expect(byName(fromFiles!.refs)).toEqual(byName(parseRefListing(await showRef(mirror)).refs));
}

describe("syncMirror", () => {
  it("clones, then fetches only what changed, then does nothing when nothing changed", async () => {
    const { primary, url, mirror } = await repository("@hashed/aa/bb/first.git");
    commit(primary, "main", 3);
    commit(primary, "feature", 2);

    const first = await syncMirror({ url, mirrorPath: mirror, timeoutMs: 60_000 });
    expect(first).toMatchObject({ outcome: "cloned", fetchCount: 0 });
    expect(git(mirror, "rev-parse", "--is-bare-repository")).toBe("true");
    await expectInSync(primary, mirror);
    expect(temporariesIn(dirname(mirror))).toEqual([]);

    commit(primary, "main", 2);
    const second = await syncMirror({ url, mirrorPath: mirror, timeoutMs: 60_000 });
    expect(second).toMatchObject({ outcome: "fetched", fetchCount: 1 });
    await expectInSync(primary, mirror);

    const third = await syncMirror({ url, mirrorPath: mirror, timeoutMs: 60_000 });
    expect(third).toMatchObject({ outcome: "unchanged" });
    expect(git(mirror, "config", "geo.fetchcount")).toBe("1");
  });

  it("reflects force-pushes, deleted branches and a moved HEAD", async () => {
    const { primary, url, mirror } = await repository("group/rewrite.git");
    const base = commit(primary, "main", 2);
    commit(primary, "doomed");
    commit(primary, "develop");
    await syncMirror({ url, mirrorPath: mirror });

    const rewritten = commitObject(primary, "rewritten history"); // unrelated root: not a fast-forward
    git(primary, "update-ref", "refs/heads/main", rewritten);
    git(primary, "update-ref", "-d", "refs/heads/doomed");
    git(primary, "symbolic-ref", "HEAD", "refs/heads/develop");
    expect(rewritten).not.toBe(base);

    expect((await syncMirror({ url, mirrorPath: mirror })).outcome).toBe("fetched");
    expect(git(mirror, "rev-parse", "refs/heads/main")).toBe(rewritten);
    expect(() => git(mirror, "rev-parse", "--verify", "--quiet", "refs/heads/doomed")).toThrow();
    expect(git(mirror, "symbolic-ref", "HEAD")).toBe("refs/heads/develop");
    await expectInSync(primary, mirror);
  });

  it("follows a detached HEAD on the primary and its re-attachment", async () => {
    const { primary, url, mirror } = await repository("group/detached.git");
    const first = commit(primary, "main");
    commit(primary, "main");
    await syncMirror({ url, mirrorPath: mirror });

    git(primary, "update-ref", "--no-deref", "HEAD", first);
    expect((await syncMirror({ url, mirrorPath: mirror })).outcome).toBe("fetched");
    expect(git(mirror, "rev-parse", "HEAD")).toBe(first);
    expect(() => git(mirror, "symbolic-ref", "-q", "HEAD")).toThrow();
    await expectInSync(primary, mirror);
    expect((await syncMirror({ url, mirrorPath: mirror })).outcome).toBe("unchanged");

    git(primary, "symbolic-ref", "HEAD", "refs/heads/main");
    expect((await syncMirror({ url, mirrorPath: mirror })).outcome).toBe("fetched");
    expect(git(mirror, "symbolic-ref", "HEAD")).toBe("refs/heads/main");
    await expectInSync(primary, mirror);
  });

  it("mirrors annotated and lightweight tags and notes, and counts them in the checksum", async () => {
    const { primary, url, mirror } = await repository("group/tags.git");
    const tip = commit(primary, "main", 2);
    const before = await repositoryChecksum(primary);
    git(primary, "tag", "-a", "v1.0", "-m", "release 1.0", tip);
    git(primary, "update-ref", "refs/tags/light", tip);
    git(primary, "notes", "add", "-m", "reviewed", tip);
    git(primary, "update-ref", `refs/keep-around/${tip}`, tip);
    git(primary, "update-ref", "refs/merge-requests/1/head", tip);
    const after = await repositoryChecksum(primary);
    expect(after).not.toBe(before);

    await syncMirror({ url, mirrorPath: mirror });
    await expectInSync(primary, mirror);
    expect(git(mirror, "cat-file", "-t", "refs/tags/v1.0")).toBe("tag");
    expect(git(mirror, "notes", "show", tip)).toBe("reviewed");
    expect(await remoteChecksum(url)).toBe(after);
  });

  it("mirrors an empty repository, whose checksum is 40 zeros (HEAD does not resolve)", async () => {
    const { primary, url, mirror } = await repository("group/empty.git");
    expect(await repositoryChecksum(primary)).toBe(ZERO_CHECKSUM);
    expect(await remoteChecksum(url)).toBe(ZERO_CHECKSUM);

    expect(await syncMirror({ url, mirrorPath: mirror })).toMatchObject({ outcome: "cloned" });
    expect(await repositoryChecksum(mirror)).toBe(ZERO_CHECKSUM);
    expect((await syncMirror({ url, mirrorPath: mirror })).outcome).toBe("unchanged");

    commit(primary, "main");
    expect((await syncMirror({ url, mirrorPath: mirror })).outcome).toBe("fetched");
    await expectInSync(primary, mirror);
  });

  it("throws not-found for a repository the primary does not serve, leaving nothing behind and an existing mirror as it was", async () => {
    const url = primaryRepositoryURL(fx.baseURL, "group/never-created.git");
    const mirror = await mirrorPath(fx.mirrorRoot, "group/never-created.git");
    const error = await syncMirror({ url, mirrorPath: mirror }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GitCommandError);
    expect((error as GitCommandError).category).toBe("not-found");
    expect(existsSync(mirror)).toBe(false);
    expect(temporariesIn(dirname(mirror))).toEqual([]);

    // A repository deleted on the primary after it was mirrored: not-found, and the mirror is kept,
    // with or without redownload.
    const { primary, url: url2, mirror: mirror2 } = await repository("group/deleted-later.git");
    commit(primary, "main");
    await syncMirror({ url: url2, mirrorPath: mirror2 });
    const before = await repositoryChecksum(mirror2);
    rmSync(primary, { recursive: true, force: true });
    for (const redownload of [false, true]) {
      const again = await syncMirror({ url: url2, mirrorPath: mirror2, redownload }).catch((e: unknown) => e);
      expect((again as GitCommandError).category).toBe("not-found");
      expect(await repositoryChecksum(mirror2)).toBe(before);
      expect(temporariesIn(dirname(mirror2))).toEqual([]);
    }
  });

  it("tells an unreachable primary from a missing repository", async () => {
    const mirror = await mirrorPath(fx.mirrorRoot, "group/unreachable.git");
    // Port 9 (discard) on loopback: nothing listens, the connection is refused.
    const error = await syncMirror({ url: "git://127.0.0.1:9/group/unreachable.git", mirrorPath: mirror, timeoutMs: 30_000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GitCommandError);
    expect((error as GitCommandError).category).toBe("unreachable");
    expect(existsSync(mirror)).toBe(false);
    expect(temporariesIn(dirname(mirror))).toEqual([]);
  });

  it("detects a mirror corrupted by hand, names the ref, and repairs it on the next sync", async () => {
    const { primary, url, mirror } = await repository("group/corrupt.git");
    const first = commit(primary, "main");
    const tip = commit(primary, "main");
    commit(primary, "other");
    await syncMirror({ url, mirrorPath: mirror });

    git(mirror, "update-ref", "refs/heads/main", first);
    git(mirror, "update-ref", "refs/heads/rogue", first);
    const primaryChecksum = await remoteChecksum(url);
    expect(await repositoryChecksum(mirror)).not.toBe(primaryChecksum);

    const { differences, total } = refDifferences(await showRef(primary), await showRef(mirror), 10);
    // HEAD resolves through refs/heads/main, so it differs too.
    expect(total).toBe(3);
    expect(differences).toEqual([
      { ref: "HEAD", primary: tip, secondary: first },
      { ref: "refs/heads/main", primary: tip, secondary: first },
      { ref: "refs/heads/rogue", primary: null, secondary: first },
    ]);

    expect((await syncMirror({ url, mirrorPath: mirror })).outcome).toBe("fetched");
    expect(await repositoryChecksum(mirror)).toBe(primaryChecksum);
    expect(refDifferences(await showRef(primary), await showRef(mirror), 10).total).toBe(0);

    // Objects lost under matching refs: a fetch cannot see it, a redownload repairs it.
    rmSync(join(mirror, "objects"), { recursive: true, force: true });
    mkdirSync(join(mirror, "objects/pack"), { recursive: true });
    // (show-ref refuses outright: `bad ref HEAD`, so verification fails rather than mismatches.)
    await expect(repositoryChecksum(mirror)).rejects.toThrow(/bad ref/);
    expect((await syncMirror({ url, mirrorPath: mirror })).outcome).toBe("unchanged");
    expect((await syncMirror({ url, mirrorPath: mirror, redownload: true })).outcome).toBe("cloned");
    await expectInSync(primary, mirror);
  });

  it("replaces a directory at the mirror path that is not a repository", async () => {
    const { primary, url, mirror } = await repository("group/not-a-repo.git");
    commit(primary, "main");
    mkdirSync(mirror, { recursive: true });
    writeFileSync(join(mirror, "junk"), "not git");
    expect((await syncMirror({ url, mirrorPath: mirror })).outcome).toBe("cloned");
    expect(existsSync(join(mirror, "junk"))).toBe(false);
    await expectInSync(primary, mirror);
  });

  it("runs git gc --auto every N fetches and keeps the count in the mirror's config", async () => {
    const { primary, url, mirror } = await repository("group/housekeeping.git");
    commit(primary, "main");
    await syncMirror({ url, mirrorPath: mirror, housekeepingEveryFetches: 2 });
    const housekept: boolean[] = [];
    for (let i = 0; i < 4; i++) {
      commit(primary, "main");
      housekept.push((await syncMirror({ url, mirrorPath: mirror, housekeepingEveryFetches: 2 })).housekept);
    }
    expect(housekept).toEqual([false, true, false, true]);
    expect(git(mirror, "config", "geo.fetchcount")).toBe("4");
  });
});

describe("interrupted clones", () => {
  let url: string;

  beforeAll(() => {
    // ~40 MB of incompressible history: long enough to be caught mid-clone.
    generateRepository(join(fx.root, "big/huge.git"), { commits: 5_000, bytesPerCommit: 8_192, files: 400 });
    url = primaryRepositoryURL(fx.baseURL, "big/huge.git");
  }, 120_000);

  it("leaves nothing at the mirror path and no temporary directory when aborted", async () => {
    const mirror = await mirrorPath(fx.mirrorRoot, "big/aborted.git");
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);
    const started = Date.now();
    await expect(syncMirror({ url, mirrorPath: mirror, signal: controller.signal })).rejects.toBeInstanceOf(GitAbortedError);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(existsSync(mirror)).toBe(false);
    expect(temporariesIn(dirname(mirror))).toEqual([]);
    // The whole process group went: no git (clone, index-pack) still names the temporary.
    expect(processesMentioning(temporaryPrefix(mirror))).toEqual([]);
  });

  it("does not disturb the clone in progress of a mirror whose name starts with this one's", async () => {
    // `.geo-tmp-huge-` used to be the prefix of `huge`'s temporaries and of `huge-bar`'s too.
    const slow = await mirrorPath(fx.mirrorRoot, "prefix/huge-bar");
    const slowSync = syncMirror({ url, mirrorPath: slow });
    for (let waited = 0; temporariesIn(dirname(slow)).length === 0; waited += 20) {
      if (waited > 20_000) throw new Error("the slow clone never started");
      await new Promise((r) => setTimeout(r, 20));
    }
    const { primary, url: quickURL } = await repository("prefix-primary/quick.git");
    commit(primary, "main");
    const quick = await mirrorPath(fx.mirrorRoot, "prefix/huge");
    expect((await syncMirror({ url: quickURL, mirrorPath: quick })).outcome).toBe("cloned");

    expect((await slowSync).outcome).toBe("cloned");
    expect(await repositoryChecksum(slow)).toBe(await remoteChecksum(url));
    expect(temporariesIn(dirname(slow))).toEqual([]);
  });

  it("leaves nothing behind when the time limit passes", async () => {
    const mirror = await mirrorPath(fx.mirrorRoot, "big/timed-out.git");
    await expect(syncMirror({ url, mirrorPath: mirror, timeoutMs: 300 })).rejects.toBeInstanceOf(GitTimeoutError);
    expect(processesMentioning(temporaryPrefix(mirror))).toEqual([]);
    expect(existsSync(mirror)).toBe(false);
    expect(temporariesIn(dirname(mirror))).toEqual([]);

    // And the next, unhurried sync succeeds.
    expect((await syncMirror({ url, mirrorPath: mirror })).outcome).toBe("cloned");
    expect(await repositoryChecksum(mirror)).toBe(await remoteChecksum(url));
  });
});

describe("removeMirror and hostile paths", () => {
  it("removes one mirror and the directories it leaves empty, nothing else", async () => {
    const { primary, url, mirror } = await repository("@hashed/cc/dd/removed.git");
    const { url: url2, mirror: sibling } = await repository("@hashed/cc/ee/kept.git").then(async (r) => {
      commit(r.primary, "main");
      return r;
    });
    commit(primary, "main");
    await syncMirror({ url, mirrorPath: mirror });
    await syncMirror({ url: url2, mirrorPath: sibling });

    expect(await removeMirror(fx.mirrorRoot, "@hashed/cc/dd/removed.git")).toBe(true);
    expect(existsSync(mirror)).toBe(false);
    expect(existsSync(dirname(mirror))).toBe(false);
    expect(existsSync(join(sibling, "HEAD"))).toBe(true);
    expect(existsSync(primary)).toBe(true);
    expect(await removeMirror(fx.mirrorRoot, "@hashed/cc/dd/removed.git")).toBe(false);
  });

  it("removes exactly one mirror of a nested layout, keeping the mirrors inside it and what holds them", async () => {
    // Paths from a template without `.git`: `nest/outer` and `nest/outer/inner/deep` both repositories.
    const outer = await repository("nest/outer");
    const inner = await repository("nest/outer/inner/deep");
    const sibling = await repository("nest/outer-sibling");
    for (const r of [outer, inner, sibling]) commit(r.primary, "main");
    // The inner one first: the outer mirror path then holds a directory that is not a repository,
    // which the outer's first sync replaces, carrying the inner mirror across.
    await syncMirror({ url: inner.url, mirrorPath: inner.mirror });
    await syncMirror({ url: outer.url, mirrorPath: outer.mirror });
    await syncMirror({ url: sibling.url, mirrorPath: sibling.mirror });
    await expectInSync(inner.primary, inner.mirror);
    await expectInSync(outer.primary, outer.mirror);

    // Rebuilding the outer one keeps the inner one too.
    expect((await syncMirror({ url: outer.url, mirrorPath: outer.mirror, redownload: true })).outcome).toBe("cloned");
    await expectInSync(inner.primary, inner.mirror);

    expect(await removeMirror(fx.mirrorRoot, "nest/outer")).toBe(true);
    await expectInSync(inner.primary, inner.mirror);
    await expectInSync(sibling.primary, sibling.mirror);
    expect(existsSync(join(outer.mirror, "HEAD"))).toBe(false);
    expect(existsSync(join(outer.mirror, "objects"))).toBe(false);

    expect(await removeMirror(fx.mirrorRoot, "nest/outer/inner/deep")).toBe(true);
    // Now empty up to `nest`, which still holds the sibling.
    expect(existsSync(outer.mirror)).toBe(false);
    expect(existsSync(join(fx.mirrorRoot, "nest"))).toBe(true);
    await expectInSync(sibling.primary, sibling.mirror);
  });

  it.each(["../escape.git", "/etc", "a/../../b.git", "a\\b.git", "a/\0b.git", "a//b.git"])("refuses %j", async (path) => {
    await expect(mirrorPath(fx.mirrorRoot, path)).rejects.toBeInstanceOf(RepositoryPathError);
    await expect(removeMirror(fx.mirrorRoot, path)).rejects.toBeInstanceOf(RepositoryPathError);
    expect(() => primaryRepositoryURL(fx.baseURL, path)).toThrow(RepositoryPathError);
  });
});
