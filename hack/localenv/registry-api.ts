/**
 * The registry API for the local environment: geo-operator's manager with no controllers (caches
 * and the aggregated API only) on 127.0.0.1, registered with the local kube-apiserver through an
 * APIService. The API server reaches it through an ExternalName Service naming localhost, so
 * requests never leave the machine; the serving certificate is for
 * geo-registry-api.geo-system.svc, the name the API server verifies. One instance serves every
 * namespace, as the chart's manager does on a cluster.
 */
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { REGISTRY_API_GROUP, REGISTRY_API_SERVICE_NAME, REGISTRY_API_VERSION } from "../../src/registry-api/group.ts";
import { freePort } from "./ports.ts";
import { ManagedProcess, waitFor } from "./processes.ts";
import { createTestCertificates } from "./tls.ts";
import { REPO_ROOT } from "./tools.ts";

export const REGISTRY_API_NAMESPACE = "geo-system";
export const REGISTRY_API_SERVICE = "geo-registry-api";

export interface RegistryApi {
  url: string;
  /** The serving process's /metrics (request counts of the registry API among them). */
  metricsURL: string;
  process: ManagedProcess;
  stop(): Promise<void>;
}

export async function startRegistryApi(opts: { stateDir: string; kubeconfig: string; kubectl: string }): Promise<RegistryApi> {
  const certDir = join(opts.stateDir, "registry-api-tls");
  mkdirSync(certDir, { recursive: true });
  const certs = createTestCertificates({ hosts: [`${REGISTRY_API_SERVICE}.${REGISTRY_API_NAMESPACE}.svc`, "localhost", "127.0.0.1"], days: 30 });
  copyFileSync(certs.certFile, join(certDir, "tls.crt"));
  copyFileSync(certs.keyFile, join(certDir, "tls.key"));
  certs.remove();

  const kubectl = (args: string[], input?: string) =>
    execFileSync(opts.kubectl, ["--kubeconfig", opts.kubeconfig, ...args], { input, stdio: ["pipe", "pipe", "pipe"] }).toString();
  // Its caches list GeoSites and ReplicableTypes: their CRDs must exist first.
  kubectl(["apply", "--server-side", "-f", join(REPO_ROOT, "crds")]);
  kubectl(["wait", "--for=condition=Established", "--timeout=60s", "crd/geosites.geo.replication.dev", "crd/replicabletypes.geo.replication.dev"]);

  // Three different ports: each free port is released before the next is asked for, so the
  // kernel can hand the same one out twice (seen in CI: the registry API and /readyz on one port).
  const ports = new Set<number>();
  while (ports.size < 3) ports.add(await freePort());
  const [port, healthPort, metricsPort] = [...ports] as [number, number, number];
  const proc = new ManagedProcess({
    name: "geo-registry-api",
    command: process.execPath,
    args: [
      join(REPO_ROOT, "cmd/geo-operator.ts"),
      "manager",
      `--kubeconfig=${opts.kubeconfig}`,
      "--no-controllers",
      "--executor=in-process",
      `--registry-api-bind-address=127.0.0.1:${port}`,
      `--registry-api-cert-dir=${certDir}`,
      `--metrics-bind-address=127.0.0.1:${metricsPort}`,
      `--health-probe-bind-address=127.0.0.1:${healthPort}`,
    ],
    stateDir: opts.stateDir,
  });
  await waitFor("registry API", async () => (await fetch(`http://127.0.0.1:${healthPort}/readyz`)).ok, { timeoutMs: 60_000, process: proc });

  const caBundle = readFileSync(join(certDir, "tls.crt")).toString("base64");
  const docs = [
    { apiVersion: "v1", kind: "Namespace", metadata: { name: REGISTRY_API_NAMESPACE } },
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: REGISTRY_API_SERVICE, namespace: REGISTRY_API_NAMESPACE },
      spec: { type: "ExternalName", externalName: "localhost", ports: [{ name: "https", port, targetPort: port }] },
    },
    {
      apiVersion: "apiregistration.k8s.io/v1",
      kind: "APIService",
      metadata: { name: REGISTRY_API_SERVICE_NAME },
      spec: {
        group: REGISTRY_API_GROUP,
        version: REGISTRY_API_VERSION,
        service: { namespace: REGISTRY_API_NAMESPACE, name: REGISTRY_API_SERVICE, port },
        caBundle,
        groupPriorityMinimum: 1000,
        versionPriority: 15,
      },
    },
  ];
  kubectl(["apply", "-f", "-"], docs.map((d) => stringify(d)).join("---\n"));
  await waitFor(
    "APIService available",
    async () => {
      try {
        kubectl(["wait", "--for=condition=Available", "--timeout=2s", `apiservice/${REGISTRY_API_SERVICE_NAME}`]);
        return true;
      } catch {
        return false;
      }
    },
    { timeoutMs: 60_000, process: proc },
  );
  return { url: `https://127.0.0.1:${port}`, metricsURL: `http://127.0.0.1:${metricsPort}/metrics`, process: proc, stop: () => proc.stop() };
}
