import { describe, expect, it } from "vitest";
import { Ledger, percentile, type Change, type RowObservation } from "./ledger.ts";

const synced = (lastSyncedAt: number, verifiedAt: number | null = null): RowObservation => ({
  present: true,
  synced: true,
  lastSyncedAt,
  verified: verifiedAt !== null,
  verifiedAt,
});
const gone: RowObservation = { present: false, synced: false, lastSyncedAt: null, verified: false, verifiedAt: null };
const change = (c: Partial<Change> & Pick<Change, "seq" | "kind" | "version" | "committedAt">): Change => ({ data: "blob", modelId: 7, ...c });

describe("the latency ledger", () => {
  it("times a create by the registry's last_synced_at once it is after the commit, and its verification by verified_at", () => {
    const ledger = new Ledger();
    const c = change({ seq: 0, kind: "create", version: 1, committedAt: 1_000 });
    ledger.add(c);
    ledger.observeRow("blob", 7, synced(900), undefined, 1_100);
    expect(c.syncedAt).toBeUndefined();
    ledger.observeRow("blob", 7, synced(1_250), undefined, 1_300);
    expect(c.syncedAt).toBe(1_250);
    expect(ledger.openIds("blob")).toEqual([7]);
    ledger.observeRow("blob", 7, synced(1_250, 1_400), undefined, 1_500);
    expect(c.verifiedAt).toBe(1_400);
    expect(ledger.openIds("blob")).toEqual([]);
    expect(ledger.unsettled()).toEqual([]);
  });

  it("does not count a row synced with an older version in place, and times the change when its version arrives", () => {
    const ledger = new Ledger();
    ledger.seeded("blob", 7, 1);
    const u = change({ seq: 0, kind: "update", version: 2, committedAt: 1_000 });
    ledger.add(u);
    expect(ledger.wantsContent("blob", 7, synced(1_100), 1)).toBe(true);
    ledger.observeRow("blob", 7, synced(1_100), 1, 1_150);
    expect(u.syncedAt).toBeUndefined();
    expect(ledger.staleSeen).toEqual(new Set([0]));
    ledger.observeRow("blob", 7, synced(1_600), 2, 1_650);
    expect(u.syncedAt).toBe(1_600);
    expect(ledger.regressions).toBe(0);
  });

  it("an older version in a row synced after the cursor applied the change's event is a lost update", () => {
    const ledger = new Ledger();
    ledger.seeded("blob", 7, 1);
    const early = change({ seq: 0, kind: "update", version: 2, committedAt: 1_000, eventId: 5 });
    ledger.add(early);
    ledger.observeRow("blob", 7, synced(1_050), 1, 1_060);
    expect(ledger.staleAfterApplied).toEqual([]);
    ledger.observeApplied(5, new Set(), 1_100);
    ledger.observeRow("blob", 7, synced(1_200), 1, 1_210);
    ledger.observeRow("blob", 7, synced(1_300), 1, 1_310);
    expect(ledger.staleAfterApplied).toEqual([{ change: early, lastSyncedAt: 1_200, found: 1 }]);
    expect(ledger.staleSeen).toEqual(new Set([0]));
  });

  it("a synced row whose copy is gone because the record's delete removed it meanwhile is not a stale sync", () => {
    const ledger = new Ledger();
    const c = change({ seq: 0, kind: "create", version: 1, committedAt: 1_000, eventId: 5 });
    ledger.add(c);
    ledger.observeApplied(5, new Set(), 1_100);
    ledger.add(change({ seq: 1, kind: "delete", version: 1, committedAt: 1_150 }));
    ledger.observeRow("blob", 7, synced(1_200), null, 1_300);
    expect(c.syncedAt).toBe(1_200);
    expect(ledger.staleAfterApplied).toEqual([]);
    expect(ledger.staleSeen.size).toBe(0);
  });

  it("a later version in place settles earlier changes too; an older one seen after a newer one is out of order", () => {
    const ledger = new Ledger();
    ledger.seeded("blob", 7, 1);
    const a = change({ seq: 0, kind: "update", version: 2, committedAt: 1_000 });
    const b = change({ seq: 1, kind: "update", version: 3, committedAt: 1_100 });
    ledger.add(a);
    ledger.add(b);
    ledger.observeRow("blob", 7, synced(1_200), 3, 1_250);
    expect([a.syncedAt, b.syncedAt]).toEqual([1_200, 1_200]);
    ledger.observeRow("blob", 7, synced(1_300), 2, 1_350);
    expect(ledger.regressions).toBe(1);
  });

  it("times the delete of a replicated record by the poll that no longer finds its row", () => {
    const ledger = new Ledger();
    ledger.seeded("blob", 7, 1);
    const d = change({ seq: 0, kind: "delete", version: 1, committedAt: 1_000 });
    ledger.add(d);
    expect(d.replicatedBefore).toBe(true);
    ledger.observeRow("blob", 7, synced(500, 600), undefined, 1_100);
    expect(d.removedAt).toBeUndefined();
    ledger.observeRow("blob", 7, gone, null, 1_300);
    expect(d.removedAt).toBe(1_300);
    expect(ledger.leftovers.size).toBe(0);
  });

  it("a record created and deleted before it was copied: the create is superseded, the delete untimed", () => {
    const ledger = new Ledger();
    const c = change({ seq: 0, kind: "create", version: 1, committedAt: 1_000 });
    const d = change({ seq: 1, kind: "delete", version: 1, committedAt: 1_050 });
    ledger.add(c);
    ledger.add(d);
    expect(d.replicatedBefore).toBe(false);
    ledger.observeRow("blob", 7, gone, 1, 1_200);
    expect(c.superseded).toBe(true);
    expect(d.removedAt).toBe(1_200);
    expect(ledger.leftovers).toEqual(new Set([1]));
    expect(ledger.unsettled()).toEqual([]);
  });

  it("marks events applied when the cursor's position passes them, except its gaps", () => {
    const ledger = new Ledger();
    const a = change({ seq: 0, kind: "create", version: 1, committedAt: 1, eventId: 10 });
    const b = change({ seq: 1, kind: "create", version: 1, committedAt: 2, eventId: 11, modelId: 8 });
    ledger.add(a);
    ledger.add(b);
    ledger.observeApplied(11, new Set([10]), 50);
    expect([a.appliedAt, b.appliedAt]).toEqual([undefined, 50]);
    ledger.observeApplied(11, new Set(), 60);
    expect(a.appliedAt).toBe(60);
  });

  it("nearest-rank percentiles", () => {
    const values = Array.from({ length: 100 }, (_, i) => 100 - i);
    expect([percentile(values, 50), percentile(values, 99), percentile(values, 100)]).toEqual([50, 99, 100]);
    expect(percentile([], 50)).toBeNaN();
  });
});
