import { describe, expect, it } from "vitest";
import { drawJitter, jitterParam, minimumRetryDelaySeconds, nextRetryAt, retryDelaySeconds } from "./backoff.ts";

describe("retry backoff", () => {
  it("follows n⁴ + 15 + jitter·(n + 1)", () => {
    expect(retryDelaySeconds(1, 0)).toBe(16);
    expect(retryDelaySeconds(1, 29)).toBe(16 + 58);
    expect(retryDelaySeconds(2, 10)).toBe(16 + 15 + 30);
    expect(retryDelaySeconds(5, 3)).toBe(625 + 15 + 18);
  });

  it("caps at one hour, four hours when missing on the primary", () => {
    expect(retryDelaySeconds(8, 0)).toBe(3600);
    expect(retryDelaySeconds(8, 0, true)).toBe(8 ** 4 + 15);
    expect(retryDelaySeconds(20, 29, true)).toBe(4 * 3600);
  });

  it("grows strictly with the count until the cap", () => {
    for (let n = 1; n < 7; n++) expect(minimumRetryDelaySeconds(n + 1)).toBeGreaterThan(minimumRetryDelaySeconds(n));
  });

  it("draws jitter 0..29 from the injected random source", () => {
    expect(drawJitter(() => 0)).toBe(0);
    expect(drawJitter(() => 0.5)).toBe(15);
    expect(drawJitter(() => 0.999999)).toBe(29);
    expect(drawJitter(() => 1)).toBe(29);
    expect(jitterParam({})).toBeNull();
    expect(jitterParam({ random: () => 0.1 })).toBe(3);
  });

  it("computes the retry instant from an injected clock", () => {
    const now = new Date("2025-01-01T00:00:00Z");
    expect(nextRetryAt(now, 2, 0)).toEqual(new Date("2025-01-01T00:00:31Z"));
  });
});
