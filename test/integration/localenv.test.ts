/**
 * The local environment is made of real servers: these checks would fail against a stub.
 */
import { GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { describe, expect, inject, it } from "vitest";
import { parse } from "yaml";
import { createNamespace, kubectl, kubectlOk } from "../support/kubectl.ts";

const env = inject("env");

describe("local environment", () => {
  it("runs two separate PostgreSQL servers", async () => {
    const ids: string[] = [];
    for (const url of [env.postgres!.primaryURL, env.postgres!.secondaryURL]) {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      const res = await client.query<{ version: string; id: string }>(
        "select version(), (select system_identifier::text from pg_control_system()) as id",
      );
      expect(res.rows[0]!.version).toMatch(/^PostgreSQL \d+/);
      ids.push(res.rows[0]!.id);
      await client.end();
    }
    expect(new URL(env.postgres!.primaryURL).port).not.toBe(new URL(env.postgres!.secondaryURL).port);
    expect(ids[0]).not.toBe(ids[1]);
  });

  it("serves two S3 endpoints with their own buckets and credentials", async () => {
    const body = `hello ${Date.now()}`;
    for (const side of ["primary", "secondary"] as const) {
      const s = env.s3![side];
      const client = new S3Client({ endpoint: s.endpoint, region: s.region, forcePathStyle: true, credentials: s });
      await client.send(new PutObjectCommand({ Bucket: s.bucket, Key: "localenv/probe.txt", Body: body }));
      const got = await client.send(new GetObjectCommand({ Bucket: s.bucket, Key: "localenv/probe.txt" }));
      expect(await got.Body!.transformToString()).toBe(body);
      client.destroy();
    }
    // The secondary's credentials are not valid on the primary's server.
    const wrong = new S3Client({
      endpoint: env.s3!.primary.endpoint,
      region: "us-east-1",
      forcePathStyle: true,
      credentials: env.s3!.secondary,
    });
    await expect(wrong.send(new GetObjectCommand({ Bucket: env.s3!.primary.bucket, Key: "localenv/probe.txt" }))).rejects.toMatchObject({
      name: "InvalidAccessKeyId",
    });
    wrong.destroy();
  });

  it("serves bare git repositories over the git protocol", () => {
    const bare = join(env.git!.root, "localenv-probe.git");
    execFileSync("git", ["init", "--bare", "-q", bare]);
    const work = mkdtempSync(join(tmpdir(), "geo-git-"));
    const git = (args: string[], cwd = work) =>
      execFileSync("git", ["-c", "user.name=t", "-c", "user.email=t@example.com", ...args], { cwd, encoding: "utf8" });
    git(["init", "-q", "-b", "main"]);
    git(["commit", "-q", "--allow-empty", "-m", "probe"]);
    git(["push", "-q", `${env.git!.baseURL}/localenv-probe.git`, "main"]);
    const head = git(["rev-parse", "HEAD"]).trim();
    const remote = git(["ls-remote", `${env.git!.baseURL}/localenv-probe.git`, "refs/heads/main"]);
    expect(remote.split("\t")[0]).toBe(head);
  });

  it("runs kube-apiserver with RBAC enforced and service-account tokens signed", async () => {
    const ns = createNamespace("rbac");
    kubectlOk(["create", "serviceaccount", "nobody", "-n", ns]);
    const token = kubectlOk(["create", "token", "nobody", "-n", ns]).trim();
    expect(token.split(".")).toHaveLength(3);
    // The token authenticates, and RBAC denies what nobody granted.
    const cfg = parse(readFileSync(process.env.KUBECONFIG!, "utf8"));
    const server: string = cfg.clusters[0].cluster.server;
    const denied = kubectl(["--server", server, "--token", token, "--insecure-skip-tls-verify", "--kubeconfig", "/dev/null", "get", "secrets", "-n", ns]);
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/forbidden: User "system:serviceaccount:.*:nobody" cannot list resource "secrets"/);
    // (No kube-controller-manager runs here, so aggregated roles such as `view` stay empty.)
    kubectlOk(["create", "role", "pod-reader", "--verb=list", "--resource=pods", "-n", ns]);
    kubectlOk(["create", "rolebinding", "nobody-pods", "--role=pod-reader", `--serviceaccount=${ns}:nobody`, "-n", ns]);
    // The authorizer sees the new binding through its informer, a moment later.
    await expect
      .poll(() => kubectl(["auth", "can-i", "list", "pods", "-n", ns, `--as=system:serviceaccount:${ns}:nobody`]).stdout.trim(), { timeout: 10_000 })
      .toBe("yes");
  });

  it("ships a helm binary that talks to the API server", () => {
    const ns = createNamespace("helm");
    const out = execFileSync(process.env.GEO_TEST_HELM!, ["--kubeconfig", process.env.KUBECONFIG!, "list", "-n", ns, "-o", "json"], { encoding: "utf8" });
    expect(JSON.parse(out)).toEqual([]);
    expect(execFileSync(process.env.GEO_TEST_HELM!, ["version", "--short"], { encoding: "utf8" })).toMatch(/^v3\.\d+\.\d+/);
  });
});
