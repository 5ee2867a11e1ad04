/**
 * Status writes as JSON merge patches on the status subresource. A patch carries no
 * resourceVersion, so a status computed from a slightly older cache does not fail with a conflict
 * (the next reconcile corrects it); fields that disappeared are sent as null so they are removed.
 */
import { PatchStrategy, setHeaderOptions, type CustomObjectsApi } from "@kubernetes/client-node";
import { GROUP, VERSION } from "../api/v1alpha1/resources.ts";

export function statusMergePatch(previous: object | undefined, next: object): Record<string, unknown> {
  const patch: Record<string, unknown> = { ...next };
  for (const key of Object.keys(previous ?? {})) if (!(key in next)) patch[key] = null;
  return { status: patch };
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
