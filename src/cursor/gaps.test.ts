import { describe, expect, it } from "vitest";
import type { ChangeEvent, CursorPosition } from "../registry/event-log.ts";
import { advance } from "./gaps.ts";

const at = (id: number): ChangeEvent => ({ id, typeName: "t", modelId: id * 10, event: "created", createdAt: new Date(1_000 * id) });
const start: CursorPosition = { lastEventId: 0, lastEventAt: null, gaps: [] };
const settings = { gapTimeoutMs: 60_000, maxGaps: 5 };

describe("log cursor gap tracking", () => {
  it("applies consecutive events and moves the position to the newest", () => {
    const step = advance(start, [at(2), at(1), at(3)], 0, settings);
    expect(step.apply.map((e) => e.id)).toEqual([1, 2, 3]);
    expect(step.position).toEqual({ lastEventId: 3, lastEventAt: new Date(3_000), gaps: [] });
  });

  it("remembers ids it stepped over and applies them when they commit late", () => {
    const first = advance(start, [at(1), at(4)], 100, settings);
    expect(first.apply.map((e) => e.id)).toEqual([1, 4]);
    expect(first.position.gaps).toEqual([{ id: 2, since: 100 }, { id: 3, since: 100 }]);
    // 3 commits; 2 has not yet. 4 again (re-read) is not applied twice.
    const second = advance(first.position, [at(3), at(4), at(5)], 200, settings);
    expect(second.apply.map((e) => e.id)).toEqual([3, 5]);
    expect(second.position.gaps).toEqual([{ id: 2, since: 100 }]);
    const third = advance(second.position, [at(2)], 300, settings);
    expect(third.apply.map((e) => e.id)).toEqual([2]);
    expect(third.position).toEqual({ lastEventId: 5, lastEventAt: new Date(5_000), gaps: [] });
  });

  it("gives a gap up after the timeout (a rolled back transaction) and counts it", () => {
    const first = advance(start, [at(1), at(3)], 0, settings);
    expect(advance(first.position, [], 59_999, settings).position.gaps).toHaveLength(1);
    const expired = advance(first.position, [], 60_000, settings);
    expect(expired.position.gaps).toEqual([]);
    expect(expired.abandoned).toBe(1);
  });

  it("keeps at most maxGaps gaps, giving the oldest ids up first", () => {
    const step = advance(start, [at(1), at(20)], 0, settings);
    expect(step.position.gaps.map((g) => g.id)).toEqual([15, 16, 17, 18, 19]);
    expect(step.abandoned).toBe(13);
    const more = advance(step.position, [at(22)], 1, settings);
    expect(more.position.gaps.map((g) => g.id)).toEqual([16, 17, 18, 19, 21]);
    expect(more.abandoned).toBe(1);
  });

  it("keeps the old position when nothing new arrived", () => {
    const pos: CursorPosition = { lastEventId: 9, lastEventAt: new Date(9_000), gaps: [] };
    expect(advance(pos, [], 0, settings)).toEqual({ position: pos, apply: [], abandoned: 0 });
  });
});
