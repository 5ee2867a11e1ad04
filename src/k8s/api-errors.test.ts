import { ApiException } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { describeError, statusMessage } from "./api-errors.ts";

const status = (code: number, body: unknown) => new ApiException(code, "message from the client", body, {});

describe("statusMessage", () => {
  it("takes the message of a Status body, as text or parsed", () => {
    const body = { kind: "Status", status: "Failure", message: 'registryactions is forbidden: User "vic" cannot create resource', code: 403 };
    expect(statusMessage(status(403, JSON.stringify(body)))).toBe(body.message);
    expect(statusMessage(status(403, body))).toBe(body.message);
  });

  it("shows a plain-text body, as the aggregator sends for an unreachable APIService", () => {
    expect(statusMessage(status(503, "service unavailable\n"))).toBe("HTTP 503: service unavailable");
    expect(statusMessage(status(502, "x".repeat(400)))).toBe(`HTTP 502: ${"x".repeat(300)}…`);
  });

  it("falls back to the code when there is nothing to show", () => {
    expect(statusMessage(status(500, ""))).toBe("HTTP 500");
    expect(statusMessage(status(500, undefined))).toBe("HTTP 500");
    expect(describeError(status(500, { kind: "Status" }))).toBe("HTTP 500 (HTTP 500)");
  });
});
