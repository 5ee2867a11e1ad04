/**
 * Plays the kubelet (and the Job controller) for the operator's Jobs in a cluster that has neither:
 * each new Job's container command runs as a local process with the Job's env, Secret references
 * resolved the way the kubelet resolves them, and the Job's status is written back as the Job
 * controller would (startTime, Complete/Failed, completionTime, succeeded/failed).
 *
 * `geo-operator` in a container command maps to this checkout's bin/geo-operator.js, the same
 * entry point the image runs.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { BatchV1Api, CoreV1Api, type KubeConfig, type V1Job, type V1JobCondition } from "@kubernetes/client-node";
import { resolveEnv } from "../../src/k8s/env.ts";
import { Informer } from "../../src/k8s/informer.ts";
import { createLogger } from "../../src/util/log.ts";
import { REPO_ROOT } from "../../hack/localenv/tools.ts";

export interface KubeletRun {
  job: string;
  args: string[];
  code: number;
  stdout: string;
  stderr: string;
}

export class FakeKubelet {
  readonly runs: KubeletRun[] = [];
  private readonly informer: Informer<V1Job>;
  private readonly batch: BatchV1Api;
  private readonly core: CoreV1Api;
  private readonly seen = new Set<string>();
  private readonly active = new Set<Promise<unknown>>();
  private readonly extraEnv: Record<string, string>;

  constructor(kubeConfig: KubeConfig, opts: { namespace: string; extraEnv?: Record<string, string> }) {
    this.batch = kubeConfig.makeApiClient(BatchV1Api);
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.extraEnv = opts.extraEnv ?? {};
    this.informer = new Informer<V1Job>({
      name: "fake-kubelet",
      kubeConfig,
      path: `/apis/batch/v1/namespaces/${opts.namespace}/jobs`,
      list: () => this.batch.listNamespacedJob({ namespace: opts.namespace }),
      log: createLogger({ name: "fake-kubelet", level: "warn" }),
      relistIntervalMs: 10_000,
    });
    this.informer.on("add", (job) => this.maybeRun(job));
  }

  start(): void {
    this.informer.start();
  }

  async stop(): Promise<void> {
    this.informer.stop();
    await Promise.allSettled([...this.active]);
  }

  private maybeRun(job: V1Job): void {
    const uid = job.metadata?.uid ?? "";
    if (this.seen.has(uid) || job.status?.conditions?.length) return;
    this.seen.add(uid);
    // A status write that fails (the API server going away at teardown) must not crash the run.
    const p = this.run(job)
      .catch((err: unknown) => this.runs.push({ job: job.metadata?.name ?? "", args: [], code: -1, stdout: "", stderr: String(err) }))
      .finally(() => this.active.delete(p));
    this.active.add(p);
  }

  private async run(job: V1Job): Promise<void> {
    const name = job.metadata!.name!;
    const namespace = job.metadata!.namespace!;
    const container = job.spec!.template.spec!.containers[0]!;
    const startTime = new Date();
    await this.writeStatus(name, namespace, (s) => ({ ...s, startTime: startTime as never, active: 1 }));
    let env: Record<string, string>;
    try {
      env = await resolveEnv(this.core, namespace, container.env ?? []);
    } catch (err) {
      // The kubelet would report CreateContainerConfigError; here the Job simply fails.
      return this.finish(name, namespace, 1, `CreateContainerConfigError: ${(err as Error).message}`);
    }
    const [cmd, ...cmdArgs] = container.command ?? [];
    if (cmd !== "geo-operator") throw new Error(`fake kubelet only runs geo-operator, not ${cmd}`);
    const args = [join(REPO_ROOT, "bin/geo-operator.js"), ...cmdArgs, ...(container.args ?? [])];
    const child = spawn(process.execPath, args, {
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env, ...this.extraEnv },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    const code = await new Promise<number>((resolve) => child.on("close", (c) => resolve(c ?? 1)));
    this.runs.push({ job: name, args: args.slice(1), code, stdout, stderr });
    await this.finish(name, namespace, code, code === 0 ? undefined : `exit code ${code}: ${stderr.trim().split("\n").pop() ?? ""}`);
  }

  /** startTime stays as the server stored it (second precision): a different value is refused. */
  private async finish(name: string, namespace: string, code: number, message?: string): Promise<void> {
    const now = new Date();
    const cond = (type: string, reason: string, msg?: string): V1JobCondition => ({
      type,
      status: "True",
      reason,
      ...(msg ? { message: msg } : {}),
      lastProbeTime: now as never,
      lastTransitionTime: now as never,
    });
    await this.writeStatus(name, namespace, (s) =>
      code === 0
        ? { ...s, active: 0, succeeded: 1, completionTime: now as never, conditions: [cond("SuccessCriteriaMet", "CompletionsReached"), cond("Complete", "CompletionsReached")] }
        : { ...s, active: 0, failed: 1, conditions: [cond("FailureTarget", "BackoffLimitExceeded", message), cond("Failed", "BackoffLimitExceeded", message)] },
    );
  }

  private async writeStatus(name: string, namespace: string, update: (s: NonNullable<V1Job["status"]>) => NonNullable<V1Job["status"]>): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        const job = await this.batch.readNamespacedJobStatus({ name, namespace });
        job.status = update(job.status ?? {});
        await this.batch.replaceNamespacedJobStatus({ name, namespace, body: job });
        return;
      } catch (err) {
        if ((err as { code?: number }).code === 404) return;
        if ((err as { code?: number }).code !== 409 || attempt === 4) throw err;
      }
    }
  }
}
