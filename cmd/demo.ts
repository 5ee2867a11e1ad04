/**
 * `make demo`: starts the local environment (kube-apiserver + etcd, two PostgreSQL servers, two
 * MinIO servers, a git server), installs the CRDs and applies the sample GeoSites and
 * ReplicableTypes wired to those servers. Runs until Ctrl-C, or stops at once with --exit.
 */
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { stringify } from "yaml";
import { startLocalEnvironment } from "../hack/localenv/index.ts";
import { REPO_ROOT } from "../hack/localenv/tools.ts";

const { values } = parseArgs({ options: { exit: { type: "boolean", default: false } } });
const started = Date.now();
const say = (msg: string) => console.log(`[demo ${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s] ${msg}`);

say("starting the local environment (the first run builds kube-apiserver, etcd, kubectl, helm and MinIO from Go modules: several minutes)");
const env = await startLocalEnvironment({ log: say });
const { kube, postgres, s3, git } = env.info;
if (!kube || !postgres || !s3 || !git) throw new Error("local environment incomplete");

const kubectl = (args: string[], input?: string) =>
  execFileSync(kube.kubectl, ["--kubeconfig", kube.kubeconfig, ...args], { input, encoding: "utf8" });

try {
  kubectl(["apply", "--server-side", "-f", join(REPO_ROOT, "crds")]);
  kubectl(["wait", "--for=condition=Established", "--timeout=60s", "crd/geosites.geo.replication.dev", "crd/replicabletypes.geo.replication.dev"]);
  const ns = "geo-demo";
  kubectl(["create", "namespace", ns]);
  const secret = (name: string, data: Record<string, string>) => ({ apiVersion: "v1", kind: "Secret", metadata: { name, namespace: ns }, stringData: data });
  const site = (name: string, spec: Record<string, unknown>) => ({
    apiVersion: "geo.replication.dev/v1alpha1",
    kind: "GeoSite",
    metadata: { name, namespace: ns },
    spec,
  });
  const objects = [
    secret("primary-main-db", { url: postgres.primaryURL }),
    secret("secondary-tracking-db", { url: postgres.secondaryURL }),
    secret("primary-replica-db", { url: postgres.primaryURL }),
    secret("primary-object-storage", { AWS_ACCESS_KEY_ID: s3.primary.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.primary.secretAccessKey }),
    secret("secondary-object-storage", { AWS_ACCESS_KEY_ID: s3.secondary.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secondary.secretAccessKey }),
    site("london", {
      role: "primary",
      database: { secretRef: { name: "primary-main-db" } },
      objectStorage: { endpoint: s3.primary.endpoint, bucket: s3.primary.bucket, forcePathStyle: true, credentialsSecretRef: { name: "primary-object-storage" } },
      git: { baseURL: git.baseURL },
    }),
    site("tokyo", {
      role: "secondary",
      database: { secretRef: { name: "secondary-tracking-db" }, primaryReplicaSecretRef: { name: "primary-replica-db" } },
      objectStorage: { endpoint: s3.secondary.endpoint, bucket: s3.secondary.bucket, forcePathStyle: true, credentialsSecretRef: { name: "secondary-object-storage" } },
      git: { mirrorRoot: join(env.info.dir, "mirrors") },
    }),
  ];
  kubectl(["apply", "-f", "-"], objects.map((o) => stringify(o)).join("---\n"));
  kubectl(["apply", "-n", ns, "-f", join(REPO_ROOT, "config/samples/replicabletype-cool-widget.yaml"), "-f", join(REPO_ROOT, "config/samples/replicabletype-design-repository.yaml")]);
  say("CRDs installed; sample GeoSites and ReplicableTypes applied in namespace geo-demo");
  console.log(kubectl(["get", "geosites,replicabletypes", "-n", ns]));
  console.log(`Try:
  export KUBECONFIG=${kube.kubeconfig}
  ${kube.kubectl} get geosites -n ${ns}
  ${kube.kubectl} get rtype -n ${ns}
  ${kube.kubectl} explain geosite.spec

Servers (all on 127.0.0.1, state in ${env.info.dir}):
  primary main DB      ${postgres.primaryURL}
  secondary tracking   ${postgres.secondaryURL}
  primary S3           ${s3.primary.endpoint} (bucket ${s3.primary.bucket})
  secondary S3         ${s3.secondary.endpoint} (bucket ${s3.secondary.bucket})
  git                  ${git.baseURL}
`);
} catch (err) {
  await env.stop();
  throw err;
}

if (values.exit) {
  await env.stop();
  say("stopped (--exit)");
} else {
  say("running; press Ctrl-C to stop every server");
  const stop = () => void env.stop().then(() => process.exit(0));
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  setInterval(() => undefined, 1 << 30);
}
