import { describe, expect, it } from "vitest";
import { HoldReason } from "../workers/deletion-policy.ts";
import { Reason } from "./reasons.ts";

describe("reasons", () => {
  it("include every hold reason a consistency run writes (they become condition reasons)", () => {
    const reasons = new Set<string>(Object.values(Reason));
    for (const hold of Object.values(HoldReason)) expect(reasons, hold).toContain(hold);
  });
});
