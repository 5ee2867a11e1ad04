/**
 * Leader election against the real API server: a stopping leader hands the Lease over at once,
 * even when one of its rounds is in flight as it stops (a round that finished after the release
 * used to take the Lease back, and the successor waited out a whole lease duration).
 */
import { CoordinationV1Api } from "@kubernetes/client-node";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { LeaderElector } from "../../src/k8s/leader-election.ts";
import { createLogger } from "../../src/util/log.ts";
import { createNamespace } from "../support/kubectl.ts";
import { testKubeConfig } from "../support/test-manager.ts";
import { until } from "../support/until.ts";

const LEASE_MS = 15_000;
const NAME = "election-test";
let ns: string;
let api: CoordinationV1Api;
const electors: LeaderElector[] = [];

/** The real client, with a gate that can hold this elector's next read of the Lease. */
function gatedApi(): { api: CoordinationV1Api; holdNextRead(): Promise<() => void> } {
  let arm: ((release: () => void) => void) | undefined;
  const wrapped = new Proxy(api, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (prop !== "readNamespacedLease") return typeof value === "function" ? value.bind(target) : value;
      return async (...args: unknown[]) => {
        if (arm) {
          const reached = arm;
          arm = undefined;
          await new Promise<void>((release) => reached(release));
        }
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { api: wrapped, holdNextRead: () => new Promise((reached) => (arm = reached)) };
}

function elector(identity: string, client: CoordinationV1Api = api): LeaderElector & { started: Promise<void> } {
  let onStart!: () => void;
  const started = new Promise<void>((r) => (onStart = r));
  const e = new LeaderElector({
    api: client,
    namespace: ns,
    name: NAME,
    identity,
    leaseDurationMs: LEASE_MS,
    renewDeadlineMs: 10_000,
    retryPeriodMs: 300,
    log: createLogger({ name: `elector-${identity}`, level: "error" }),
    onStartedLeading: onStart,
    onStoppedLeading: () => undefined,
  });
  electors.push(e);
  return Object.assign(e, { started });
}

const holder = async () => (await api.readNamespacedLease({ name: NAME, namespace: ns }).catch(() => undefined))?.spec?.holderIdentity ?? undefined;

beforeAll(() => {
  api = testKubeConfig().makeApiClient(CoordinationV1Api);
});

afterEach(async () => {
  await Promise.all(electors.splice(0).map((e) => e.stop()));
});

describe("leader election", () => {
  it("one of two candidates leads; when it stops, the other takes over well within the lease duration", async () => {
    ns = createNamespace("election");
    const a = elector("a");
    a.start();
    await a.started;
    const b = elector("b");
    b.start();
    await new Promise((r) => setTimeout(r, 1000));
    expect(await holder()).toBe("a");
    expect(b.leading).toBe(false);
    const stopped = Date.now();
    await a.stop();
    await b.started;
    expect(await holder()).toBe("b");
    expect(Date.now() - stopped).toBeLessThan(LEASE_MS);
  });

  it("a leader stopped while a round is in flight does not take the Lease back after releasing it", async () => {
    ns = createNamespace("election");
    const gate = gatedApi();
    const a = elector("a", gate.api);
    a.start();
    await a.started;
    // Hold a's next round at its read, stop a, and let the round go on once the stop has begun.
    const release = await gate.holdNextRead();
    const stopping = a.stop();
    setTimeout(release, 200);
    await stopping;
    await new Promise((r) => setTimeout(r, 500));
    // A successor arriving now finds the Lease free, not renewed by the stopped process.
    const stopped = Date.now();
    const b = elector("b");
    b.start();
    await until("b leads", async () => ((await holder()) === "b" ? true : undefined), LEASE_MS - 2000);
    expect(Date.now() - stopped).toBeLessThan(LEASE_MS);
  });

  it("a candidate stopped during its first round leaves no Lease behind in its name", async () => {
    ns = createNamespace("election");
    const a = elector("a");
    a.start();
    await a.stop();
    await new Promise((r) => setTimeout(r, 1000));
    expect(await holder()).not.toBe("a");
  });
});
