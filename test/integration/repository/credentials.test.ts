/**
 * Credentials over smart HTTP with basic auth: the right ones work for clone, fetch and
 * ls-remote; wrong or absent ones fail as authentication failures; and the password shows up in
 * no error, no returned value and no file of the mirror.
 */
import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startGitHttpServer, type GitHttpServer } from "../../../hack/localenv/git-http.ts";
import {
  GitCommandError,
  mirrorPath,
  primaryRepositoryURL,
  remoteChecksum,
  repositoryChecksum,
  syncMirror,
} from "../../../src/strategies/repository/index.ts";
import { commit, createRepository, primaryFixture, type PrimaryFixture } from "./fixtures.ts";

const USERNAME = "geo-secondary";
const PASSWORD = "pw-Zq9!x/y@z%41 end";
const RIGHT = { username: USERNAME, password: PASSWORD };
const WRONG = { username: USERNAME, password: "not-the-password" };

let fx: PrimaryFixture;
let http: GitHttpServer;
let primary: string;

beforeAll(async () => {
  fx = primaryFixture("credentials");
  http = await startGitHttpServer({ root: fx.root, username: USERNAME, password: PASSWORD });
  primary = createRepository(fx.root, "secret/project.git");
  commit(primary, "main", 2);
});

afterAll(async () => {
  await http.stop();
  rmSync(fx.root, { recursive: true, force: true });
  rmSync(fx.mirrorRoot, { recursive: true, force: true });
});

/** Everything an error exposes: message, stack, own properties, cause. */
function exposed(err: unknown): string {
  if (!(err instanceof Error)) return JSON.stringify(err);
  return [err.message, err.stack ?? "", JSON.stringify(err), String(err.cause ?? "")].join("\n");
}

function expectNoSecret(text: string): void {
  expect(text).not.toContain(PASSWORD);
  expect(text).not.toContain(encodeURIComponent(PASSWORD));
  expect(text).not.toContain(Buffer.from(`${USERNAME}:${PASSWORD}`).toString("base64"));
}

describe("credentials over smart HTTP", () => {
  const url = (): string => primaryRepositoryURL(http.baseURL, "secret/project.git");

  it("clone, fetch and ls-remote succeed with the right credentials, which never reach the disk", async () => {
    const mirror = await mirrorPath(fx.mirrorRoot, "secret/project.git");
    const cloned = await syncMirror({ url: url(), credentials: RIGHT, mirrorPath: mirror });
    expect(cloned.outcome).toBe("cloned");
    commit(primary, "main");
    const fetched = await syncMirror({ url: url(), credentials: RIGHT, mirrorPath: mirror });
    expect(fetched.outcome).toBe("fetched");
    expect(await remoteChecksum(url(), RIGHT)).toBe(await repositoryChecksum(primary));
    expect(await repositoryChecksum(mirror)).toBe(await repositoryChecksum(primary));

    expectNoSecret(JSON.stringify([cloned, fetched]));
    // Not in the mirror's config, FETCH_HEAD, logs or anything else under it.
    // grep exits 1 when nothing matches.
    const grep = spawnSync("grep", ["-rlF", "--", PASSWORD, mirror], { encoding: "utf8" });
    expect({ status: grep.status, files: grep.stdout }).toEqual({ status: 1, files: "" });
    expect(http.requests.some((r) => r.user === USERNAME && r.status === 200)).toBe(true);
  });

  it.each([
    ["wrong credentials", WRONG],
    ["no credentials", undefined],
  ])("fails with %s as an authentication failure and exposes no password", async (_, credentials) => {
    const mirror = await mirrorPath(fx.mirrorRoot, `secret/denied-${credentials ? "wrong" : "none"}.git`);
    const error = await syncMirror({ url: url(), credentials, mirrorPath: mirror, timeoutMs: 30_000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GitCommandError);
    expect((error as GitCommandError).category).toBe("auth");
    expect((error as GitCommandError).reason).toBe("AuthenticationFailed");
    expectNoSecret(exposed(error));

    const lsError = await remoteChecksum(url(), credentials).catch((e: unknown) => e);
    expect((lsError as GitCommandError).category).toBe("auth");
    expectNoSecret(exposed(lsError));
  });

  it("does not leak the password when the server echoes it back", async () => {
    // A primary URL with userinfo (someone put credentials into baseURL) must not be echoed either.
    const withUserinfo = url().replace("http://", `http://${USERNAME}:${encodeURIComponent(PASSWORD)}@`).replace("project.git", "missing.git");
    const error = await remoteChecksum(withUserinfo, RIGHT).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GitCommandError);
    expectNoSecret(exposed(error));
  });
});
