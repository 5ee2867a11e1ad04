/**
 * A primary and a secondary site made of the real test servers, for driving the worker commands
 * as a Job would run them: a fresh database on each PostgreSQL server, a unique key prefix in each
 * MinIO bucket, a model table on the primary, and the env a Job's pod would get.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import type pg from "pg";
import { LABELS } from "../../src/api/v1alpha1/resources.ts";
import type { GeoSiteSpec, ReplicableTypeSpec } from "../../src/api/v1alpha1/types.generated.ts";
import { typeRuntimeConfig } from "../../src/strategies/type-config.ts";
import { applySchema } from "../../src/registry/schema-manager.ts";
import { writeHeartbeat } from "../../src/registry/heartbeat.ts";
import { REPO_ROOT } from "../../hack/localenv/tools.ts";
import type { LocalEnvironmentInfo } from "../../hack/localenv/index.ts";
import { createTestDatabases, type TestDatabases } from "../integration/registry/databases.ts";

export interface WorkerRun {
  code: number;
  stdout: string;
  stderr: string;
}

export interface S3Side {
  endpoint: string;
  region: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
}

export interface World {
  dbs: TestDatabases;
  type: ReplicableTypeSpec;
  primarySite: GeoSiteSpec;
  secondarySite: GeoSiteSpec;
  prefix: string;
  primaryS3: S3Client;
  secondaryS3: S3Client;
  env(site: "primary" | "secondary", overrides?: Record<string, string>): Record<string, string>;
  /** The Secrets the site specs name (databases, S3 credentials), opted in, as manifests to apply. */
  secrets(): object[];
  /** Runs `geo-operator worker <kind>` as a child process; resolves when it exits. */
  run(kind: "verify-primary" | "sync" | "verify" | "consistency", overrides?: Record<string, string>): Promise<WorkerRun>;
  /** Starts a worker and returns the child, for tests that kill it. */
  spawnWorker(kind: "verify-primary" | "sync" | "verify" | "consistency", overrides?: Record<string, string>): ReturnType<typeof spawn>;
  close(): Promise<void>;
}

/** The primary GeoSite's name in every world ("london"), as its heartbeat carries it. */
export const PRIMARY_SITE_NAME = "london";

export function s3Client(s: Pick<S3Side, "endpoint" | "region" | "accessKeyId" | "secretAccessKey">): S3Client {
  return new S3Client({ endpoint: s.endpoint, region: s.region, forcePathStyle: true, credentials: { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey } });
}

/** Blob world: `cool_widgets(id, namespace_id, file_name)` with keys `cool_widgets/{id}/{file_name}`. */
export async function createBlobWorld(env: LocalEnvironmentInfo, opts: { primaryS3?: S3Side; secondaryS3?: S3Side; typeOverrides?: Partial<ReplicableTypeSpec> } = {}): Promise<World> {
  const dbs = await createTestDatabases();
  const prefix = `w-${randomBytes(4).toString("hex")}/`;
  const p = opts.primaryS3 ?? env.s3!.primary;
  const s = opts.secondaryS3 ?? env.s3!.secondary;
  await dbs.primary.query(`CREATE TABLE cool_widgets (id bigserial PRIMARY KEY, namespace_id bigint, file_name text NOT NULL)`);
  const type: ReplicableTypeSpec = {
    name: "cool_widget",
    strategy: "blob",
    source: { table: "cool_widgets", objectKey: { template: "cool_widgets/{id}/{file_name}" }, namespaceColumn: "namespace_id" },
    ...opts.typeOverrides,
  };
  const schema = typeRuntimeConfig(type).schema;
  for (const [pool, role] of [[dbs.primary, "primary"], [dbs.tracking, "secondary"]] as const) {
    const client = await pool.connect();
    try {
      await applySchema(client, schema, role);
    } finally {
      client.release();
    }
  }
  // What the primary's operator does: its heartbeat proves to secondaries that the replica they
  // read (here the primary database itself) is this primary's.
  await writeHeartbeat(dbs.primary, PRIMARY_SITE_NAME);
  const primarySite: GeoSiteSpec = {
    role: "primary",
    database: { secretRef: { name: "primary-db" } },
    objectStorage: { endpoint: p.endpoint, region: p.region, bucket: p.bucket, prefix, forcePathStyle: true, credentialsSecretRef: { name: "primary-s3" } },
  };
  const secondarySite: GeoSiteSpec = {
    role: "secondary",
    database: { secretRef: { name: "tracking-db" }, primaryReplicaSecretRef: { name: "primary-db" } },
    objectStorage: { endpoint: s.endpoint, region: s.region, bucket: s.bucket, prefix, forcePathStyle: true, credentialsSecretRef: { name: "secondary-s3" } },
    capacities: { blobs: 4, verification: 8 },
  };
  const world: World = {
    dbs,
    type,
    primarySite,
    secondarySite,
    prefix,
    primaryS3: s3Client(p),
    secondaryS3: s3Client(s),
    secrets() {
      const data: [string, Record<string, string>][] = [
        ["primary-db", { url: dbs.primaryUrl }],
        ["tracking-db", { url: dbs.trackingUrl }],
        ["primary-s3", { AWS_ACCESS_KEY_ID: p.accessKeyId, AWS_SECRET_ACCESS_KEY: p.secretAccessKey }],
        ["secondary-s3", { AWS_ACCESS_KEY_ID: s.accessKeyId, AWS_SECRET_ACCESS_KEY: s.secretAccessKey }],
      ];
      return data.map(([name, stringData]) => ({ apiVersion: "v1", kind: "Secret", metadata: { name, labels: { [LABELS.credentials]: "true" } }, stringData }));
    },
    env(site, overrides = {}) {
      return {
        PATH: process.env.PATH ?? "",
        HOME: process.env.HOME ?? "/tmp",
        GEO_TYPE_SPEC: JSON.stringify(world.type),
        GEO_SITE_SPEC: JSON.stringify(site === "primary" ? world.primarySite : world.secondarySite),
        GEO_PRIMARY_SITE_SPEC: JSON.stringify(world.primarySite),
        GEO_PRIMARY_SITE_NAME: PRIMARY_SITE_NAME,
        GEO_PRIMARY_DB_URL: dbs.primaryUrl,
        ...(site === "secondary" ? { GEO_TRACKING_DB_URL: dbs.trackingUrl } : {}),
        GEO_PRIMARY_S3_ACCESS_KEY_ID: p.accessKeyId,
        GEO_PRIMARY_S3_SECRET_ACCESS_KEY: p.secretAccessKey,
        GEO_SECONDARY_S3_ACCESS_KEY_ID: s.accessKeyId,
        GEO_SECONDARY_S3_SECRET_ACCESS_KEY: s.secretAccessKey,
        ...overrides,
      };
    },
    spawnWorker(kind, overrides = {}) {
      const site = kind === "verify-primary" ? "primary" : "secondary";
      return spawn(process.execPath, [join(REPO_ROOT, "bin/geo-operator.js"), "worker", kind, "--type", world.type.name, "--site", site === "primary" ? PRIMARY_SITE_NAME : "tokyo"], {
        env: world.env(site, overrides),
        stdio: ["ignore", "pipe", "pipe"],
      });
    },
    run(kind, overrides = {}) {
      const child = world.spawnWorker(kind, overrides);
      let stdout = "";
      let stderr = "";
      child.stdout!.on("data", (c: Buffer) => (stdout += c.toString()));
      child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
      return new Promise((resolve) => child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr })));
    },
    async close() {
      world.primaryS3.destroy();
      world.secondaryS3.destroy();
      await dbs.drop();
    },
  };
  return world;
}

/**
 * Repository world: `design_repositories(id, namespace_id, disk_path)` whose repositories are bare
 * repos under the git daemon's root at `<disk_path>.git`; mirrors go to a fresh mirror root.
 */
export async function createRepositoryWorld(env: LocalEnvironmentInfo, mirrorRoot: string, opts: { baseURL?: string; typeOverrides?: Partial<ReplicableTypeSpec> } = {}): Promise<World> {
  const world = await createBlobWorld(env);
  await world.dbs.primary.query(`CREATE TABLE design_repositories (id bigserial PRIMARY KEY, namespace_id bigint, disk_path text NOT NULL)`);
  world.type = {
    name: "design_repository",
    plural: "design_repositories",
    strategy: "repository",
    source: { table: "design_repositories", repositoryPath: { template: "{disk_path}.git" }, namespaceColumn: "namespace_id" },
    verification: { minimumReverificationInterval: "1s" },
    ...opts.typeOverrides,
  };
  const schema = typeRuntimeConfig(world.type).schema;
  for (const [pool, role] of [[world.dbs.primary, "primary"], [world.dbs.tracking, "secondary"]] as const) {
    const client = await pool.connect();
    try {
      await applySchema(client, schema, role);
    } finally {
      client.release();
    }
  }
  world.primarySite = { ...world.primarySite, git: { baseURL: opts.baseURL ?? env.git!.baseURL } };
  world.secondarySite = { ...world.secondarySite, git: { mirrorRoot } };
  return world;
}

/** Registry rows by model id. */
/** An object's bytes, or undefined when the bucket has no such key. */
export async function readObject(client: S3Client, bucket: string, key: string): Promise<Buffer | undefined> {
  try {
    const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return Buffer.from(await res.Body!.transformToByteArray());
  } catch (err) {
    if ((err as { name?: string }).name === "NoSuchKey") return undefined;
    throw err;
  }
}

export async function registryRows(db: pg.Pool, name = "cool_widget"): Promise<Map<number, Record<string, any>>> {
  const { rows } = await db.query(`SELECT * FROM ${name}_registry ORDER BY ${name}_id`);
  return new Map(rows.map((r) => [Number(r[`${name}_id`]), r]));
}

/** Makes every failed row's retry due now: stands in for waiting out the backoff. */
export async function retryNow(db: pg.Pool, name = "cool_widget"): Promise<void> {
  await db.query(`UPDATE ${name}_registry SET retry_at = now() - interval '1 second' WHERE state = 3`);
  await db.query(`UPDATE ${name}_registry SET verification_retry_at = now() - interval '1 second' WHERE verification_state = 3`);
}
