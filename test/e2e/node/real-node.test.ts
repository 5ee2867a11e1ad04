/**
 * geo-operator through the user's path on a real node (`make e2e`): hack/node/run.sh starts a
 * single-node cluster (kubelet + containerd, kube-proxy, CoreDNS, ...) in a network namespace with
 * no route out, imports the image it built, and runs this file inside that namespace. The test
 * servers (PostgreSQL x2, MinIO x2, git) run here on 127.0.0.1 and are re-opened on the node IP
 * for Pods. Then: `helm install` of the chart (Jobs executor, two replicas, leader election) into a
 * namespace enforcing the restricted Pod Security profile, `kubectl apply` of Secrets, GeoSites and
 * both sample ReplicableTypes, and the checks below, in order: each builds on the previous one.
 */
import { createHash } from "node:crypto";
import { chownSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { seedBlobs, seedRepositories } from "../../../hack/demo/seed.ts";
import { startLocalEnvironment, type LocalEnvironment } from "../../../hack/localenv/index.ts";
import { REPO_ROOT } from "../../../hack/localenv/tools.ts";
import { forward, helmOk, kubectl, kubectlAsync, kubectlAsyncOk, kubectlOk, requireEnv, until, type Forwarder } from "./support.ts";

const NODE_IP = requireEnv("GEO_E2E_NODE_IP");
const IMAGE = requireEnv("GEO_E2E_IMAGE");
const RUN_DIR = requireEnv("GEO_E2E_RUN_DIR");
const NS = "geo-e2e";
const RELEASE = "geo-operator";
const BLOBS = Number(process.env.E2E_BLOBS ?? 60);
const REPOS = Number(process.env.E2E_REPOS ?? 3);
const LEASE_SECONDS = 15;
const MANAGED = "app.kubernetes.io/managed-by=geo-operator";
const [imageRepository, imageTag] = [IMAGE.slice(0, IMAGE.lastIndexOf(":")), IMAGE.slice(IMAGE.lastIndexOf(":") + 1)];

let servers: LocalEnvironment;
const forwarders: Forwarder[] = [];
let primaryDb: pg.Pool;
let trackingDb: pg.Pool;
let primaryS3: S3Client;
let secondaryS3: S3Client;

const s3Client = (s: { endpoint: string; region: string; accessKeyId: string; secretAccessKey: string }) =>
  new S3Client({ endpoint: s.endpoint, region: s.region, forcePathStyle: true, credentials: { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey } });

/** The same server as seen from a Pod: host and port replaced by a forwarder on the node IP. */
async function onNode(url: string): Promise<string> {
  const u = new URL(url);
  const f = await forward(NODE_IP, Number(u.port));
  forwarders.push(f);
  u.hostname = NODE_IP;
  u.port = String(f.port);
  return u.toString().replace(/\/$/, "");
}

const json = async (args: string[]) => JSON.parse(await kubectlAsyncOk([...args, "-o", "json"]));
const podsOf = async (selector: string) => (await json(["get", "pods", "-n", NS, "-l", selector])).items as any[];
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
/** The manager's Lease identity is its Pod name plus a per-process suffix. */
const holds = (holder: string | undefined, pod: string) => holder === pod || (holder?.startsWith(`${pod}-`) ?? false);

beforeAll(async () => {
  servers = await startLocalEnvironment({ components: ["postgres", "s3", "git"] });
  const { postgres, s3, git } = servers.info;
  primaryDb = new pg.Pool({ connectionString: postgres!.primaryURL });
  trackingDb = new pg.Pool({ connectionString: postgres!.secondaryURL });
  primaryS3 = s3Client(s3!.primary);
  secondaryS3 = s3Client(s3!.secondary);
  await seedBlobs(primaryDb, primaryS3, s3!.primary.bucket, "", BLOBS);
  await seedRepositories(primaryDb, git!.root, REPOS);
  const pod = {
    primaryDb: await onNode(postgres!.primaryURL),
    trackingDb: await onNode(postgres!.secondaryURL),
    primaryS3: await onNode(s3!.primary.endpoint),
    secondaryS3: await onNode(s3!.secondary.endpoint),
    git: await onNode(git!.baseURL),
  };

  // The namespace enforces the restricted profile: the operator and every worker Pod must pass it.
  kubectlOk(["create", "namespace", NS]);
  kubectlOk(["label", "namespace", NS, "pod-security.kubernetes.io/enforce=restricted"]);
  // The secondary's git mirrors: a PersistentVolume on the node (there is no provisioner).
  const mirrors = join(RUN_DIR, "volumes", "tokyo-mirrors");
  mkdirSync(mirrors, { recursive: true });
  chownSync(mirrors, 65532, 65532);
  kubectlOk(["apply", "-n", NS, "-f", "-"], [
    { apiVersion: "v1", kind: "PersistentVolume", metadata: { name: "geo-e2e-tokyo-mirrors" },
      spec: { capacity: { storage: "1Gi" }, accessModes: ["ReadWriteOnce"], storageClassName: "node-local", hostPath: { path: mirrors, type: "Directory" },
        claimRef: { namespace: NS, name: "tokyo-mirrors" } } },
    { apiVersion: "v1", kind: "PersistentVolumeClaim", metadata: { name: "tokyo-mirrors" },
      spec: { accessModes: ["ReadWriteOnce"], storageClassName: "node-local", volumeName: "geo-e2e-tokyo-mirrors", resources: { requests: { storage: "1Gi" } } } },
  ].map((d) => stringify(d)).join("---\n"));

  helmOk(["install", RELEASE, join(REPO_ROOT, "charts/geo-operator"), "-n", NS, "--wait", "--timeout", "3m",
    "--set", `image.repository=${imageRepository}`, "--set", `image.tag=${imageTag}`, "--set", "image.pullPolicy=Never",
    "--set", "worker.image.pullPolicy=Never", "--set", "replicaCount=2", "--set", "executor=jobs",
    "--set", "leaderElection.enabled=true", "--set", "worker.maxRunSeconds=60"]);

  // The samples, pointed at the test servers. Secrets carry the label the operator requires of
  // the Secrets it may read.
  const secret = (name: string, stringData: Record<string, string>) => ({
    apiVersion: "v1", kind: "Secret", metadata: { name, labels: { "geo.replication.dev/credentials": "true" } }, type: "Opaque", stringData,
  });
  const key = (e: { accessKeyId: string; secretAccessKey: string }) => ({ AWS_ACCESS_KEY_ID: e.accessKeyId, AWS_SECRET_ACCESS_KEY: e.secretAccessKey });
  const samples = (file: string) => parse(readFileSync(join(REPO_ROOT, "config/samples", file), "utf8"));
  const london = samples("geosite-primary.yaml");
  london.spec = { ...london.spec, statusInterval: "2s", database: { secretRef: { name: "primary-main-db" } },
    objectStorage: { endpoint: pod.primaryS3, region: s3!.primary.region, bucket: s3!.primary.bucket, forcePathStyle: true, credentialsSecretRef: { name: "primary-object-storage" } },
    git: { baseURL: pod.git } };
  const tokyo = samples("geosite-secondary.yaml");
  tokyo.spec = { ...tokyo.spec, statusInterval: "2s",
    objectStorage: { endpoint: pod.secondaryS3, region: s3!.secondary.region, bucket: s3!.secondary.bucket, forcePathStyle: true, credentialsSecretRef: { name: "secondary-object-storage" } },
    // Small batches, so the three Pods of an Indexed sync Job all find work.
    capacities: { blobs: 2, repositories: 5, verification: 20 } };
  const types = ["replicabletype-cool-widget.yaml", "replicabletype-design-repository.yaml"].map((file) => {
    const doc = samples(file);
    // Short enough for a test, long enough that two cores are not busy starting worker Pods only.
    doc.spec.intervals = { sync: "10s", verification: "10s", primaryVerification: "10s", consistency: "30s" };
    // Re-verification soon enough to find the corruption below, not so soon that verified rows are
    // forever being re-verified.
    doc.spec.verification = { ...(doc.spec.verification ?? {}), minimumReverificationInterval: "30s" };
    delete doc.spec.source.namespaceTable;
    delete doc.spec.source.namespaceParentColumn;
    delete doc.spec.source.shardColumn;
    return doc;
  });
  types[0].spec.parallelism = 3;
  kubectlOk(["apply", "-n", NS, "-f", "-"], [
    secret("primary-main-db", { url: pod.primaryDb }),
    secret("secondary-tracking-db", { url: pod.trackingDb }),
    secret("primary-replica-db", { url: pod.primaryDb }),
    secret("primary-object-storage", key(s3!.primary)),
    secret("secondary-object-storage", key(s3!.secondary)),
    london, tokyo, ...types,
  ].map((d) => stringify(d)).join("---\n"));
}, 600_000);

afterAll(async () => {
  if (process.env.GEO_E2E_DEBUG) {
    for (const args of [["get", "all,geosites,rtype,lease", "-n", NS, "-o", "wide"], ["get", "events", "-n", NS]]) console.log((await kubectlAsync(args)).stdout);
  }
  primaryS3?.destroy();
  secondaryS3?.destroy();
  await primaryDb?.end();
  await trackingDb?.end();
  await Promise.all(forwarders.map((f) => f.close()));
  await servers?.stop();
});

describe("geo-operator on a real node", () => {
  it("runs two operator replicas under the restricted profile; one holds the Lease", async () => {
    const pods = await podsOf(`app.kubernetes.io/instance=${RELEASE},app.kubernetes.io/component=manager`);
    expect(pods).toHaveLength(2);
    for (const p of pods) {
      expect(p.status.phase).toBe("Running");
      expect(p.spec.containers[0].image).toBe(IMAGE);
    }
    const holder = await until("a leader", async () => (await json(["get", "lease", "geo-operator-leader", "-n", NS])).spec.holderIdentity as string | undefined, 60_000);
    expect(pods.filter((p) => holds(holder, p.metadata.name))).toHaveLength(1);
  });

  it("replicates and verifies every record through worker Jobs run as Pods; kubectl get geosites shows 100.0%", async () => {
    const out = await until("tokyo at 100.0% synced and verified", async () => {
      const o = await kubectlAsyncOk(["get", "geosites", "-n", NS, "--no-headers"]);
      return /^tokyo\s+secondary\s+Healthy\s+100\.0%\s+100\.0%/m.test(o) ? o : undefined;
    }, 600_000);
    expect(out).toMatch(/^london\s+primary\s+Healthy\s/m);
    // The primary's checksums: 100.0% once all are made (re-checksumming lowers it for a while).
    await until("london at 100.0% checksummed", async () =>
      /^london\s+primary\s+Healthy\s+-\s+100\.0%/m.test(await kubectlAsyncOk(["get", "geosites", "-n", NS, "--no-headers"])) ? true : undefined, 300_000);
    const site = await json(["get", "gsite", "tokyo", "-n", NS]);
    const t = (name: string) => site.status.types.find((x: any) => x.name === name);
    expect(t("cool_widget")).toMatchObject({ count: BLOBS, syncedCount: BLOBS, verifiedCount: BLOBS, failedCount: 0 });
    expect(t("design_repository")).toMatchObject({ count: REPOS, syncedCount: REPOS, verifiedCount: REPOS, failedCount: 0 });
    // Every object on the secondary is the primary's, byte for byte.
    const listed = await primaryS3.send(new ListObjectsV2Command({ Bucket: servers.info.s3!.primary.bucket }));
    expect(listed.KeyCount).toBe(BLOBS);
    for (const { Key } of listed.Contents ?? []) {
      const get = async (c: S3Client, bucket: string) => sha256(await (await c.send(new GetObjectCommand({ Bucket: bucket, Key }))).Body!.transformToByteArray());
      expect(await get(secondaryS3, servers.info.s3!.secondary.bucket)).toBe(await get(primaryS3, servers.info.s3!.primary.bucket));
    }
    // The work was done by Pods the kubelet ran: succeeded worker Pods for every kind.
    const pods = await podsOf(MANAGED);
    const succeeded = pods.filter((p) => p.status.phase === "Succeeded");
    const kinds = new Set(succeeded.map((p) => `${p.metadata.labels["geo.replication.dev/site"]}/${p.metadata.labels["geo.replication.dev/worker"]}`));
    for (const k of ["tokyo/sync", "tokyo/verify", "tokyo/consistency", "london/verify-primary"]) expect(kinds).toContain(k);
    expect(succeeded.every((p) => p.spec.nodeName === "geo-e2e-node")).toBe(true);
    const jobs = (await json(["get", "jobs", "-n", NS, "-l", MANAGED])).items as any[];
    expect(jobs.filter((j) => j.status.succeeded > 0).length).toBeGreaterThan(0);
    expect(jobs.filter((j) => (j.status.failed ?? 0) > 0).map((j) => j.metadata.name)).toEqual([]);
  }, 660_000);

  it("kubectl logs of a worker Job shows its summary line", async () => {
    const jobs = (await json(["get", "jobs", "-n", NS, "-l", `${MANAGED},geo.replication.dev/type=design-repository,geo.replication.dev/worker=sync`])).items as any[];
    const done = jobs.find((j) => j.status.succeeded > 0);
    expect(done).toBeDefined();
    const logs = await kubectlAsyncOk(["logs", "-n", NS, `job/${done.metadata.name}`]);
    expect(logs).toMatch(/^sync design_repository@tokyo: claimed=\d+ synced=\d+ failed=0 bytes=\d+ seconds=\d+\.\d\d$/m);
  });

  it("a type with parallelism 3 runs three Pods of one Indexed Job that share the work, no row claimed twice", async () => {
    const jobs = (await json(["get", "jobs", "-n", NS, "-l", `${MANAGED},geo.replication.dev/type=cool-widget,geo.replication.dev/worker=sync`])).items as any[];
    expect(jobs.length).toBeGreaterThan(0);
    for (const j of jobs) expect(j.spec).toMatchObject({ parallelism: 3, completions: 3, completionMode: "Indexed" });
    // Each sync Pod prints what it claimed; the Job that did the initial copy had all three busy.
    const claimedBy = async (job: string) => {
      const pods = await podsOf(`job-name=${job}`);
      return Promise.all(pods.map(async (p) => {
        const log = await kubectlAsyncOk(["logs", "-n", NS, p.metadata.name]);
        const claimed = Number(/^sync cool_widget@tokyo: claimed=(\d+) /m.exec(log)?.[1] ?? NaN);
        return { index: p.metadata.annotations["batch.kubernetes.io/job-completion-index"], phase: p.status.phase, claimed };
      }));
    };
    const runs = await Promise.all(jobs.filter((j) => j.status.succeeded === 3).map(async (j) => claimedBy(j.metadata.name)));
    const busiest = runs.sort((a, b) => b.reduce((n, r) => n + r.claimed, 0) - a.reduce((n, r) => n + r.claimed, 0))[0]!;
    expect(busiest.map((r) => r.index).sort()).toEqual(["0", "1", "2"]);
    expect(busiest.every((r) => r.phase === "Succeeded")).toBe(true);
    // Pods start a little apart; on a busy machine the last may find the work gone.
    expect(busiest.filter((r) => r.claimed > 0).length, JSON.stringify(busiest)).toBeGreaterThanOrEqual(2);
    console.log(`[e2e] rows claimed by the Pods of one Indexed sync Job: ${busiest.map((r) => `#${r.index}=${r.claimed}`).join(" ")}`);
    // Over every sync run the workers recorded, each row was claimed exactly once.
    const { rows } = await trackingDb.query<{ claimed: string; succeeded: string; runs: string }>(
      `SELECT sum(claimed)::text AS claimed, sum(succeeded)::text AS succeeded, count(*)::text AS runs
         FROM geo_operator_worker_runs WHERE type_name = 'cool_widget' AND kind = 'sync' AND site = 'tokyo'`,
    );
    expect(Number(rows[0]!.runs)).toBeGreaterThanOrEqual(3);
    expect(Number(rows[0]!.claimed)).toBe(BLOBS);
    expect(Number(rows[0]!.succeeded)).toBe(BLOBS);
  });

  it("the metrics Service is scraped through the cluster network (CoreDNS, kube-proxy)", async () => {
    const url = `http://${RELEASE}-metrics.${NS}.svc.cluster.local:9090/metrics`;
    // Either replica may answer; only the leader exports the registry gauges, so ask until it does,
    // on a new connection each time (kube-proxy picks a backend per connection).
    const script = [
      `const http = require("node:http"); const url = ${JSON.stringify(url)};`,
      "const get = () => new Promise((ok, ko) => http.get(url, { agent: false }, (r) => { let t = ''; r.on('data', (c) => (t += c)); r.on('end', () => ok(t)); }).on('error', ko));",
      "(async () => { for (let i = 0; i < 60; i++) {",
      "  try { const t = await get(); if (/^geo_cool_widgets_synced\\{site=\"tokyo\"/m.test(t)) { console.log(t); return; } console.error('answered without the registry gauges (not the leader)'); }",
      "  catch (e) { console.error(String(e)); }",
      "  await new Promise((r) => setTimeout(r, 500)); } process.exit(1); })();",
    ].join("\n");
    const restricted = { runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: "RuntimeDefault" } };
    const overrides = { spec: { securityContext: restricted, containers: [{ name: "scrape", image: IMAGE, imagePullPolicy: "Never", command: ["node", "-e", script],
      securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] }, readOnlyRootFilesystem: true } }] } };
    await kubectlAsyncOk(["run", "scrape", "-n", NS, `--image=${IMAGE}`, "--restart=Never", `--overrides=${JSON.stringify(overrides)}`]);
    const phase = await until("the scrape Pod to finish", async () => {
      const p = (await json(["get", "pod", "scrape", "-n", NS])).status.phase;
      return p === "Succeeded" || p === "Failed" ? p : undefined;
    }, 90_000);
    const text = await kubectlAsyncOk(["logs", "-n", NS, "scrape"]);
    expect(phase, text).toBe("Succeeded");
    expect(text).toMatch(new RegExp(`^geo_cool_widgets_synced\\{site="tokyo"[^}]*\\} ${BLOBS}$`, "m"));
    expect(text).toMatch(/^process_resident_memory_bytes \d+/m);
    // Both replicas stand behind the Service.
    await until("two ready endpoints behind the metrics Service", async () => {
      const slices = await json(["get", "endpointslices", "-n", NS, "-l", `kubernetes.io/service-name=${RELEASE}-metrics`]);
      return slices.items.flatMap((s: any) => s.endpoints ?? []).filter((e: any) => e.conditions?.ready).length === 2 ? true : undefined;
    }, 90_000);
    await kubectlAsyncOk(["delete", "pod", "scrape", "-n", NS, "--wait=false"]);
  });

  it("a corrupted secondary object fails verification, then heals", async () => {
    const bucket = servers.info.s3!.secondary.bucket;
    const { Contents } = await secondaryS3.send(new ListObjectsV2Command({ Bucket: bucket }));
    const key = Contents![0]!.Key!;
    const original = await (await primaryS3.send(new GetObjectCommand({ Bucket: servers.info.s3!.primary.bucket, Key: key }))).Body!.transformToByteArray();
    await secondaryS3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: Buffer.from("bit rot") }));
    await until("the mismatch in status", async () => {
      const t = (await json(["get", "gsite", "tokyo", "-n", NS])).status.types.find((x: any) => x.name === "cool_widget");
      return t.failedCount >= 1 || t.verificationFailedCount >= 1 ? t : undefined;
    }, 120_000);
    // Skip the failed row's backoff, and trigger the Jobs now rather than at the next interval.
    await trackingDb.query(`UPDATE cool_widget_registry SET retry_at = now() WHERE state = 3`);
    await kubectlAsyncOk(["annotate", "--overwrite", "rtype", "cool-widget", "-n", NS, `geo.replication.dev/trigger=heal-${Date.now()}`]);
    // Healed: the primary's bytes back on the secondary, nothing failed, everything synced.
    // (Verified drops below 100% while rows are re-verified, so it is not waited for here.)
    await until("the object healed", async () => {
      const body = await (await secondaryS3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToByteArray();
      const t = (await json(["get", "gsite", "tokyo", "-n", NS])).status.types.find((x: any) => x.name === "cool_widget");
      return sha256(body) === sha256(original) && t.syncedCount === BLOBS && t.failedCount === 0 && t.verificationFailedCount === 0 ? true : undefined;
    }, 240_000);
  });

  it(`killing the leader Pod hands over to the other replica within the Lease duration (${LEASE_SECONDS} s)`, async () => {
    const lease = () => json(["get", "lease", "geo-operator-leader", "-n", NS]).then((l) => l.spec.holderIdentity as string | undefined);
    const before = await lease();
    const managers = (await podsOf(`app.kubernetes.io/instance=${RELEASE},app.kubernetes.io/component=manager`)).map((p) => p.metadata.name as string);
    const leader = managers.find((n) => holds(before, n));
    const follower = managers.find((n) => n !== leader);
    expect(leader, `Lease holder ${before}`).toBeDefined();
    expect(follower).toBeDefined();
    const killed = Date.now();
    await kubectlAsyncOk(["delete", "pod", leader!, "-n", NS, "--wait=false"]);
    const holder = await until("a new leader", async () => {
      const h = await lease();
      return h && h !== before ? h : undefined;
    }, 60_000);
    const seconds = (Date.now() - killed) / 1000;
    expect(holds(holder, follower!), `new holder ${holder}, follower ${follower}`).toBe(true);
    expect(seconds).toBeLessThan(LEASE_SECONDS);
    // The new leader acts: a trigger is handled.
    const trigger = `after-handover-${Date.now()}`;
    await kubectlAsyncOk(["annotate", "--overwrite", "rtype", "design-repository", "-n", NS, `geo.replication.dev/trigger=${trigger}`]);
    await until("the trigger handled by the new leader", async () => ((await json(["get", "rtype", "design-repository", "-n", NS])).status.lastTrigger === trigger ? true : undefined), 60_000);
    console.log(`[e2e] leader ${leader} killed; ${holder} took over after ${seconds.toFixed(1)} s`);
  });

  it("uninstalling (custom resources first, as docs/installation.md says) leaves no operator-owned Pods or Jobs", async () => {
    const deleted = await kubectlAsync(["delete", "replicabletypes,geosites", "--all", "-n", NS, "--wait=true", "--timeout=120s"]);
    expect(deleted.code, deleted.stderr).toBe(0);
    helmOk(["uninstall", RELEASE, "-n", NS, "--wait", "--timeout", "2m"]);
    await until("no operator-owned Pods or Jobs", async () => {
      const jobs = (await json(["get", "jobs", "-n", NS, "-l", MANAGED])).items;
      const pods = (await json(["get", "pods", "-n", NS])).items.filter((p: any) => p.metadata.name !== "scrape");
      return jobs.length === 0 && pods.length === 0 ? true : undefined;
    }, 120_000);
    expect(kubectl(["get", "deployment", RELEASE, "-n", NS]).code).not.toBe(0);
  });
});
