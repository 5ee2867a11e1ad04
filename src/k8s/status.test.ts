import { describe, expect, it } from "vitest";
import { statusMergePatch } from "./status.ts";

describe("statusMergePatch", () => {
  it("sends fields that disappeared as null, in nested objects too, and replaces lists whole", () => {
    const previous = { health: "Unhealthy", healthReasons: ["a"], eventLog: { lastEventId: 5, lastEventTime: "t", oldestEventAgeSeconds: 3 }, types: [{ name: "x", count: 1 }] };
    const next = { health: "Healthy", eventLog: { oldestEventAgeSeconds: 4 }, types: [{ name: "x" }], replicationLagSeconds: undefined };
    expect(statusMergePatch(previous, next)).toEqual({
      status: { health: "Healthy", healthReasons: null, eventLog: { oldestEventAgeSeconds: 4, lastEventId: null, lastEventTime: null }, types: [{ name: "x" }], replicationLagSeconds: undefined },
    });
  });

  it("writes everything as is without a previous status", () => {
    expect(statusMergePatch(undefined, { health: "Healthy", eventLog: {} })).toEqual({ status: { health: "Healthy", eventLog: {} } });
  });
});
