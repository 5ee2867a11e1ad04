import { describe, expect, it } from "vitest";
import { decideRuns, syncFinishedSinceVerify, type RunRecord } from "./schedule.ts";

const t0 = new Date("2026-01-01T00:00:00Z");
const at = (s: number) => new Date(t0.getTime() + s * 1000);
const intervals = { "verify-primary": 60_000, sync: 60_000, verify: 60_000, consistency: 600_000 };
const run = (kind: RunRecord["kind"], s: number, state: "active" | "ok" | "failed", doneAt?: number): RunRecord => ({
  name: `${kind}-${s}`,
  site: "tokyo",
  kind,
  scheduledAt: at(s),
  active: state === "active",
  succeeded: state === "ok",
  failed: state === "failed",
  ...(doneAt === undefined ? {} : { completionTime: at(doneAt) }),
});
const secondary = ["sync", "verify", "consistency"] as const;

describe("decideRuns", () => {
  it("starts consistency first and holds sync and verify until it has succeeded once", () => {
    const d = decideRuns({ kinds: secondary, intervalsMs: intervals, runs: [], now: t0, triggered: false });
    expect(d.start).toEqual(["consistency"]);
    const d2 = decideRuns({ kinds: secondary, intervalsMs: intervals, runs: [run("consistency", 0, "ok", 5)], now: at(6), triggered: false });
    expect(d2.start).toEqual(["sync", "verify"]);
  });

  it("never starts a kind that is already running, even when triggered", () => {
    const runs = [run("consistency", 0, "ok", 1), run("sync", 2, "active")];
    const d = decideRuns({ kinds: secondary, intervalsMs: intervals, runs, now: at(3000), triggered: true });
    expect(d.start).not.toContain("sync");
    expect(d.start).toEqual(expect.arrayContaining(["verify", "consistency"]));
  });

  it("runs again one interval after the previous run finished, and says when to look again", () => {
    const runs = [run("consistency", 0, "ok", 1), run("sync", 10, "ok", 40), run("verify", 10, "failed", 20)];
    const early = decideRuns({ kinds: secondary, intervalsMs: intervals, runs, now: at(85), triggered: false });
    expect(early.start).toEqual(["verify"]);
    expect(early.requeueAfterMs).toBe(5_000);
    const later = decideRuns({ kinds: ["sync"], intervalsMs: intervals, runs, now: at(70), triggered: false });
    expect(later.start).toEqual([]);
    expect(later.requeueAfterMs).toBe(30_000);
    expect(decideRuns({ kinds: ["sync"], intervalsMs: intervals, runs, now: at(100), triggered: false }).start).toEqual(["sync"]);
  });

  it("starts everything idle at once on a manual trigger", () => {
    const runs = [run("verify-primary", 0, "ok", 1)];
    expect(decideRuns({ kinds: ["verify-primary"], intervalsMs: intervals, runs, now: at(2), triggered: true }).start).toEqual(["verify-primary"]);
    expect(decideRuns({ kinds: ["verify-primary"], intervalsMs: intervals, runs, now: at(2), triggered: false }).start).toEqual([]);
  });

  describe("verification after a sync run", () => {
    // Sync and verify started together at 10; verify found nothing synced yet and ended at 12;
    // sync ended at 40 having copied. The verify interval would end at 72.
    const runs = [run("consistency", 0, "ok", 1), run("sync", 10, "ok", 40), run("verify", 10, "ok", 12)];
    const input = { kinds: secondary, intervalsMs: intervals, runs, now: at(41), triggered: false };

    it("starts verification at once when copies wait for it", () => {
      expect(syncFinishedSinceVerify(runs)).toBe(true);
      expect(decideRuns({ ...input, copiesAwaitVerification: true }).start).toEqual(["verify"]);
    });

    it("keeps the verification interval when the sync left nothing to verify", () => {
      const d = decideRuns({ ...input, copiesAwaitVerification: false });
      expect(d.start).toEqual([]);
      expect(d.requeueAfterMs).toBe(31_000);
    });

    it("follows a sync only once: a verification started after it waits for the next sync", () => {
      const after = [...runs.slice(0, 2), run("verify", 41, "ok", 45)];
      expect(syncFinishedSinceVerify(after)).toBe(false);
      expect(decideRuns({ ...input, runs: after, now: at(46), copiesAwaitVerification: true }).start).toEqual([]);
    });

    it("does not follow a sync that failed or still runs, nor start a second verification", () => {
      expect(syncFinishedSinceVerify([run("consistency", 0, "ok", 1), run("sync", 10, "failed", 40), run("verify", 10, "ok", 12)])).toBe(false);
      expect(syncFinishedSinceVerify([run("consistency", 0, "ok", 1), run("sync", 10, "active"), run("verify", 10, "ok", 12)])).toBe(false);
      const verifying = [run("consistency", 0, "ok", 1), run("sync", 10, "ok", 40), run("verify", 30, "active")];
      expect(decideRuns({ ...input, runs: verifying, copiesAwaitVerification: true }).start).toEqual([]);
    });
  });

  describe("a run asked for through the registry API", () => {
    const runs = [run("consistency", 0, "ok", 1), run("sync", 10, "ok", 20), run("verify", 10, "ok", 12)];
    const input = { kinds: secondary, intervalsMs: intervals, runs, now: at(30), triggered: false };

    it("starts the kind asked for at once, and only that kind", () => {
      expect(decideRuns({ ...input, requestedAt: { sync: at(25) } }).start).toEqual(["sync"]);
    });

    it("is satisfied by a run scheduled after the request", () => {
      const after = [...runs, run("sync", 26, "ok", 28)];
      expect(decideRuns({ ...input, runs: after, requestedAt: { sync: at(25) } }).start).toEqual([]);
      // An old request (before the latest run) starts nothing either.
      expect(decideRuns({ ...input, requestedAt: { sync: at(5) } }).start).toEqual([]);
    });

    it("waits for a run of that kind in progress, then starts another (the rows may have changed after it claimed)", () => {
      const busy = [run("consistency", 0, "ok", 1), run("sync", 22, "active"), run("verify", 10, "ok", 12)];
      const d = decideRuns({ ...input, runs: busy, requestedAt: { sync: at(25) } });
      expect(d.start).toEqual([]);
      expect(d.requeueAfterMs).toBe(5_000);
      const done = [run("consistency", 0, "ok", 1), { ...run("sync", 22, "ok", 29) }, run("verify", 10, "ok", 12)];
      expect(decideRuns({ ...input, runs: done, now: at(30), requestedAt: { sync: at(25) } }).start).toEqual(["sync"]);
    });
  });
});
