import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { componentOf, summarizeProfile } from "./cpu-profile.ts";

const dir = mkdtempSync(join(tmpdir(), "cpu-profile-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("cursor CPU profiles", () => {
  it("names what a script belongs to, and leaves Node's own code to its caller", () => {
    expect(componentOf("file:///w/node_modules/@smithy/core/dist-cjs/index.js")).toBe("AWS SDK (S3 requests, signing)");
    expect(componentOf("file:///w/node_modules/pg-protocol/dist/parser.js")).toBe("pg (PostgreSQL client)");
    expect(componentOf("file:///w/src/strategies/repository/git-process.ts")).toBe("starting git processes");
    expect(componentOf("file:///w/src/registry/event-log.ts")).toBe("src/registry");
    expect(componentOf("file:///w/src/strategies/blob/copy.ts")).toBe("src/strategies/blob");
    expect(componentOf("node:child_process")).toBeUndefined();
    expect(componentOf("")).toBeUndefined();
  });

  it("gives a sample's time to its nearest caller that is ours or a library's, and leaves idle out", () => {
    const frame = (functionName: string, url: string) => ({ functionName, url, scriptId: "0", lineNumber: 0, columnNumber: 0 });
    const profile = {
      nodes: [
        { id: 1, callFrame: frame("(root)", ""), children: [2, 5, 6] },
        { id: 2, callFrame: frame("syncMirror", "file:///w/src/strategies/repository/git-process.ts"), children: [3] },
        { id: 3, callFrame: frame("spawn", "node:child_process"), children: [4] },
        { id: 4, callFrame: frame("", ""), children: [] },
        { id: 5, callFrame: frame("(idle)", ""), children: [] },
        { id: 6, callFrame: frame("socketOnData", "node:_http_client"), children: [] },
      ],
      startTime: 0,
      endTime: 4_000_000,
      samples: [4, 3, 5, 6],
      timeDeltas: [0, 1_000_000, 1_000_000, 1_000_000, 1_000_000],
    };
    const file = join(dir, "p.cpuprofile");
    writeFileSync(file, JSON.stringify(profile));
    const summary = summarizeProfile(file);
    expect(Object.fromEntries(summary.byComponent)).toEqual({ "starting git processes": 2_000, "event loop (sockets, timers, no JS caller)": 1_000 });
    expect(summary.cpuMs).toBe(3_000);
    expect(summary.wallMs).toBe(4_000);
  });
});
