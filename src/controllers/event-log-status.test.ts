import { describe, expect, it } from "vitest";
import { primaryEventLogStatus, secondaryEventLogStatus, type SavedCursorPosition } from "./event-log-status.ts";

const now = new Date("2026-05-01T12:00:00Z");
const ago = (s: number) => new Date(now.getTime() - s * 1000);
const event = (id: number, secondsAgo: number) => ({ id, createdAt: ago(secondsAgo) });
const position = (over: Partial<SavedCursorPosition> = {}): SavedCursorPosition => ({ lastEventId: 100, lastEventAt: ago(10), gaps: [], updatedAt: ago(10), ...over });
const secondary = (p: Partial<Parameters<typeof secondaryEventLogStatus>[0]>) =>
  secondaryEventLogStatus({ siteName: "tokyo", bounds: { last: event(100, 10), oldest: event(1, 3600) }, position: position(), now, maxLagSeconds: 300, ...p });

describe("primary event log status", () => {
  it("shows the newest event and the oldest event's age", () => {
    expect(primaryEventLogStatus({ last: event(42, 5), oldest: event(7, 90.4) }, now)).toEqual({ lastEventId: 42, lastEventTime: ago(5).toISOString(), oldestEventAgeSeconds: 90 });
  });

  it("is empty for an empty or absent log", () => {
    expect(primaryEventLogStatus({ last: null, oldest: null }, now)).toEqual({});
  });
});

describe("secondary event log status", () => {
  it("shows the cursor caught up with lag 0 and its gaps", () => {
    expect(secondary({ position: position({ gaps: [{ id: 98, since: 0 }] }) })).toEqual({
      status: { cursorLastEventId: 100, cursorLastEventTime: ago(10).toISOString(), lagSeconds: 0, pendingGaps: 1 },
    });
    // A quiet log: caught up long ago is still caught up.
    expect(secondary({ position: position({ updatedAt: ago(86_400) }), bounds: { last: event(100, 86_400), oldest: event(1, 86_400) } })).toEqual({
      status: expect.objectContaining({ lagSeconds: 0 }),
    });
  });

  it("measures lag in event time: the primary's newest event minus the cursor's last", () => {
    const { status, finding } = secondary({ bounds: { last: event(150, 2), oldest: event(1, 3600) }, position: position({ lastEventAt: ago(62.34), updatedAt: ago(1) }) });
    expect(status.lagSeconds).toBe(60.3);
    expect(finding).toBeUndefined();
  });

  it("reports a cursor further behind than maxLag, naming what to check", () => {
    const { status, finding } = secondary({ bounds: { last: event(900, 1) , oldest: event(1, 3600) }, position: position({ lastEventAt: ago(400), updatedAt: ago(2) }) });
    expect(status.lagSeconds).toBe(399);
    expect(finding).toMatch(/^EventCursorBehind: the log cursor of tokyo is 399 s behind the primary's newest event 900 \(limit 300 s\); check the log cursor \(Deployment geo-cursor-tokyo/);
  });

  it("reports a cursor that has not moved for twice maxLag while newer events wait, even with a small lag", () => {
    const stuck = secondary({ bounds: { last: event(101, 700), oldest: event(1, 3600) }, position: position({ lastEventAt: ago(710), updatedAt: ago(700) }) });
    expect(stuck.status.lagSeconds).toBe(10);
    expect(stuck.finding).toMatch(/^EventCursorBehind: the log cursor of tokyo has not moved for 700 s \(at event 100, the primary's newest is 101\)/);
    expect(secondary({ bounds: { last: event(101, 500), oldest: event(1, 3600) }, position: position({ lastEventAt: ago(510), updatedAt: ago(500) }) }).finding).toBeUndefined();
  });

  it("uses the time the position was saved when the cursor has applied no event yet", () => {
    const { status } = secondary({ bounds: { last: event(3, 5), oldest: event(1, 30) }, position: position({ lastEventId: 0, lastEventAt: null, updatedAt: ago(45) }) });
    expect(status).toEqual({ cursorLastEventId: 0, lagSeconds: 40, pendingGaps: 0 });
  });

  it("reports a cursor that never ran only once the log has had events for twice maxLag", () => {
    expect(secondary({ position: undefined, bounds: { last: event(5, 1), oldest: event(1, 500) } })).toEqual({ status: {} });
    expect(secondary({ position: undefined, bounds: { last: null, oldest: null } })).toEqual({ status: {} });
    expect(secondary({ position: undefined, bounds: { last: event(5, 1), oldest: event(1, 700) } }).finding).toMatch(/^EventCursorBehind: the log cursor of tokyo has never run/);
  });
});
