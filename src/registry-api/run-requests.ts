/**
 * The registry API's side of run requests (controllers/run-requests.ts): a RegistryAction that
 * changed rows records the run that acts on them on the ReplicableType, and the operator's
 * scheduler starts it at once.
 */
import { ApiException, PatchStrategy, setHeaderOptions, type CustomObjectsApi } from "@kubernetes/client-node";
import { GROUP, PLURALS, RUN_REQUESTS_ANNOTATION, VERSION, type ReplicableType } from "../api/v1alpha1/resources.ts";
import { withRunRequest } from "../controllers/run-requests.ts";
import type { WorkerKind } from "../workers/kinds.ts";

/**
 * Records a request for `kind` on `site`: the object is read from the API server, then merge
 * patched with the resourceVersion read, so two requests at once cannot drop each other (a
 * conflict reads again).
 */
export async function requestRun(custom: CustomObjectsApi, type: { namespace: string; name: string }, site: string, kind: WorkerKind, now: () => Date = () => new Date()): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await annotateOnce(custom, { plural: PLURALS.ReplicableType, namespace: type.namespace, name: type.name }, (rt) => withRunRequest(rt.metadata.annotations?.[RUN_REQUESTS_ANNOTATION], site, kind, now()));
      return;
    } catch (err) {
      if (!(err instanceof ApiException && err.code === 409) || attempt >= 5) throw err;
    }
  }
}

// The plural is an argument, passed as PLURALS.X at the call site, because the chart's RBAC test
// (test/unit/chart/api-calls.ts) reads which resources a custom-object call is for from there. It
// stays in this file rather than in k8s/: that test gives calls made in registry-api/ files to the
// chart's registry-API rules, and in k8s/ this `get` would count as the manager's own, which it
// does not need without the registry API.
async function annotateOnce(custom: CustomObjectsApi, target: { plural: string; namespace: string; name: string }, value: (rt: ReplicableType) => string): Promise<void> {
  const object = { group: GROUP, version: VERSION, plural: target.plural, namespace: target.namespace, name: target.name };
  const current: ReplicableType = await custom.getNamespacedCustomObject(object);
  await custom.patchNamespacedCustomObject(
    { ...object, body: { metadata: { resourceVersion: current.metadata.resourceVersion, annotations: { [RUN_REQUESTS_ANNOTATION]: value(current) } } } },
    setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
  );
}
