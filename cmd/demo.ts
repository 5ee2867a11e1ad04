/**
 * `make demo`: a whole Geo setup on this machine, replicating sample data while you watch.
 *
 *  1. starts the local environment: kube-apiserver + etcd, two PostgreSQL servers, two MinIO
 *     servers, a git server (the first run builds the binaries: minutes; later runs: seconds)
 *  2. installs the CRDs, applies the sample GeoSites (london = primary, tokyo = secondary) wired to
 *     those servers, and the two sample ReplicableTypes
 *  3. seeds the primary: ~2,000 blobs of mixed sizes, 20 git repositories and ~500 uploads, most
 *     of them files in a directory (the primary's "volume"), every fifth in its bucket; the
 *     secondary fetches the files through the primary's retrieval server (HTTPS, its own key),
 *     which the operator runs in this process
 *  4. runs the operator in this process (workers and both sites' log cursors in-process, no
 *     kubelet needed) and shows a live table until everything is synced and verified
 *  5. changes the primary as an application would (a new blob, an upload rewritten in place and
 *     published, a deletion) and times how long tokyo takes to have each change synced and
 *     verified: seconds, through the event log, with the consistency pass 10 minutes away;
 *     then what to try next
 *
 * Runs until Ctrl-C; with --exit it stops once everything is replicated (exit 1 on timeout).
 * DEMO_BLOBS, DEMO_REPOS and DEMO_UPLOADS change the amount of sample data.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createServer } from "node:net";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { KubeConfig } from "@kubernetes/client-node";
import { S3Client } from "@aws-sdk/client-s3";
import { createPool } from "../src/util/database.ts";
import { parse, stringify } from "yaml";
import { startLocalEnvironment } from "../hack/localenv/index.ts";
import { createDatabaseOn } from "../hack/localenv/postgres.ts";
import { REPO_ROOT } from "../hack/localenv/tools.ts";
import { everythingReplicated, progressLines } from "../hack/demo/progress.ts";
import { seedBlobs, seedRepositories, seedUploads } from "../hack/demo/seed.ts";
import { demonstrateEvents } from "../hack/demo/events.ts";
import { createTestCertificates } from "../hack/localenv/tls.ts";
import { LABELS } from "../src/api/v1alpha1/resources.ts";
import { DEFAULT_JOB_SETTINGS } from "../src/controllers/job-spec.ts";
import { Manager } from "../src/manager.ts";
import { createLogger } from "../src/util/log.ts";

const { values } = parseArgs({ options: { exit: { type: "boolean", default: false }, timeout: { type: "string", default: "600" } } });
const BLOBS = Number(process.env.DEMO_BLOBS ?? 2000);
const REPOS = Number(process.env.DEMO_REPOS ?? 20);
const UPLOADS = Number(process.env.DEMO_UPLOADS ?? 500);
const NS = "geo-demo";
const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;
const say = (msg: string) => console.log(`[demo ${elapsed().padStart(6)}] ${msg}`);

// A fixed directory, so `make demo-corrupt` in another terminal finds this demo's servers.
const dir = process.env.GEO_DEMO_DIR ?? join(tmpdir(), `geo-operator-demo-${process.getuid?.() ?? 0}`);
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });

say("starting kube-apiserver, etcd, 2× PostgreSQL, 2× MinIO and a git server on 127.0.0.1");
say("(a machine without the tools cached builds them from Go modules first: 15-25 minutes, once)");
const env = await startLocalEnvironment({ dir, log: say });
const { kube, postgres, s3, git } = env.info;
if (!kube || !postgres || !s3 || !git) throw new Error("local environment incomplete");
let manager: Manager | undefined;
const stopAll = async () => {
  await manager?.stop().catch(() => undefined);
  await env.stop();
};
process.once("SIGINT", () => void stopAll().then(() => process.exit(130)));
process.once("SIGTERM", () => void stopAll().then(() => process.exit(143)));

const kubectl = (args: string[], input?: string) => execFileSync(kube.kubectl, ["--kubeconfig", kube.kubeconfig, ...args], { input, encoding: "utf8" });

try {
  // 2. CRDs, sites and types.
  kubectl(["apply", "--server-side", "-f", join(REPO_ROOT, "crds")]);
  kubectl(["wait", "--for=condition=Established", "--timeout=60s", "crd/geosites.geo.replication.dev", "crd/replicabletypes.geo.replication.dev"]);
  kubectl(["create", "namespace", NS]);
  const mainDb = `${postgres.primaryURL.replace(/\/postgres$/, "")}/gitlabhq_production`;
  const trackingDb = `${postgres.secondaryURL.replace(/\/postgres$/, "")}/gitlabhq_geo_production`;
  // tokyo reads london's database through a real streaming replica (a hot standby), as in production.
  const replicaDb = `${postgres.primaryReplicaURL.replace(/\/postgres$/, "")}/gitlabhq_production`;
  await createDatabaseOn(postgres.primaryURL, "gitlabhq_production");
  await createDatabaseOn(postgres.secondaryURL, "gitlabhq_geo_production");
  // The primary's file retrieval server: a free port on 127.0.0.1 and a certificate for it.
  const filesPort = await new Promise<number>((resolve, reject) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    }).on("error", reject);
  });
  const tls = createTestCertificates({ hosts: ["127.0.0.1"], days: 7 });
  const londonFiles = join(dir, "london-files");
  // Both "volumes" exist before the workers start: a worker refuses a missing root (an unmounted
  // volume) instead of writing into whatever directory is underneath.
  mkdirSync(londonFiles, { recursive: true });
  mkdirSync(join(dir, "tokyo-files"), { recursive: true });
  const secret = (name: string, data: Record<string, string>) => ({ apiVersion: "v1", kind: "Secret", metadata: { name, labels: { [LABELS.credentials]: "true" } }, stringData: data });
  const site = (name: string, spec: Record<string, unknown>) => ({ apiVersion: "geo.replication.dev/v1alpha1", kind: "GeoSite", metadata: { name }, spec: { statusInterval: "2s", ...spec } });
  const objects = [
    secret("primary-main-db", { url: mainDb }),
    secret("secondary-tracking-db", { url: trackingDb }),
    secret("primary-replica-db", { url: replicaDb }),
    secret("primary-object-storage", { AWS_ACCESS_KEY_ID: s3.primary.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.primary.secretAccessKey }),
    secret("secondary-object-storage", { AWS_ACCESS_KEY_ID: s3.secondary.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secondary.secretAccessKey }),
    secret("london-files-tls", { "tls.crt": tls.cert, "tls.key": tls.key, "ca.crt": tls.ca }),
    secret("tokyo-files-key", { key: randomBytes(32).toString("hex") }),
    site("london", {
      role: "primary",
      url: "https://london.geo.example",
      database: { secretRef: { name: "primary-main-db" } },
      objectStorage: { endpoint: s3.primary.endpoint, bucket: s3.primary.bucket, forcePathStyle: true, credentialsSecretRef: { name: "primary-object-storage" } },
      git: { baseURL: git.baseURL },
      fileStorage: { root: londonFiles, retrieval: { url: `https://127.0.0.1:${filesPort}`, port: filesPort, tlsSecretRef: { name: "london-files-tls" } } },
    }),
    site("tokyo", {
      role: "secondary",
      url: "https://tokyo.geo.example",
      database: { secretRef: { name: "secondary-tracking-db" }, primaryReplicaSecretRef: { name: "primary-replica-db" } },
      objectStorage: { endpoint: s3.secondary.endpoint, bucket: s3.secondary.bucket, forcePathStyle: true, credentialsSecretRef: { name: "secondary-object-storage" } },
      git: { mirrorRoot: join(dir, "tokyo-mirrors") },
      fileStorage: { root: join(dir, "tokyo-files"), retrievalCredentialsSecretRef: { name: "tokyo-files-key" } },
    }),
  ];
  kubectl(["apply", "-n", NS, "-f", "-"], objects.map((o) => stringify(o)).join("---\n"));
  tls.remove(); // the Secret holds them now

  // 3. Sample data on the primary (before the types, so the first pass finds all of it).
  const db = createPool(mainDb, { applicationName: "geo-operator demo" });
  const s3c = new S3Client({ endpoint: s3.primary.endpoint, region: s3.primary.region, forcePathStyle: true, credentials: s3.primary });
  say(`seeding the primary: ${BLOBS} blobs, ${REPOS} git repositories and ${UPLOADS} uploads`);
  const bytes = await seedBlobs(db, s3c, s3.primary.bucket, "", BLOBS);
  await seedRepositories(db, git.root, REPOS);
  const uploads = await seedUploads(db, londonFiles, s3c, s3.primary.bucket, UPLOADS);
  s3c.destroy();
  await db.end();
  say(`seeded ${(bytes / 1024 / 1024).toFixed(1)} MiB of blobs, ${REPOS} repositories and ${uploads.files} upload files + ${uploads.objects} upload objects`);

  for (const file of ["replicabletype-cool-widget.yaml", "replicabletype-design-repository.yaml", "replicabletype-upload.yaml"]) {
    const doc = parse(readFileSync(join(REPO_ROOT, "config/samples", file), "utf8"));
    // Demo pace: short retry intervals and a re-verification window you can watch. Consistency
    // keeps the sample's 10 minutes: after the first pass, changes arrive through the event log.
    doc.spec.intervals = { sync: "5s", verification: "5s", primaryVerification: "5s", consistency: "10m" };
    doc.spec.verification = { ...(doc.spec.verification ?? {}), minimumReverificationInterval: "1m" };
    delete doc.spec.source.namespaceTable;
    delete doc.spec.source.namespaceParentColumn;
    delete doc.spec.source.shardColumn;
    kubectl(["apply", "-n", NS, "-f", "-"], stringify(doc));
  }
  say("CRDs installed; GeoSites london (primary) and tokyo (secondary) and three ReplicableTypes applied");

  // 4. The operator, in this process.
  const kc = new KubeConfig();
  kc.loadFromFile(kube.kubeconfig);
  manager = new Manager({
    kubeConfig: kc,
    log: createLogger({ name: "geo-operator", level: process.env.DEMO_LOG_LEVEL ?? "error" }),
    executor: "in-process",
    jobSettings: { ...DEFAULT_JOB_SETTINGS, maxRunSeconds: 300 },
    metricsPort: 0,
    healthPort: 0,
  });
  await manager.start();
  writeFileSync(join(dir, "demo.json"), JSON.stringify({ ...env.info, namespace: NS, mainDb, trackingDb, metrics: manager.metricsURL }, null, 2));
  say(`operator running in-process; metrics at ${manager.metricsURL}/metrics`);
} catch (err) {
  await stopAll();
  throw err;
}

const tty = process.stdout.isTTY === true;
let drawn = 0;
let reported = false;
const expected = { cool_widget: BLOBS, design_repository: REPOS, upload: UPLOADS };
const deadline = started + Number(values.timeout) * 1000;
const tick = setInterval(() => {
  const sites = manager!.sites.list(NS);
  const lines = progressLines(sites);
  const done = everythingReplicated(sites, 3, expected);
  if (tty) {
    if (drawn) process.stdout.write(`\x1b[${drawn}A\x1b[J`);
    process.stdout.write(lines.join("\n") + "\n");
    drawn = lines.length;
  } else if (done || Math.floor((Date.now() - started) / 1000) % 10 === 0) {
    console.log(`--- ${elapsed()}\n${lines.join("\n")}`);
  }
  if (done && !reported) {
    reported = true;
    drawn = 0;
    clearInterval(tick);
    say(`everything synced and verified in ${elapsed()}`);
    void afterReplicated();
  }
  if (!reported && values.exit && Date.now() > deadline) {
    clearInterval(tick);
    say(`not everything replicated within ${values.timeout}s`);
    void stopAll().then(() => process.exit(1));
  }
}, 1000);

/** Step 5, then what to try next. */
async function afterReplicated(): Promise<void> {
  const kube = env.info.kube!;
  const demo = JSON.parse(readFileSync(join(dir, "demo.json"), "utf8")) as { mainDb: string; trackingDb: string };
  const main = createPool(demo.mainDb, { applicationName: "geo-operator demo" });
  const tracking = createPool(demo.trackingDb, { applicationName: "geo-operator demo" });
  const s3primary = env.info.s3!.primary;
  const s3c = new S3Client({ endpoint: s3primary.endpoint, region: s3primary.region, forcePathStyle: true, credentials: s3primary });
  try {
    say("now changing london as an application would; watch tokyo follow in seconds");
    await demonstrateEvents({ main, tracking, s3: s3c, bucket: s3primary.bucket, londonFiles: join(dir, "london-files"), tokyoFiles: join(dir, "tokyo-files"), say });
  } catch (err) {
    say(`event-driven replication did not follow: ${(err as Error).message}`);
    if (values.exit) {
      await stopAll();
      process.exit(1);
    }
  } finally {
    s3c.destroy();
    await Promise.all([main.end(), tracking.end()]);
  }
  // The kubectl plugin, found by kubectl's own plugin discovery, against this demo (kubectl
  // refuses flags before a plugin's name, so the kubeconfig goes through the environment).
  const pluginPath = `${join(REPO_ROOT, "hack", "bin")}:${process.env.PATH ?? ""}`;
  try {
    console.log(`$ kubectl geo status -n ${NS}\n` + execFileSync(kube.kubectl, ["geo", "status", "-n", NS], { encoding: "utf8", env: { ...process.env, PATH: pluginPath, KUBECONFIG: kube.kubeconfig } }));
  } catch (err) {
    console.log(`(kubectl geo status failed: ${(err as Error).message})`);
  }
  console.log(`
Try next (in another terminal):
  export KUBECONFIG=${kube.kubeconfig}
  alias kubectl=${kube.kubectl}
  kubectl get geosites -n ${NS}                 # ROLE HEALTH SYNCED VERIFIED
  kubectl describe geosite tokyo -n ${NS}       # per-type counters, conditions, events
  kubectl get rtype -n ${NS}
  export PATH=${join(REPO_ROOT, "hack", "bin")}:$PATH   # the kubectl geo plugin
  kubectl geo registries cool-widget --site tokyo -n ${NS} --limit 5
  make demo-corrupt                             # overwrite one object in tokyo's bucket; watch it fail and heal
  ls ${join(dir, "tokyo-files", "uploads")} | head   # uploads copied from london's directory through its retrieval server
  curl -s ${manager!.metricsURL}/metrics | grep -E '^geo_(cool_widgets|last_event|cursor|event_sync)'
  GEO_PRIMARY_DB_URL=${demo.mainDb} node ${join(REPO_ROOT, "cmd/geo-operator.ts")} event publish --type upload --id 2   # "upload 2 changed": tokyo copies it again
${values.exit ? "" : "\nPress Ctrl-C to stop every server.\n"}`);
  if (values.exit) {
    await stopAll();
    process.exit(0);
  }
}
