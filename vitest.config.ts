import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    // Stopping the servers (kube-apiserver shuts down gracefully) must not be cut short.
    teardownTimeout: 60_000,
    projects: [
      {
        test: {
          name: "unit",
          include: ["src/**/*.test.ts", "test/unit/**/*.test.ts", "hack/**/*.test.ts", "bench/**/*.test.ts"],
          environment: "node",
        },
      },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          environment: "node",
          globalSetup: ["test/global-setup.ts"],
          pool: "forks",
          testTimeout: 120_000,
          hookTimeout: 300_000,
          // Two cores: more workers only queue on the same servers.
          maxWorkers: 2,
        },
      },
      {
        test: {
          // The fault suite (test/faults/): real servers, one table of scenarios at the end.
          name: "faults",
          include: ["test/faults/**/*.test.ts"],
          environment: "node",
          globalSetup: ["test/global-setup.ts", "test/faults/report-setup.ts"],
          pool: "forks",
          testTimeout: 300_000,
          hookTimeout: 300_000,
          maxWorkers: 2,
        },
      },
      {
        // The operator on a real node: run only through hack/node/run.sh (make e2e), which starts
        // the node and runs vitest inside its network namespace.
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          environment: "node",
          pool: "forks",
          maxWorkers: 1,
          testTimeout: 600_000,
          hookTimeout: 600_000,
        },
      },
    ],
  },
});
