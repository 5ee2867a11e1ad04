/**
 * `kubectl geo registries | resync | reverify` against real databases reached through the Secrets
 * the GeoSites name. The registry is seeded with SQL, so each test knows exactly which rows a
 * command may touch and checks that every other row is left as it was.
 */
import { existsSync } from "node:fs";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { CHECKSUM_MISMATCH_MESSAGE } from "../../../src/registry/states.ts";
import { recordMismatch } from "../../../src/registry/replicas.ts";
import { deletionHold, holdDeletions } from "../../../src/registry/deletions.ts";
import { ensureTrackingSideTables } from "../../../src/registry/side-tables.ts";
import { PLUGIN, createPluginWorld, runGeo, type PluginWorld } from "./plugin-world.ts";

let world: PluginWorld;
const PASSWORD = "pl4in-s3cret-pw";

/**
 * Six records. Registry rows are inserted in reverse, so registry id = 7 − model id and a mix-up
 * of the two shows. Model 2 failed verification on a synced copy; model 5 is a checksum mismatch
 * (sync and verification failed); models 3 and 5 are failed; 4 is pending.
 */
async function seed(): Promise<void> {
  const { primary, tracking } = world.dbs;
  await tracking.query(`TRUNCATE cool_widget_registry RESTART IDENTITY`);
  await primary.query(`TRUNCATE cool_widgets, cool_widget_states RESTART IDENTITY`);
  await primary.query(`INSERT INTO cool_widgets (file_name) SELECT 'f' || g FROM generate_series(1, 6) g`);
  await tracking.query(
    `INSERT INTO cool_widget_registry
       (cool_widget_id, created_at, state, last_synced_at, retry_at, retry_count, last_sync_failure,
        verification_state, verified_at, verification_checksum, verification_failure, checksum_mismatch, verification_checksum_mismatched)
     VALUES
       (6, now(), 2, now() - interval '1 hour', NULL, 0, NULL, 0, NULL, NULL, NULL, false, NULL),
       (5, now(), 3, now() - interval '1 hour', now() + interval '1 hour', 1, $1, 3, NULL, NULL, $1, true, '\\xdead'),
       (4, now(), 0, NULL, NULL, 0, NULL, 0, NULL, NULL, NULL, false, NULL),
       (3, now(), 3, now() - interval '1 hour', now() + interval '1 hour', 2, 'connection reset by peer', 0, NULL, NULL, NULL, false, NULL),
       (2, now(), 2, now() - interval '1 hour', NULL, 0, NULL, 3, NULL, NULL, 'checksum timed out', false, NULL),
       (1, now(), 2, '2025-01-01T10:00:00Z', NULL, 0, NULL, 2, '2025-01-01T11:00:00Z', '\\xbeef', NULL, false, NULL)`,
    [CHECKSUM_MISMATCH_MESSAGE],
  );
  await primary.query(
    `INSERT INTO cool_widget_states (cool_widget_id, verification_state, verified_at, verification_checksum, verification_failure, verification_retry_count)
     VALUES (1, 2, now(), '\\x01', NULL, 0), (2, 2, now(), '\\x02', NULL, 0), (3, 3, NULL, NULL, 'object missing', 2),
            (4, 2, now(), '\\x04', NULL, 0), (5, 2, now(), '\\x05', NULL, 0), (6, 4, NULL, NULL, NULL, 0)`,
  );
  await ensureTrackingSideTables(tracking);
  await recordMismatch(tracking, "cool_widget", 5, { refs: { "refs/heads/main": { primary: "abc", secondary: "def" } } });
}

async function registry(): Promise<Map<number, Record<string, any>>> {
  const { rows } = await world.dbs.tracking.query(`SELECT * FROM cool_widget_registry ORDER BY cool_widget_id`);
  return new Map(rows.map((r) => [Number(r.cool_widget_id), r]));
}

async function states(): Promise<Map<number, Record<string, any>>> {
  const { rows } = await world.dbs.primary.query(`SELECT * FROM cool_widget_states ORDER BY cool_widget_id`);
  return new Map(rows.map((r) => [Number(r.cool_widget_id), r]));
}

/** Model ids whose rows differ between two snapshots. */
function changed(before: Map<number, Record<string, any>>, after: Map<number, Record<string, any>>): number[] {
  return [...before.keys()].filter((id) => JSON.stringify(before.get(id)) !== JSON.stringify(after.get(id)));
}

/** MODEL ID column of a table printed by `registries`. */
const modelIds = (stdout: string): number[] =>
  stdout.trimEnd().split("\n").slice(1).map((l) => Number(l.split(/ {2,}/)[1]));

beforeAll(async () => {
  world = await createPluginWorld("plugin-rows");
});
beforeEach(async () => {
  await seed();
});
afterAll(async () => {
  await world?.close();
});

describe("kubectl geo registries", () => {
  it("lists every row with the GitLab registry columns, by metadata.name or spec.name", async () => {
    const res = await world.geo(["registries", "cool-widget", "--site", "tokyo"]);
    expect(res.code, res.stderr).toBe(0);
    const lines = res.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^ID\s+MODEL ID\s+STATE\s+LAST SYNCED\s+RETRY AT\s+RETRIES\s+VERIFICATION\s+VERIFIED AT\s+CHECKSUM MISMATCH\s+LAST FAILURE$/);
    expect(lines.slice(1).map((l) => l.split(/ {2,}/).slice(0, 3))).toEqual([
      ["1", "6", "synced"], ["2", "5", "failed"], ["3", "4", "pending"], ["4", "3", "failed"], ["5", "2", "synced"], ["6", "1", "synced"],
    ]);
    expect(lines[6]!.split(/ {2,}/)).toEqual(["6", "1", "synced", "2025-01-01T10:00:00Z", "-", "0", "succeeded", "2025-01-01T11:00:00Z", "false", "-"]);
    expect(lines[4]!.split(/ {2,}/)).toEqual(["4", "3", "failed", expect.any(String), expect.any(String), "2", "pending", "-", "false", "connection reset by peer"]);

    const bySpecName = await world.geo(["registries", "cool_widget", "--site", "tokyo"]);
    expect(bySpecName.stdout).toBe(res.stdout);
  });

  it("filters by sync state, verification state and mismatch", async () => {
    const failed = await world.geo(["registries", "cool-widget", "--site", "tokyo", "--state", "failed"]);
    expect(failed.code, failed.stderr).toBe(0);
    expect(modelIds(failed.stdout)).toEqual([5, 3]);
    const verificationFailed = await world.geo(["registries", "cool-widget", "--site", "tokyo", "--verification", "failed"]);
    expect(modelIds(verificationFailed.stdout)).toEqual([5, 2]);
    const both = await world.geo(["registries", "cool-widget", "--site", "tokyo", "--state", "synced", "--verification", "pending"]);
    expect(modelIds(both.stdout)).toEqual([6]);
    const mismatch = await world.geo(["registries", "cool-widget", "--site", "tokyo", "--mismatch"]);
    expect(modelIds(mismatch.stdout)).toEqual([5]);
    expect(mismatch.stdout.trimEnd().split("\n")[1]!.split(/ {2,}/).slice(8)).toEqual(["true", CHECKSUM_MISMATCH_MESSAGE]);
    const none = await world.geo(["registries", "cool-widget", "--site", "tokyo", "--state", "started"]);
    expect(none.code).toBe(0);
    expect(none.stdout).toBe("");
    expect(none.stderr).toMatch(/No cool_widget registry rows on tokyo match/);
  });

  it("--limit cuts the list and says so", async () => {
    const res = await world.geo(["registries", "cool-widget", "--site", "tokyo", "--limit", "2"]);
    expect(res.code, res.stderr).toBe(0);
    expect(modelIds(res.stdout)).toEqual([6, 5]);
    expect(res.stderr).toMatch(/showing the first 2 matching rows/);
    const bad = await world.geo(["registries", "cool-widget", "--site", "tokyo", "--limit", "0"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--limit.*must be a positive integer/);
  });

  it("-o json is parseable and carries the mismatch details", async () => {
    const res = await world.geo(["-o", "json", "registries", "cool-widget", "--site", "tokyo", "--verification", "failed"]);
    expect(res.code, res.stderr).toBe(0);
    const doc = JSON.parse(res.stdout);
    expect(doc).toMatchObject({ site: "tokyo", type: "cool_widget", truncated: false });
    expect(doc.items).toHaveLength(2);
    expect(doc.items[0]).toMatchObject({
      id: 2, modelId: 5, state: "failed", verificationState: "failed", checksumMismatch: true, retryCount: 1,
      verificationChecksumMismatched: "dead", lastSyncFailure: CHECKSUM_MISMATCH_MESSAGE,
      mismatch: { refs: { "refs/heads/main": { primary: "abc", secondary: "def" } } },
    });
    expect(doc.items[1]).toMatchObject({ id: 5, modelId: 2, state: "synced", verificationFailure: "checksum timed out", mismatch: null });
    expect(res.stdout).not.toContain(world.dbs.trackingUrl);
  });
});

describe("kubectl geo resync", () => {
  it("--id resyncs exactly the named registry rows", async () => {
    const before = await registry();
    // Registry ids 6 and 4 are models 1 (synced) and 3 (failed).
    const res = await world.geo(["resync", "cool-widget", "--site", "tokyo", "--id", "6", "4"]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toBe("2 cool_widget registry row(s) on tokyo marked for resync\n");
    const after = await registry();
    expect(changed(before, after)).toEqual([1, 3]);
    for (const id of [1, 3]) expect(after.get(id)).toMatchObject({ state: 0, retry_count: 0, retry_at: null });
  });

  it("--state failed resyncs the failed rows only; --model-id names records", async () => {
    const before = await registry();
    const res = await world.geo(["-o", "json", "resync", "cool_widget", "--site", "tokyo", "--state", "failed"]);
    expect(res.code, res.stderr).toBe(0);
    expect(JSON.parse(res.stdout)).toEqual({ action: "resync", site: "tokyo", type: "cool_widget", selected: 2, changed: 2 });
    const after = await registry();
    expect(changed(before, after)).toEqual([3, 5]);
    expect(after.get(5)).toMatchObject({ state: 0, retry_count: 0, retry_at: null });

    const byModel = await world.geo(["resync", "cool-widget", "--site", "tokyo", "--model-id", "6,4"]);
    expect(byModel.code, byModel.stderr).toBe(0);
    expect(byModel.stdout).toBe("1 cool_widget registry row(s) on tokyo marked for resync (1 of 2 selected were already pending)\n");
    expect(changed(after, await registry())).toEqual([6]);
  });

  it("--all refuses without --yes when stdin is not a terminal, and resyncs everything with it", async () => {
    const before = await registry();
    const refused = await world.geo(["resync", "cool-widget", "--site", "tokyo", "--all"]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/this resyncs all 6 cool_widget registry rows on GeoSite tokyo: stdin is not a terminal, so pass --yes to confirm/);
    expect(changed(before, await registry())).toEqual([]);

    const res = await world.geo(["resync", "cool-widget", "--site", "tokyo", "--all", "--yes"]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^5 cool_widget registry row\(s\) on tokyo marked for resync \(1 of 6 selected were already pending\)/);
    expect([...(await registry()).values()].map((r) => r.state)).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it.skipIf(!existsSync("/usr/bin/script"))("--all asks on a terminal and does nothing unless the answer is yes", async () => {
    // util-linux `script` gives the plugin a pseudo-terminal as stdin and forwards our input to it.
    const quote = (a: string) => `'${a.replaceAll("'", "'\\''")}'`;
    const inTerminal = (answer: string) => {
      const line = [process.execPath, PLUGIN, "-n", world.ns, "resync", "cool-widget", "--site", "tokyo", "--all"].map(quote).join(" ");
      return runGeo(["-qec", line, "/dev/null"], { command: ["/usr/bin/script"], input: answer });
    };
    const before = await registry();
    const no = await inTerminal("n\n");
    expect(no.code, no.stdout).toBe(1);
    expect(no.stdout).toMatch(/this resyncs all 6 cool_widget registry rows on GeoSite tokyo\. Continue\? \[y\/N\]/);
    expect(no.stdout).toMatch(/error: aborted; nothing changed/);
    expect(changed(before, await registry())).toEqual([]);
    const yes = await inTerminal("y\n");
    expect(yes.code, yes.stdout).toBe(0);
    expect(yes.stdout).toMatch(/5 cool_widget registry row\(s\) on tokyo marked for resync/);
    expect(changed(before, await registry())).toEqual([1, 2, 3, 5, 6]);
  });

  it("unknown ids exit 3 and change nothing; selectors are checked", async () => {
    const before = await registry();
    const missing = await world.geo(["resync", "cool-widget", "--site", "tokyo", "--id", "6", "99"]);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toBe("error: no cool_widget registry row with id 99 on GeoSite tokyo; nothing changed\n");
    expect(changed(before, await registry())).toEqual([]);

    const none = await world.geo(["resync", "cool-widget", "--site", "tokyo"]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/say which rows: one of --id, --model-id, --all or --state/);
    const two = await world.geo(["resync", "cool-widget", "--site", "tokyo", "--all", "--state", "failed"]);
    expect(two.code).toBe(2);
    const badId = await world.geo(["resync", "cool-widget", "--site", "tokyo", "--id", "x1"]);
    expect(badId.code).toBe(2);
    expect(badId.stderr).toMatch(/"x1" is not a positive integer id/);
    const badState = await world.geo(["resync", "cool-widget", "--site", "tokyo", "--state", "broken"]);
    expect(badState.code).toBe(2);
    expect(badState.stderr).toMatch(/Allowed choices are pending, started, synced, failed/);
  });
});

describe("kubectl geo reverify", () => {
  it("on a secondary marks synced rows verification pending and leaves the rest", async () => {
    const before = await registry();
    const res = await world.geo(["reverify", "cool-widget", "--site", "tokyo", "--verification", "failed"]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toBe(
      "1 cool_widget registry rows on tokyo marked for reverification (1 of 2 selected left as they were: not synced, already pending or verification disabled)\n",
    );
    const after = await registry();
    expect(changed(before, after)).toEqual([2]);
    expect(after.get(2)).toMatchObject({ state: 2, verification_state: 0, verification_retry_at: null });

    const byId = await world.geo(["reverify", "cool-widget", "--site", "tokyo", "--id", "6"]);
    expect(byId.code, byId.stderr).toBe(0);
    const again = await registry();
    expect(changed(after, again)).toEqual([1]);
    expect(again.get(1)).toMatchObject({ state: 2, verification_state: 0 });
  });

  it("on the primary marks _states rows for re-checksumming", async () => {
    const trackingBefore = await registry();
    const before = await states();
    const res = await world.geo(["reverify", "cool-widget", "--site", "london", "--model-id", "1"]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toBe("1 cool_widget_states rows on london marked for re-checksumming\n");
    const after = await states();
    expect(changed(before, after)).toEqual([1]);
    expect(after.get(1)).toMatchObject({ verification_state: 0, verification_checksum: null });

    const failed = await world.geo(["-o", "yaml", "reverify", "cool-widget", "--site", "london", "--verification", "failed"]);
    expect(failed.code, failed.stderr).toBe(0);
    expect(failed.stdout).toMatch(/^selected: 1\nchanged: 1\n/m);
    expect(changed(after, await states())).toEqual([3]);

    const all = await world.geo(["reverify", "cool-widget", "--site", "london", "--all", "--yes"]);
    expect(all.stdout).toMatch(/^5 cool_widget_states rows on london marked for re-checksumming \(1 of 6 selected left as they were: verification disabled\)/);
    expect((await states()).get(6)).toMatchObject({ verification_state: 4 });
    // The secondary's registry is not the primary's business.
    expect(changed(trackingBefore, await registry())).toEqual([]);

    const byRegistryId = await world.geo(["reverify", "cool-widget", "--site", "london", "--id", "1"]);
    expect(byRegistryId.code).toBe(2);
    expect(byRegistryId.stderr).toMatch(/london is the primary, which has no registry ids: select rows with --model-id/);
  });
});

describe("release-deletions", () => {
  it("releases the deletions a secondary held for a type, and exits 3 when nothing is held", async () => {
    await ensureTrackingSideTables(world.dbs.tracking);
    const none = await world.geo(["release-deletions", "cool-widget", "--site", "tokyo"]);
    expect(none.code).toBe(3);
    expect(none.stderr).toMatch(/no deletions of cool_widget are held on GeoSite tokyo/);
    await holdDeletions(world.dbs.tracking, "cool_widget", { reason: "TooManyDeletions", message: "40 of 40 look deleted", pending: 40 });
    const res = await world.geo(["release-deletions", "cool_widget", "--site", "tokyo"]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/released 40 held cool_widget deletion\(s\) on tokyo \(TooManyDeletions\)/);
    const hold = await deletionHold(world.dbs.tracking, "cool_widget");
    expect(hold?.releasedAt?.getTime()).toBeGreaterThanOrEqual(hold!.heldAt.getTime());
    expect(hold?.releasedBy).toBe("geo-admin (registry API)");
  });
});

describe("errors", () => {
  it("unknown type, unknown site and missing tables exit 3 with a readable message", async () => {
    const type = await world.geo(["registries", "widgetz", "--site", "tokyo"]);
    expect(type.code).toBe(3);
    expect(type.stderr).toBe(`error: ReplicableType "widgetz" not found in namespace ${world.ns} (types there: cool-widget (cool_widget), gadget (gadget))\n`);
    const site = await world.geo(["resync", "cool-widget", "--site", "berlin", "--all", "--yes"]);
    expect(site.code).toBe(3);
    expect(site.stderr).toMatch(/GeoSite "berlin" not found/);
    const table = await world.geo(["registries", "gadget", "--site", "tokyo"]);
    expect(table.code).toBe(3);
    expect(table.stderr).toMatch(/^error: gadget_registry does not exist in the tracking database of GeoSite tokyo \(127\.0\.0\.1:\d+\/geo_registry_\w+\) yet: the operator has not reconciled the ReplicableType yet\n$/);
    const primaryTable = await world.geo(["reverify", "gadget", "--site", "london", "--all", "--yes"]);
    expect(primaryTable.code).toBe(3);
    expect(primaryTable.stderr).toMatch(/gadget_states does not exist in the main database of GeoSite london/);
    const secret = await world.geo(["registries", "cool-widget", "--site", "paris"]);
    expect(secret.code).toBe(3);
    expect(secret.stderr).toMatch(/GeoSite paris names Secret .*\/no-such-secret key "url" for its tracking database, but there is no such Secret or key/);
  });

  it("wrong site roles and missing flags are usage errors", async () => {
    const primary = await world.geo(["registries", "cool-widget", "--site", "london"]);
    expect(primary.code).toBe(2);
    expect(primary.stderr).toMatch(/GeoSite london is the primary: registries works on secondary sites/);
    const resyncPrimary = await world.geo(["resync", "cool-widget", "--site", "london", "--all", "--yes"]);
    expect(resyncPrimary.code).toBe(2);
    const noSite = await world.geo(["registries", "cool-widget"]);
    expect(noSite.code).toBe(2);
    expect(noSite.stderr).toMatch(/required option '--site <name>' not specified/);
    const badVerification = await world.geo(["registries", "cool-widget", "--site", "tokyo", "--verification", "done"]);
    expect(badVerification.code).toBe(2);
    expect(badVerification.stderr).toMatch(/Allowed choices are pending, started, succeeded, failed, disabled/);
    const unknownCommand = await world.geo(["sync"]);
    expect(unknownCommand.code).toBe(2);
  });

  it("an unreachable database exits 1 without printing its password", async () => {
    const res = await world.geo(["registries", "cool-widget", "--site", "osaka"]);
    expect(res.code).toBe(1);
    expect(res.stderr).toBe("error: cannot reach the tracking database of GeoSite osaka at 127.0.0.1:1/tracking: connection refused\n");
    const json = await world.geo(["-o", "json", "resync", "cool-widget", "--site", "osaka", "--all", "--yes"]);
    expect(json.code).toBe(1);
    expect(json.stdout + json.stderr).not.toContain(PASSWORD);
  });
});
