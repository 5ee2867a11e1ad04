/**
 * The operator's own connections to the sites' databases and buckets (for schemas, validation and
 * status; the data itself is moved by workers). URLs come from the Secrets the GeoSites name; a
 * pool is kept per URL and reused across reconciles.
 *
 * Only Secrets labelled geo.replication.dev/credentials=true are read: any other makes these
 * methods throw SecretNotOptedInError, whose message names the Secret and the command that
 * labels it. `failureReason` turns such an error into its condition reason.
 */
import type { CoreV1Api } from "@kubernetes/client-node";
import type pg from "pg";
import type { GeoSite } from "../api/v1alpha1/resources.ts";
import { resolveEnv, SecretNotOptedInError } from "../k8s/env.ts";
import { classifyS3Error } from "../verification/s3-errors.ts";
import { createPool } from "../util/database.ts";
import { Reason } from "./reasons.ts";

export { SecretNotOptedInError };

/** The condition reason for an error thrown here: SecretNotOptedIn for an unlabelled Secret, else `fallback`. */
export function failureReason(err: unknown, fallback: string): string {
  return err instanceof SecretNotOptedInError ? Reason.SecretNotOptedIn : fallback;
}

export type DatabaseRole = "main" | "tracking" | "primaryReplica";

export class SiteAccess {
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
    const url = await this.databaseURL(site, role);
    let pool = this.pools.get(url);
    if (!pool) {
      pool = createPool(url, { max: 4, applicationName: "geo-operator manager" });
      this.pools.set(url, pool);
    }
    return pool;
  }

  /**
   * Checks the site's bucket with its credentials; returns a problem description or undefined.
   * Throws when the credentials cannot be read (SecretNotOptedInError for an unlabelled Secret).
   */
  async bucketProblem(site: GeoSite): Promise<string | undefined> {
    const os = site.spec.objectStorage;
    if (!os) return undefined;
    const env = await resolveEnv(this.core, site.metadata.namespace, [
      { name: "ID", valueFrom: { secretKeyRef: { name: os.credentialsSecretRef.name, key: "AWS_ACCESS_KEY_ID" } } },
      { name: "KEY", valueFrom: { secretKeyRef: { name: os.credentialsSecretRef.name, key: "AWS_SECRET_ACCESS_KEY" } } },
    ]);
    // Loaded on first use: the SDK costs ~30 MB of memory that a manager without blob types never needs.
    const { HeadBucketCommand, S3Client } = await import("@aws-sdk/client-s3");
    const client = new S3Client({
      endpoint: os.endpoint,
      region: os.region ?? "us-east-1",
      forcePathStyle: os.forcePathStyle ?? false,
      credentials: { accessKeyId: env.ID!, secretAccessKey: env.KEY! },
      maxAttempts: 1,
    });
    try {
      await client.send(new HeadBucketCommand({ Bucket: os.bucket }), { abortSignal: AbortSignal.timeout(5000) });
      return undefined;
    } catch (err) {
      const kind = classifyS3Error(err);
      const what = kind === "missing-bucket" ? "does not exist" : kind === "bad-credentials" ? "rejects the credentials" : kind === "unreachable" ? "is unreachable" : `failed (${(err as Error).name})`;
      return `bucket ${os.bucket} at ${os.endpoint} ${what}`;
    } finally {
      client.destroy();
    }
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.pools.values()].map((p) => p.end()));
    this.pools.clear();
  }
}
