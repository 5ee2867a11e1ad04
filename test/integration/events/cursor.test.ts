/**
 * The log cursors of a primary and a secondary, in this process, against the real servers: a
 * change on the primary is checksummed there and synced and verified on the secondary within
 * seconds with no Job running; updates of mutable blobs follow; deletions follow only on
 * evidence; the cursor survives restarts and transactions that commit late without losing an
 * event.
 */
import { createHash, randomBytes } from "node:crypto";
import { GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { runSiteCursor } from "../../../src/cursor/site-cursor.ts";
import { loadCursorPosition, publishEvent, type CursorPosition } from "../../../src/registry/event-log.ts";
import { SyncState, VerificationState } from "../../../src/registry/states.ts";
import { createLogger } from "../../../src/util/log.ts";
import { createBlobWorld, PRIMARY_SITE_NAME, registryRows, type World } from "../../support/worker-world.ts";

const env = inject("env");
const SECONDARY = "tokyo";
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const log = createLogger({ name: "cursor-test", level: process.env.GEO_TEST_LOG_LEVEL ?? "silent" });

let world: World;

interface RunningCursor {
  positions: CursorPosition[];
  stop(): Promise<void>;
}

function startCursor(site: "primary" | "secondary", typeOverrides: Record<string, unknown> = {}, pollMs?: number): RunningCursor {
  const abort = new AbortController();
  const positions: CursorPosition[] = [];
  const spec = { ...world.type, ...typeOverrides };
  const done = runSiteCursor(
    { ...world.env(site), GEO_TYPE_SPECS: JSON.stringify([spec]) },
    {
      site: site === "primary" ? PRIMARY_SITE_NAME : SECONDARY,
      log,
      signal: abort.signal,
      onPosition: (p) => positions.push(p),
      tuning: pollMs ? { minPollMs: pollMs, maxPollMs: pollMs } : { minPollMs: 20, maxPollMs: 200 },
    },
  );
  return {
    positions,
    async stop() {
      abort.abort();
      await done;
    },
  };
}

const running: RunningCursor[] = [];
function start(site: "primary" | "secondary", typeOverrides: Record<string, unknown> = {}, pollMs?: number): RunningCursor {
  const c = startCursor(site, typeOverrides, pollMs);
  running.push(c);
  return c;
}

async function stopAll(): Promise<void> {
  await Promise.all(running.splice(0).map((c) => c.stop()));
}

async function putPrimary(key: string, body: Buffer): Promise<void> {
  await world.primaryS3.send(new PutObjectCommand({ Bucket: env.s3!.primary.bucket, Key: `${world.prefix}${key}`, Body: body }));
}

async function secondaryBody(key: string): Promise<Buffer | undefined> {
  try {
    const out = await world.secondaryS3.send(new GetObjectCommand({ Bucket: env.s3!.secondary.bucket, Key: `${world.prefix}${key}` }));
    return Buffer.from(await out.Body!.transformToByteArray());
  } catch (err) {
    if ((err as { name?: string }).name === "NoSuchKey") return undefined;
    throw err;
  }
}

/** A new record with its object, the way an application writes one: object first, then the row. */
async function addRecord(body: Buffer, name = `f-${randomBytes(3).toString("hex")}.bin`): Promise<{ id: number; key: string }> {
  const { rows } = await world.dbs.primary.query<{ id: string }>(`SELECT nextval('cool_widgets_id_seq')::text AS id`);
  const id = Number(rows[0]!.id);
  const key = `cool_widgets/${id}/${name}`;
  await putPrimary(key, body);
  await world.dbs.primary.query(`INSERT INTO cool_widgets (id, file_name) VALUES ($1, $2)`, [id, name]);
  return { id, key };
}

/** Polls every 50 ms; returns the elapsed milliseconds. */
async function within(ms: number, what: string, probe: () => Promise<boolean>): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < ms) {
    if (await probe()) return Date.now() - started;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not happen within ${ms} ms`);
}

async function row(id: number) {
  return (await registryRows(world.dbs.tracking)).get(id);
}

beforeAll(async () => {
  world = await createBlobWorld(env, { typeOverrides: { deletion: { gracePeriod: "0s" } } });
});
afterEach(stopAll);
afterAll(async () => {
  await stopAll();
  await world?.close();
});

describe("log cursors", () => {
  it("a new record is checksummed on the primary, synced and verified on the secondary within seconds, with no Job", async () => {
    start("primary");
    start("secondary");
    await new Promise((r) => setTimeout(r, 300)); // both cursors have taken their starting position
    const body = randomBytes(50_000);
    const { id, key } = await addRecord(body);
    const syncedMs = await within(5_000, "sync", async () => (await row(id))?.state === SyncState.synced);
    expect((await secondaryBody(key))?.equals(body)).toBe(true);
    await within(10_000, "verification", async () => (await row(id))?.verification_state === VerificationState.succeeded);
    expect((await row(id))!.verification_checksum.toString("hex")).toBe(sha(body));
    expect(syncedMs).toBeLessThan(5_000);
  });

  it("on the primary, NOTIFY wakes the cursor: a checksum within a second although it polls only every 20 s", async () => {
    start("primary", {}, 20_000);
    await new Promise((r) => setTimeout(r, 500));
    const body = randomBytes(1000);
    const { id } = await addRecord(body);
    const ms = await within(3_000, "primary checksum", async () => {
      const { rows } = await world.dbs.primary.query(`SELECT verification_state, verification_checksum FROM cool_widget_states WHERE cool_widget_id = $1`, [id]);
      return rows[0]?.verification_state === VerificationState.succeeded && (rows[0].verification_checksum as Buffer).toString("hex") === sha(body);
    });
    expect(ms).toBeLessThan(3_000);
  });

  it("an object rewritten in place and published as updated is copied again and verified against its new checksum", async () => {
    start("primary");
    start("secondary");
    const first = randomBytes(20_000);
    const { id, key } = await addRecord(first);
    await within(10_000, "first verification", async () => (await row(id))?.verification_state === VerificationState.succeeded);
    const second = randomBytes(30_000);
    await putPrimary(key, second);
    await publishEvent(world.dbs.primary, "cool_widget", id, "updated");
    await within(10_000, "new content on the secondary", async () => (await secondaryBody(key))?.equals(second) === true);
    await within(10_000, "verified against the new checksum", async () => {
      const r = await row(id);
      return r?.verification_state === VerificationState.succeeded && r.verification_checksum?.toString("hex") === sha(second);
    });
  });

  it("a row committed before its object was uploaded is checksummed and copied once the object appears (both cursors retry for a minute)", async () => {
    start("primary");
    start("secondary");
    const { rows } = await world.dbs.primary.query<{ id: string }>(`INSERT INTO cool_widgets (file_name) VALUES ('slow.bin') RETURNING id::text`);
    const id = Number(rows[0]!.id);
    await within(5_000, "a failed attempt, missing on the primary", async () => (await row(id))?.state === SyncState.failed);
    const body = randomBytes(3000);
    await putPrimary(`cool_widgets/${id}/slow.bin`, body);
    await within(20_000, "synced once the object is there", async () => (await row(id))?.state === SyncState.synced);
    expect((await secondaryBody(`cool_widgets/${id}/slow.bin`))?.equals(body)).toBe(true);
    await within(20_000, "verified against the primary's checksum, computed once the object was there", async () => (await row(id))?.verification_state === VerificationState.succeeded);
  });

  it("a column change the type reads (a new key) is followed: the new object is copied", async () => {
    start("primary");
    start("secondary");
    const { id } = await addRecord(randomBytes(1000));
    await within(5_000, "first sync", async () => (await row(id))?.state === SyncState.synced);
    const renamed = randomBytes(2000);
    await putPrimary(`cool_widgets/${id}/renamed.bin`, renamed);
    await world.dbs.primary.query(`UPDATE cool_widgets SET file_name = 'renamed.bin' WHERE id = $1`, [id]);
    await within(5_000, "renamed object copied", async () => (await secondaryBody(`cool_widgets/${id}/renamed.bin`))?.equals(renamed) === true);
    await within(5_000, "row synced again", async () => (await row(id))?.state === SyncState.synced);
  });

  it("a deleted record's copy goes after two sightings (grace 0 here), and with a grace period it waits", async () => {
    start("secondary");
    const a = await addRecord(randomBytes(1000));
    await within(5_000, "sync", async () => (await row(a.id))?.state === SyncState.synced);
    await world.dbs.primary.query(`DELETE FROM cool_widgets WHERE id = $1`, [a.id]);
    await within(10_000, "copy and registry row removed", async () => (await row(a.id)) === undefined && (await secondaryBody(a.key)) === undefined);
    await stopAll();

    start("secondary", { deletion: { gracePeriod: "1h" } });
    const b = await addRecord(randomBytes(1000));
    await within(5_000, "sync", async () => (await row(b.id))?.state === SyncState.synced);
    await world.dbs.primary.query(`DELETE FROM cool_widgets WHERE id = $1`, [b.id]);
    await within(5_000, "deletion candidate noted", async () => {
      const { rows } = await world.dbs.tracking.query(`SELECT 1 FROM geo_operator_deletion_candidates WHERE type_name = 'cool_widget' AND model_id = $1`, [b.id]);
      return rows.length === 1;
    });
    await new Promise((r) => setTimeout(r, 1500));
    expect(await row(b.id)).toBeDefined();
    expect(await secondaryBody(b.key)).toBeDefined();
  });

  it("resumes from its saved position after a restart: changes made while it was down are applied", async () => {
    const first = start("secondary");
    await within(5_000, "a first position", async () => first.positions.length > 0);
    await first.stop();
    running.splice(running.indexOf(first), 1);
    const saved = await loadCursorPosition(world.dbs.tracking, SECONDARY);
    const made = [];
    for (let i = 0; i < 5; i++) made.push(await addRecord(randomBytes(500)));
    // The log has moved on; the saved position has not.
    expect((await loadCursorPosition(world.dbs.tracking, SECONDARY))!.lastEventId).toBe(saved!.lastEventId);
    start("secondary");
    for (const r of made) await within(10_000, `sync of ${r.id}`, async () => (await row(r.id))?.state === SyncState.synced);
    expect((await loadCursorPosition(world.dbs.tracking, SECONDARY))!.lastEventId).toBeGreaterThan(saved!.lastEventId);
  });

  it("never skips an event whose transaction commits after a later one (gap tracking)", async () => {
    const cursor = start("secondary");
    const late = await world.dbs.primary.connect();
    try {
      await late.query("BEGIN");
      const { rows } = await late.query<{ id: string }>(`INSERT INTO cool_widgets (file_name) VALUES ('late.bin') RETURNING id::text`);
      const lateId = Number(rows[0]!.id);
      await putPrimary(`cool_widgets/${lateId}/late.bin`, Buffer.from("late"));
      const early = await addRecord(Buffer.from("early"));
      await within(5_000, "the later event applied first", async () => (await row(early.id))?.state === SyncState.synced);
      const position = cursor.positions.at(-1)!;
      expect(position.gaps.length).toBeGreaterThan(0);
      expect(await row(lateId)).toBeUndefined();
      await late.query("COMMIT");
      await within(5_000, "the late event applied", async () => (await row(lateId))?.state === SyncState.synced);
      await within(5_000, "the gap closed", async () => cursor.positions.at(-1)!.gaps.length === 0);
      expect((await secondaryBody(`cool_widgets/${lateId}/late.bin`))?.toString()).toBe("late");
    } finally {
      late.release();
    }
  });

  it("an update while the record is being copied is not lost: the final copy is the newest content", async () => {
    start("primary");
    start("secondary");
    const big = randomBytes(8 * 1024 * 1024);
    const { id, key } = await addRecord(big);
    // Rewrite while the first copy is (very likely) in flight.
    await within(5_000, "copy started", async () => (await row(id))?.state === SyncState.started || (await row(id))?.state === SyncState.synced);
    const newest = randomBytes(4096);
    await putPrimary(key, newest);
    await publishEvent(world.dbs.primary, "cool_widget", id, "updated");
    await within(15_000, "the newest content verified", async () => {
      const r = await row(id);
      return r?.state === SyncState.synced && r.verification_state === VerificationState.succeeded && r.verification_checksum?.toString("hex") === sha(newest);
    });
    expect((await secondaryBody(key))?.equals(newest)).toBe(true);
  });
});
