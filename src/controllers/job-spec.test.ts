import { describe, expect, it } from "vitest";
import type { GeoSite, ReplicableType } from "../api/v1alpha1/resources.ts";
import { secretsReferencedBy } from "../k8s/secrets.ts";
import { DEFAULT_JOB_SETTINGS, renderJob } from "./job-spec.ts";
import { buildWorkerRun, jobDeadlineSeconds, jobName, type WorkerKind } from "./worker-run.ts";

const meta = (name: string) => ({ name, namespace: "geo", uid: `uid-${name}`, generation: 1 });
const primary: GeoSite = {
  apiVersion: "geo.replication.dev/v1alpha1",
  kind: "GeoSite",
  metadata: meta("london"),
  spec: {
    role: "primary",
    database: { secretRef: { name: "primary-main-db" } },
    objectStorage: { endpoint: "https://s3.example", bucket: "london", credentialsSecretRef: { name: "primary-s3" } },
    git: { baseURL: "https://git.example", credentialsSecretRef: { name: "primary-git" } },
  },
};
const secondary: GeoSite = {
  apiVersion: "geo.replication.dev/v1alpha1",
  kind: "GeoSite",
  metadata: meta("tokyo"),
  spec: {
    role: "secondary",
    database: { secretRef: { name: "tracking-db", key: "dsn" }, primaryReplicaSecretRef: { name: "replica-db" } },
    objectStorage: { endpoint: "https://s3.tokyo.example", bucket: "tokyo", credentialsSecretRef: { name: "tokyo-s3" } },
    git: { mirrorRoot: "/var/opt/geo/mirrors", persistentVolumeClaim: { claimName: "tokyo-mirrors" } },
  },
};
const blobType: ReplicableType = {
  apiVersion: "geo.replication.dev/v1alpha1",
  kind: "ReplicableType",
  metadata: meta("cool-widget"),
  spec: { name: "cool_widget", strategy: "blob", source: { table: "cool_widgets", objectKey: { column: "path" } }, parallelism: 3 },
};
const repoType: ReplicableType = {
  ...blobType,
  metadata: meta("design-repository"),
  spec: { name: "design_repository", strategy: "repository", source: { table: "design_repositories", repositoryPath: { template: "{disk_path}.git" } } },
};
const at = new Date("2026-05-01T12:00:00Z");

const run = (type: ReplicableType, site: GeoSite, kind: WorkerKind) => buildWorkerRun({ type, site, primary, kind, scheduledAt: at, maxRunSeconds: DEFAULT_JOB_SETTINGS.maxRunSeconds });
const buildWorkerJob = (p: { type: ReplicableType; site: GeoSite; kind: WorkerKind }) => renderJob(run(p.type, p.site, p.kind), DEFAULT_JOB_SETTINGS);

describe("worker Job", () => {
  it("references Secrets and never contains their values", () => {
    const job = buildWorkerJob({ type: blobType, site: secondary, kind: "sync" });
    const env = job.spec!.template.spec!.containers[0]!.env!;
    const refs = Object.fromEntries(env.filter((e) => e.valueFrom).map((e) => [e.name, `${e.valueFrom!.secretKeyRef!.name}/${e.valueFrom!.secretKeyRef!.key}`]));
    expect(refs).toEqual({
      GEO_PRIMARY_DB_URL: "replica-db/url",
      GEO_TRACKING_DB_URL: "tracking-db/dsn",
      GEO_PRIMARY_S3_ACCESS_KEY_ID: "primary-s3/AWS_ACCESS_KEY_ID",
      GEO_PRIMARY_S3_SECRET_ACCESS_KEY: "primary-s3/AWS_SECRET_ACCESS_KEY",
      GEO_SECONDARY_S3_ACCESS_KEY_ID: "tokyo-s3/AWS_ACCESS_KEY_ID",
      GEO_SECONDARY_S3_SECRET_ACCESS_KEY: "tokyo-s3/AWS_SECRET_ACCESS_KEY",
    });
    expect(env.filter((e) => e.value !== undefined).map((e) => e.name).sort()).toEqual(["GEO_PRIMARY_SITE_NAME", "GEO_PRIMARY_SITE_SPEC", "GEO_SITE_SPEC", "GEO_TYPE_SPEC", "HOME"]);
  });

  it("runs under the restricted Pod Security profile", () => {
    const job = buildWorkerJob({ type: blobType, site: secondary, kind: "verify" });
    const pod = job.spec!.template.spec!;
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } });
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.containers[0]!.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      capabilities: { drop: ["ALL"] },
      seccompProfile: { type: "RuntimeDefault" },
    });
    expect(pod.containers[0]!.resources!.requests).toBeDefined();
  });

  it("is owned by its ReplicableType, labelled, bounded and named deterministically", () => {
    const job = buildWorkerJob({ type: blobType, site: primary, kind: "verify-primary" });
    expect(job.metadata!.name).toBe(jobName("cool-widget", "london", "verify-primary", at));
    expect(job.metadata!.name).toBe(buildWorkerJob({ type: blobType, site: primary, kind: "verify-primary" }).metadata!.name);
    expect(job.metadata!.ownerReferences).toEqual([expect.objectContaining({ kind: "ReplicableType", name: "cool-widget", uid: "uid-cool-widget", controller: true })]);
    expect(job.metadata!.labels).toMatchObject({ "geo.replication.dev/type": "cool-widget", "geo.replication.dev/site": "london", "geo.replication.dev/worker": "verify-primary", "geo.replication.dev/owner-uid": "uid-cool-widget" });
    expect(job.spec).toMatchObject({ backoffLimit: 2, ttlSecondsAfterFinished: 3600 });
    expect(job.spec!.template.spec!.containers[0]!.args).toEqual(["worker", "verify-primary", "--type", "cool_widget", "--site", "london", "--max-run", "600s"]);
  });

  it("runs parallelism > 1 as an Indexed Job (consistency stays single)", () => {
    const sync = buildWorkerJob({ type: blobType, site: secondary, kind: "sync" });
    expect(sync.spec).toMatchObject({ parallelism: 3, completions: 3, completionMode: "Indexed" });
    const consistency = buildWorkerJob({ type: blobType, site: secondary, kind: "consistency" });
    expect(consistency.spec).toMatchObject({ parallelism: 1, completions: 1 });
    expect(consistency.spec!.completionMode).toBeUndefined();
  });

  it("mounts the mirror volume for repository types and passes git credentials by reference", () => {
    const job = buildWorkerJob({ type: repoType, site: secondary, kind: "sync" });
    const pod = job.spec!.template.spec!;
    expect(pod.volumes).toContainEqual({ name: "mirrors", persistentVolumeClaim: { claimName: "tokyo-mirrors" } });
    expect(pod.containers[0]!.volumeMounts).toContainEqual({ name: "mirrors", mountPath: "/var/opt/geo/mirrors" });
    const git = pod.containers[0]!.env!.filter((e) => e.name.startsWith("GEO_PRIMARY_GIT_"));
    expect(git.map((e) => e.valueFrom!.secretKeyRef)).toEqual([
      { name: "primary-git", key: "username", optional: true },
      { name: "primary-git", key: "password", optional: true },
    ]);
  });

  it("keeps long names within 63 characters and unique", () => {
    const a = jobName("a-very-long-replicable-type-name-for-testing", "a-secondary-site-with-a-long-name", "verify-primary", at);
    const b = jobName("a-very-long-replicable-type-name-for-testing", "a-secondary-site-with-a-long-name-2", "verify-primary", at);
    expect(a.length).toBeLessThanOrEqual(63);
    expect(a).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    expect(a).not.toBe(b);
  });
});

describe("worker run", () => {
  it("carries the worker's options, so the in-process executor runs it without a Job", () => {
    const r = run(blobType, secondary, "sync");
    expect(r).toMatchObject({ name: jobName("cool-widget", "tokyo", "sync", at), namespace: "geo", typeName: "cool-widget", site: "tokyo", kind: "sync", parallelism: 3 });
    expect(r.options).toEqual({ type: "cool_widget", site: "tokyo", maxRunSeconds: 600 });
    expect(r.owner).toEqual({ name: "cool-widget", uid: "uid-cool-widget" });
  });

  it("references every Secret its strategy needs, and only those", () => {
    const referenced = (t: ReplicableType) => secretsReferencedBy(renderJob(run(t, { ...secondary, spec: { ...secondary.spec, git: {} } }, "sync"), DEFAULT_JOB_SETTINGS).spec!.template.spec!);
    expect(referenced(blobType).map((r) => r.name)).toEqual(["primary-s3", "replica-db", "tokyo-s3", "tracking-db"]);
    expect(referenced(repoType)).toEqual([
      { name: "primary-git", optional: true },
      { name: "replica-db", optional: false },
      { name: "tracking-db", optional: false },
    ]);
  });
});

describe("Job deadline", () => {
  it("is never shorter than the run time plus the per-item timeout, so a large item is not killed mid-copy", () => {
    // Default per-item timeout 3 h: a 10-minute run still gets 3 h 10 min plus slack.
    expect(jobDeadlineSeconds(600, blobType)).toBe(600 + 3 * 3600 + 300);
    const quick = { ...blobType, spec: { ...blobType.spec, timeouts: { sync: "1m" } } };
    expect(jobDeadlineSeconds(600, quick)).toBe(2 * 600 + 300);
    const job = buildWorkerJob({ type: blobType, site: secondary, kind: "sync" });
    expect(job.spec!.activeDeadlineSeconds).toBeGreaterThanOrEqual(DEFAULT_JOB_SETTINGS.maxRunSeconds + 3 * 3600);
  });

  it("tells secondary workers the primary's name, which its heartbeat must carry", () => {
    const job = buildWorkerJob({ type: blobType, site: secondary, kind: "consistency" });
    expect(job.spec!.template.spec!.containers[0]!.env!.find((e) => e.name === "GEO_PRIMARY_SITE_NAME")?.value).toBe("london");
  });
});
