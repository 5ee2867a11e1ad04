/**
 * What `kubectl geo` reads from the API server: GeoSites, ReplicableTypes, and the registries and
 * registry actions the manager serves through the aggregated registry API. The plugin never
 * connects to a database and needs no Secret: the API server authenticates the user and RBAC
 * decides. API failures become PluginErrors with the exit code a script can act on.
 */
import { statusMessage } from "../k8s/api-errors.ts";
import { ApiException, CoreV1Api, CustomObjectsApi, type KubeConfig } from "@kubernetes/client-node";
import type { GeoSite, ReplicableType } from "../api/v1alpha1/resources.ts";
import { GROUP, lookUpSite, lookUpType, PLURALS, VERSION } from "../api/v1alpha1/resources.ts";
import { loadKubeConfig } from "../k8s/client.ts";
import { ACTION_KIND, ACTIONS_RESOURCE, REGISTRY_API_GROUP, REGISTRY_API_SERVICE_NAME, REGISTRY_API_VERSION, type RegistryActionSpec, type RegistryActionStatus } from "../registry-api/group.ts";
import { failure, notFound, PluginError, usageError } from "./errors.ts";

export interface GlobalOptions {
  kubeconfig?: string;
  namespace?: string;
  output: OutputFormat;
}
export type OutputFormat = "table" | "json" | "yaml";

/** One invocation's connection to the cluster. `redact` collects values no message may show. */
export interface Session {
  namespace: string;
  server: string;
  core: CoreV1Api;
  custom: CustomObjectsApi;
  redact: Set<string>;
}

export function openSession(globals: GlobalOptions, redact: Set<string>): Session {
  let kc: KubeConfig;
  try {
    kc = loadKubeConfig(globals.kubeconfig);
  } catch (err) {
    throw failure(`cannot load kubeconfig${globals.kubeconfig ? ` ${globals.kubeconfig}` : ""}: ${(err as Error).message}`);
  }
  const context = kc.getContextObject(kc.getCurrentContext());
  return {
    namespace: globals.namespace ?? context?.namespace ?? "default",
    server: kc.getCurrentCluster()?.server ?? "(no server in kubeconfig)",
    core: kc.makeApiClient(CoreV1Api),
    custom: kc.makeApiClient(CustomObjectsApi),
    redact,
  };
}

/** Turns an API call's failure into a PluginError; `what` says what was being read. */
export function apiError(session: Session, err: unknown, what: string): PluginError {
  if (err instanceof PluginError) return err;
  if (err instanceof ApiException) {
    if (err.code === 401) return failure(`reading ${what}: unauthorized: check the kubeconfig's credentials`);
    if (err.code === 403) return failure(`reading ${what}: forbidden: ${statusMessage(err)}`);
    return failure(`reading ${what}: ${statusMessage(err)}`);
  }
  return failure(`cannot reach the Kubernetes API server at ${session.server} (reading ${what}): ${(err as Error).message}`);
}

async function listCustom<T>(session: Session, plural: string, kind: string): Promise<T[]> {
  try {
    const list = (await session.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: session.namespace, plural })) as { items?: T[] };
    return list.items ?? [];
  } catch (err) {
    if (err instanceof ApiException && err.code === 404) {
      throw notFound(`the ${kind} resource is not installed on this cluster (apply the CRDs: kubectl apply --server-side -f crds/)`);
    }
    throw apiError(session, err, `${kind}s in namespace ${session.namespace}`);
  }
}

export function listSites(session: Session): Promise<GeoSite[]> {
  return listCustom<GeoSite>(session, PLURALS.GeoSite, "GeoSite");
}

/** The GeoSite called `name`; exit code 3 with the sites that do exist otherwise. */
export async function getSite(session: Session, name: string): Promise<GeoSite> {
  const sites = await listSites(session);
  const lookup = lookUpSite(sites, name, session.namespace);
  if ("notFound" in lookup) throw notFound(lookup.notFound);
  return lookup.found;
}

/** A ReplicableType by metadata.name (cool-widget) or spec.name (cool_widget); the former wins. */
export async function findType(session: Session, name: string): Promise<ReplicableType> {
  const types = await listCustom<ReplicableType>(session, PLURALS.ReplicableType, "ReplicableType");
  const lookup = lookUpType(types, name, session.namespace);
  if ("notFound" in lookup) throw notFound(lookup.notFound);
  return lookup.found;
}

/**
 * A failure of the registry API. Its own messages (a row that does not exist, a table not created
 * yet, a database it cannot reach) are shown as they are; an API server that cannot reach it says
 * where to look.
 */
function registryApiError(session: Session, err: unknown, what: string): PluginError {
  if (!(err instanceof ApiException)) return apiError(session, err, what);
  const message = statusMessage(err);
  switch (err.code) {
    case 404:
      if (/the server could not find the requested resource/.test(message)) {
        return failure(`${what}: the registry API is not installed (no APIService ${REGISTRY_API_SERVICE_NAME}: install the chart with registryApi.enabled)`);
      }
      return notFound(message);
    case 400:
    case 422:
      return usageError(message);
    case 401:
      return failure(`${what}: unauthorized: check the kubeconfig's credentials`);
    case 403:
      return failure(`${what}: forbidden: ${message}`);
    case 503:
      if (/the server is currently unable to handle the request|service unavailable|no endpoints|connection refused/i.test(message) && !/database/.test(message)) {
        return failure(`${what}: the registry API is not available (${message}): check kubectl get apiservice ${REGISTRY_API_SERVICE_NAME} and the geo-operator pods`);
      }
      return failure(message);
    default:
      return failure(`${what}: ${message}`);
  }
}

export interface RegistryListPage<T> {
  items: T[];
  continue?: string;
}

/** One page of a type's registry rows from the registry API (label selector, limit, continue). */
export async function listRegistryObjects<T>(
  session: Session,
  plural: string,
  query: { labelSelector: string; limit?: number; continue?: string },
  what: string,
): Promise<RegistryListPage<T>> {
  try {
    const list = (await session.custom.listNamespacedCustomObject({
      group: REGISTRY_API_GROUP,
      version: REGISTRY_API_VERSION,
      namespace: session.namespace,
      plural,
      labelSelector: query.labelSelector,
      ...(query.limit ? { limit: query.limit } : {}),
      ...(query.continue ? { _continue: query.continue } : {}),
    })) as { items?: T[]; metadata?: { continue?: string } };
    return { items: list.items ?? [], ...(list.metadata?.continue ? { continue: list.metadata.continue } : {}) };
  } catch (err) {
    throw registryApiError(session, err, what);
  }
}

/** Creates a RegistryAction (the manager carries it out at once); `dryRun` only counts the selection. */
export async function createRegistryAction(session: Session, spec: RegistryActionSpec, dryRun: boolean): Promise<RegistryActionStatus> {
  try {
    const created = (await session.custom.createNamespacedCustomObject({
      group: REGISTRY_API_GROUP,
      version: REGISTRY_API_VERSION,
      namespace: session.namespace,
      plural: ACTIONS_RESOURCE,
      body: { apiVersion: `${REGISTRY_API_GROUP}/${REGISTRY_API_VERSION}`, kind: ACTION_KIND, metadata: { generateName: `${spec.action}-` }, spec },
      ...(dryRun ? { dryRun: "All" } : {}),
    })) as { status?: RegistryActionStatus };
    if (!created.status) throw failure(`the registry API answered the ${spec.action} request without a result`);
    return created.status;
  } catch (err) {
    throw registryApiError(session, err, `${spec.action} of ${spec.type} on GeoSite ${spec.site}`);
  }
}

/** Replaces every collected secret in a message. */
export function redactMessage(message: string, redact: ReadonlySet<string>): string {
  let out = message;
  for (const secret of [...redact].sort((a, b) => b.length - a.length)) if (secret) out = out.replaceAll(secret, "***");
  return out;
}
