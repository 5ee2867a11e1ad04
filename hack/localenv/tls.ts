/**
 * Throwaway certificates for tests and `make demo` that need real TLS: a CA and a server
 * certificate (by default for 127.0.0.1 and localhost), made with the openssl CLI into a
 * temporary directory.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TestCertificates {
  dir: string;
  /** PEM of the CA that signed `cert`. */
  ca: string;
  /** PEM server certificate (SAN: IP 127.0.0.1, DNS localhost) and its key. */
  cert: string;
  key: string;
  certFile: string;
  keyFile: string;
  caFile: string;
  remove(): void;
}

function openssl(cwd: string, ...args: string[]): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

/**
 * A new CA and a server certificate it signed, valid for `days` (default 1) for `hosts` (IP
 * addresses and DNS names; default 127.0.0.1 and localhost).
 */
export function createTestCertificates(opts: { hosts?: readonly string[]; days?: number } = {}): TestCertificates {
  const hosts = opts.hosts ?? ["127.0.0.1", "localhost"];
  const days = String(opts.days ?? 1);
  const san = hosts.map((h) => (/^[0-9.]+$|:/.test(h) ? `IP:${h}` : `DNS:${h}`)).join(",");
  const dir = mkdtempSync(join(tmpdir(), "geo-tls-"));
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  openssl(dir, "req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", days, "-subj", "/CN=geo-operator test CA",
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign");
  openssl(dir, "req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", `/CN=${hosts.find((h) => !/^[0-9.]+$|:/.test(h)) ?? hosts[0]}`);
  writeFileSync(join(dir, "server.ext"), `subjectAltName=${san}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`);
  openssl(dir, "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.crt", "-days", days,
    "-extfile", "server.ext");
  const file = (name: string) => join(dir, name);
  return {
    dir,
    ca: readFileSync(file("ca.crt"), "utf8"),
    cert: readFileSync(file("server.crt"), "utf8"),
    key: readFileSync(file("server.key"), "utf8"),
    certFile: file("server.crt"),
    keyFile: file("server.key"),
    caFile: file("ca.crt"),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
