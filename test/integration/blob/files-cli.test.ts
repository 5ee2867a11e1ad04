/** `geo-operator serve-files` as a process: flags, a Secret-like keys directory, key rotation, SIGTERM. */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { text } from "node:stream/consumers";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { RetrievalSource } from "../../../src/strategies/blob/files/retrieval-source.ts";
import { CredentialsRefusedError } from "../../../src/strategies/blob/files/store.ts";
import { createTestCertificates, type TestCertificates } from "../../support/tls.ts";

const CLI = new URL("../../../cmd/geo-operator.ts", import.meta.url).pathname;

let certs: TestCertificates;
let base: string;
let child: ChildProcess | undefined;
const sources: RetrievalSource[] = [];

beforeEach(() => {
  certs = createTestCertificates();
  base = mkdtempSync(join(tmpdir(), "geo-serve-files-"));
  mkdirSync(join(base, "root/uploads"), { recursive: true });
  writeFileSync(join(base, "root/uploads/f.txt"), "served by the CLI");
});

afterEach(async () => {
  for (const s of sources.splice(0)) s.close();
  if (child && child.exitCode === null) {
    child.kill("SIGKILL");
    await new Promise((resolve) => child!.once("exit", resolve));
  }
  child = undefined;
  certs.remove();
  rmSync(base, { recursive: true, force: true });
});

/** A directory laid out like a mounted Secret: `..data/<site>` files behind `<site>` symlinks. */
function keysDir(keys: Record<string, string>): string {
  const dir = join(base, "keys");
  mkdirSync(join(dir, "..data"), { recursive: true });
  for (const [site, key] of Object.entries(keys)) {
    writeFileSync(join(dir, "..data", site), `${key}\n`);
    symlinkSync(join("..data", site), join(dir, site));
  }
  return dir;
}

/** Starts the command and resolves with its URL once it logs "serving files". */
function start(args: string[], env: Record<string, string> = {}): Promise<{ url: string; stderr: () => string }> {
  const proc = spawn(process.execPath, [CLI, "serve-files", ...args], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, ...env } });
  child = proc;
  let stderr = "";
  return new Promise((resolve, reject) => {
    proc.stderr!.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
      const line = stderr.split("\n").find((l) => l.includes('"serving files"'));
      if (line) resolve({ url: (JSON.parse(line) as { address: string }).address, stderr: () => stderr });
    });
    proc.once("exit", (code) => reject(new Error(`serve-files exited with ${code}: ${stderr}`)));
  });
}

function commonArgs(dir: string): string[] {
  return ["--root", join(base, "root"), "--host", "127.0.0.1", "--port", "0", "--tls-cert-file", certs.certFile, "--tls-key-file", certs.keyFile, "--keys-dir", dir];
}

function source(url: string, site: string, secretKey: string): RetrievalSource {
  const s = new RetrievalSource({ url, site, secretKey, ca: certs.ca });
  sources.push(s);
  return s;
}

describe("geo-operator serve-files", () => {
  it("serves files to a site whose key is in the keys directory and stops cleanly on SIGTERM", async () => {
    const key = randomBytes(32).toString("hex");
    const { url } = await start(commonArgs(keysDir({ "secondary-a": key })));

    expect(await text((await source(url, "secondary-a", key).open("uploads/f.txt")).body)).toBe("served by the CLI");
    await expect(source(url, "secondary-b", key).probe()).rejects.toBeInstanceOf(CredentialsRefusedError);

    const exited = new Promise<number | null>((resolve) => child!.once("exit", (code) => resolve(code)));
    child!.kill("SIGTERM");
    expect(await exited).toBe(0);
  });

  it("picks up a rotated key from the keys directory", async () => {
    const oldKey = randomBytes(32).toString("hex");
    const newKey = randomBytes(32).toString("hex");
    const dir = keysDir({ "secondary-a": oldKey });
    const { url } = await start([...commonArgs(dir), "--keys-reload", "1"]);
    await source(url, "secondary-a", oldKey).probe();

    writeFileSync(join(dir, "..data", "secondary-a"), newKey);

    await expect.poll(() => source(url, "secondary-a", newKey).probe().then(() => "accepted", () => "refused"), { timeout: 10_000, interval: 250 }).toBe("accepted");
    await expect(source(url, "secondary-a", oldKey).probe()).rejects.toBeInstanceOf(CredentialsRefusedError);
  });

  it("takes the TLS certificate, key and site keys from env vars, as the operator's Deployment passes them", async () => {
    const key = randomBytes(32).toString("hex");
    const { url } = await start(["--root", join(base, "root"), "--host", "127.0.0.1", "--port", "0"], {
      GEO_FILES_TLS_CERT: certs.cert,
      GEO_FILES_TLS_KEY: certs.key,
      "GEO_FILES_SITE_KEY_secondary-a": key,
    });
    expect(await text((await source(url, "secondary-a", key).open("uploads/f.txt")).body)).toBe("served by the CLI");
    await expect(source(url, "secondary-b", key).probe()).rejects.toBeInstanceOf(CredentialsRefusedError);
  });

  it("refuses to start without any site key", async () => {
    await expect(start(["--root", join(base, "root"), "--host", "127.0.0.1", "--port", "0"], { GEO_FILES_TLS_CERT: certs.cert, GEO_FILES_TLS_KEY: certs.key })).rejects.toThrow(
      /exited with 2: .*no site keys: give --keys-dir, or GEO_FILES_SITE_KEY_<site> environment variables/,
    );
  });

  it("refuses to start without TLS files or with a short key", async () => {
    const noTls = spawn(process.execPath, [CLI, "serve-files", "--root", base, "--keys-dir", base], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, GEO_FILES_TLS_CERT_FILE: "", GEO_FILES_TLS_KEY_FILE: "" } });
    const [code, stderr] = await Promise.all([new Promise((resolve) => noTls.once("exit", resolve)), text(noTls.stderr)]);
    expect(code).toBe(2);
    expect(stderr).toMatch(/--tls-cert-file, --tls-key-file required/);

    await expect(start(commonArgs(keysDir({ "secondary-a": "short" })))).rejects.toThrow(/exited with 2: .*the secret key is 5 characters long/);
  });
});
