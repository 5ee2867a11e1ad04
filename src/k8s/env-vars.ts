/**
 * Env vars that name a Secret's key rather than carry its value. Kept apart from env.ts, which
 * reads Secrets through the Kubernetes client: the workers, the CRD and schema printers build
 * these references but never talk to the API server, and importing the client costs every worker
 * Pod about half a second of CPU at start-up.
 */
import type { V1EnvVar } from "@kubernetes/client-node";

/** An env var whose value the kubelet (or `resolveEnv`) reads from a Secret's key: a reference, never the value. */
export function secretEnv(name: string, secret: string, key: string, optional = false): V1EnvVar {
  return { name, valueFrom: { secretKeyRef: { name: secret, key, ...(optional ? { optional: true } : {}) } } };
}
