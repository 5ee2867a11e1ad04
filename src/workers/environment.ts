/**
 * The worker's configuration contract, identical for a Kubernetes Job and a person at a shell:
 *
 *   GEO_TYPE_SPEC            ReplicableType spec (JSON or YAML)            not secret
 *   GEO_SITE_SPEC            the GeoSite spec of the site this run acts for not secret
 *   GEO_PRIMARY_SITE_SPEC    the primary GeoSite's spec (secondary runs)   not secret
 *   GEO_PRIMARY_SITE_NAME    the primary GeoSite's name (secondary runs)   not secret
 *   GEO_PRIMARY_DB_URL       primary main DB; on a secondary its read replica   secret
 *   GEO_TRACKING_DB_URL      the secondary's tracking DB                         secret
 *   plus what the type's strategy reads (its definition's `workerStorage` and `endpointsFromEnv`,
 *   e.g. GEO_PRIMARY_S3_ACCESS_KEY_ID or GEO_PRIMARY_FILES_KEY for blob types, GEO_PRIMARY_GIT_PASSWORD
 *   for repositories).
 *
 * The operator's Jobs set every secret through an env `valueFrom.secretKeyRef`: the Job spec
 * references Secrets and never contains their values. A worker started another way may instead
 * give any secret as a file path in `<NAME>_FILE` (see src/util/config-env.ts).
 *
 * The log cursor (src/cursor/site-cursor.ts) reads the same contract with GEO_TYPE_SPECS, every
 * type of the site at once, in place of GEO_TYPE_SPEC; `siteRunEnv` writes the part both share.
 */
import type { V1EnvVar } from "@kubernetes/client-node";
import { parse } from "yaml";
import type { GeoSite } from "../api/v1alpha1/resources.ts";
import type { GeoSiteSpec, ReplicableTypeSpec } from "../api/v1alpha1/types.generated.ts";
import { secretEnv } from "../k8s/env-vars.ts";
import { ConfigurationError, type Env } from "../util/config-env.ts";

export { ConfigurationError, requireSecret, secretFromEnv, type Env } from "../util/config-env.ts";

function specFromEnv<T>(env: Env, name: string): T | undefined {
  const text = env[name];
  if (!text) return undefined;
  try {
    const doc = parse(text) as { spec?: T } & T;
    // Accept a whole manifest as well as a bare spec.
    return (doc && typeof doc === "object" && "spec" in doc && doc.spec ? doc.spec : doc) as T;
  } catch (err) {
    throw new ConfigurationError(`${name} is not valid JSON or YAML: ${(err as Error).message}`);
  }
}

/** The log cursor's JSON array of the ReplicableType specs it follows (in place of GEO_TYPE_SPEC). */
export const TYPE_SPECS_ENV = "GEO_TYPE_SPECS";

export function typeSpecFromEnv(env: Env): ReplicableTypeSpec {
  const spec = specFromEnv<ReplicableTypeSpec>(env, "GEO_TYPE_SPEC");
  if (!spec?.name || !spec.strategy || !spec.source?.table) {
    throw new ConfigurationError("GEO_TYPE_SPEC must hold a ReplicableType spec with name, strategy and source.table");
  }
  return spec;
}

export function siteSpecFromEnv(env: Env, name: "GEO_SITE_SPEC" | "GEO_PRIMARY_SITE_SPEC"): GeoSiteSpec | undefined {
  return specFromEnv<GeoSiteSpec>(env, name);
}

/**
 * The site part of the contract for a run acting for `site` (a worker Job, a log cursor): both
 * GeoSite specs and the primary's name as values, the database URLs as Secret references only.
 */
export function siteRunEnv(site: GeoSite, primary: GeoSite): V1EnvVar[] {
  const env: V1EnvVar[] = [
    { name: "GEO_SITE_SPEC", value: JSON.stringify(site.spec) },
    { name: "GEO_PRIMARY_SITE_SPEC", value: JSON.stringify(primary.spec) },
    { name: "GEO_PRIMARY_SITE_NAME", value: primary.metadata.name },
  ];
  const db = site.spec.database;
  if (site.spec.role === "primary") {
    env.push(secretEnv("GEO_PRIMARY_DB_URL", db.secretRef.name, db.secretRef.key ?? "url"));
  } else {
    const replica = db.primaryReplicaSecretRef!;
    env.push(secretEnv("GEO_PRIMARY_DB_URL", replica.name, replica.key ?? "url"));
    env.push(secretEnv("GEO_TRACKING_DB_URL", db.secretRef.name, db.secretRef.key ?? "url"));
  }
  return env;
}
