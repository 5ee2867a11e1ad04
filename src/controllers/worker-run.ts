/**
 * One value describes one worker run, for both executors: the Jobs executor renders it as a Job
 * (job-spec.ts `renderJob`), the in-process executor resolves its env and runs the worker with its
 * options. Pure: built from the custom resources alone, so it is unit-tested without a cluster.
 *
 * Secrets are referenced (env valueFrom.secretKeyRef), never copied into the run; the name is
 * deterministic for (type, site, kind, scheduled time), so a retried reconcile cannot start the
 * same run twice. What the type's strategy needs (credentials, volumes) comes from its definition.
 */
import { createHash } from "node:crypto";
import type { V1EnvVar, V1Volume, V1VolumeMount } from "@kubernetes/client-node";
import { parseDuration } from "../api/v1alpha1/duration.ts";
import type { GeoSite, ReplicableType } from "../api/v1alpha1/resources.ts";
import { strategyFor } from "../strategies/catalog.ts";
import { siteRunEnv } from "../workers/environment.ts";
import type { WorkerKind } from "../workers/kinds.ts";

export type { WorkerKind };

export interface WorkerRun {
  /** Deterministic; the Job's name, or the in-process run's. */
  name: string;
  namespace: string;
  /** The ReplicableType's object name (metadata.name), as in the type label. */
  typeName: string;
  site: string;
  kind: WorkerKind;
  scheduledAt: Date;
  /** The worker's command-line options (`geo-operator worker <kind> --type --site --max-run`). */
  options: { type: string; site: string; maxRunSeconds: number };
  /** Specs as values, credentials as Secret references. */
  env: V1EnvVar[];
  volumes: V1Volume[];
  mounts: V1VolumeMount[];
  /** Pods sharing the work (1 for consistency). */
  parallelism: number;
  /** Longest the run may take before it counts as hung (the Job's activeDeadlineSeconds). */
  deadlineSeconds: number;
  /** The ReplicableType that owns the run. */
  owner: { name: string; uid: string };
}

/** DNS-1123 label ≤ 63 chars; long names keep a hash of the full name so they stay unique. */
export function jobName(typeName: string, site: string, kind: WorkerKind, scheduledAt: Date): string {
  const stamp = Math.floor(scheduledAt.getTime() / 1000).toString(36);
  const full = `${typeName}-${site}-${kind}-${stamp}`.toLowerCase().replace(/[^a-z0-9-]/g, "-");
  if (full.length <= 63) return full;
  const hash = createHash("sha256").update(full).digest("hex").slice(0, 8);
  return `${full.slice(0, 63 - 10 - stamp.length)}-${hash}-${stamp}`.replace(/-+/g, "-");
}

/** Env of a worker: the type's spec as JSON, then the site's part of the contract (specs as values, database URLs by reference). */
export function workerEnv(type: ReplicableType, site: GeoSite, primary: GeoSite): V1EnvVar[] {
  return [{ name: "GEO_TYPE_SPEC", value: JSON.stringify(type.spec) }, ...siteRunEnv(site, primary), { name: "HOME", value: "/tmp" }];
}

/** Run time, plus the longest a last item may take, plus slack for start-up and shutdown. */
export function jobDeadlineSeconds(maxRunSeconds: number, type: ReplicableType): number {
  const itemSeconds = Math.ceil(parseDuration(type.spec.timeouts?.sync ?? "3h") / 1000);
  return Math.max(maxRunSeconds * 2, maxRunSeconds + itemSeconds) + 300;
}

export function buildWorkerRun(params: {
  type: ReplicableType;
  site: GeoSite;
  primary: GeoSite;
  kind: WorkerKind;
  scheduledAt: Date;
  /** How long the run keeps claiming work (the worker's --max-run). */
  maxRunSeconds: number;
}): WorkerRun {
  const { type, site, primary, kind } = params;
  const strategy = strategyFor(type.spec.strategy);
  const storage = strategy.workerStorage(strategy.parseSettings(type.spec), site, primary);
  return {
    name: jobName(type.metadata.name, site.metadata.name, kind, params.scheduledAt),
    namespace: type.metadata.namespace,
    typeName: type.metadata.name,
    site: site.metadata.name,
    kind,
    scheduledAt: params.scheduledAt,
    options: { type: type.spec.name, site: site.metadata.name, maxRunSeconds: params.maxRunSeconds },
    env: [...workerEnv(type, site, primary), ...storage.env],
    volumes: [{ name: "tmp", emptyDir: {} }, ...storage.volumes],
    mounts: [{ name: "tmp", mountPath: "/tmp" }, ...storage.mounts],
    parallelism: kind === "consistency" ? 1 : (type.spec.parallelism ?? 1),
    // The worker stops claiming at --max-run, but an item claimed just before may take up to the
    // type's per-item timeout: the deadline only catches a hung pod, never a large item.
    deadlineSeconds: jobDeadlineSeconds(params.maxRunSeconds, type),
    owner: { name: type.metadata.name, uid: type.metadata.uid ?? "" },
  };
}
