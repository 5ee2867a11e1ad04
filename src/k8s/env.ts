/**
 * Resolves a container's env the way the kubelet does for the parts we use (value and
 * valueFrom.secretKeyRef), for running a Job's command outside a pod: the in-process executor
 * and the test kubelet. Secret values exist only in the returned object, never in a spec.
 */
import { ApiException, type CoreV1Api, type V1EnvVar } from "@kubernetes/client-node";

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
      try {
        const s = await core.readNamespacedSecret({ name: secretName, namespace });
        secrets.set(secretName, Object.fromEntries(Object.entries(s.data ?? {}).map(([k, b64]) => [k, Buffer.from(b64, "base64").toString("utf8")])));
      } catch (err) {
        if (err instanceof ApiException && err.code === 404) secrets.set(secretName, null);
        else throw err;
      }
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
