/**
 * The operator as the cluster tests run it: a Manager in this process with the Jobs executor,
 * leader election on a Lease long enough to survive a loaded machine, and the test kubelet running
 * its Jobs' commands as local processes.
 */
import { KubeConfig } from "@kubernetes/client-node";
import { DEFAULT_JOB_SETTINGS } from "../../src/controllers/job-spec.ts";
import { Manager } from "../../src/manager.ts";
import { createLogger } from "../../src/util/log.ts";
import { FakeKubelet } from "./fake-kubelet.ts";

/** Settings of the test Lease: renewals are missed when kubectl calls block the event loop on a busy machine. */
export const TEST_LEASE = { name: "geo-operator-leader", leaseDurationMs: 15000, renewDeadlineMs: 10000, retryPeriodMs: 500 };

/** The test API server's kubeconfig (KUBECONFIG, set by the integration global setup). */
export function testKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(process.env.KUBECONFIG!);
  return kc;
}

export interface TestOperator {
  manager: Manager;
  kubelet: FakeKubelet;
  stop(): Promise<void>;
}

export async function startTestOperator(opts: { namespace: string; identity: string; logName: string; maxRunSeconds: number; kubeConfig?: KubeConfig }): Promise<TestOperator> {
  const manager = new Manager({
    kubeConfig: opts.kubeConfig ?? testKubeConfig(),
    namespace: opts.namespace,
    log: createLogger({ name: opts.logName, level: process.env.GEO_TEST_LOG_LEVEL ?? "error" }),
    executor: "jobs",
    jobSettings: { ...DEFAULT_JOB_SETTINGS, maxRunSeconds: opts.maxRunSeconds },
    metricsPort: 0,
    healthPort: 0,
    leaderElection: { namespace: opts.namespace, ...TEST_LEASE, identity: opts.identity },
    onLostLeadership: () => undefined,
  });
  const kubelet = new FakeKubelet(testKubeConfig(), { namespace: opts.namespace });
  kubelet.start();
  await manager.start();
  return {
    manager,
    kubelet,
    async stop() {
      await manager.stop();
      await kubelet.stop();
    },
  };
}
