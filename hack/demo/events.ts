/**
 * The event-driven part of `make demo`: once the seeded data is replicated, it changes the primary
 * the way an application would and times how long tokyo takes to have each change synced and
 * verified. The sample consistency interval is 10 minutes, so anything faster than that came
 * through the event log and the log cursors.
 */
import { createHash, randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import type pg from "pg";
import { SyncState, VerificationState } from "../../src/registry/states.ts";

export interface EventDemoResult {
  createdSeconds: number;
  updatedSeconds: number;
}

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

async function timed(what: string, timeoutMs: number, probe: () => Promise<boolean>): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    if (await probe().catch(() => false)) return (Date.now() - started) / 1000;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not happen within ${timeoutMs / 1000} s`);
}

export async function demonstrateEvents(p: {
  main: pg.Pool;
  tracking: pg.Pool;
  s3: S3Client;
  bucket: string;
  londonFiles: string;
  tokyoFiles: string;
  say: (msg: string) => void;
  timeoutMs?: number;
}): Promise<EventDemoResult> {
  const timeout = p.timeoutMs ?? 60_000;
  // A new blob: object first, then the row (the capture trigger writes the event in its transaction).
  const { rows } = await p.main.query<{ id: string }>(`SELECT nextval('cool_widgets_id_seq')::text AS id`);
  const id = rows[0]!.id;
  const body = randomBytes(200_000);
  await p.s3.send(new PutObjectCommand({ Bucket: p.bucket, Key: `cool_widgets/${id}/event-demo.bin`, Body: body }));
  await p.main.query(`INSERT INTO cool_widgets (id, namespace_id, file_name) VALUES ($1, 1, 'event-demo.bin')`, [id]);
  p.say(`wrote cool_widget ${id} on london (an object and its row); the next consistency pass is up to 10 min away`);
  const createdSeconds = await timed("the new cool_widget synced and verified on tokyo", timeout, async () => {
    const r = await p.tracking.query(`SELECT 1 FROM cool_widget_registry WHERE cool_widget_id = $1 AND state = ${SyncState.synced} AND verification_state = ${VerificationState.succeeded} AND verification_checksum = decode($2, 'hex')`, [id, sha(body)]);
    return r.rowCount === 1;
  });
  p.say(`cool_widget ${id}: synced and verified on tokyo ${createdSeconds.toFixed(1)} s after the write (event log → tokyo's log cursor)`);

  // An upload rewritten in place on london's volume: the database cannot see that, so it is published.
  const upload = await p.main.query<{ id: string; file_name: string }>(`SELECT id::text, file_name FROM uploads WHERE store = 1 ORDER BY id LIMIT 1`);
  const u = upload.rows[0]!;
  const rel = join("uploads", u.id, u.file_name);
  const newer = randomBytes(64_000);
  writeFileSync(join(p.londonFiles, rel), newer);
  await p.main.query(`SELECT geo_operator_publish_event('upload', $1::bigint, 'updated')`, [u.id]);
  p.say(`rewrote upload ${u.id} in place on london's volume and published it: SELECT geo_operator_publish_event('upload', ${u.id}, 'updated')`);
  const updatedSeconds = await timed("the rewritten upload copied and verified on tokyo", timeout, async () => {
    if (sha(readFileSync(join(p.tokyoFiles, rel))) !== sha(newer)) return false;
    const r = await p.tracking.query(`SELECT 1 FROM upload_registry WHERE upload_id = $1 AND state = ${SyncState.synced} AND verification_state = ${VerificationState.succeeded} AND verification_checksum = decode($2, 'hex')`, [u.id, sha(newer)]);
    return r.rowCount === 1;
  });
  p.say(`upload ${u.id}: the new content is on tokyo and verified against london's new checksum ${updatedSeconds.toFixed(1)} s after the publish`);

  const gone = await p.main.query<{ id: string }>(`DELETE FROM cool_widgets WHERE id = (SELECT min(id) FROM cool_widgets) RETURNING id::text`);
  p.say(`deleted cool_widget ${gone.rows[0]!.id} on london: tokyo notes it at once and removes its copy only on a second sighting after deletion.gracePeriod (1h in the samples)`);
  return { createdSeconds, updatedSeconds };
}
