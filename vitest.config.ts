import { defineConfig } from "vitest/config";

// Three projects: unit (pure logic, no root), integration (root, throwaway netns, the compiled binary),
// e2e (simulated nodes, podman, etcd). The projects run one after another (groupOrder) and kernel tests run
// their files one at a time: they share one kernel and two cores.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          sequence: { groupOrder: 0 },
          include: ["test/unit/**/*.test.ts", "{native,cni,agent}/**/*.test.ts"],
        },
      },
      {
        test: {
          name: "integration",
          sequence: { groupOrder: 1 },
          include: ["test/integration/**/*.test.ts"],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          fileParallelism: false,
          globalSetup: ["test/support/global-setup.ts"],
        },
      },
      {
        test: {
          name: "e2e",
          sequence: { groupOrder: 2 },
          include: ["test/e2e/**/*.test.ts"],
          testTimeout: 180_000,
          hookTimeout: 300_000,
          fileParallelism: false,
          globalSetup: ["test/support/global-setup.ts"],
        },
      },
    ],
  },
});
