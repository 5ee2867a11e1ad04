import { describe, expect, it } from "vitest";
import type { DeletionHold, PassOutcome } from "../registry/deletions.ts";
import type { ReplicaProof } from "../registry/heartbeat.ts";
import { decideDeletions, HoldReason, SHARE_RULE_FLOOR, type DeletionInput } from "./deletion-policy.ts";

const proven: ReplicaProof = { state: "proven", identity: "0b6c1f9e-0000-4000-8000-000000000000", databaseName: "gitlabhq_production", lagSeconds: 3 };

function input(overrides: { outcome?: Partial<PassOutcome>; replica?: ReplicaProof; settings?: Partial<DeletionInput["settings"]>; passScanned?: number; hold?: DeletionHold | null } = {}): DeletionInput {
  return {
    typeName: "cool_widget",
    primarySiteName: "london",
    outcome: { goneThisPass: 1, confirmed: 1, registryRows: 1000, ...overrides.outcome },
    passScanned: overrides.passScanned ?? 999,
    replica: overrides.replica ?? proven,
    settings: { graceSeconds: 3600, maxPerPass: 1000, maxPercentPerPass: 10, maxReplicationLagSeconds: 600, ...overrides.settings },
    hold: overrides.hold ?? null,
  };
}

function hold(reason: string, releasedAt: Date | null, heldAt = new Date("2026-12-01T10:00:00Z")): DeletionHold {
  return { typeName: "cool_widget", reason, message: "held", pending: 5, heldAt, updatedAt: heldAt, releasedAt, releasedBy: releasedAt ? "alice" : null };
}

const reasonOf = (i: DeletionInput) => {
  const d = decideDeletions(i);
  return d.action === "hold" ? d.reason : d.action;
};

describe("decideDeletions", () => {
  it("does nothing when the pass found nothing gone and nothing confirmed", () => {
    expect(decideDeletions(input({ outcome: { goneThisPass: 0, confirmed: 0 } }))).toEqual({ action: "nothing" });
  });

  it("deletes when the picture is plausible", () => {
    expect(decideDeletions(input())).toEqual({ action: "delete", released: false });
    // Confirmed rows alone are enough to act on.
    expect(decideDeletions(input({ outcome: { goneThisPass: 0, confirmed: 2 } }))).toEqual({ action: "delete", released: false });
    // Found gone but not yet confirmed: "delete" only removes confirmed rows (none yet).
    expect(decideDeletions(input({ outcome: { goneThisPass: 3, confirmed: 0 } }))).toEqual({ action: "delete", released: false });
  });

  it("holds with ReplicaUnproven when the replica has no heartbeat", () => {
    const d = decideDeletions(input({ replica: { state: "no-heartbeat" } }));
    expect(d).toMatchObject({ action: "hold", reason: HoldReason.ReplicaUnproven });
    if (d.action !== "hold") throw new Error("not held");
    expect(d.message).toMatch(/no geo-operator heartbeat/);
    expect(d.message).toMatch(/1 of 1000 cool_widget registry rows/);
    expect(d.message).toMatch(/kubectl annotate replicabletype .* geo\.replication\.dev\/release-deletions=/);
  });

  it("holds with ReplicaUnproven when the replica carries another site's heartbeat, or none", () => {
    const d = decideDeletions(input({ replica: { state: "other-site", siteNames: ["paris", "rome"] } }));
    expect(d).toMatchObject({ action: "hold", reason: HoldReason.ReplicaUnproven, message: expect.stringMatching(/heartbeat of paris, rome, not of primary london/) });
    expect(decideDeletions(input({ replica: { state: "other-site", siteNames: [] } }))).toMatchObject({ message: expect.stringMatching(/heartbeat of no site/) });
  });

  it("holds with ReplicaUnproven when the replica shows the primary's name from another database than the pinned one", () => {
    const other = "5d0c2a77-0000-4000-8000-000000000000";
    const d = decideDeletions(
      input({ replica: { state: "other-identity", identity: other, pinnedIdentity: proven.identity, pinnedAt: new Date("2026-11-01T00:00:00Z"), databaseName: "gitlabhq_staging" } }),
    );
    expect(d).toMatchObject({ action: "hold", reason: HoldReason.ReplicaUnproven });
    if (d.action !== "hold") throw new Error("not held");
    expect(d.message).toContain(`heartbeat of london from another database (identity ${other}, database gitlabhq_staging)`);
    expect(d.message).toContain(`replicated from since 2026-11-01T00:00:00.000Z (identity ${proven.identity})`);
    expect(d.message).toContain(`kubectl annotate geosite <this secondary> geo.replication.dev/accept-primary-identity=${other} --overwrite`);
  });

  it("holds with ReplicaLagging only above maxReplicationLag", () => {
    expect(reasonOf(input({ replica: { ...proven, lagSeconds: 601 } }))).toBe(HoldReason.ReplicaLagging);
    expect(decideDeletions(input({ replica: { ...proven, lagSeconds: 3600 } }))).toMatchObject({ message: expect.stringMatching(/3600 s behind \(limit 600 s\)/) });
    expect(reasonOf(input({ replica: { ...proven, lagSeconds: 600 } }))).toBe("delete");
  });

  it("holds with PrimaryEmpty when the pass read no primary rows while the registry has some", () => {
    const empty = input({ passScanned: 0, outcome: { goneThisPass: 1000, confirmed: 1000, registryRows: 1000 } });
    expect(reasonOf(empty)).toBe(HoldReason.PrimaryEmpty);
    // Even a registry small enough for the share rule not to apply.
    expect(reasonOf(input({ passScanned: 0, outcome: { goneThisPass: 2, confirmed: 0, registryRows: 2 } }))).toBe(HoldReason.PrimaryEmpty);
    // An empty registry and an empty primary: nothing to say.
    expect(decideDeletions(input({ passScanned: 0, outcome: { goneThisPass: 0, confirmed: 0, registryRows: 0 } }))).toEqual({ action: "nothing" });
  });

  it("holds with TooManyDeletions above maxPerPass", () => {
    expect(reasonOf(input({ settings: { maxPerPass: 5 }, outcome: { goneThisPass: 6, confirmed: 0, registryRows: 1_000_000 } }))).toBe(HoldReason.TooManyDeletions);
    expect(reasonOf(input({ settings: { maxPerPass: 5 }, outcome: { goneThisPass: 5, confirmed: 0, registryRows: 1_000_000 } }))).toBe("delete");
  });

  it("holds with TooManyDeletions above maxPercentPerPass, but only above the floor of rows", () => {
    expect(reasonOf(input({ outcome: { goneThisPass: 12, confirmed: 0, registryRows: 100 } }))).toBe(HoldReason.TooManyDeletions);
    expect(reasonOf(input({ outcome: { goneThisPass: 11, confirmed: 0, registryRows: 110 } }))).toBe("delete"); // exactly 10 %
    expect(reasonOf(input({ outcome: { goneThisPass: 11, confirmed: 0, registryRows: 109 } }))).toBe(HoldReason.TooManyDeletions);
    // At or below the floor the 10 % rule does not apply: 10 of 50 (20 %) is not implausible by itself.
    expect(reasonOf(input({ outcome: { goneThisPass: SHARE_RULE_FLOOR, confirmed: 0, registryRows: 50 } }))).toBe("delete");
    expect(reasonOf(input({ outcome: { goneThisPass: SHARE_RULE_FLOOR + 1, confirmed: 0, registryRows: 55 } }))).toBe(HoldReason.TooManyDeletions);
  });

  it("holds a small registry losing more than half of its rows at once (two or more), whatever the 10 % rule says", () => {
    expect(reasonOf(input({ outcome: { goneThisPass: SHARE_RULE_FLOOR, confirmed: 0, registryRows: SHARE_RULE_FLOOR } }))).toBe(HoldReason.TooManyDeletions);
    expect(reasonOf(input({ outcome: { goneThisPass: 9, confirmed: 0, registryRows: 10 } }))).toBe(HoldReason.TooManyDeletions);
    expect(reasonOf(input({ outcome: { goneThisPass: 2, confirmed: 0, registryRows: 3 } }))).toBe(HoldReason.TooManyDeletions);
    expect(reasonOf(input({ outcome: { goneThisPass: 2, confirmed: 0, registryRows: 4 } }))).toBe("delete"); // half, not more
    expect(reasonOf(input({ outcome: { goneThisPass: 1, confirmed: 0, registryRows: 1 } }))).toBe("delete"); // the one record of a type
    expect(reasonOf(input({ outcome: { goneThisPass: 5, confirmed: 0, registryRows: 40 } }))).toBe("delete");
    const held = decideDeletions(input({ outcome: { goneThisPass: 7, confirmed: 0, registryRows: 8 } }));
    expect(held).toMatchObject({ action: "hold", reason: HoldReason.TooManyDeletions, message: expect.stringContaining("more than half of this site's 8 rows") });
  });

  it("checks the replica before the counts", () => {
    const everything = { passScanned: 0, outcome: { goneThisPass: 500, confirmed: 0, registryRows: 500 } };
    expect(reasonOf(input({ ...everything, replica: { state: "no-heartbeat" } }))).toBe(HoldReason.ReplicaUnproven);
    expect(reasonOf(input({ ...everything, replica: { ...proven, lagSeconds: 9999 } }))).toBe(HoldReason.ReplicaLagging);
    expect(reasonOf(input(everything))).toBe(HoldReason.PrimaryEmpty);
  });

  it("a problem with nothing gone and nothing confirmed is not a hold", () => {
    expect(decideDeletions(input({ replica: { state: "no-heartbeat" }, outcome: { goneThisPass: 0, confirmed: 0 } }))).toEqual({ action: "nothing" });
  });

  it("a hold released for the same reason lets the deletions go ahead", () => {
    const released = hold(HoldReason.TooManyDeletions, new Date("2026-12-01T11:00:00Z"));
    const tooMany = { outcome: { goneThisPass: 200, confirmed: 200, registryRows: 1000 } };
    expect(decideDeletions(input({ ...tooMany, hold: released }))).toEqual({ action: "delete", released: true });
    // Released at the very moment it was held counts as released.
    const sameInstant = hold(HoldReason.TooManyDeletions, new Date("2026-12-01T10:00:00Z"));
    expect(decideDeletions(input({ ...tooMany, hold: sameInstant }))).toEqual({ action: "delete", released: true });
  });

  it("a hold not released, released before it was held, or released for another reason still holds", () => {
    const tooMany = { outcome: { goneThisPass: 200, confirmed: 200, registryRows: 1000 } };
    expect(reasonOf(input({ ...tooMany, hold: hold(HoldReason.TooManyDeletions, null) }))).toBe(HoldReason.TooManyDeletions);
    expect(reasonOf(input({ ...tooMany, hold: hold(HoldReason.TooManyDeletions, new Date("2026-12-01T09:00:00Z")) }))).toBe(HoldReason.TooManyDeletions);
    expect(reasonOf(input({ ...tooMany, hold: hold(HoldReason.PrimaryEmpty, new Date("2026-12-01T11:00:00Z")) }))).toBe(HoldReason.TooManyDeletions);
  });

  it("a plausible pass deletes without a release even when an old hold exists", () => {
    expect(decideDeletions(input({ hold: hold(HoldReason.ReplicaLagging, null) }))).toEqual({ action: "delete", released: false });
  });

  it("keeps a TooManyDeletions or PrimaryEmpty hold while records are still gone, even when the next pass looks plausible", () => {
    for (const reason of [HoldReason.TooManyDeletions, HoldReason.PrimaryEmpty]) {
      const earlier = hold(reason, null);
      expect(reasonOf(input({ hold: earlier }))).toBe(reason);
      // Released: the deletions go ahead.
      expect(decideDeletions(input({ hold: hold(reason, new Date("2026-12-01T11:00:00Z")) }))).toEqual({ action: "delete", released: true });
      // Nothing gone any more (the records came back): the hold ends.
      expect(decideDeletions(input({ hold: earlier, outcome: { goneThisPass: 0, confirmed: 0 } }))).toEqual({ action: "nothing" });
    }
  });

  it("lets replica holds end by themselves once the replica is proven and fresh", () => {
    expect(decideDeletions(input({ hold: hold(HoldReason.ReplicaLagging, null) }))).toEqual({ action: "delete", released: false });
    expect(decideDeletions(input({ hold: hold(HoldReason.ReplicaUnproven, null) }))).toEqual({ action: "delete", released: false });
  });
});
