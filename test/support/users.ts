/**
 * People for RBAC tests: a client certificate signed by the local API server's client CA (the
 * way kubeadm's `kubeconfig user` makes one) and a kubeconfig for it, so kubectl and the plugin
 * authenticate as that user, with no other credentials.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse, stringify } from "yaml";

export interface TestUser {
  name: string;
  kubeconfig: string;
  /** kubectl's discovery cache for this user: fresh, so a new resource shows without waiting. */
  cacheDir: string;
}

export function createUser(name: string, opts: { certDir: string; adminKubeconfig: string; groups?: string[] }): TestUser {
  const dir = mkdtempSync(join(tmpdir(), `geo-user-${name}-`));
  const subject = `${(opts.groups ?? []).map((g) => `/O=${g}`).join("")}/CN=${name}`;
  const ssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  ssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "user.key", "-out", "user.csr", "-subj", subject);
  writeFileSync(join(dir, "user.ext"), "extendedKeyUsage=clientAuth\n");
  ssl("x509", "-req", "-in", "user.csr", "-CA", join(opts.certDir, "ca.crt"), "-CAkey", join(opts.certDir, "ca.key"), "-CAcreateserial", "-out", "user.crt", "-days", "1", "-extfile", "user.ext");
  const admin = parse(readFileSync(opts.adminKubeconfig, "utf8")) as { clusters: unknown[] };
  const b64 = (f: string) => readFileSync(join(dir, f)).toString("base64");
  const kubeconfig = join(dir, "kubeconfig");
  writeFileSync(
    kubeconfig,
    stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: admin.clusters,
      users: [{ name, user: { "client-certificate-data": b64("user.crt"), "client-key-data": b64("user.key") } }],
      contexts: [{ name, context: { cluster: "geo-local", user: name, namespace: "default" } }],
      "current-context": name,
    }),
    { mode: 0o600 },
  );
  return { name, kubeconfig, cacheDir: join(dir, "kube-cache") };
}
