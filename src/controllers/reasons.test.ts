import { describe, expect, it } from "vitest";
import { HoldReason } from "../workers/deletion-policy.ts";
import { knownReason, Reason } from "./reasons.ts";

describe("reasons", () => {
  it("include every hold reason a consistency run writes (they become condition reasons)", () => {
    const reasons = new Set<string>(Object.values(Reason));
    for (const hold of Object.values(HoldReason)) expect(reasons, hold).toContain(hold);
  });

  it("read back from text keep a known reason and replace anything else with the fallback", () => {
    expect(knownReason("TooManyDeletions", Reason.DeletionsHeld)).toBe(Reason.TooManyDeletions);
    expect(knownReason("SomethingElse", Reason.DeletionsHeld)).toBe(Reason.DeletionsHeld);
    expect(knownReason(undefined, Reason.Reconciled)).toBe(Reason.Reconciled);
    expect(knownReason("", Reason.Reconciled)).toBe(Reason.Reconciled);
  });
});
