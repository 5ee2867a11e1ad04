import { defineConfig } from "vitest/config";

// Runs only the registry tests, against the two servers named by
// GEO_TEST_PRIMARY_DB_URL and GEO_TEST_SECONDARY_DB_URL.
export default defineConfig({
  test: {
    include: ["src/registry/**/*.test.ts", "test/integration/registry/**/*.test.ts"],
    pool: "forks",
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
