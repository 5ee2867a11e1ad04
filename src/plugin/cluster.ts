/**
 * What `kubectl geo` reads from the API server: GeoSites, ReplicableTypes and the database URLs
 * in the Secrets a GeoSite names (resolved the way the operator resolves them). API failures
 * become PluginErrors with the exit code a script can act on.
 */
import { statusMessage } from "../k8s/api-errors.ts";
import { ApiException, CoreV1Api, CustomObjectsApi, type KubeConfig } from "@kubernetes/client-node";
import type pg from "pg";
import type { GeoSite, ReplicableType } from "../api/v1alpha1/resources.ts";
import { GROUP, PLURALS, VERSION } from "../api/v1alpha1/resources.ts";
import { loadKubeConfig } from "../k8s/client.ts";
import { resolveEnv, SecretNotOptedInError } from "../k8s/env.ts";
import { checkDatabase, createPool, describeDatabase } from "../util/database.ts";
import { failure, notFound, PluginError } from "./errors.ts";

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
  // Its message names the Secret and the kubectl label command that opts it in.
  if (err instanceof SecretNotOptedInError) return failure(err.message);
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

const namesOf = (objects: { metadata: { name: string } }[]): string => (objects.length ? objects.map((o) => o.metadata.name).sort().join(", ") : "none");

/** The GeoSite called `name`; exit code 3 with the sites that do exist otherwise. */
export async function getSite(session: Session, name: string): Promise<GeoSite> {
  const sites = await listSites(session);
  const site = sites.find((s) => s.metadata.name === name);
  if (!site) throw notFound(`GeoSite "${name}" not found in namespace ${session.namespace} (GeoSites there: ${namesOf(sites)})`);
  return site;
}

/** A ReplicableType by metadata.name (cool-widget) or spec.name (cool_widget); the former wins. */
export async function findType(session: Session, name: string): Promise<ReplicableType> {
  const types = await listCustom<ReplicableType>(session, PLURALS.ReplicableType, "ReplicableType");
  const found = types.find((t) => t.metadata.name === name) ?? types.find((t) => t.spec.name === name);
  if (!found) {
    const known = types.length ? types.map((t) => `${t.metadata.name} (${t.spec.name})`).sort().join(", ") : "none";
    throw notFound(`ReplicableType "${name}" not found in namespace ${session.namespace} (types there: ${known})`);
  }
  return found;
}

/** An open connection to one of a site's databases; `label` names it in messages. */
export interface SiteDatabase {
  pool: pg.Pool;
  label: string;
  close(): Promise<void>;
}

/**
 * Connects to the database in the site's `spec.database.secretRef`: the tracking database on a
 * secondary, the main database on the primary. The URL is read from the Secret through the API,
 * as the operator does, and never appears in a message.
 */
export async function connectSiteDatabase(session: Session, site: GeoSite): Promise<SiteDatabase> {
  const ref = site.spec.database.secretRef;
  const key = ref.key ?? "url";
  const what = site.spec.role === "primary" ? "main database" : "tracking database";
  let env: Record<string, string>;
  try {
    env = await resolveEnv(session.core, session.namespace, [{ name: "URL", valueFrom: { secretKeyRef: { name: ref.name, key, optional: true } } }]);
  } catch (err) {
    throw apiError(session, err, `Secret ${session.namespace}/${ref.name}`);
  }
  const url = env.URL;
  if (url === undefined) {
    throw notFound(`GeoSite ${site.metadata.name} names Secret ${session.namespace}/${ref.name} key "${key}" for its ${what}, but there is no such Secret or key`);
  }
  session.redact.add(url);
  const password = passwordOf(url);
  if (password) session.redact.add(password);
  const label = `${what} of GeoSite ${site.metadata.name} (${describeDatabase(url)})`;
  const pool = createPool(url, { max: 2, applicationName: "kubectl-geo" });
  try {
    await checkDatabase(pool, url, `${what} of GeoSite ${site.metadata.name}`);
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw failure((err as Error).message);
  }
  return { pool, label, close: () => pool.end() };
}

function passwordOf(url: string): string | undefined {
  try {
    const p = new URL(url).password;
    return p ? decodeURIComponent(p) : undefined;
  } catch {
    return undefined;
  }
}

/** Replaces every collected secret in a message. */
export function redactMessage(message: string, redact: ReadonlySet<string>): string {
  let out = message;
  for (const secret of [...redact].sort((a, b) => b.length - a.length)) if (secret) out = out.replaceAll(secret, "***");
  return out;
}
