import { describe, expect, it } from "vitest";
import { classifyGitFailure, gitEnvironment, scrubSecrets } from "./git-process.ts";
import { describeRefDifferences, refDifferences } from "./ref-differences.ts";

const credentials = { username: "geo", password: "s3cr3t/p@ss" };

describe("scrubSecrets", () => {
  it("removes the password in every form git or curl could print it", () => {
    const text = [
      "fatal: could not read from https://geo:s3cr3t/p@ss@example.com/x.git",
      `Authorization: Basic ${Buffer.from("geo:s3cr3t/p@ss").toString("base64")}`,
      `url-encoded ${encodeURIComponent("s3cr3t/p@ss")}`,
      "password=s3cr3t/p@ss",
    ].join("\n");
    const scrubbed = scrubSecrets(text, credentials);
    expect(scrubbed).not.toContain("s3cr3t");
    expect(scrubbed).not.toContain(Buffer.from("geo:s3cr3t/p@ss").toString("base64"));
    expect(scrubbed).not.toContain(encodeURIComponent("s3cr3t/p@ss"));
  });

  it("removes userinfo from URLs even without known credentials", () => {
    expect(scrubSecrets("fatal: unable to access 'https://u:tok3n@host/x.git/'")).toBe("fatal: unable to access 'https://[redacted]@host/x.git/'");
  });
});

describe("gitEnvironment", () => {
  it("passes credentials by environment only, to a helper scoped to the origin", () => {
    const env = gitEnvironment("https://git.example.com:8443/a/b.git", credentials);
    expect(env.GIT_CONFIG_KEY_0).toBe("credential.helper");
    expect(env.GIT_CONFIG_VALUE_0).toBe("");
    expect(env.GIT_CONFIG_KEY_1).toBe("credential.https://git.example.com:8443.helper");
    expect(env.GIT_CONFIG_VALUE_1).not.toContain("s3cr3t");
    expect(env.GEO_GIT_PASSWORD).toBe("s3cr3t/p@ss");
    expect(env.LC_ALL).toBe("C");
    expect(env.GIT_TERMINAL_PROMPT).toBe("0");
  });

  it("refuses credentials that would break the credential protocol", () => {
    expect(() => gitEnvironment("https://h/x.git", { username: "a", password: "b\nhost=evil" })).toThrow(/must not contain/);
  });
});

describe("classifyGitFailure", () => {
  it.each([
    ["fatal: repository 'http://127.0.0.1:1/x.git/' not found", "not-found"],
    ["fatal: remote error: access denied or repository not exported: /x.git", "not-found"],
    ["fatal: '/srv/x.git' does not appear to be a git repository\nfatal: Could not read from remote repository.", "not-found"],
    ["remote: The project you were looking for could not be found or you don't have permission to view it.", "not-found"],
    ["fatal: Authentication failed for 'http://127.0.0.1:1/x.git/'", "auth"],
    ["fatal: could not read Username for 'https://h': terminal prompts disabled", "auth"],
    ["fatal: unable to connect to 127.0.0.1:\n127.0.0.1[0: 127.0.0.1]: errno=Connection refused", "unreachable"],
    ["fatal: unable to access 'https://h/x.git/': Could not resolve host: h", "unreachable"],
    ["fatal: unable to access 'https://h/x.git/': The requested URL returned error: 503", "unreachable"],
    ["fatal: bad object HEAD", "other"],
  ])("%j is %s", (stderr, category) => {
    expect(classifyGitFailure(stderr)).toBe(category);
  });
});

describe("refDifferences", () => {
  const A = "a".repeat(40);
  const B = "b".repeat(40);
  const primary = `${A}\tHEAD\n${A}\trefs/heads/main\n${B}\trefs/heads/gone\n${A}\trefs/tags/v1\n${B}\trefs/tags/v1^{}\n${A}\trefs/pipelines/1\n`;
  const mirror = `${A} HEAD\n${B} refs/heads/main\n${A} refs/tags/v1\n${A} refs/heads/extra\n`;

  it("names refs that differ or exist on one side, checksummed refs only", () => {
    expect(refDifferences(primary, mirror, 10)).toEqual({
      differences: [
        { ref: "refs/heads/extra", primary: null, secondary: A },
        { ref: "refs/heads/gone", primary: B, secondary: null },
        { ref: "refs/heads/main", primary: A, secondary: B },
      ],
      total: 3,
    });
  });

  it("caps the list and says how many more there are", () => {
    const capped = refDifferences(primary, mirror, 1);
    expect(capped.differences).toHaveLength(1);
    expect(capped.total).toBe(3);
    expect(describeRefDifferences(capped)).toBe("refs/heads/extra: primary missing, secondary aaaaaaaaaaaa\n… and 2 more");
  });
});
