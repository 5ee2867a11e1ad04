/**
 * Status writes as JSON merge patches on the status subresource. A patch carries no
 * resourceVersion, so a status computed from a slightly older cache does not fail with a conflict
 * (the next reconcile corrects it); fields that disappeared are sent as null so they are removed.
 */
import { PatchStrategy, setHeaderOptions, type CustomObjectsApi } from "@kubernetes/client-node";
import { GROUP, VERSION } from "../api/v1alpha1/resources.ts";

const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === "object" && !Array.isArray(v);

/** `next` with every key `previous` had and `next` lacks set to null, in nested objects too (a merge patch merges them; lists are replaced whole). */
function withRemovals(previous: Record<string, unknown>, next: Record<string, unknown>): Record<string, unknown> {
  const patch: Record<string, unknown> = { ...next };
  for (const [key, before] of Object.entries(previous)) {
    if (next[key] === undefined) patch[key] = null;
    else if (isObject(before) && isObject(next[key])) patch[key] = withRemovals(before, next[key]);
  }
  return patch;
}

export function statusMergePatch(previous: object | undefined, next: object): Record<string, unknown> {
  return { status: withRemovals((previous ?? {}) as Record<string, unknown>, next as Record<string, unknown>) };
}

export async function patchStatus(
  custom: CustomObjectsApi,
  target: { plural: string; namespace: string; name: string },
  previous: object | undefined,
  next: object,
): Promise<void> {
  await custom.patchNamespacedCustomObjectStatus(
    { group: GROUP, version: VERSION, plural: target.plural, namespace: target.namespace, name: target.name, body: statusMergePatch(previous, next) },
    setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
  );
}

/** Sets metadata.finalizers with a merge patch guarded by resourceVersion (lists are replaced whole). */
export async function patchFinalizers(
  custom: CustomObjectsApi,
  target: { plural: string; namespace: string; name: string; resourceVersion?: string },
  finalizers: string[],
): Promise<void> {
  await custom.patchNamespacedCustomObject(
    {
      group: GROUP,
      version: VERSION,
      plural: target.plural,
      namespace: target.namespace,
      name: target.name,
      body: { metadata: { finalizers, ...(target.resourceVersion ? { resourceVersion: target.resourceVersion } : {}) } },
    },
    setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
  );
}
