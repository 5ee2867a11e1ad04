import { describe, expect, it } from "vitest";
import { PollDelay } from "./poll-delay.ts";

const quiet = { fullBatch: false, applied: 0, openGaps: 0 };
const flowing = { fullBatch: false, applied: 3, openGaps: 0 };

/** The waits after `count` reads like `step`, in order. */
function waits(delay: PollDelay, step: typeof quiet, count: number): number[] {
  return Array.from({ length: count }, () => delay.after(step));
}

describe("the log cursor's poll delay", () => {
  it("doubles from the minimum while the log is quiet, up to the maximum and no further", () => {
    expect(waits(new PollDelay(100, 2_000), quiet, 7)).toEqual([200, 400, 800, 1_600, 2_000, 2_000, 2_000]);
  });

  it("goes back to the minimum once a read applies events, then doubles again", () => {
    const delay = new PollDelay(100, 2_000);
    waits(delay, quiet, 5);
    expect(delay.after(flowing)).toBe(100);
    expect(delay.after(flowing)).toBe(100);
    expect(waits(delay, quiet, 3)).toEqual([200, 400, 800]);
  });

  it("reads on at once after a full batch, leaving the backoff where it was", () => {
    const delay = new PollDelay(100, 2_000);
    waits(delay, quiet, 3);
    expect(delay.after({ fullBatch: true, applied: 500, openGaps: 0 })).toBe(0);
    expect(delay.after({ fullBatch: true, applied: 0, openGaps: 2 })).toBe(0);
    expect(delay.after(quiet)).toBe(1_600);
  });

  it("looks at open gaps again within twice the minimum however long the log was quiet", () => {
    const delay = new PollDelay(100, 2_000);
    waits(delay, quiet, 6);
    const gapOpen = { fullBatch: false, applied: 0, openGaps: 1 };
    expect(waits(delay, gapOpen, 3)).toEqual([200, 200, 200]);
    // The backoff went on doubling underneath: once the gaps close the quiet wait is the maximum.
    expect(delay.after(quiet)).toBe(2_000);
  });

  it("waits the minimum, not twice it, when events flow with gaps open", () => {
    const delay = new PollDelay(100, 2_000);
    expect(delay.after({ fullBatch: false, applied: 4, openGaps: 2 })).toBe(100);
  });

  it("never waits longer than the maximum, even one below twice the minimum", () => {
    expect(waits(new PollDelay(100, 150), quiet, 3)).toEqual([150, 150, 150]);
    expect(new PollDelay(100, 150).after({ fullBatch: false, applied: 0, openGaps: 1 })).toBe(150);
  });
});
