/**
 * Throwaway certificates for tests that need real TLS: a CA and a server certificate (by default
 * for 127.0.0.1 and localhost), made with the openssl CLI into a temporary directory.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TestCertificates {
  dir: string;
  /** PEM of the CA that signed `cert`. */
  ca: string;
  /** PEM server certificate (SAN: the names asked for, by default IP 127.0.0.1 and DNS localhost) and its key. */
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

/** Who the server certificate is for: its subject alternative names. */
export interface CertificateNames {
  dns?: string[];
  ips?: string[];
}

/** A new CA and a server certificate it signed for `names`, valid for a day. */
export function createTestCertificates(names: CertificateNames = { dns: ["localhost"], ips: ["127.0.0.1"] }): TestCertificates {
  const sans = [...(names.ips ?? []).map((ip) => `IP:${ip}`), ...(names.dns ?? []).map((dns) => `DNS:${dns}`)];
  if (sans.length === 0) throw new Error("a server certificate needs at least one DNS name or IP address");
  const dir = mkdtempSync(join(tmpdir(), "geo-tls-"));
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  openssl(dir, "req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=geo-operator test CA",
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign");
  openssl(dir, "req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", `/CN=${names.dns?.[0] ?? "geo-operator test server"}`);
  writeFileSync(join(dir, "server.ext"), `subjectAltName=${sans.join(",")}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`);
  openssl(dir, "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.crt", "-days", "1",
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
