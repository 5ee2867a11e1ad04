import { describe, expect, it } from "vitest";
import { firstVerificationSinceWrite } from "./verify-secondary.ts";

describe("firstVerificationSinceWrite", () => {
  const synced = new Date("2026-12-01T10:00:00Z");
  const row = { verifiedAt: null as Date | null, lastSyncedAt: synced as Date | null, verificationRetryCount: 0, checksumMismatch: false };

  it("is true for a copy never verified, or verified before its last sync", () => {
    expect(firstVerificationSinceWrite(row)).toBe(true);
    expect(firstVerificationSinceWrite({ ...row, verifiedAt: new Date("2026-12-01T09:00:00Z") })).toBe(true);
  });

  it("is false for a re-verification, a retry and after a mismatch", () => {
    expect(firstVerificationSinceWrite({ ...row, verifiedAt: new Date("2026-12-01T11:00:00Z") })).toBe(false);
    expect(firstVerificationSinceWrite({ ...row, verifiedAt: new Date("2026-12-01T09:00:00Z"), lastSyncedAt: null })).toBe(false);
    expect(firstVerificationSinceWrite({ ...row, verificationRetryCount: 1 })).toBe(false);
    expect(firstVerificationSinceWrite({ ...row, checksumMismatch: true })).toBe(false);
  });
});
