import { describe, expect, it } from "vitest";
import { Priority, WorkQueue } from "./workqueue.ts";

function fakeClock() {
  let now = 0;
  const timers: { at: number; fn: () => void; id: number }[] = [];
  let nextId = 1;
  return {
    now: () => now,
    setTimeout: (fn: () => void, ms: number) => {
      const id = nextId++;
      timers.push({ at: now + ms, fn, id });
      return id;
    },
    clearTimeout: (h: unknown) => {
      const i = timers.findIndex((t) => t.id === h);
      if (i >= 0) timers.splice(i, 1);
    },
    advance(ms: number) {
      now += ms;
      for (const t of timers.filter((t) => t.at <= now).sort((a, b) => a.at - b.at)) {
        timers.splice(timers.indexOf(t), 1);
        t.fn();
      }
    },
  };
}

describe("WorkQueue", () => {
  it("holds a waiting key once however many times it is added", async () => {
    const q = new WorkQueue();
    q.add("ns/a");
    q.add("ns/a");
    q.add("ns/b");
    q.add("ns/a");
    expect(q.length).toBe(2);
    expect(await q.get()).toBe("ns/a");
    expect(await q.get()).toBe("ns/b");
  });

  it("never hands a key being processed to a second worker, and reruns it if it changed meanwhile", async () => {
    const q = new WorkQueue();
    q.add("k");
    const key = await q.get();
    q.add("k"); // an event while processing
    expect(q.length).toBe(0);
    q.done(key!);
    expect(q.length).toBe(1);
    expect(await q.get()).toBe("k");
    q.done("k");
    expect(q.length).toBe(0);
  });

  it("wakes a waiting worker when a key arrives", async () => {
    const q = new WorkQueue();
    const pending = q.get();
    q.add("late");
    expect(await pending).toBe("late");
  });

  it("backs off exponentially per key and resets after forget", () => {
    const clock = fakeClock();
    const q = new WorkQueue({ baseDelayMs: 100, maxDelayMs: 1000, clock });
    expect([q.addRateLimited("k"), q.addRateLimited("k"), q.addRateLimited("k"), q.addRateLimited("k"), q.addRateLimited("k")]).toEqual([
      100, 200, 400, 800, 1000,
    ]);
    expect(q.addRateLimited("other")).toBe(100);
    q.forget("k");
    expect(q.addRateLimited("k")).toBe(100);
  });

  it("adds a delayed key when its time comes, keeping the earliest deadline", () => {
    const clock = fakeClock();
    const q = new WorkQueue({ clock });
    q.addAfter("k", 500);
    q.addAfter("k", 2000);
    clock.advance(499);
    expect(q.length).toBe(0);
    clock.advance(1);
    expect(q.length).toBe(1);
    clock.advance(5000);
    expect(q.length).toBe(1);
  });

  it("releases waiting workers on shutdown", async () => {
    const q = new WorkQueue();
    const pending = q.get();
    q.shutDown();
    expect(await pending).toBeUndefined();
    q.add("x");
    expect(q.length).toBe(0);
  });

  it("serves urgent keys before routine ones, each in arrival order", async () => {
    const q = new WorkQueue();
    for (let i = 0; i < 5; i++) q.add(`periodic-${i}`, Priority.Routine);
    q.add("new-type");
    q.add("edited-type", Priority.Urgent);
    const order = [];
    while (q.length) order.push(await q.get());
    expect(order).toEqual(["new-type", "edited-type", "periodic-0", "periodic-1", "periodic-2", "periodic-3", "periodic-4"]);
  });

  it("moves a waiting routine key to the urgent line when it becomes urgent, and holds it once", async () => {
    const q = new WorkQueue();
    q.add("a", Priority.Routine);
    q.add("b", Priority.Routine);
    q.add("b", Priority.Urgent);
    q.add("b", Priority.Routine);
    expect(q.length).toBe(2);
    expect(await q.get()).toBe("b");
    expect(await q.get()).toBe("a");
  });

  it("reruns a key that had an urgent event while processing as urgent", async () => {
    const q = new WorkQueue();
    q.add("k");
    const key = await q.get();
    q.add("k", Priority.Routine);
    q.add("k", Priority.Urgent);
    q.add("other", Priority.Routine);
    q.done(key!);
    expect(await q.get()).toBe("k");
    expect(await q.get()).toBe("other");
  });

  it("requeues after a delay as routine work", async () => {
    const clock = fakeClock();
    const q = new WorkQueue({ clock });
    q.addAfter("periodic", 100);
    clock.advance(100);
    q.add("new");
    expect(await q.get()).toBe("new");
    expect(await q.get()).toBe("periodic");
  });
});
