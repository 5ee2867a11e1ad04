/**
 * Least privilege for Secrets against the real API server: the operator reads, and hands to worker
 * Jobs, only Secrets labelled geo.replication.dev/credentials=true.
 */
import { BatchV1Api, CoreV1Api, KubeConfig, type V1EnvVar, type V1Job, type V1PodSpec } from "@kubernetes/client-node";
import { beforeAll, describe, expect, it } from "vitest";
import { LABELS, type GeoSite } from "../../src/api/v1alpha1/resources.ts";
import { InProcessExecutor } from "../../src/controllers/in-process-executor.ts";
import { JobExecutor } from "../../src/controllers/job-executor.ts";
import { DEFAULT_JOB_SETTINGS } from "../../src/controllers/job-spec.ts";
import type { WorkerRun } from "../../src/controllers/worker-run.ts";
import { blobStrategy } from "../../src/strategies/blob/definition.ts";
import { Reason } from "../../src/controllers/reasons.ts";
import { failureReason, SiteAccess } from "../../src/controllers/site-access.ts";
import { resolveEnv, SecretNotOptedInError } from "../../src/k8s/env.ts";
import { Informer } from "../../src/k8s/informer.ts";
import { SiteDatabases } from "../../src/registry-api/site-databases.ts";
import { ApiError } from "../../src/registry-api/status.ts";
import { createLogger } from "../../src/util/log.ts";
import { createNamespace, kubectl, kubectlOk } from "../support/kubectl.ts";

let ns: string;
let core: CoreV1Api;
let batch: BatchV1Api;
let executor: JobExecutor;

const OPT_IN = { [LABELS.credentials]: "true" };
const secret = (name: string, data: Record<string, string>, labels: Record<string, string> = {}) =>
  JSON.stringify({ apiVersion: "v1", kind: "Secret", metadata: { name, labels }, stringData: data });

type Refs = Partial<V1PodSpec> & { env?: V1EnvVar[] };

/** The kind of pod spec the operator builds, with the references `refs` adds. */
function job(name: string, refs: Refs): V1Job {
  const { env, ...pod } = refs;
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: { name, namespace: ns, labels: { [LABELS.managedBy]: "geo-operator", [LABELS.type]: "t" } },
    spec: {
      template: {
        spec: {
          restartPolicy: "Never",
          containers: [{ name: "worker", image: "geo-operator", command: ["geo-operator"], args: ["worker", "sync"], env: [{ name: "HOME", value: "/tmp" }, ...(env ?? [])] }],
          ...pod,
        },
      },
    },
  };
}
/** A worker run of type "t" whose env is `env`. */
function workerRun(name: string, env: V1EnvVar[]): WorkerRun {
  return {
    name,
    namespace: ns,
    typeName: "t",
    site: "tokyo",
    kind: "sync",
    scheduledAt: new Date(),
    options: { type: "t", site: "tokyo", maxRunSeconds: 1 },
    env,
    volumes: [],
    mounts: [],
    parallelism: 1,
    deadlineSeconds: 600,
    owner: { name: "t", uid: "4f0c5a6e-0000-4000-8000-000000000001" },
  };
}
const jobExists = (name: string) => kubectl(["get", "job", name, "-n", ns]).code === 0;
const fromSecret = (name: string, key: string, optional = false): V1EnvVar => ({ name: key.toUpperCase(), valueFrom: { secretKeyRef: { name, key, ...(optional ? { optional } : {}) } } });

beforeAll(() => {
  ns = createNamespace("secrets");
  kubectlOk(
    ["apply", "-n", ns, "-f", "-"],
    JSON.stringify({
      apiVersion: "v1",
      kind: "List",
      items: [
        JSON.parse(secret("labelled", { url: "postgres://geo:pw@db.example:5432/geo", username: "u", password: "p" }, OPT_IN)),
        // Someone else's credentials: the kind of Secret a GeoSite must not be able to send anywhere.
        JSON.parse(secret("other-workload", { url: "postgres://app:hunter2@db.internal:5432/app", username: "deploy", password: "hunter2" })),
        JSON.parse(secret("wrong-value", { url: "postgres://x" }, { [LABELS.credentials]: "false" })),
      ],
    }),
  );
  const kc = new KubeConfig();
  kc.loadFromFile(process.env.KUBECONFIG!);
  core = kc.makeApiClient(CoreV1Api);
  batch = kc.makeApiClient(BatchV1Api);
  const jobs = new Informer<V1Job>({
    name: "jobs",
    kubeConfig: kc,
    path: `/apis/batch/v1/namespaces/${ns}/jobs`,
    list: () => batch.listNamespacedJob({ namespace: ns }),
    log: createLogger({ name: "test", level: "error" }),
  });
  executor = new JobExecutor({ batch, core, jobs, settings: DEFAULT_JOB_SETTINGS });
});

describe("resolveEnv", () => {
  it("reads a labelled Secret", async () => {
    expect(await resolveEnv(core, ns, [fromSecret("labelled", "url"), { name: "PLAIN", value: "v" }])).toEqual({ URL: "postgres://geo:pw@db.example:5432/geo", PLAIN: "v" });
  });

  it("refuses a Secret without the label, naming the Secret, the label and the command that adds it", async () => {
    for (const name of ["other-workload", "wrong-value"]) {
      const err = await resolveEnv(core, ns, [fromSecret(name, "url")]).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SecretNotOptedInError);
      const message = (err as Error).message;
      expect(message).toContain(`Secret ${ns}/${name}`);
      expect(message).toContain(`kubectl label secret ${name} -n ${ns} geo.replication.dev/credentials=true`);
      expect(message).not.toContain("hunter2");
    }
  });

  it("refuses an unlabelled Secret even when the reference is optional", async () => {
    await expect(resolveEnv(core, ns, [fromSecret("other-workload", "password", true)])).rejects.toBeInstanceOf(SecretNotOptedInError);
  });

  it("still reports a missing Secret as missing", async () => {
    await expect(resolveEnv(core, ns, [fromSecret("no-such-secret", "url")])).rejects.toThrow(`Secret ${ns}/no-such-secret not found`);
    expect(await resolveEnv(core, ns, [fromSecret("no-such-secret", "url", true)])).toEqual({});
  });
});

describe("the manager's status paths", () => {
  const site = (secretName: string): GeoSite => ({
    apiVersion: "geo.replication.dev/v1alpha1",
    kind: "GeoSite",
    metadata: { name: "london", namespace: ns },
    spec: {
      role: "primary",
      database: { secretRef: { name: secretName } },
      objectStorage: { endpoint: "http://127.0.0.1:1", bucket: "b", credentialsSecretRef: { name: secretName } },
    },
  });

  it("surface the refusal with its own reason", async () => {
    const access = new SiteAccess(core);
    try {
      expect(await access.databaseURL(site("labelled"), "main")).toBe("postgres://geo:pw@db.example:5432/geo");
      const err = await access.databaseURL(site("other-workload"), "main").catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SecretNotOptedInError);
      expect(failureReason(err, Reason.DatabaseUnreachable)).toBe(Reason.SecretNotOptedIn);
      expect(failureReason(new Error("connection refused"), Reason.DatabaseUnreachable)).toBe(Reason.DatabaseUnreachable);
      await expect(blobStrategy.probeStorage!(site("other-workload"), access)).rejects.toBeInstanceOf(SecretNotOptedInError);
    } finally {
      await access.close();
    }
  });
});

describe("the Jobs executor", () => {
  it("creates a Job whose Secrets are all labelled", async () => {
    await executor.create(job("all-labelled", { env: [fromSecret("labelled", "url"), fromSecret("labelled", "password")] }));
    expect(jobExists("all-labelled")).toBe(true);
  });

  it("renders a worker run as a Job, under the same check", async () => {
    await expect(executor.start(workerRun("run-refused", [fromSecret("other-workload", "url")]))).rejects.toBeInstanceOf(SecretNotOptedInError);
    expect(jobExists("run-refused")).toBe(false);
    await executor.start(workerRun("run-labelled", [fromSecret("labelled", "url")]));
    expect(jobExists("run-labelled")).toBe(true);
  });

  it("counts a Job it created as an active run before its informer shows it, so no second run starts", async () => {
    // This executor's informer is never started: like a cache that lags behind the create.
    await executor.create(job("just-created", { env: [fromSecret("labelled", "url")] }));
    const run = executor.runs(ns, "t").find((r) => r.name === "just-created");
    expect(run).toMatchObject({ active: true, succeeded: false, failed: false });
  });

  const cases: [string, Refs][] = [
    ["env secretKeyRef", { env: [fromSecret("labelled", "url"), fromSecret("other-workload", "password")] }],
    ["optional env secretKeyRef", { env: [fromSecret("other-workload", "password", true)] }],
    ["envFrom", { containers: [{ name: "w", image: "geo-operator", envFrom: [{ secretRef: { name: "other-workload" } }] }] }],
    ["secret volume", { volumes: [{ name: "creds", secret: { secretName: "other-workload" } }] }],
    ["projected volume", { volumes: [{ name: "creds", projected: { sources: [{ secret: { name: "wrong-value" } }] } }] }],
    ["init container", { initContainers: [{ name: "init", image: "geo-operator", env: [fromSecret("other-workload", "username")] }] }],
  ];
  for (const [how, refs] of cases) {
    it(`refuses a Job that references an unlabelled Secret (${how}) and creates nothing`, async () => {
      const name = `refused-${how.replace(/[^a-z]+/g, "-")}`;
      const err = await executor.create(job(name, refs)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SecretNotOptedInError);
      expect((err as Error).message).toContain("geo.replication.dev/credentials=true");
      expect(jobExists(name)).toBe(false);
    });
  }

  it("refuses a Job whose required Secret does not exist, and allows a missing optional one", async () => {
    await expect(executor.create(job("missing-required", { env: [fromSecret("not-yet", "url")] }))).rejects.toThrow(`Secret ${ns}/not-yet not found`);
    expect(jobExists("missing-required")).toBe(false);
    await executor.create(job("missing-optional", { env: [fromSecret("labelled", "url"), fromSecret("not-yet", "password", true)] }));
    expect(jobExists("missing-optional")).toBe(true);
  });

  it("creates the Job once the Secret is labelled", async () => {
    const refused = job("after-label", { env: [fromSecret("late-label", "url")] });
    kubectlOk(["apply", "-n", ns, "-f", "-"], secret("late-label", { url: "postgres://x" }));
    await expect(executor.create(refused)).rejects.toBeInstanceOf(SecretNotOptedInError);
    kubectlOk(["label", "secret", "late-label", "-n", ns, "geo.replication.dev/credentials=true"]);
    await executor.create(refused);
    expect(jobExists("after-label")).toBe(true);
  });
});

describe("the in-process executor", () => {
  it("refuses a run whose env names an unlabelled Secret, and records no run", async () => {
    const inProcess = new InProcessExecutor({ core, log: createLogger({ name: "test", level: "error" }), onFinished: () => undefined });
    const run = workerRun("in-process", [fromSecret("other-workload", "password")]);
    await expect(inProcess.start(run)).rejects.toBeInstanceOf(SecretNotOptedInError);
    expect(inProcess.runs(ns, "t")).toEqual([]);
  });
});

describe("kubectl geo", () => {
  it("reports an unlabelled Secret as such, not as an unreachable API server", async () => {
    const access = new SiteAccess(core);
    const databases = new SiteDatabases(access);
    const site: GeoSite = { apiVersion: "geo.replication.dev/v1alpha1", kind: "GeoSite", metadata: { name: "london", namespace: ns }, spec: { role: "primary", database: { secretRef: { name: "other-workload" } } } };
    const err = await databases.open(site).catch((e: unknown) => e);
    await access.close();
    // The registry API's answer to `kubectl geo registries`: the Secret and how to opt it in.
    expect(err).toBeInstanceOf(ApiError);
    expect((err as Error).message).toContain(`kubectl label secret other-workload -n ${ns} geo.replication.dev/credentials=true`);
    expect((err as Error).message).not.toContain("cannot reach");
    expect((err as Error).message).not.toContain("hunter2");
  });
});
