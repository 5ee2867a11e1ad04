/**
 * The data half of `make e2e-kind`, run from the host through `kubectl port-forward`: creates the
 * buckets, seeds the primary (blobs and git repositories), applies the sample Secrets, GeoSites
 * and ReplicableTypes wired to the in-cluster services, then waits until `kubectl get geosites`
 * shows the secondary fully synced and verified.
 *
 *   node test/e2e/kind-setup.ts <namespace> <pg-port> <s3-port> <git-port>
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import pg from "pg";
import { parse, stringify } from "yaml";
import { REPO_ROOT } from "../../hack/localenv/tools.ts";
import { seedBlobs } from "../../hack/demo/seed.ts";

const [ns, pgPort, s3Port, gitPort] = process.argv.slice(2);
if (!ns || !pgPort || !s3Port || !gitPort) throw new Error("usage: kind-setup.ts <namespace> <pg-port> <s3-port> <git-port>");
const BLOBS = Number(process.env.E2E_BLOBS ?? 200);
const REPOS = Number(process.env.E2E_REPOS ?? 5);
const kubectl = (args: string[], input?: string) => execFileSync("kubectl", ["-n", ns, ...args], { input, encoding: "utf8" });
const PASSWORD = "geo-e2e-password";
const S3_KEY = { accessKeyId: "geo-e2e", secretAccessKey: "geo-e2e-secret-key" };

// Buckets: the primary's through the port-forward, the secondary's from a one-off pod in the cluster.
const s3 = new S3Client({ endpoint: `http://127.0.0.1:${s3Port}`, region: "us-east-1", forcePathStyle: true, credentials: S3_KEY });
await s3.send(new CreateBucketCommand({ Bucket: "geo-primary" }));
kubectl(["run", "mkbucket", "--rm", "-i", "--restart=Never", "--image=quay.io/minio/mc:RELEASE.2025-08-13T08-35-41Z", "--command", "--",
  "sh", "-c", `mc alias set s http://s3-secondary:9000 ${S3_KEY.accessKeyId} ${S3_KEY.secretAccessKey} && mc mb s/geo-secondary`]);

const db = new pg.Pool({ connectionString: `postgres://postgres:${PASSWORD}@127.0.0.1:${pgPort}/app` });
await seedBlobs(db, s3, "geo-primary", "", BLOBS);
// Repositories: bare repos are created inside the git pod, then pushed through the port-forward.
const gitPod = kubectl(["get", "pod", "-l", "app=git-primary", "-o", "jsonpath={.items[0].metadata.name}"]).trim();
await db.query(`CREATE TABLE IF NOT EXISTS design_repositories (id bigserial PRIMARY KEY, namespace_id bigint NOT NULL, disk_path text NOT NULL)`);
for (let i = 1; i <= REPOS; i++) {
  const diskPath = `@hashed/e2e/project-${i}`;
  kubectl(["exec", gitPod, "--", "git", "init", "-q", "--bare", `/srv/git/${diskPath}.git`]);
  const work = execFileSync("mktemp", ["-d"], { encoding: "utf8" }).trim();
  const git = (args: string[]) => execFileSync("git", ["-c", "user.name=e2e", "-c", "user.email=e2e@example.com", "-c", "init.defaultBranch=main", ...args], { cwd: work });
  git(["init", "-q"]);
  for (let c = 0; c < 3; c++) git(["commit", "-q", "--allow-empty", "-m", `change ${c}`]);
  git(["push", "-q", `git://127.0.0.1:${gitPort}/${diskPath}.git`, "main"]);
  await db.query(`INSERT INTO design_repositories (namespace_id, disk_path) VALUES (1, $1)`, [diskPath]);
}
await db.end();
s3.destroy();

// The operator reads only Secrets that carry this label (docs/installation.md).
const secret = (name: string, data: Record<string, string>) => ({ apiVersion: "v1", kind: "Secret", metadata: { name, labels: { "geo.replication.dev/credentials": "true" } }, stringData: data });
const site = (name: string, spec: object) => ({ apiVersion: "geo.replication.dev/v1alpha1", kind: "GeoSite", metadata: { name }, spec: { statusInterval: "5s", ...spec } });
const docs: object[] = [
  secret("primary-main-db", { url: `postgres://postgres:${PASSWORD}@pg-primary:5432/app` }),
  secret("secondary-tracking-db", { url: `postgres://postgres:${PASSWORD}@pg-secondary:5432/app` }),
  secret("primary-replica-db", { url: `postgres://postgres:${PASSWORD}@pg-primary:5432/app` }),
  secret("primary-object-storage", { AWS_ACCESS_KEY_ID: S3_KEY.accessKeyId, AWS_SECRET_ACCESS_KEY: S3_KEY.secretAccessKey }),
  secret("secondary-object-storage", { AWS_ACCESS_KEY_ID: S3_KEY.accessKeyId, AWS_SECRET_ACCESS_KEY: S3_KEY.secretAccessKey }),
  site("london", {
    role: "primary",
    database: { secretRef: { name: "primary-main-db" } },
    objectStorage: { endpoint: "http://s3-primary:9000", bucket: "geo-primary", forcePathStyle: true, credentialsSecretRef: { name: "primary-object-storage" } },
    git: { baseURL: "git://git-primary" },
  }),
  site("tokyo", {
    role: "secondary",
    database: { secretRef: { name: "secondary-tracking-db" }, primaryReplicaSecretRef: { name: "primary-replica-db" } },
    objectStorage: { endpoint: "http://s3-secondary:9000", bucket: "geo-secondary", forcePathStyle: true, credentialsSecretRef: { name: "secondary-object-storage" } },
    git: { mirrorRoot: "/var/opt/geo/mirrors", persistentVolumeClaim: { claimName: "tokyo-mirrors" } },
  }),
];
for (const file of ["replicabletype-cool-widget.yaml", "replicabletype-design-repository.yaml"]) {
  const doc = parse(readFileSync(join(REPO_ROOT, "config/samples", file), "utf8"));
  doc.spec.intervals = { sync: "10s", verification: "10s", primaryVerification: "10s", consistency: "20s" };
  delete doc.spec.source.namespaceTable;
  delete doc.spec.source.namespaceParentColumn;
  delete doc.spec.source.shardColumn;
  docs.push(doc);
}
kubectl(["apply", "-f", "-"], docs.map((d) => stringify(d)).join("---\n"));

const deadline = Date.now() + Number(process.env.E2E_TIMEOUT_SECONDS ?? 600) * 1000;
for (;;) {
  const out = kubectl(["get", "geosites"]);
  if (/^tokyo\s+secondary\s+Healthy\s+100\.0%\s+100\.0%/m.test(out)) {
    console.log(out);
    console.log("e2e-kind: PASSED — every sample object and repository synced and verified in the kind cluster");
    break;
  }
  if (Date.now() > deadline) {
    console.log(out);
    console.log(kubectl(["get", "rtype,jobs,pods", "-o", "wide"]));
    throw new Error("e2e-kind: FAILED — tokyo did not reach 100% synced and verified in time");
  }
  await new Promise((r) => setTimeout(r, 5000));
}
