import { describe, expect, it } from "vitest";
import { RUN_REQUESTS_ANNOTATION } from "../api/v1alpha1/resources.ts";
import { parseRunRequests, requestedRuns, withRunRequest } from "./run-requests.ts";

describe("run requests", () => {
  it("adds a request beside the others, replacing an older one for the same site and kind", () => {
    let value = withRunRequest(undefined, "tokyo", "sync", new Date("2026-12-03T10:00:00Z"));
    value = withRunRequest(value, "tokyo", "verify", new Date("2026-12-03T10:01:00Z"));
    value = withRunRequest(value, "paris", "sync", new Date("2026-12-03T10:02:00Z"));
    value = withRunRequest(value, "tokyo", "sync", new Date("2026-12-03T10:03:00Z"));
    expect(JSON.parse(value)).toEqual({
      tokyo: { sync: "2026-12-03T10:03:00.000Z", verify: "2026-12-03T10:01:00.000Z" },
      paris: { sync: "2026-12-03T10:02:00.000Z" },
    });
  });

  it("ignores what is not its shape: bad JSON, unknown kinds, times that are not times", () => {
    expect(parseRunRequests("not json")).toEqual({});
    expect(parseRunRequests("[1]")).toEqual({});
    expect(parseRunRequests(JSON.stringify({ tokyo: { sync: "yesterday", resync: "2026-12-03T10:00:00Z", verify: "2026-12-03T10:00:00Z" }, paris: 3 }))).toEqual({
      tokyo: { verify: "2026-12-03T10:00:00Z" },
    });
    // A broken value is replaced by a valid one, not kept.
    expect(JSON.parse(withRunRequest("{", "tokyo", "sync", new Date("2026-12-03T10:00:00Z")))).toEqual({ tokyo: { sync: "2026-12-03T10:00:00.000Z" } });
  });

  it("reads one site's requests from a ReplicableType", () => {
    const rt = { metadata: { annotations: { [RUN_REQUESTS_ANNOTATION]: withRunRequest(undefined, "tokyo", "sync", new Date("2026-12-03T10:00:00Z")) } } };
    expect(requestedRuns(rt, "tokyo")).toEqual({ sync: new Date("2026-12-03T10:00:00Z") });
    expect(requestedRuns(rt, "paris")).toEqual({});
    expect(requestedRuns({ metadata: {} }, "tokyo")).toEqual({});
  });
});
