/**
 * Resolves a container's env the way the kubelet does for the parts we use (value and
 * valueFrom.secretKeyRef), for reading Secrets named by GeoSites and for running a Job's command
 * outside a pod: the manager's SiteAccess, the in-process executor, the kubectl plugin and the
 * test kubelet. Unlike the kubelet, it reads only Secrets labelled
 * geo.replication.dev/credentials=true (see secrets.ts) and throws SecretNotOptedInError for any
 * other. Secret values exist only in the returned object, never in a spec.
 */
import type { CoreV1Api, V1EnvVar } from "@kubernetes/client-node";
import { readCredentialsSecret } from "./secrets.ts";

export { SecretNotOptedInError } from "./secrets.ts";

/** Values of `vars`; throws SecretNotOptedInError for an unlabelled Secret, Error for a missing required one or key. */
export async function resolveEnv(core: CoreV1Api, namespace: string, vars: readonly V1EnvVar[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const secrets = new Map<string, Record<string, string> | null>();
  for (const v of vars) {
    if (v.value !== undefined) {
      out[v.name] = v.value;
      continue;
    }
    const ref = v.valueFrom?.secretKeyRef;
    if (!ref?.name) continue;
    const secretName = ref.name;
    if (!secrets.has(secretName)) {
      const s = await readCredentialsSecret(core, namespace, secretName);
      secrets.set(secretName, s && Object.fromEntries(Object.entries(s.data ?? {}).map(([k, b64]) => [k, Buffer.from(b64, "base64").toString("utf8")])));
    }
    const data = secrets.get(secretName);
    const value = data?.[ref.key];
    if (value === undefined) {
      if (ref.optional) continue;
      throw new Error(data ? `Secret ${namespace}/${secretName} has no key ${ref.key}` : `Secret ${namespace}/${secretName} not found`);
    }
    out[v.name] = value;
  }
  return out;
}
