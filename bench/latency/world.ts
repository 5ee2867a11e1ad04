/**
 * One mode's world on the local environment's real servers: a fresh main database on the primary
 * PostgreSQL with GitLab-like model tables (`cool_widgets`, `design_repositories`, `namespaces`),
 * a fresh tracking database on the secondary's, a key prefix in each MinIO bucket, a directory of
 * bare repositories under the git daemon's root and a mirror root, and the two sample
 * ReplicableTypes (config/samples) with the bench's overrides. Builds the env the workers and the
 * cursors get, exactly as the operator would hand it to a Job or the cursor Deployment.
 */
import { mkdirSync, readFileSync } from "node:fs";
import { Agent } from "node:http";
import { join } from "node:path";
import { S3Client } from "@aws-sdk/client-s3";
import pg from "pg";
import { parse } from "yaml";
import type { LocalEnvironmentInfo } from "../../hack/localenv/index.ts";
import { createDatabaseOn, waitForCatchUp } from "../../hack/localenv/postgres.ts";
import { REPO_ROOT } from "../../hack/localenv/tools.ts";
import type { GeoSiteSpec, ReplicableTypeSpec } from "../../src/api/v1alpha1/types.generated.ts";
import { writeHeartbeat } from "../../src/registry/heartbeat.ts";
import { applySchema } from "../../src/registry/schema-manager.ts";
import { typeRuntimeConfig } from "../../src/strategies/type-config.ts";
import type { ScanPlan } from "./options.ts";

export type Mode = "event" | "scan";
export type ReadPath = "replica" | "primary";
export const PRIMARY_SITE = "london";
export const SECONDARY_SITE = "tokyo";
export const NAMESPACES = [1, 2, 3];

export interface World {
  mode: Mode;
  blobType: ReplicableTypeSpec;
  repoType: ReplicableTypeSpec;
  primarySite: GeoSiteSpec;
  secondarySite: GeoSiteSpec;
  /** The primary's main database (the application writes here). */
  primaryDb: pg.Pool;
  /** The secondary's tracking database (the watcher reads registries here). */
  trackingDb: pg.Pool;
  /** What the secondary reads the primary's database through (the watcher samples its lag). */
  replicaDb: pg.Pool;
  /** How the secondary reads the primary's database: hack/localenv's streaming replica of it, or the primary itself. */
  readPath: ReadPath;
  primaryS3: S3Client;
  secondaryS3: S3Client;
  buckets: { primary: string; secondary: string };
  /** Key prefix of this world in both buckets (the sites' objectStorage.prefix). */
  prefix: string;
  /** Where the git daemon serves bare repositories from, and its URL. */
  gitRoot: string;
  gitBaseURL: string;
  /** disk_path of every repository starts with this (a directory under gitRoot). */
  repoDir: string;
  mirrorRoot: string;
  /** The env a worker of `type` (or, without one, the site's cursor) gets on `site`. */
  env(site: "primary" | "secondary", type?: ReplicableTypeSpec): Record<string, string>;
  close(): Promise<void>;
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

async function onServer<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

function sample(file: string): ReplicableTypeSpec {
  return (parse(readFileSync(join(REPO_ROOT, "config/samples", file), "utf8")) as { spec: ReplicableTypeSpec }).spec;
}

function s3Client(s: { endpoint: string; region: string; accessKeyId: string; secretAccessKey: string }): S3Client {
  return new S3Client({
    endpoint: s.endpoint,
    region: s.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey },
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    requestHandler: { httpAgent: new Agent({ keepAlive: true, maxSockets: 128 }) },
  });
}

/**
 * The sample types with what the bench changes: change capture per mode, deletion grace 0 s so a
 * delete is followed within the run (the default 1 h would keep every copy; 0 s is the documented
 * test setting), and in --quick scan mode intervals scaled down.
 */
export function benchTypes(mode: Mode, intervals: ScanPlan["intervals"]): { blobType: ReplicableTypeSpec; repoType: ReplicableTypeSpec } {
  const override = (spec: ReplicableTypeSpec): ReplicableTypeSpec => ({
    ...spec,
    changeCapture: mode === "event" ? "trigger" : "none",
    deletion: { ...spec.deletion, gracePeriod: "0s" },
    ...(mode === "scan" && intervals !== "samples" ? { intervals } : {}),
  });
  return { blobType: override(sample("replicabletype-cool-widget.yaml")), repoType: override(sample("replicabletype-design-repository.yaml")) };
}

/** `run` names this world's databases, prefix and directories apart from other runs of the same mode. */
export async function createWorld(env: LocalEnvironmentInfo, mode: Mode, intervals: ScanPlan["intervals"], readPath: ReadPath, run: string = mode): Promise<World> {
  const pgInfo = env.postgres!;
  const database = `latency_${run}`;
  await createDatabaseOn(pgInfo.primaryURL, database);
  await createDatabaseOn(pgInfo.secondaryURL, database);
  // hack/localenv runs its servers with synchronous_commit=off (tests need no durability). Then a
  // commit's WAL waits for the WAL writer (up to 3 × wal_writer_delay, 200 ms) before the
  // walsender streams it, which a replica-reading secondary would see as latency. Applications
  // commit with PostgreSQL's default, on: so do the bench's writes on the primary.
  await onServer(pgInfo.primaryURL, (c) => c.query(`ALTER DATABASE "${database}" SET synchronous_commit = on`));
  const primaryURL = withDatabase(pgInfo.primaryURL, database);
  const trackingURL = withDatabase(pgInfo.secondaryURL, database);
  // The secondary reads through the primary's streaming replica, the realistic path: no NOTIFY
  // reaches a cursor through it, so the cursor polls adaptively. Reading the primary itself (for
  // comparison) lets the cursor LISTEN.
  const readURL = readPath === "replica" ? withDatabase(pgInfo.primaryReplicaURL, database) : primaryURL;
  const primaryDb = new pg.Pool({ connectionString: primaryURL, max: 100, application_name: "latency bench" });
  const trackingDb = new pg.Pool({ connectionString: trackingURL, max: 8, application_name: "latency bench" });
  const replicaDb = new pg.Pool({ connectionString: readURL, max: 2, application_name: "latency bench" });

  await primaryDb.query(`CREATE TABLE namespaces (id bigserial PRIMARY KEY, parent_id bigint REFERENCES namespaces (id))`);
  await primaryDb.query(`INSERT INTO namespaces (parent_id) VALUES (NULL), (1), (1)`);
  await primaryDb.query(`CREATE TABLE cool_widgets (id bigserial PRIMARY KEY, namespace_id bigint, file_name text NOT NULL)`);
  await primaryDb.query(
    `CREATE TABLE design_repositories (id bigserial PRIMARY KEY, namespace_id bigint, disk_path text NOT NULL, repository_storage text NOT NULL DEFAULT 'default')`,
  );
  const { blobType, repoType } = benchTypes(mode, intervals);
  for (const type of [blobType, repoType]) {
    const schema = typeRuntimeConfig(type).schema;
    for (const [pool, role] of [[primaryDb, "primary"], [trackingDb, "secondary"]] as const) {
      const client = await pool.connect();
      try {
        await applySchema(client, schema, role);
      } finally {
        client.release();
      }
    }
  }

  const prefix = `latency-${run}/`;
  const s3 = env.s3!;
  const gitRoot = env.git!.root;
  const repoDir = `latency-${run}`;
  mkdirSync(join(gitRoot, repoDir), { recursive: true });
  const mirrorRoot = join(env.dir, `mirrors-${run}`);
  mkdirSync(mirrorRoot, { recursive: true });
  const primarySite: GeoSiteSpec = {
    role: "primary",
    database: { secretRef: { name: "primary-db" } },
    objectStorage: { endpoint: s3.primary.endpoint, region: s3.primary.region, bucket: s3.primary.bucket, prefix, forcePathStyle: true, credentialsSecretRef: { name: "primary-s3" } },
    git: { baseURL: env.git!.baseURL },
  };
  // The samples' capacities (config/samples/geosite-secondary.yaml).
  const secondarySite: GeoSiteSpec = {
    role: "secondary",
    database: { secretRef: { name: "tracking-db" }, primaryReplicaSecretRef: { name: "primary-replica-db" } },
    objectStorage: { endpoint: s3.secondary.endpoint, region: s3.secondary.region, bucket: s3.secondary.bucket, prefix, forcePathStyle: true, credentialsSecretRef: { name: "secondary-s3" } },
    git: { mirrorRoot },
    capacities: { blobs: 10, repositories: 25, verification: 100 },
  };

  // What the primary's operator does every few seconds: its heartbeat proves to the secondary that
  // the database it reads is this primary's and how far behind it is (deletions wait otherwise).
  await writeHeartbeat(primaryDb, PRIMARY_SITE);
  // The database, its tables and the first beat must have reached the replica before anyone reads it.
  await waitForCatchUp(pgInfo.primaryURL, pgInfo.primaryReplicaURL, 30_000);
  const heartbeat = setInterval(() => void writeHeartbeat(primaryDb, PRIMARY_SITE).catch(() => undefined), 5_000);

  const primaryS3 = s3Client(s3.primary);
  const secondaryS3 = s3Client(s3.secondary);
  return {
    mode,
    blobType,
    repoType,
    primarySite,
    secondarySite,
    primaryDb,
    trackingDb,
    replicaDb,
    readPath,
    primaryS3,
    secondaryS3,
    buckets: { primary: s3.primary.bucket, secondary: s3.secondary.bucket },
    prefix,
    gitRoot,
    gitBaseURL: env.git!.baseURL,
    repoDir,
    mirrorRoot,
    env(site, type) {
      return {
        PATH: process.env.PATH ?? "",
        HOME: process.env.HOME ?? "/tmp",
        ...(type ? { GEO_TYPE_SPEC: JSON.stringify(type) } : { GEO_TYPE_SPECS: JSON.stringify([blobType, repoType]) }),
        GEO_SITE_SPEC: JSON.stringify(site === "primary" ? primarySite : secondarySite),
        GEO_PRIMARY_SITE_SPEC: JSON.stringify(primarySite),
        GEO_PRIMARY_SITE_NAME: PRIMARY_SITE,
        GEO_PRIMARY_DB_URL: site === "primary" ? primaryURL : readURL,
        ...(site === "secondary" ? { GEO_TRACKING_DB_URL: trackingURL } : {}),
        GEO_PRIMARY_S3_ACCESS_KEY_ID: s3.primary.accessKeyId,
        GEO_PRIMARY_S3_SECRET_ACCESS_KEY: s3.primary.secretAccessKey,
        GEO_SECONDARY_S3_ACCESS_KEY_ID: s3.secondary.accessKeyId,
        GEO_SECONDARY_S3_SECRET_ACCESS_KEY: s3.secondary.secretAccessKey,
      };
    },
    async close() {
      clearInterval(heartbeat);
      primaryS3.destroy();
      secondaryS3.destroy();
      await Promise.allSettled([primaryDb.end(), trackingDb.end(), replicaDb.end()]);
    },
  };
}
