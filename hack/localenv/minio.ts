/** A MinIO server on 127.0.0.1 with its own data directory, plus bucket creation. */
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "./ports.ts";
import { ManagedProcess, waitFor } from "./processes.ts";

export interface S3Endpoint {
  name: string;
  endpoint: string;
  port: number;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  buckets: string[];
  process: ManagedProcess;
  client(): S3Client;
  stop(): Promise<void>;
}

export async function startMinio(opts: {
  name: string;
  stateDir: string;
  binary: string;
  buckets: string[];
  port?: number;
}): Promise<S3Endpoint> {
  const dataDir = join(opts.stateDir, opts.name);
  mkdirSync(dataDir, { recursive: true });
  const port = opts.port ?? (await freePort());
  const accessKeyId = `geo-${opts.name}`;
  const secretAccessKey = `secret-${opts.name}-0123456789`;
  const proc = new ManagedProcess({
    name: opts.name,
    command: opts.binary,
    args: ["server", dataDir, "--address", `127.0.0.1:${port}`, "--quiet"],
    stateDir: opts.stateDir,
    env: {
      ...process.env,
      MINIO_ROOT_USER: accessKeyId,
      MINIO_ROOT_PASSWORD: secretAccessKey,
      MINIO_BROWSER: "off",
      MINIO_UPDATE: "off",
      MINIO_CI_CD: "1",
    },
  });
  const endpoint = `http://127.0.0.1:${port}`;
  await waitFor(`MinIO ${opts.name}`, async () => (await fetch(`${endpoint}/minio/health/ready`)).ok, {
    timeoutMs: 60_000,
    process: proc,
  });
  const client = () =>
    new S3Client({
      endpoint,
      region: "us-east-1",
      forcePathStyle: true,
      credentials: { accessKeyId, secretAccessKey },
    });
  const s3 = client();
  try {
    for (const bucket of opts.buckets) {
      await s3.send(new CreateBucketCommand({ Bucket: bucket })).catch((err: { name?: string }) => {
        if (err.name !== "BucketAlreadyOwnedByYou") throw err;
      });
    }
  } finally {
    s3.destroy();
  }
  return {
    name: opts.name,
    endpoint,
    port,
    region: "us-east-1",
    accessKeyId,
    secretAccessKey,
    buckets: opts.buckets,
    process: proc,
    client,
    stop: () => proc.stop(),
  };
}
