/**
 * The worker's configuration contract, identical for a Kubernetes Job and a person at a shell:
 *
 *   GEO_TYPE_SPEC            ReplicableType spec (JSON or YAML)            not secret
 *   GEO_SITE_SPEC            the GeoSite spec of the site this run acts for not secret
 *   GEO_PRIMARY_SITE_SPEC    the primary GeoSite's spec (secondary runs)   not secret
 *   GEO_PRIMARY_SITE_NAME    the primary GeoSite's name (secondary runs)   not secret
 *   GEO_PRIMARY_DB_URL       primary main DB; on a secondary its read replica   secret
 *   GEO_TRACKING_DB_URL      the secondary's tracking DB                         secret
 *   GEO_PRIMARY_S3_ACCESS_KEY_ID / GEO_PRIMARY_S3_SECRET_ACCESS_KEY             secret
 *   GEO_SECONDARY_S3_ACCESS_KEY_ID / GEO_SECONDARY_S3_SECRET_ACCESS_KEY         secret
 *   GEO_PRIMARY_GIT_USERNAME / GEO_PRIMARY_GIT_PASSWORD                         secret
 *
 * Every secret may instead be given as a file path in `<NAME>_FILE` (a mounted Secret), which is
 * how the operator's Jobs receive them: the Job spec references Secrets, it never contains them.
 */
import { readFileSync } from "node:fs";
import { parse } from "yaml";
import type { GeoSiteSpec, ReplicableTypeSpec } from "../api/v1alpha1/types.generated.ts";
import type { S3Endpoint, SiteEndpoints } from "../strategies/replicator.ts";

export class ConfigurationError extends Error {
  override readonly name = "ConfigurationError";
}

export type Env = Record<string, string | undefined>;

/** A value from `NAME` or from the file named by `NAME_FILE` (trailing newline trimmed). */
export function secretFromEnv(env: Env, name: string): string | undefined {
  const file = env[`${name}_FILE`];
  if (file) {
    try {
      return readFileSync(file, "utf8").replace(/\r?\n$/, "");
    } catch (err) {
      throw new ConfigurationError(`${name}_FILE points at ${file}, which cannot be read: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
  }
  return env[name] || undefined;
}

export function requireSecret(env: Env, name: string, why: string): string {
  const v = secretFromEnv(env, name);
  if (!v) throw new ConfigurationError(`${name} (or ${name}_FILE) is required: ${why}`);
  return v;
}

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

function s3Endpoint(site: GeoSiteSpec, env: Env, prefix: "GEO_PRIMARY_S3" | "GEO_SECONDARY_S3"): S3Endpoint | undefined {
  const os = site.objectStorage;
  if (!os) return undefined;
  return {
    endpoint: os.endpoint,
    region: os.region ?? "us-east-1",
    bucket: os.bucket,
    prefix: os.prefix ?? "",
    forcePathStyle: os.forcePathStyle ?? false,
    accessKeyId: requireSecret(env, `${prefix}_ACCESS_KEY_ID`, `credentials for bucket ${os.bucket}`),
    secretAccessKey: requireSecret(env, `${prefix}_SECRET_ACCESS_KEY`, `credentials for bucket ${os.bucket}`),
  };
}

/** Storage endpoints for a run on `site`; `primary` is the primary's spec (itself on the primary). */
export function endpointsFromEnv(env: Env, site: GeoSiteSpec, primary: GeoSiteSpec, strategy: "blob" | "repository"): SiteEndpoints {
  const endpoints: SiteEndpoints = {};
  if (strategy === "blob") {
    endpoints.primaryS3 = s3Endpoint(primary, env, "GEO_PRIMARY_S3");
    if (!endpoints.primaryS3) throw new ConfigurationError("the primary GeoSite has no objectStorage, which blob types need");
    if (site.role === "secondary") {
      endpoints.secondaryS3 = s3Endpoint(site, env, "GEO_SECONDARY_S3");
      if (!endpoints.secondaryS3) throw new ConfigurationError("this secondary GeoSite has no objectStorage, which blob types need");
    }
  } else {
    const base = primary.git?.baseURL;
    if (!base) throw new ConfigurationError("the primary GeoSite has no git.baseURL, which repository types need");
    const username = secretFromEnv(env, "GEO_PRIMARY_GIT_USERNAME");
    const password = secretFromEnv(env, "GEO_PRIMARY_GIT_PASSWORD");
    endpoints.primaryGit = { baseURL: base, ...(username ? { username } : {}), ...(password ? { password } : {}) };
    if (site.role === "secondary") {
      if (!site.git?.mirrorRoot) throw new ConfigurationError("this secondary GeoSite has no git.mirrorRoot, which repository types need");
      endpoints.mirrorRoot = site.git.mirrorRoot;
    }
  }
  return endpoints;
}
