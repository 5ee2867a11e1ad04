import { describe, expect, it } from "vitest";
import { parseOptions } from "./options.ts";
import { summarizeCpuProfile, type CpuProfile } from "./profile.ts";
import { median, parseHashsum } from "./workload.ts";

describe("median", () => {
  it("takes the middle value, or the mean of the middle two", () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(() => median([])).toThrow();
  });
});

describe("parseHashsum", () => {
  it("maps paths to digests and refuses lines it does not understand", () => {
    const a = "a".repeat(64);
    const b = "b".repeat(64);
    expect(parseHashsum(`${a}  000001.bin\n${b}  dir/x y.bin\n`)).toEqual(new Map([["000001.bin", a], ["dir/x y.bin", b]]));
    expect(() => parseHashsum("ERROR : something\n")).toThrow(/unexpected/);
  });
});

describe("parseOptions", () => {
  it("defaults to the issue's sets and shrinks them with --quick", () => {
    expect(parseOptions([])).toMatchObject({ rounds: 3, concurrency: 10, small: { count: 4000, bytes: 65536 }, large: { count: 16, bytes: 64 * 2 ** 20 } });
    expect(parseOptions(["--quick"])).toMatchObject({ quick: true, small: { count: 500 }, large: { count: 3 } });
    expect(parseOptions(["--small", "10x4", "--only", "small"])).toMatchObject({ small: { count: 10, bytes: 4096 }, only: ["small"] });
    expect(() => parseOptions(["--only", "everything"])).toThrow(/unknown part/);
  });
});

describe("summarizeCpuProfile", () => {
  it("charges Node's own frames to their nearest caller and keeps idle out", () => {
    const profile: CpuProfile = {
      nodes: [
        { id: 1, callFrame: { functionName: "(root)", url: "", lineNumber: -1 }, children: [2, 5] },
        { id: 2, callFrame: { functionName: "send", url: "file:///x/node_modules/@smithy/core/index.js", lineNumber: 0 }, children: [3] },
        { id: 3, callFrame: { functionName: "write", url: "node:net", lineNumber: 9 } },
        { id: 5, callFrame: { functionName: "(idle)", url: "", lineNumber: -1 } },
      ],
      startTime: 0,
      endTime: 10_000,
      samples: [3, 3, 5, 2],
      timeDeltas: [0, 1000, 1000, 5000, 2000],
    };
    const s = summarizeCpuProfile(profile);
    expect(s.byComponent).toEqual([["AWS SDK (S3 requests, signing)", 4]]);
    expect(s.topFunctions[0]).toEqual(["write node:net:10", 2]);
  });
});
