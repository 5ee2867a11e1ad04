import { describe, expect, it } from "vitest";
import type { GeoSite, ReplicableType } from "../api/v1alpha1/resources.ts";
import type { GeoSiteSpec, GeoSiteStatus, ReplicableTypeSpec } from "../api/v1alpha1/types.generated.ts";
import { failoverCondition, failoverReadiness, failoverThresholdsOf, failoverTypes, statusRewriteSeconds, type FailoverCheck } from "./failover-readiness.ts";

const NOW = new Date("2026-12-02T12:00:00Z");
const ago = (s: number) => new Date(NOW.getTime() - s * 1000).toISOString();

type TypeStatus = NonNullable<GeoSiteStatus["types"]>[number];
const done = (name: string, n: number, extra: Partial<TypeStatus> = {}): TypeStatus => ({
  name, count: n, registryCount: n, syncedCount: n, failedCount: 0, verificationTotalCount: n, verifiedCount: n, verificationFailedCount: 0, ...extra,
});

function rtype(name: string, spec: Partial<ReplicableTypeSpec> = {}, meta: Partial<ReplicableType["metadata"]> = {}): ReplicableType {
  return {
    metadata: { name: name.replaceAll("_", "-"), namespace: "geo", creationTimestamp: new Date("2026-01-01T00:00:00Z"), ...meta },
    spec: { name, strategy: "blob", source: { table: `${name}s` }, changeCapture: "none", ...spec },
  };
}

function site(status: GeoSiteStatus, spec: Partial<GeoSiteSpec> = {}): GeoSite {
  return {
    metadata: { name: "tokyo", namespace: "geo", generation: 3 },
    spec: { role: "secondary", database: { secretRef: { name: "t" }, primaryReplicaSecretRef: { name: "p" } }, ...spec },
    status,
  };
}

/** A secondary where everything is done: two types, one of them with nothing to replicate. */
const readyStatus = (): GeoSiteStatus => ({
  observedGeneration: 3,
  health: "Healthy",
  lastStatusTime: ago(30),
  replicationLagSeconds: 4,
  types: [done("cool_widget", 12), done("empty_thing", 0)],
  conditions: [{ type: "SitesValid", status: "True", reason: "Reconciled", message: "ok", lastTransitionTime: ago(999) }],
});
const TYPES = [rtype("cool_widget"), rtype("empty_thing")];

function evaluate(status: GeoSiteStatus, opts: { spec?: Partial<GeoSiteSpec>; types?: ReplicableType[] } = {}) {
  return failoverReadiness({ site: site(status, opts.spec), types: opts.types ?? TYPES, now: NOW });
}
const failing = (r: { checks: FailoverCheck[] }) => r.checks.filter((c) => !c.ok);

describe("failoverReadiness", () => {
  it("is ready when every type is synced and verified, a type with nothing to replicate (0 of 0) included", () => {
    const r = evaluate(readyStatus());
    expect(failing(r)).toEqual([]);
    expect(r.ready).toBe(true);
    expect(r.checks.find((c) => c.check === "synced" && c.type === "empty_thing")).toMatchObject({ ok: true, done: 0, total: 0, message: "empty_thing: nothing to replicate (0 of 0)" });
    expect(r.checks.find((c) => c.check === "verified" && c.type === "empty_thing")?.ok).toBe(true);
    expect(failoverCondition(r)).toMatchObject({ status: "True", reason: "FailoverReady" });
  });

  it("is NOT ready while verification is unfinished, even with everything synced (GitLab's preflight passes here)", () => {
    const status = readyStatus();
    status.types![0] = done("cool_widget", 12, { verifiedCount: 9 });
    const r = evaluate(status);
    expect(r.ready).toBe(false);
    expect(failing(r)).toEqual([expect.objectContaining({ check: "verified", type: "cool_widget", reason: "NotVerified", records: 3, done: 9, total: 12 })]);
    expect(failing(r)[0]!.message).toBe("cool_widget: 3 records not verified, 9 of 12 done");
    expect(failoverCondition(r)).toEqual({ status: "False", reason: "NotVerified", message: "NotVerified: cool_widget: 3 records not verified, 9 of 12 done" });
  });

  it("needs only sync for a type whose verification is off", () => {
    const status = readyStatus();
    status.types![0] = done("cool_widget", 12, { verificationTotalCount: 0, verifiedCount: 0 });
    const r = evaluate(status, { types: [rtype("cool_widget", { verification: { enabled: false } }), rtype("empty_thing")] });
    expect(r.ready).toBe(true);
    expect(r.checks.find((c) => c.check === "verified" && c.type === "cool_widget")?.message).toMatch(/verification is off/);
  });

  it("counts records on the primary that the registry does not list yet as not synced", () => {
    const status = readyStatus();
    status.types![0] = done("cool_widget", 10, { count: 12 });
    const r = evaluate(status);
    const synced = failing(r).find((c) => c.check === "synced")!;
    expect(synced).toMatchObject({ type: "cool_widget", reason: "NotSynced", records: 2, done: 10, total: 12 });
    expect(synced.message).toBe("cool_widget: 2 records not synced, 10 of 12 done (2 records not in the registry yet)");
  });

  it("is not ready for a type the status does not list yet", () => {
    const r = evaluate(readyStatus(), { types: [...TYPES, rtype("new_type")] });
    expect(failing(r)).toEqual([expect.objectContaining({ check: "synced", type: "new_type", reason: "NotSynced", message: "new_type: no status yet: the operator has not counted this type on the site" })]);
  });

  it("ignores types with replication off, being deleted, or refused as a duplicate name", () => {
    const types = [
      ...TYPES,
      rtype("off_type", { replication: { enabled: false } }),
      rtype("gone_type", {}, { deletionTimestamp: new Date() }),
      rtype("cool_widget", {}, { name: "cool-widget-copy", creationTimestamp: new Date("2026-06-01T00:00:00Z") }),
    ];
    expect(failoverTypes(types).map((t) => t.metadata.name)).toEqual(["cool-widget", "empty-thing"]);
    expect(evaluate(readyStatus(), { types }).ready).toBe(true);
  });

  const alone: [string, (s: GeoSiteStatus) => void, Partial<FailoverCheck>, RegExp][] = [
    ["sync failures", (s) => (s.types![0] = done("cool_widget", 12, { syncedCount: 10, failedCount: 2, verifiedCount: 10 })), { check: "syncFailures", reason: "SyncFailures", type: "cool_widget", records: 2 }, /^cool_widget: 2 records failed to sync \(checksum mismatches included\)$/],
    ["verification failures", (s) => (s.types![0] = done("cool_widget", 12, { verificationFailedCount: 1, verifiedCount: 11 })), { check: "verificationFailures", reason: "VerificationFailures", type: "cool_widget", records: 1 }, /^cool_widget: 1 record failed verification$/],
    ["unsynced rows", (s) => (s.types![0] = done("cool_widget", 12, { syncedCount: 7, verifiedCount: 7 })), { check: "synced", reason: "NotSynced", records: 5 }, /cool_widget: 5 records not synced, 7 of 12 done/],
    ["held deletions", (s) => (s.types![0] = done("cool_widget", 12, { heldDeletions: 4 })), { check: "deletionsHeld", reason: "DeletionsHeld", type: "cool_widget", records: 4 }, /cool_widget: 4 deletions held/],
    ["replication lag over the limit", (s) => (s.replicationLagSeconds = 200), { check: "replicationLag", reason: "ReplicaLagging", seconds: 200, limitSeconds: 120 }, /replica is 200 s behind \(limit 60 s \+ 60 s heartbeat interval\)/],
    ["replication lag unknown", (s) => delete s.replicationLagSeconds, { check: "replicationLag", reason: "ReplicaUnproven" }, /replication lag unknown/],
    ["a stale status", (s) => (s.lastStatusTime = ago(400)), { check: "statusFresh", reason: "StatusStale", seconds: 400, limitSeconds: 300 }, /status last written 400 s ago .* \(limit 300 s\)/],
    ["no status time", (s) => delete s.lastStatusTime, { check: "statusFresh", reason: "StatusStale" }, /no status yet/],
    ["a status for an older generation", (s) => (s.observedGeneration = 2), { check: "statusFresh", reason: "StatusStale" }, /generation 2 of the spec, not 3/],
    ["unreachable storage", (s) => (s.healthReasons = ["StorageUnreachable: blob storage check failed: NoSuchBucket"]), { check: "storageReachable", reason: "StorageUnreachable" }, /StorageUnreachable: blob storage check failed/],
    ["an unreachable database", (s) => (s.healthReasons = ["JobsFailing: x", "DatabaseUnreachable: connect ECONNREFUSED"]), { check: "storageReachable", reason: "StorageUnreachable" }, /^DatabaseUnreachable: connect ECONNREFUSED$/],
    ["a server not running", (s) => (s.healthReasons = ["ServerNotRunning: file-retrieval: forbidden"]), { check: "storageReachable" }, /ServerNotRunning/],
    ["a refused topology", (s) => (s.conditions = [{ type: "SitesValid", status: "False", reason: "PointsAtPrimary", message: "its objectStorage is the primary's bucket", lastTransitionTime: ago(9) }]), { check: "siteValid", reason: "PointsAtPrimary" }, /the primary's bucket/],
  ];
  for (const [what, mutate, expected, message] of alone) {
    it(`fails on ${what} alone, naming what blocks`, () => {
      const status = readyStatus();
      mutate(status);
      const r = evaluate(status);
      expect(r.ready).toBe(false);
      // Failed or unsynced rows are also not synced or verified: those follow-on lines are left out.
      const [first, ...rest] = failing(r).filter((c) => c.check === expected.check || (c.check !== "synced" && c.check !== "verified"));
      expect(rest).toEqual([]);
      expect(first).toMatchObject(expected);
      expect(first!.message).toMatch(message);
      expect(failoverCondition(r).reason).toBe(failing(r)[0]!.reason);
    });
  }

  it("says checksum mismatches are among the sync failures, where the status counts them, and not among the verification failures", () => {
    // A mismatch fails the row's sync as well as its verification (markChecksumMismatch): the status
    // counts it in failedCount only, as verificationFailedCount counts synced rows. It has no
    // separate mismatch count, so the line cannot say how many of the failures are mismatches.
    const status = readyStatus();
    status.types![0] = done("cool_widget", 12, { syncedCount: 9, failedCount: 3, verifiedCount: 8, verificationFailedCount: 1 });
    const r = evaluate(status);
    expect(r.checks.find((c) => c.check === "syncFailures" && c.type === "cool_widget")).toMatchObject({
      ok: false,
      records: 3,
      message: "cool_widget: 3 records failed to sync (checksum mismatches included)",
    });
    expect(r.checks.find((c) => c.check === "verificationFailures" && c.type === "cool_widget")).toMatchObject({ ok: false, records: 1, message: "cool_widget: 1 record failed verification" });
    expect(failoverCondition(r).message).toMatch(/^SyncFailures: cool_widget: 3 records failed to sync \(checksum mismatches included\); VerificationFailures: cool_widget: 1 record failed verification; /);
  });

  it("fails on a disabled site", () => {
    expect(failing(evaluate(readyStatus(), { spec: { enabled: false } }))).toEqual([expect.objectContaining({ check: "siteValid", reason: "SiteDisabled" })]);
  });

  it("checks the log cursor only when the site runs one, against eventLog.cursor.maxLag or spec.failover", () => {
    const captured = [rtype("cool_widget", { changeCapture: "trigger" }), rtype("empty_thing")];
    const noCursor = evaluate(readyStatus(), { types: captured, spec: { eventLog: { cursor: { enabled: false } } } });
    expect(noCursor.checks.some((c) => c.check === "eventCursorLag")).toBe(false);
    expect(evaluate(readyStatus()).checks.some((c) => c.check === "eventCursorLag")).toBe(false);

    expect(failing(evaluate(readyStatus(), { types: captured }))).toEqual([expect.objectContaining({ check: "eventCursorLag", reason: "EventCursorBehind", message: expect.stringMatching(/no position yet/) })]);
    const behind = { ...readyStatus(), eventLog: { cursorLastEventId: 5, lagSeconds: 90 } };
    expect(evaluate(behind, { types: captured }).ready).toBe(true);
    expect(failing(evaluate(behind, { types: captured, spec: { eventLog: { cursor: { maxLag: "1m" } } } }))).toEqual([
      expect.objectContaining({ check: "eventCursorLag", seconds: 90, limitSeconds: 60, message: "the log cursor is 90 s behind the primary's newest event (limit 60 s)" }),
    ]);
    expect(failing(evaluate(behind, { types: captured, spec: { failover: { maxEventCursorLag: "30s" } } }))[0]).toMatchObject({ limitSeconds: 30 });
  });

  it("takes its thresholds from spec.failover, with safe defaults", () => {
    expect(failoverThresholdsOf({ role: "secondary", database: { secretRef: { name: "t" } } })).toEqual({ maxReplicationLagSeconds: 60, maxEventCursorLagSeconds: 300, maxStatusAgeSeconds: 300 });
    expect(failoverThresholdsOf({ role: "secondary", statusInterval: "10m", database: { secretRef: { name: "t" } } }).maxStatusAgeSeconds).toBe(1800);
    const spec: GeoSiteSpec = { role: "secondary", database: { secretRef: { name: "t" } }, failover: { maxReplicationLag: "5s", maxEventCursorLag: "10s", maxStatusAge: "20s" } };
    expect(failoverThresholdsOf(spec)).toEqual({ maxReplicationLagSeconds: 5, maxEventCursorLagSeconds: 10, maxStatusAgeSeconds: 20 });
    // The operator rewrites an unchanged status every third of maxStatusAge, at least every 5 minutes.
    expect(statusRewriteSeconds({ ...spec, failover: { maxStatusAge: "30s" } })).toBe(10);
    expect(statusRewriteSeconds({ role: "secondary", database: { secretRef: { name: "t" } } })).toBe(100);
    expect(statusRewriteSeconds({ role: "secondary", statusInterval: "10m", database: { secretRef: { name: "t" } } })).toBe(300);

    const status = readyStatus();
    status.lastStatusTime = ago(25);
    status.replicationLagSeconds = 70;
    const r = evaluate(status, { spec: { failover: { maxStatusAge: "20s", maxReplicationLag: "5s" } } });
    expect(failing(r).map((c) => c.check)).toEqual(["statusFresh", "replicationLag"]);
  });

  it("allows the primary's heartbeat interval on top of the replication lag limit", () => {
    const status = { ...readyStatus(), replicationLagSeconds: 100 };
    expect(failoverReadiness({ site: site(status), types: TYPES, now: NOW, primaryHeartbeatSeconds: 60 }).ready).toBe(true);
    expect(failoverReadiness({ site: site(status), types: TYPES, now: NOW, primaryHeartbeatSeconds: 10 }).ready).toBe(false);
  });

  it("lists every blocking check in the condition message, the first one giving the reason", () => {
    const status = readyStatus();
    status.types = [done("cool_widget", 12, { syncedCount: 10, failedCount: 2, verifiedCount: 10 })];
    status.lastStatusTime = ago(1000);
    const c = failoverCondition(evaluate(status));
    expect(c.reason).toBe("StatusStale");
    expect(c.message.split("; ").map((m) => m.split(":")[0])).toEqual(["StatusStale", "SyncFailures", "NotSynced", "NotSynced", "NotVerified"]);
    expect(c.message).toContain("NotSynced: empty_thing: no status yet");
  });

  it("keeps the condition message bounded when many checks fail", () => {
    const many = Array.from({ length: 30 }, (_, i) => rtype(`type_${i}`));
    const c = failoverCondition(evaluate(readyStatus(), { types: many }));
    expect(c.message.split("; ")).toHaveLength(11);
    expect(c.message).toMatch(/; and 20 more failing checks \(kubectl geo preflight lists them all\)$/);
  });
});
