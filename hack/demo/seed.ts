/**
 * Sample data for `make demo`: a `cool_widgets` table whose rows name objects of mixed sizes in the
 * primary's bucket, and a `design_repositories` table whose rows name git repositories on the
 * primary's git server, and an `uploads` table whose rows say per record (GitLab's `store` column:
 * 1 = a file on the primary's volume, 2 = an object in its bucket) where the file lives.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { S3Client } from "@aws-sdk/client-s3";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import type pg from "pg";

/** Mostly small objects, some medium, a few large: 70% ≤ 16 KiB, 25% ≤ 512 KiB, 5% ≤ 4 MiB. */
export function demoObjectSize(i: number): number {
  const r = (i * 2654435761) % 100;
  if (r < 70) return 256 + ((i * 7919) % (16 * 1024));
  if (r < 95) return 16 * 1024 + ((i * 104729) % (496 * 1024));
  return 512 * 1024 + ((i * 1299709) % (3584 * 1024));
}

async function forEachLimit<T>(items: T[], limit: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

export async function seedBlobs(db: pg.Pool, s3: S3Client, bucket: string, prefix: string, count: number): Promise<number> {
  await db.query(`CREATE TABLE IF NOT EXISTS cool_widgets (id bigserial PRIMARY KEY, namespace_id bigint NOT NULL, file_name text NOT NULL)`);
  const { rows } = await db.query<{ id: string; file_name: string }>(
    `INSERT INTO cool_widgets (namespace_id, file_name)
     SELECT 1 + g % 5, 'widget-' || g || '.bin' FROM generate_series(1, $1::integer) AS g RETURNING id, file_name`,
    [count],
  );
  let bytes = 0;
  await forEachLimit(rows, 32, async (row) => {
    const body = randomBytes(demoObjectSize(Number(row.id)));
    bytes += body.length;
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}cool_widgets/${row.id}/${row.file_name}`, Body: body }));
  });
  return bytes;
}

export async function seedRepositories(db: pg.Pool, gitRoot: string, count: number): Promise<void> {
  await db.query(`CREATE TABLE IF NOT EXISTS design_repositories (id bigserial PRIMARY KEY, namespace_id bigint NOT NULL, disk_path text NOT NULL)`);
  const work = mkdtempSync(join(tmpdir(), "geo-demo-seed-"));
  const git = (args: string[], cwd: string) =>
    execFileSync("git", ["-c", "user.name=Demo", "-c", "user.email=demo@example.com", "-c", "init.defaultBranch=main", ...args], { cwd, stdio: "pipe" });
  try {
    for (let i = 1; i <= count; i++) {
      const diskPath = `@hashed/${(i * 37).toString(16).padStart(2, "0").slice(0, 2)}/project-${i}`;
      const bare = join(gitRoot, `${diskPath}.git`);
      git(["init", "-q", "--bare", bare], work);
      const clone = join(work, `p${i}`);
      git(["clone", "-q", bare, clone], work);
      for (let c = 1; c <= 3 + (i % 5); c++) git(["commit", "-q", "--allow-empty", "-m", `design ${i} change ${c}`], clone);
      git(["tag", "-a", "v1.0", "-m", "first release"], clone);
      git(["push", "-q", "--follow-tags", "origin", "main"], clone);
      await db.query(`INSERT INTO design_repositories (namespace_id, disk_path) VALUES ($1, $2)`, [1 + (i % 5), diskPath]);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** GitLab's ObjectStorage::Store values, as kept in a model's `store` / `file_store` column. */
export const FILE_STORE = { local: 1, remote: 2 } as const;

/**
 * Seeds `uploads`: every fifth record in the primary's bucket, the others as files under `fileRoot`
 * (the primary's volume). Keys are `uploads/{id}/{file_name}` in either store.
 */
export async function seedUploads(db: pg.Pool, fileRoot: string, s3: S3Client, bucket: string, count: number): Promise<{ bytes: number; files: number; objects: number }> {
  await db.query(`CREATE TABLE IF NOT EXISTS uploads (id bigserial PRIMARY KEY, namespace_id bigint NOT NULL, file_name text NOT NULL, store smallint NOT NULL)`);
  const { rows } = await db.query<{ id: string; file_name: string; store: number }>(
    `INSERT INTO uploads (namespace_id, file_name, store)
     SELECT 1 + g % 5, 'upload-' || g || '.dat', CASE WHEN g % 5 = 0 THEN ${FILE_STORE.remote} ELSE ${FILE_STORE.local} END
     FROM generate_series(1, $1::integer) AS g RETURNING id, file_name, store`,
    [count],
  );
  const out = { bytes: 0, files: 0, objects: 0 };
  await forEachLimit(rows, 16, async (row) => {
    const body = randomBytes(demoObjectSize(Number(row.id) * 3));
    const key = `uploads/${row.id}/${row.file_name}`;
    out.bytes += body.length;
    if (Number(row.store) === FILE_STORE.local) {
      const path = join(fileRoot, key);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, body);
      out.files++;
    } else {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
      out.objects++;
    }
  });
  return out;
}
