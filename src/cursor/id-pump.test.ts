import { describe, expect, it } from "vitest";
import { IdPump } from "./id-pump.ts";

const tick = () => new Promise((r) => setTimeout(r, 5));

describe("IdPump", () => {
  it("runs at most `capacity` ids at once and everything eventually", async () => {
    let inFlight = 0;
    let peak = 0;
    const done: number[] = [];
    const pump = new IdPump(3, async (ids) => {
      inFlight += ids.length;
      peak = Math.max(peak, inFlight);
      await tick();
      inFlight -= ids.length;
      done.push(...ids);
    });
    pump.add([1, 2, 3, 4, 5, 6, 7]);
    await pump.idle();
    expect(peak).toBe(3);
    expect(done.sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  it("never runs one id twice at once, and runs it again when it arrived during its run", async () => {
    const runs: string[] = [];
    let release: (() => void) | undefined;
    const pump = new IdPump(4, async (ids) => {
      runs.push(`start ${ids.join(",")}`);
      if (runs.length === 1) await new Promise<void>((r) => (release = r));
      runs.push(`end ${ids.join(",")}`);
    });
    pump.add([9]);
    await tick();
    pump.add([9]); // arrives while 9 is running
    await tick();
    expect(runs).toEqual(["start 9"]);
    release!();
    await pump.idle();
    expect(runs).toEqual(["start 9", "end 9", "start 9", "end 9"]);
  });
});
