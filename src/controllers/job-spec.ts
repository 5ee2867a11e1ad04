/**
 * The Job that runs one worker pass for one type and site. Pure: built from the custom resources
 * alone, so it is unit-tested without a cluster.
 *
 * Secrets are referenced (env valueFrom.secretKeyRef), never copied into the spec; the pod runs
 * under the restricted Pod Security profile; the name is deterministic for (type, site, kind,
 * scheduled time), so a retried reconcile cannot create the same run twice.
 */
import { createHash } from "node:crypto";
import type { V1EnvVar, V1Job, V1Volume, V1VolumeMount } from "@kubernetes/client-node";
import { API_VERSION, LABELS, type GeoSite, type ReplicableType } from "../api/v1alpha1/resources.ts";
import { parseDuration } from "../api/v1alpha1/duration.ts";

import type { WorkerKind } from "../workers/kinds.ts";

export type { WorkerKind };

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

/** DNS-1123 label ≤ 63 chars; long names keep a hash of the full name so they stay unique. */
export function jobName(typeName: string, site: string, kind: WorkerKind, scheduledAt: Date): string {
  const stamp = Math.floor(scheduledAt.getTime() / 1000).toString(36);
  const full = `${typeName}-${site}-${kind}-${stamp}`.toLowerCase().replace(/[^a-z0-9-]/g, "-");
  if (full.length <= 63) return full;
  const hash = createHash("sha256").update(full).digest("hex").slice(0, 8);
  return `${full.slice(0, 63 - 10 - stamp.length)}-${hash}-${stamp}`.replace(/-+/g, "-");
}

const secretEnv = (name: string, secret: string, key: string, optional = false): V1EnvVar => ({
  name,
  valueFrom: { secretKeyRef: { name: secret, key, ...(optional ? { optional: true } : {}) } },
});

/** Env of a worker: specs as JSON (not secret), credentials by reference. */
export function workerEnv(type: ReplicableType, site: GeoSite, primary: GeoSite): V1EnvVar[] {
  const env: V1EnvVar[] = [
    { name: "GEO_TYPE_SPEC", value: JSON.stringify(type.spec) },
    { name: "GEO_SITE_SPEC", value: JSON.stringify(site.spec) },
    { name: "GEO_PRIMARY_SITE_SPEC", value: JSON.stringify(primary.spec) },
    { name: "GEO_PRIMARY_SITE_NAME", value: primary.metadata.name },
    { name: "HOME", value: "/tmp" },
  ];
  const db = site.spec.database;
  if (site.spec.role === "primary") {
    env.push(secretEnv("GEO_PRIMARY_DB_URL", db.secretRef.name, db.secretRef.key ?? "url"));
  } else {
    const replica = db.primaryReplicaSecretRef!;
    env.push(secretEnv("GEO_PRIMARY_DB_URL", replica.name, replica.key ?? "url"));
    env.push(secretEnv("GEO_TRACKING_DB_URL", db.secretRef.name, db.secretRef.key ?? "url"));
  }
  if (type.spec.strategy === "blob") {
    const p = primary.spec.objectStorage?.credentialsSecretRef.name;
    if (p) env.push(secretEnv("GEO_PRIMARY_S3_ACCESS_KEY_ID", p, "AWS_ACCESS_KEY_ID"), secretEnv("GEO_PRIMARY_S3_SECRET_ACCESS_KEY", p, "AWS_SECRET_ACCESS_KEY"));
    const s = site.spec.role === "secondary" ? site.spec.objectStorage?.credentialsSecretRef.name : undefined;
    if (s) env.push(secretEnv("GEO_SECONDARY_S3_ACCESS_KEY_ID", s, "AWS_ACCESS_KEY_ID"), secretEnv("GEO_SECONDARY_S3_SECRET_ACCESS_KEY", s, "AWS_SECRET_ACCESS_KEY"));
  } else {
    const g = primary.spec.git?.credentialsSecretRef?.name;
    if (g) env.push(secretEnv("GEO_PRIMARY_GIT_USERNAME", g, "username", true), secretEnv("GEO_PRIMARY_GIT_PASSWORD", g, "password", true));
  }
  return env;
}

/** Run time, plus the longest a last item may take, plus slack for start-up and shutdown. */
export function jobDeadlineSeconds(maxRunSeconds: number, type: ReplicableType): number {
  const itemSeconds = Math.ceil(parseDuration(type.spec.timeouts?.sync ?? "3h") / 1000);
  return Math.max(maxRunSeconds * 2, maxRunSeconds + itemSeconds) + 300;
}

export function buildWorkerJob(params: {
  type: ReplicableType;
  site: GeoSite;
  primary: GeoSite;
  kind: WorkerKind;
  scheduledAt: Date;
  settings: JobSettings;
}): V1Job {
  const { type, site, primary, kind, settings } = params;
  const name = jobName(type.metadata.name, site.metadata.name, kind, params.scheduledAt);
  const parallelism = kind === "consistency" ? 1 : (type.spec.parallelism ?? 1);
  const labels = {
    [LABELS.managedBy]: "geo-operator",
    [LABELS.type]: type.metadata.name,
    [LABELS.site]: site.metadata.name,
    [LABELS.kind]: kind,
    [LABELS.ownerUID]: type.metadata.uid ?? "",
  };
  const volumes: V1Volume[] = [{ name: "tmp", emptyDir: {} }];
  const mounts: V1VolumeMount[] = [{ name: "tmp", mountPath: "/tmp" }];
  const git = site.spec.git;
  if (type.spec.strategy === "repository" && site.spec.role === "secondary" && git?.mirrorRoot && git.persistentVolumeClaim) {
    volumes.push({ name: "mirrors", persistentVolumeClaim: { claimName: git.persistentVolumeClaim.claimName } });
    mounts.push({ name: "mirrors", mountPath: git.mirrorRoot });
  }
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: {
      name,
      namespace: type.metadata.namespace,
      labels,
      annotations: { "geo.replication.dev/scheduled-at": params.scheduledAt.toISOString() },
      ownerReferences: [
        { apiVersion: API_VERSION, kind: "ReplicableType", name: type.metadata.name, uid: type.metadata.uid ?? "", controller: true, blockOwnerDeletion: true },
      ],
    },
    spec: {
      backoffLimit: settings.backoffLimit,
      ttlSecondsAfterFinished: settings.ttlSecondsAfterFinished,
      // The worker stops claiming at --max-run, but an item claimed just before may take up to the
      // type's per-item timeout: the deadline only catches a hung pod, never a large item.
      activeDeadlineSeconds: jobDeadlineSeconds(settings.maxRunSeconds, type),
      parallelism,
      completions: parallelism,
      ...(parallelism > 1 ? { completionMode: "Indexed" } : {}),
      template: {
        metadata: { labels },
        spec: {
          restartPolicy: "Never",
          ...(settings.serviceAccountName ? { serviceAccountName: settings.serviceAccountName } : {}),
          automountServiceAccountToken: false,
          securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532, seccompProfile: { type: "RuntimeDefault" } },
          volumes,
          containers: [
            {
              name: "worker",
              image: settings.image,
              ...(settings.imagePullPolicy ? { imagePullPolicy: settings.imagePullPolicy } : {}),
              command: ["geo-operator"],
              args: ["worker", kind, "--type", type.spec.name, "--site", site.metadata.name, "--max-run", `${settings.maxRunSeconds}s`],
              env: workerEnv(type, site, primary),
              resources: settings.resources,
              volumeMounts: mounts,
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                runAsNonRoot: true,
                capabilities: { drop: ["ALL"] },
                seccompProfile: { type: "RuntimeDefault" },
              },
            },
          ],
        },
      },
    },
  };
}
