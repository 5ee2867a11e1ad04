/**
 * Runs workers inside the manager process instead of as Jobs (`make demo`, small installs): the
 * run's env is resolved from Secrets as the kubelet would, and the worker runs with the run's
 * options through the same code a Job's pod runs. Volumes are not mounted: in-process, the paths
 * they would be mounted at are the manager's own. Runs are remembered in memory (the last few
 * per kind).
 */
import type { CoreV1Api } from "@kubernetes/client-node";
import { resolveEnv } from "../k8s/env.ts";
import type { Logger } from "../util/log.ts";
import type { RunExecutor } from "./executor.ts";
import type { RunRecord } from "./schedule.ts";
import type { WorkerRun } from "./worker-run.ts";

const KEEP_PER_KIND = 3;

export class InProcessExecutor implements RunExecutor {
  private readonly records = new Map<string, RunRecord[]>();
  private readonly controllers = new Map<string, AbortController>();
  private readonly core: CoreV1Api;
  private readonly log: Logger;
  private readonly onFinished: (namespace: string, typeName: string, run: RunRecord) => void;

  constructor(opts: { core: CoreV1Api; log: Logger; onFinished: (namespace: string, typeName: string, run: RunRecord) => void }) {
    this.core = opts.core;
    this.log = opts.log;
    this.onFinished = opts.onFinished;
  }

  runs(namespace: string, typeName: string): RunRecord[] {
    return [...(this.records.get(`${namespace}/${typeName}`) ?? [])];
  }

  async start(spec: WorkerRun): Promise<void> {
    const { namespace, typeName, kind } = spec;
    const key = `${namespace}/${typeName}`;
    if (this.records.get(key)?.some((r) => r.name === spec.name)) return;
    // Resolved before the run is recorded: a Secret that is missing or not opted in fails start()
    // instead of leaving a run that looks active forever.
    const env = { ...(await resolveEnv(this.core, namespace, spec.env)), PATH: process.env.PATH ?? "" };
    const list = this.records.get(key) ?? [];
    if (list.some((r) => r.name === spec.name)) return; // started while the env was read
    const run: RunRecord = {
      name: spec.name,
      site: spec.site,
      kind,
      scheduledAt: spec.scheduledAt,
      active: true,
      succeeded: false,
      failed: false,
      startTime: new Date(),
    };
    const kept = [...list.filter((r) => r.kind !== kind), ...list.filter((r) => r.kind === kind).slice(-(KEEP_PER_KIND - 1)), run];
    this.records.set(key, kept);
    const abort = new AbortController();
    this.controllers.set(run.name, abort);
    const finish = (code: number, message?: string) => {
      run.active = false;
      run.succeeded = code === 0;
      run.failed = code !== 0;
      run.completionTime = new Date();
      if (message) run.message = message;
      this.controllers.delete(run.name);
      this.onFinished(namespace, typeName, run);
    };
    // The worker code (storage SDKs, git) is loaded only when a run starts in this process.
    const { runWorker } = await import("../workers/run.ts");
    const options = { type: spec.options.type, site: spec.options.site, maxRun: `${spec.options.maxRunSeconds}s`, logLevel: "warn" };
    void runWorker(kind, options, env, {
      signal: abort.signal,
      out: (line) => this.log.info({ run: run.name }, line),
    }).then(
      (code) => finish(code, code === 0 ? undefined : `worker exited with code ${code}`),
      (err: unknown) => finish(1, err instanceof Error ? err.message : String(err)),
    );
  }

  async deleteAll(namespace: string, typeName: string): Promise<void> {
    for (const run of this.records.get(`${namespace}/${typeName}`) ?? []) this.controllers.get(run.name)?.abort();
    this.records.delete(`${namespace}/${typeName}`);
  }

  /** Aborts every active run (manager shutdown). */
  stopAll(): void {
    for (const c of this.controllers.values()) c.abort();
  }
}
