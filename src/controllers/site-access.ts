/**
 * The operator's own access to the sites' databases and Secrets (for schemas, validation and
 * status; the data itself is moved by workers). URLs come from the Secrets the GeoSites name; a
 * pool is kept per URL and reused across reconciles. Strategies probe their storage through
 * `resolveEnv` (see StrategyDefinition.probeStorage).
 *
 * Only Secrets labelled geo.replication.dev/credentials=true are read: any other makes these
 * methods throw SecretNotOptedInError, whose message names the Secret and the command that
 * labels it. `failureReason` turns such an error into its condition reason.
 */
import type { CoreV1Api, V1EnvVar } from "@kubernetes/client-node";
import type pg from "pg";
import type { GeoSite } from "../api/v1alpha1/resources.ts";
import { resolveEnv, SecretNotOptedInError } from "../k8s/env.ts";
import type { SecretAccess } from "../strategies/definition.ts";
import { createPool } from "../util/database.ts";
import { Reason, type ReasonValue } from "./reasons.ts";

export { SecretNotOptedInError };

/** The condition reason for an error thrown here: SecretNotOptedIn for an unlabelled Secret, else `fallback`. */
export function failureReason(err: unknown, fallback: ReasonValue): ReasonValue {
  return err instanceof SecretNotOptedInError ? Reason.SecretNotOptedIn : fallback;
}

export type DatabaseRole = "main" | "tracking" | "primaryReplica";

export class SiteAccess implements SecretAccess {
  private readonly core: CoreV1Api;
  private readonly pools = new Map<string, pg.Pool>();

  constructor(core: CoreV1Api) {
    this.core = core;
  }

  /** The connection URL for one of a site's databases, read from its Secret now (SecretNotOptedInError if unlabelled). */
  async databaseURL(site: GeoSite, role: DatabaseRole): Promise<string> {
    const db = site.spec.database;
    const ref = role === "primaryReplica" ? db.primaryReplicaSecretRef : db.secretRef;
    if (!ref) throw new Error(`GeoSite ${site.metadata.name} has no ${role === "primaryReplica" ? "database.primaryReplicaSecretRef" : "database.secretRef"}`);
    const env = await resolveEnv(this.core, site.metadata.namespace, [{ name: "URL", valueFrom: { secretKeyRef: { name: ref.name, key: ref.key ?? "url" } } }]);
    return env.URL!;
  }

  async pool(site: GeoSite, role: DatabaseRole): Promise<pg.Pool> {
    return this.poolFor(await this.databaseURL(site, role));
  }

  /** The pool for a URL already resolved (the registry API resolves its own, to word a missing Secret). */
  poolFor(url: string): pg.Pool {
    let pool = this.pools.get(url);
    if (!pool) {
      pool = createPool(url, { max: 4, applicationName: "geo-operator manager" });
      this.pools.set(url, pool);
    }
    return pool;
  }

  /** Values of `vars` in `namespace`, as a pod would see them (SecretNotOptedInError if a Secret is unlabelled). */
  resolveEnv(namespace: string, vars: readonly V1EnvVar[]): Promise<Record<string, string>> {
    return resolveEnv(this.core, namespace, vars);
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.pools.values()].map((p) => p.end()));
    this.pools.clear();
  }
}
