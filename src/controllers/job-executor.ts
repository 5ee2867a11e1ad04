/**
 * Runs workers as Kubernetes Jobs, seen through an informer on the Jobs the operator owns. A Job
 * is created only when every Secret its pod references is opted in (k8s/secrets.ts): the kubelet
 * would hand any Secret of the namespace to the pod.
 */
import { ApiException, type BatchV1Api, type CoreV1Api, type V1Job } from "@kubernetes/client-node";
import { LABELS } from "../api/v1alpha1/resources.ts";
import type { Informer } from "../k8s/informer.ts";
import { assertPodSecretsOptedIn } from "../k8s/secrets.ts";
import type { WorkerKind } from "../workers/kinds.ts";
import type { RunExecutor } from "./executor.ts";
import { renderJob, SCHEDULED_AT_ANNOTATION, type JobSettings } from "./job-spec.ts";
import type { RunRecord } from "./schedule.ts";
import type { WorkerRun } from "./worker-run.ts";

export const MANAGED_JOBS_SELECTOR = `${LABELS.managedBy}=geo-operator`;

export function runRecordOfJob(job: V1Job): RunRecord {
  const conditions = job.status?.conditions ?? [];
  const isTrue = (type: string) => conditions.find((c) => c.type === type && c.status === "True");
  const complete = isTrue("Complete");
  const failed = isTrue("Failed");
  const labels = job.metadata?.labels ?? {};
  const scheduled = job.metadata?.annotations?.[SCHEDULED_AT_ANNOTATION];
  const created = job.metadata?.creationTimestamp;
  const completion = job.status?.completionTime ?? failed?.lastTransitionTime;
  return {
    name: job.metadata?.name ?? "",
    site: labels[LABELS.site] ?? "",
    kind: labels[LABELS.kind] as WorkerKind,
    scheduledAt: new Date(scheduled ?? created ?? 0),
    active: !complete && !failed,
    succeeded: !!complete,
    failed: !!failed,
    ...(job.status?.startTime ? { startTime: new Date(job.status.startTime) } : {}),
    ...(completion ? { completionTime: new Date(completion) } : {}),
    ...(failed?.message ? { message: failed.message } : {}),
  };
}

/** How long a created Job is remembered while the informer has not shown it yet. */
const CREATED_MEMORY_MS = 5 * 60_000;

export class JobExecutor implements RunExecutor {
  private readonly batch: BatchV1Api;
  private readonly core: CoreV1Api;
  private readonly jobs: Informer<V1Job>;
  private readonly settings: JobSettings;
  /**
   * Jobs this process created that the informer may not show yet (controller-runtime's
   * "expectations"): without them a reconcile right after a create would see no active run of
   * that kind and start a second one, which happened on a loaded machine.
   */
  private readonly created = new Map<string, { job: V1Job; at: number }>();

  constructor(opts: { batch: BatchV1Api; core: CoreV1Api; jobs: Informer<V1Job>; settings: JobSettings }) {
    this.batch = opts.batch;
    this.core = opts.core;
    this.jobs = opts.jobs;
    this.settings = opts.settings;
  }

  runs(namespace: string, typeName: string): RunRecord[] {
    const seen = this.jobs.list(namespace).filter((j) => j.metadata?.labels?.[LABELS.type] === typeName);
    const names = new Set(seen.map((j) => j.metadata?.name));
    const now = Date.now();
    const pending: V1Job[] = [];
    for (const [key, { job, at }] of this.created) {
      if (names.has(job.metadata?.name) || now - at > CREATED_MEMORY_MS) {
        if (job.metadata?.namespace === namespace) this.created.delete(key);
        continue;
      }
      if (job.metadata?.namespace === namespace && job.metadata?.labels?.[LABELS.type] === typeName) pending.push(job);
    }
    return [...seen, ...pending].map(runRecordOfJob);
  }

  /** Creates the run's Job; throws SecretNotOptedInError (and creates nothing) if its pod references an unlabelled Secret. */
  async start(run: WorkerRun): Promise<void> {
    await this.create(renderJob(run, this.settings));
  }

  /** Creates `job` after checking every Secret its pod references is opted in. */
  async create(job: V1Job): Promise<void> {
    const namespace = job.metadata!.namespace!;
    await assertPodSecretsOptedIn(this.core, namespace, job.spec!.template.spec!);
    try {
      const created = await this.batch.createNamespacedJob({ namespace, body: job });
      this.created.set(`${namespace}/${job.metadata!.name}`, { job: created, at: Date.now() });
    } catch (err) {
      if (err instanceof ApiException && err.code === 409) return; // this run was already created
      throw err;
    }
  }

  async deleteAll(namespace: string, typeName: string): Promise<void> {
    for (const [key, { job }] of this.created) {
      if (job.metadata?.namespace === namespace && job.metadata?.labels?.[LABELS.type] === typeName) this.created.delete(key);
    }
    const list = await this.batch.listNamespacedJob({ namespace, labelSelector: `${MANAGED_JOBS_SELECTOR},${LABELS.type}=${typeName}` });
    for (const job of list.items) {
      try {
        await this.batch.deleteNamespacedJob({ name: job.metadata!.name!, namespace, propagationPolicy: "Background" });
      } catch (err) {
        if (!(err instanceof ApiException && err.code === 404)) throw err;
      }
    }
  }
}
