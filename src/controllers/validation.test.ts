import { describe, expect, it } from "vitest";
import type { ReplicableType } from "../api/v1alpha1/resources.ts";
import { duplicateTypeNames } from "./validation.ts";
import { registryBehindLimit, secondaryTypeFindings } from "./geosite-controller.ts";
import type { ReplicableStatus } from "../registry/status.ts";

const type = (name: string, specName: string, created: string, deleting = false): ReplicableType => ({
  apiVersion: "geo.replication.dev/v1alpha1",
  kind: "ReplicableType",
  metadata: { name, namespace: "geo", creationTimestamp: created as unknown as Date, ...(deleting ? { deletionTimestamp: created as unknown as Date } : {}) },
  spec: { name: specName, strategy: "blob", source: { table: "t", objectKey: { column: "k" } } },
});

describe("duplicate spec.name", () => {
  it("refuses every later object with a name already in use and keeps the oldest", () => {
    const refused = duplicateTypeNames([
      type("b-widgets", "cool_widget", "2026-01-02T00:00:00Z"),
      type("a-widgets", "cool_widget", "2026-01-01T00:00:00Z"),
      type("c-widgets", "cool_widget", "2026-01-03T00:00:00Z"),
      type("repos", "design_repository", "2026-01-01T00:00:00Z"),
    ]);
    expect([...refused.entries()].sort()).toEqual([
      ["b-widgets", "a-widgets"],
      ["c-widgets", "a-widgets"],
    ]);
  });

  it("breaks a creation-time tie by object name, and ignores objects being deleted", () => {
    const refused = duplicateTypeNames([
      type("zeta", "cool_widget", "2026-01-01T00:00:00Z"),
      type("alpha", "cool_widget", "2026-01-01T00:00:00Z"),
      type("old", "cool_widget", "2025-01-01T00:00:00Z", true),
    ]);
    expect([...refused.entries()]).toEqual([["zeta", "alpha"]]);
  });
});

const status = (over: Partial<ReplicableStatus>): ReplicableStatus => ({
  count: 1000,
  checksumTotalCount: null,
  checksummedCount: null,
  checksumFailedCount: null,
  syncedCount: 1000,
  failedCount: 0,
  registryCount: 1000,
  verificationTotalCount: 1000,
  verifiedCount: 1000,
  verificationFailedCount: 0,
  syncedInPercentage: 100,
  verifiedInPercentage: 100,
  ...over,
});

describe("secondary health findings", () => {
  it("reports nothing for a caught-up, verified type", () => {
    expect(secondaryTypeFindings("cool_widget", status({}), { verificationFailedCount: 0 })).toEqual([]);
  });

  it("reports verification failures that rose since the last status", () => {
    const findings = secondaryTypeFindings("cool_widget", status({ verificationFailedCount: 7 }), { verificationFailedCount: 2 });
    expect(findings).toEqual([expect.stringMatching(/^VerificationFailuresRising: cool_widget: 7 rows .*was 2/)]);
    expect(secondaryTypeFindings("cool_widget", status({ verificationFailedCount: 7 }), { verificationFailedCount: 7 })).toEqual([]);
  });

  it("reports a registry far behind the primary's count", () => {
    expect(registryBehindLimit(1000)).toBe(100);
    expect(registryBehindLimit(1_000_000)).toBe(50_000);
    expect(secondaryTypeFindings("cool_widget", status({ registryCount: 900 }), undefined)).toEqual([]);
    expect(secondaryTypeFindings("cool_widget", status({ registryCount: 899 }), undefined)).toEqual([expect.stringMatching(/^RegistryBehind: cool_widget: the registry has 899 rows for 1000/)]);
  });
});
