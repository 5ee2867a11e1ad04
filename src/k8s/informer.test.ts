import { describe, expect, it } from "vitest";
import { changedBeyondStatus } from "./informer.ts";

const obj = (metadata: Record<string, unknown>, status?: unknown) => ({ metadata: { name: "x", resourceVersion: String(Math.random()), ...metadata }, status });

describe("changedBeyondStatus", () => {
  const base = obj({ generation: 3, labels: { a: "1" }, annotations: { "geo.replication.dev/trigger": "t1" }, finalizers: ["f"] }, { ready: true });

  it("is false for a status-only update (a controller's own write)", () => {
    expect(changedBeyondStatus({ ...base, metadata: { ...base.metadata, resourceVersion: "9" }, status: { ready: false } } as never, base as never)).toBe(false);
  });

  it("is true for an add, a spec change, a label, annotation or finalizer change, and a deletion", () => {
    expect(changedBeyondStatus(base as never, undefined)).toBe(true);
    expect(changedBeyondStatus({ ...base, metadata: { ...base.metadata, generation: 4 } } as never, base as never)).toBe(true);
    expect(changedBeyondStatus({ ...base, metadata: { ...base.metadata, labels: { a: "2" } } } as never, base as never)).toBe(true);
    expect(changedBeyondStatus({ ...base, metadata: { ...base.metadata, annotations: { "geo.replication.dev/trigger": "t2" } } } as never, base as never)).toBe(true);
    expect(changedBeyondStatus({ ...base, metadata: { ...base.metadata, finalizers: [] } } as never, base as never)).toBe(true);
    expect(changedBeyondStatus({ ...base, metadata: { ...base.metadata, deletionTimestamp: "2026-12-02T10:00:00Z" } } as never, base as never)).toBe(true);
  });
});
