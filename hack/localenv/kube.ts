/**
 * A real control plane without nodes, the way controller-runtime's envtest builds one: etcd plus
 * kube-apiserver on 127.0.0.1 with serving certificates, an admin client certificate
 * (O=system:masters), RBAC authorization and service-account signing keys, and the aggregation
 * layer's front proxy (a CA and client certificate for request-header authentication), so
 * APIServices such as the registry API work. Writes a kubeconfig usable by the tests, kubectl,
 * helm and people.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { join } from "node:path";
import { stringify } from "yaml";
import { freePort } from "./ports.ts";
import { ManagedProcess, waitFor } from "./processes.ts";

export interface KubeControlPlane {
  server: string;
  kubeconfig: string;
  /** ca.crt/ca.key (the client CA: sign user certificates with it), front-proxy-*. */
  certDir: string;
  etcd: ManagedProcess;
  apiserver: ManagedProcess;
  stop(): Promise<void>;
}

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: "pipe" });
}

/** CA, serving and admin certificates (ECDSA P-256: quick to generate) and SA signing keys. */
function writeCertificates(dir: string): void {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  openssl(["req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "3650", "-subj", "/CN=geo-operator-local-ca"], dir);
  const issue = (name: string, subject: string, ext: string) => {
    openssl(["req", ...ec, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", subject], dir);
    writeFileSync(join(dir, `${name}.ext`), ext);
    openssl(
      ["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", `${name}.crt`, "-days", "3650", "-extfile", `${name}.ext`],
      dir,
    );
  };
  issue(
    "apiserver",
    "/CN=kube-apiserver",
    "subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n",
  );
  issue("admin", "/O=system:masters/CN=geo-admin", "extendedKeyUsage=clientAuth\n");
  // The aggregation layer: the API server proxies to APIServices with this client certificate,
  // which aggregated servers trust through requestheader-client-ca-file.
  openssl(["req", "-x509", ...ec, "-keyout", "front-proxy-ca.key", "-out", "front-proxy-ca.crt", "-days", "3650", "-subj", "/CN=geo-operator-front-proxy-ca"], dir);
  openssl(["req", ...ec, "-keyout", "front-proxy-client.key", "-out", "front-proxy-client.csr", "-subj", "/CN=front-proxy-client"], dir);
  writeFileSync(join(dir, "front-proxy-client.ext"), "extendedKeyUsage=clientAuth\n");
  openssl(
    ["x509", "-req", "-in", "front-proxy-client.csr", "-CA", "front-proxy-ca.crt", "-CAkey", "front-proxy-ca.key", "-CAcreateserial", "-out", "front-proxy-client.crt", "-days", "3650", "-extfile", "front-proxy-client.ext"],
    dir,
  );
  openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", "sa.key"], dir);
  openssl(["pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub"], dir);
}

function writeKubeconfig(path: string, server: string, certDir: string): void {
  const b64 = (f: string) => readFileSync(join(certDir, f)).toString("base64");
  const config = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "geo-local", cluster: { server, "certificate-authority-data": b64("ca.crt") } }],
    users: [{ name: "geo-admin", user: { "client-certificate-data": b64("admin.crt"), "client-key-data": b64("admin.key") } }],
    contexts: [{ name: "geo-local", context: { cluster: "geo-local", user: "geo-admin", namespace: "default" } }],
    "current-context": "geo-local",
  };
  writeFileSync(path, stringify(config), { mode: 0o600 });
}

function httpsGet(url: string, certDir: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        ca: readFileSync(join(certDir, "ca.crt")),
        cert: readFileSync(join(certDir, "admin.crt")),
        key: readFileSync(join(certDir, "admin.key")),
        timeout: 5000,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.end();
  });
}

export async function startKubeControlPlane(opts: {
  stateDir: string;
  etcdBinary: string;
  apiserverBinary: string;
}): Promise<KubeControlPlane> {
  const dir = join(opts.stateDir, "kube");
  const certDir = join(dir, "pki");
  mkdirSync(certDir, { recursive: true });
  writeCertificates(certDir);

  const [clientPort, peerPort, securePort] = [await freePort(), await freePort(), await freePort()];
  const etcdURL = `http://127.0.0.1:${clientPort}`;
  const etcd = new ManagedProcess({
    name: "etcd",
    command: opts.etcdBinary,
    args: [
      `--data-dir=${join(dir, "etcd")}`,
      `--listen-client-urls=${etcdURL}`,
      `--advertise-client-urls=${etcdURL}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-cluster=default=http://127.0.0.1:${peerPort}`,
      "--unsafe-no-fsync=true",
      "--log-level=warn",
    ],
    stateDir: opts.stateDir,
  });
  await waitFor("etcd", async () => (await fetch(`${etcdURL}/health`)).ok, { timeoutMs: 30_000, process: etcd });

  const server = `https://127.0.0.1:${securePort}`;
  const apiserver = new ManagedProcess({
    name: "kube-apiserver",
    command: opts.apiserverBinary,
    args: [
      `--etcd-servers=${etcdURL}`,
      "--bind-address=127.0.0.1",
      "--advertise-address=127.0.0.1",
      `--secure-port=${securePort}`,
      `--cert-dir=${certDir}`,
      `--tls-cert-file=${join(certDir, "apiserver.crt")}`,
      `--tls-private-key-file=${join(certDir, "apiserver.key")}`,
      `--client-ca-file=${join(certDir, "ca.crt")}`,
      "--authorization-mode=RBAC",
      `--requestheader-client-ca-file=${join(certDir, "front-proxy-ca.crt")}`,
      "--requestheader-allowed-names=front-proxy-client",
      "--requestheader-username-headers=X-Remote-User",
      "--requestheader-group-headers=X-Remote-Group",
      "--requestheader-extra-headers-prefix=X-Remote-Extra-",
      `--proxy-client-cert-file=${join(certDir, "front-proxy-client.crt")}`,
      `--proxy-client-key-file=${join(certDir, "front-proxy-client.key")}`,
      `--service-account-key-file=${join(certDir, "sa.pub")}`,
      `--service-account-signing-key-file=${join(certDir, "sa.key")}`,
      "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
      "--service-cluster-ip-range=10.0.0.0/24",
      "--allow-privileged=true",
      // No kubelet runs pods here, so nothing would mount the tokens this plugin injects.
      "--disable-admission-plugins=ServiceAccount",
      "--enable-priority-and-fairness=false",
      "--v=0",
    ],
    stateDir: opts.stateDir,
  });
  await waitFor(
    "kube-apiserver",
    async () => {
      const res = await httpsGet(`${server}/readyz`, certDir);
      return res.status === 200;
    },
    { timeoutMs: 120_000, process: apiserver, intervalMs: 250 },
  );
  // The default namespace is created by a controller shortly after readiness.
  await waitFor("namespace default", async () => (await httpsGet(`${server}/api/v1/namespaces/default`, certDir)).status === 200, {
    timeoutMs: 30_000,
  });

  const kubeconfig = join(dir, "kubeconfig");
  writeKubeconfig(kubeconfig, server, certDir);
  return {
    server,
    kubeconfig,
    certDir,
    etcd,
    apiserver,
    async stop() {
      await apiserver.stop();
      await etcd.stop();
    },
  };
}
