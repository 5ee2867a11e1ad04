/**
 * Runs a person asked for through the registry API. A RegistryAction that changed rows (resync,
 * reverify, release-deletions) records the run that acts on them in the ReplicableType's
 * annotation geo.replication.dev/run-requests as {"<site>": {"<kind>": "<time>"}}; the scheduler
 * starts that kind at once unless a run of it was scheduled after the request, which satisfies it.
 * So each request is acted on once and nothing needs clearing: GitLab's resync and reverify
 * buttons likewise enqueue the work instead of waiting for the next cron tick. The registry API
 * writes requests (registry-api/run-requests.ts); the scheduler reads them here.
 */
import { RUN_REQUESTS_ANNOTATION } from "../api/v1alpha1/resources.ts";
import { WORKER_KINDS, type WorkerKind } from "../workers/kinds.ts";

export type RunRequests = Record<string, Partial<Record<WorkerKind, string>>>;

/** The annotation's requests; anything that is not this operator's shape is ignored. */
export function parseRunRequests(value: string | undefined): RunRequests {
  if (!value) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    return {};
  }
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) return {};
  const out: RunRequests = {};
  for (const [site, kinds] of Object.entries(parsed as Record<string, unknown>)) {
    if (!kinds || typeof kinds !== "object") continue;
    for (const [kind, at] of Object.entries(kinds as Record<string, unknown>)) {
      if ((WORKER_KINDS as readonly string[]).includes(kind) && typeof at === "string" && !Number.isNaN(Date.parse(at))) {
        (out[site] ??= {})[kind as WorkerKind] = at;
      }
    }
  }
  return out;
}

/** When each kind was last asked for on `site`. */
export function requestedRuns(rt: { metadata: { annotations?: Record<string, string> } }, site: string): Partial<Record<WorkerKind, Date>> {
  const kinds = parseRunRequests(rt.metadata.annotations?.[RUN_REQUESTS_ANNOTATION])[site] ?? {};
  return Object.fromEntries(Object.entries(kinds).map(([kind, at]) => [kind, new Date(at)]));
}

/** The annotation's value with `kind` on `site` asked for at `at`. */
export function withRunRequest(value: string | undefined, site: string, kind: WorkerKind, at: Date): string {
  const requests = parseRunRequests(value);
  (requests[site] ??= {})[kind] = at.toISOString();
  return JSON.stringify(requests);
}
