/**
 * Fault scenarios about deletions: pictures of the primary that must never delete secondary
 * copies (an empty or wrong replica, a lagging one, a narrowed selection, an edited source), each
 * given two complete consistency passes with a 0 s grace period, so only the holds stand between
 * the picture and the copies.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterEach, describe, expect, inject, it } from "vitest";
import { releaseDeletionHold } from "../../src/registry/deletions.ts";
import { acceptPrimaryIdentity, HEARTBEAT_TABLE, writeHeartbeat } from "../../src/registry/heartbeat.ts";
import type { World } from "../support/worker-world.ts";
import { expectInvariants } from "./invariants.ts";
import { scenario } from "./report.ts";
import { addBlobs, createFaultBlobWorld, holdOf, round, runOk, stateCounts, summaryField } from "./world.ts";

const env = inject("env");
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function world(): Promise<World> {
  const w = await createFaultBlobWorld(env);
  cleanups.push(() => w.close());
  return w;
}

/** A second database on the primary's server, e.g. a wrong or empty "replica". */
/**
 * `heartbeat`: "own" gives the database a heartbeat of site london under an identity of its own
 * (another environment's database); an identity gives it that one (a real replica of the primary).
 */
async function otherDatabase(tables: string[], opts: { heartbeat?: "own" | { identity: string } } = {}): Promise<{ url: string; pool: pg.Pool; identity?: string }> {
  const server = process.env.GEO_TEST_PRIMARY_DB_URL!;
  const name = `geo_fault_${randomBytes(5).toString("hex")}`;
  const admin = new pg.Client({ connectionString: server });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${name}"`);
  await admin.end();
  const u = new URL(server);
  u.pathname = `/${name}`;
  const pool = new pg.Pool({ connectionString: u.toString(), max: 2 });
  for (const t of tables) await pool.query(t);
  let identity: string | undefined;
  if (opts.heartbeat) {
    identity = await writeHeartbeat(pool, "london");
    if (opts.heartbeat !== "own") {
      identity = opts.heartbeat.identity;
      await pool.query(`UPDATE ${HEARTBEAT_TABLE} SET identity = $1::uuid`, [identity]);
    }
  }
  cleanups.push(async () => {
    await pool.end();
    const c = new pg.Client({ connectionString: server });
    await c.connect();
    await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await c.end();
  });
  return { url: u.toString(), pool, identity };
}

const MODEL_TABLE = `CREATE TABLE cool_widgets (id bigserial PRIMARY KEY, namespace_id bigint, file_name text NOT NULL)`;

/** Two consistency passes (grace 0 s: the second one would confirm); returns their summaries. */
async function twoPasses(w: World, overrides: Record<string, string> = {}) {
  const first = await runOk(w, "consistency", { env: overrides });
  const second = await runOk(w, "consistency", { env: overrides });
  return { first, second, deleted: summaryField(first, "deleted") + summaryField(second, "deleted"), held: summaryField(second, "held") };
}

describe("fault suite: deletions", () => {
  it("01 empty replica", () =>
    scenario(
      "01 empty replica",
      {
        done: "12 objects replicated and verified; GEO_PRIMARY_DB_URL → a database with the same, empty cool_widgets table and the primary's heartbeat identity (a real replica whose table was emptied); two consistency passes",
        expected: "held=12 (PrimaryEmpty), deleted=0, all copies kept",
      },
      async (o) => {
        const w = await world();
        await addBlobs(w, 12);
        await round(w);
        const empty = await otherDatabase([MODEL_TABLE], { heartbeat: { identity: await writeHeartbeat(w.dbs.primary, "london") } });
        const r = await twoPasses(w, { GEO_PRIMARY_DB_URL: empty.url });
        const hold = await holdOf(w);
        o.note(`deleted=${r.deleted} held=${r.held} hold=${hold?.reason ?? "none"}`);
        expect(r.deleted).toBe(0);
        expect(hold?.reason).toBe("PrimaryEmpty");
        expect((await stateCounts(w)).rows).toBe(12);
        await expectInvariants(env, w, o);
      },
    ));

  it("02 wrong database", () =>
    scenario(
      "02 wrong database",
      {
        done: "12 objects replicated; GEO_PRIMARY_DB_URL → another database with the tables but no rows and no heartbeat (e.g. a decomposed _ci database); two consistency passes",
        expected: "held (ReplicaUnproven), deleted=0, all copies kept",
      },
      async (o) => {
        const w = await world();
        await addBlobs(w, 12);
        await round(w);
        const wrong = await otherDatabase([MODEL_TABLE, `CREATE TABLE cool_widget_states (id bigserial PRIMARY KEY, cool_widget_id bigint)`]);
        const r = await twoPasses(w, { GEO_PRIMARY_DB_URL: wrong.url });
        const hold = await holdOf(w);
        o.note(`deleted=${r.deleted} held=${r.held} hold=${hold?.reason ?? "none"}`);
        expect(r.deleted).toBe(0);
        expect(hold?.reason).toBe("ReplicaUnproven");
        await expectInvariants(env, w, o);
      },
    ));

  it("03 replica lagging", () =>
    scenario(
      "03 replica lagging",
      {
        done: "12 replicated; 3 records deleted on the primary; heartbeat set 1 h old (maxReplicationLag 10m); two passes; then heartbeat fresh again; two passes",
        expected: "while lagging: held (ReplicaLagging), deleted=0; once fresh: the 3 deleted records' copies go, the other 9 stay",
      },
      async (o) => {
        const w = await world();
        const blobs = await addBlobs(w, 12);
        await round(w);
        const gone = blobs.slice(0, 3).map((b) => b.id);
        await w.dbs.primary.query(`DELETE FROM cool_widgets WHERE id = ANY($1::bigint[])`, [gone]);
        await w.dbs.primary.query(`UPDATE geo_operator_primary_heartbeat SET beat_at = now() - interval '1 hour'`);
        const lagging = await twoPasses(w);
        const hold = await holdOf(w);
        o.note(`lagging: deleted=${lagging.deleted} held=${lagging.held} hold=${hold?.reason ?? "none"}`);
        expect(lagging.deleted).toBe(0);
        expect(hold?.reason).toBe("ReplicaLagging");
        await writeHeartbeat(w.dbs.primary, "london");
        const fresh = await twoPasses(w);
        o.note(`fresh: deleted=${fresh.deleted}, hold=${(await holdOf(w))?.reason ?? "none"}`);
        expect(fresh.deleted).toBe(3);
        await expectInvariants(env, w, o, { mustHave: blobs.slice(3).map((b) => b.id) });
      },
    ));

  it("04 selective-sync change", () =>
    scenario(
      "04 selective-sync change",
      {
        done: "24 replicated, 12 in namespace 1 and 12 in namespace 2; the secondary's selectiveSync narrowed to namespace 1; two passes; then the hold released (releaseDeletionHold) and one more pass",
        expected: "held=12 (TooManyDeletions), deleted=0; after release: the 12 unselected copies go, namespace 1 untouched",
      },
      async (o) => {
        const w = await world();
        const ns1 = await addBlobs(w, 12, { namespaceId: 1, size: 64 });
        await addBlobs(w, 12, { namespaceId: 2, size: 64 });
        await round(w);
        w.secondarySite = { ...w.secondarySite, selectiveSync: { type: "namespaces", namespaces: [1] } };
        const r = await twoPasses(w);
        const hold = await holdOf(w);
        o.note(`deleted=${r.deleted} held=${r.held} hold=${hold?.reason ?? "none"}`);
        expect(r.deleted).toBe(0);
        expect(hold?.reason).toBe("TooManyDeletions");
        expect(await releaseDeletionHold(w.dbs.tracking, w.type.name, "fault-suite")).toBe(true);
        const after = await runOk(w, "consistency");
        o.note(`after release: deleted=${summaryField(after, "deleted")}`);
        expect(summaryField(after, "deleted")).toBe(12);
        await expectInvariants(env, w, o, { mustHave: ns1.map((b) => b.id) });
      },
    ));

  it("05 source.table edited", () =>
    scenario(
      "05 source.table edited",
      {
        done: "12 replicated; source.table edited to another table (cool_widgets_v2, 2 unrelated rows with high ids); two passes",
        expected: "held (TooManyDeletions), deleted=0, all 12 copies kept",
      },
      async (o) => {
        const w = await world();
        await addBlobs(w, 12);
        await round(w);
        await w.dbs.primary.query(`CREATE TABLE cool_widgets_v2 (id bigserial PRIMARY KEY, namespace_id bigint, file_name text NOT NULL)`);
        await w.dbs.primary.query(`INSERT INTO cool_widgets_v2 (id, namespace_id, file_name) VALUES (100000, 1, 'x.bin'), (100001, 1, 'y.bin')`);
        w.type = { ...w.type, source: { ...w.type.source, table: "cool_widgets_v2" } };
        const r = await twoPasses(w);
        const hold = await holdOf(w);
        o.note(`deleted=${r.deleted} held=${r.held} hold=${hold?.reason ?? "none"}`);
        expect(r.deleted).toBe(0);
        expect(hold?.reason).toBe("TooManyDeletions");
        w.type = { ...w.type, source: { ...w.type.source, table: "cool_widgets" } };
        await expectInvariants(env, w, o);
      },
    ));

  it("17 another environment's database under the same site name", () =>
    scenario(
      "17 another environment's database under the same site name",
      {
        done: "12 replicated and verified (the secondary pinned the primary's database identity); GEO_PRIMARY_DB_URL → another environment's database: cool_widgets with 11 of the 12 rows and a heartbeat of site london under its own identity; two passes; then that identity accepted (what the GeoSite annotation does); two passes",
        expected: "held (ReplicaUnproven, naming both identities and the annotation), deleted=0; once accepted: the missing record's copy goes, the other 11 stay",
      },
      async (o) => {
        const w = await world();
        const blobs = await addBlobs(w, 12);
        await round(w);
        const staging = await otherDatabase([MODEL_TABLE], { heartbeat: "own" });
        const { rows } = await w.dbs.primary.query<{ id: string; namespace_id: string | null; file_name: string }>(`SELECT id, namespace_id, file_name FROM cool_widgets WHERE id <> $1 ORDER BY id`, [blobs[0]!.id]);
        for (const r of rows) await staging.pool.query(`INSERT INTO cool_widgets (id, namespace_id, file_name) VALUES ($1, $2, $3)`, [r.id, r.namespace_id, r.file_name]);

        const wrong = await twoPasses(w, { GEO_PRIMARY_DB_URL: staging.url });
        const hold = await holdOf(w);
        o.note(`other identity: deleted=${wrong.deleted} held=${wrong.held} hold=${hold?.reason ?? "none"}`);
        expect(wrong.deleted).toBe(0);
        expect(hold?.reason).toBe("ReplicaUnproven");
        expect(hold?.message).toContain(`identity ${staging.identity}`);
        expect(hold?.message).toContain(`geo.replication.dev/accept-primary-identity=${staging.identity}`);

        expect(await acceptPrimaryIdentity(w.dbs.tracking, "london", staging.identity!)).toBe(await writeHeartbeat(w.dbs.primary, "london"));
        const accepted = await twoPasses(w, { GEO_PRIMARY_DB_URL: staging.url });
        o.note(`accepted: deleted=${accepted.deleted}, hold=${(await holdOf(w))?.reason ?? "none"}`);
        expect(accepted.deleted).toBe(1);
        await expectInvariants(env, w, o, { mustHave: blobs.slice(1).map((b) => b.id) });
      },
    ));
});
