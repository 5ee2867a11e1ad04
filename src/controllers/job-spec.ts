/**
 * The Job that carries out one worker run (worker-run.ts) for the Jobs executor. Pure, so it is
 * unit-tested without a cluster.
 *
 * The pod runs under the restricted Pod Security profile; the Job is owned by its ReplicableType
 * and labelled with its type, site, kind and owner UID.
 */
import { restrictedContainerSecurityContext, restrictedPodSecurityContext } from "../k8s/pod-security.ts";
import type { V1Job } from "@kubernetes/client-node";
import { API_VERSION, LABELS } from "../api/v1alpha1/resources.ts";
import type { WorkerRun } from "./worker-run.ts";

export { jobDeadlineSeconds, jobName, type WorkerKind } from "./worker-run.ts";

export interface JobSettings {
  image: string;
  imagePullPolicy?: string;
  serviceAccountName?: string;
  /** How long one run keeps claiming work (passed as --max-run). */
  maxRunSeconds: number;
  backoffLimit: number;
  ttlSecondsAfterFinished: number;
  resources: { requests: Record<string, string>; limits: Record<string, string> };
}

export const DEFAULT_JOB_SETTINGS: JobSettings = {
  image: "geo-operator:latest",
  maxRunSeconds: 600,
  backoffLimit: 2,
  ttlSecondsAfterFinished: 3600,
  resources: { requests: { cpu: "100m", memory: "128Mi" }, limits: { memory: "512Mi" } },
};

export const SCHEDULED_AT_ANNOTATION = "geo.replication.dev/scheduled-at";

/** The Job for `run`; `settings` say how pods run here (image, service account, resources, retries). */
export function renderJob(run: WorkerRun, settings: JobSettings): V1Job {
  const labels = {
    [LABELS.managedBy]: "geo-operator",
    [LABELS.type]: run.typeName,
    [LABELS.site]: run.site,
    [LABELS.kind]: run.kind,
    [LABELS.ownerUID]: run.owner.uid,
  };
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: {
      name: run.name,
      namespace: run.namespace,
      labels,
      annotations: { [SCHEDULED_AT_ANNOTATION]: run.scheduledAt.toISOString() },
      ownerReferences: [{ apiVersion: API_VERSION, kind: "ReplicableType", name: run.owner.name, uid: run.owner.uid, controller: true, blockOwnerDeletion: true }],
    },
    spec: {
      backoffLimit: settings.backoffLimit,
      ttlSecondsAfterFinished: settings.ttlSecondsAfterFinished,
      activeDeadlineSeconds: run.deadlineSeconds,
      parallelism: run.parallelism,
      completions: run.parallelism,
      ...(run.parallelism > 1 ? { completionMode: "Indexed" } : {}),
      template: {
        metadata: { labels },
        spec: {
          restartPolicy: "Never",
          ...(settings.serviceAccountName ? { serviceAccountName: settings.serviceAccountName } : {}),
          automountServiceAccountToken: false,
          securityContext: restrictedPodSecurityContext(),
          volumes: run.volumes,
          containers: [
            {
              name: "worker",
              image: settings.image,
              ...(settings.imagePullPolicy ? { imagePullPolicy: settings.imagePullPolicy } : {}),
              command: ["geo-operator"],
              args: ["worker", run.kind, "--type", run.options.type, "--site", run.options.site, "--max-run", `${run.options.maxRunSeconds}s`],
              env: run.env,
              resources: settings.resources,
              volumeMounts: run.mounts,
              securityContext: restrictedContainerSecurityContext(),
            },
          ],
        },
      },
    },
  };
}
