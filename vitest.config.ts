import { defineConfig } from "vitest/config";

// Two projects:
//  - unit: pure tests, no servers; fast.
//  - integration: real nats-server (one per test file, started from PATH) and real
//    PostgreSQL (one database per test file); preconditions checked once in
//    test/global-setup.ts. Files run in parallel forks, capped for a 2-core box.
// Workspace packages are imported by name (@flowmonkey/shared...) and resolve to
// their built dist; `npm test` builds first.
export default defineConfig({
  test: {
    pool: "forks",
    maxWorkers: 2,
    // A test that asserts nothing fails.
    expect: { requireAssertions: true },
    projects: [
      {
        extends: true,
        test: {
          name: "unit",
          include: [
            "shared/test/**/*.test.ts",
            "engine/test/unit/**/*.test.ts",
            "worker/test/unit/**/*.test.ts",
            "gateway/test/unit/**/*.test.ts",
            "test/architecture.test.ts",
          ],
        },
      },
      {
        extends: true,
        test: {
          name: "integration",
          include: [
            "engine/test/integration/**/*.test.ts",
            "worker/test/integration/**/*.test.ts",
            "gateway/test/integration/**/*.test.ts",
            "test/e2e/**/*.test.ts",
            "test/regions/**/*.test.ts",
            "test/chaos/**/*.test.ts",
          ],
          globalSetup: ["test/global-setup.ts"],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          maxWorkers: 2,
        },
      },
    ],
  },
});
