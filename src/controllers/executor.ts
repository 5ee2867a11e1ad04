/**
 * How worker runs are carried out. The controller asks an executor which runs exist and to start
 * one; it never knows whether that is a Kubernetes Job or a promise in this process.
 */
import type { RunRecord } from "./schedule.ts";
import type { WorkerRun } from "./worker-run.ts";

export interface RunExecutor {
  /** Runs (active and finished) of one ReplicableType, all sites and kinds. */
  runs(namespace: string, typeName: string): RunRecord[];
  /** Starts the run. Idempotent on the run's name. */
  start(run: WorkerRun): Promise<void>;
  /** Stops and forgets every run of a type (used when the type is deleted). */
  deleteAll(namespace: string, typeName: string): Promise<void>;
}
