// vitest globalSetup for the integration and e2e projects (kernel tests, as root).
//
// - Checks that we are root and that the compiled plugin `dist/weft` exists (WEFT_SKIP_BINARY_CHECK=1 skips the
//   latter, for work on the harness before the plugin builds).
// - Sets WEFT_TEST_RUN, the short id of this run: every netns, podman node, temp dir and CNI network a test
//   creates is named `wft-<run>-…` (see RUN_PREFIX in ./netns.ts). globalSetup runs in the main vitest process
//   before the worker pool starts, and the workers (child processes or threads) inherit its process.env, so
//   RUN_PREFIX is the same in every test file. Both projects run this file: the first one to run picks the id.
//   An id set beforehand (WEFT_TEST_RUN=… npx vitest) is kept, and its cleanup is then left to the caller.
// - On teardown, runs scripts/cleanup-test-state.sh for this run only: podman nodes, processes and netns named
//   `wft-<run>-*`, temp dirs `${TMPDIR:-/tmp}/wft-<run>-*`, libcni cache entries of networks `wft-<run>-*`.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
export const WEFT_BINARY = `${repoRoot}dist/weft`;
const CLEANUP_SCRIPT = `${repoRoot}scripts/cleanup-test-state.sh`;

let owner = false;

export function setup(): void {
  if (process.getuid?.() !== 0) {
    throw new Error("Cannot run kernel tests: they need root (network namespaces, veths, podman). Run as root.");
  }
  if (process.env.WEFT_SKIP_BINARY_CHECK !== "1" && !existsSync(WEFT_BINARY)) {
    throw new Error(`Cannot run kernel tests: ${WEFT_BINARY} does not exist. Run \`npm run build\` first.`);
  }
  if (!process.env.WEFT_TEST_RUN) {
    process.env.WEFT_TEST_RUN = randomBytes(3).toString("hex");
    owner = true;
  }
}

export function teardown(): void {
  // Only the setup that chose the id cleans up, once, after every project has finished.
  if (!owner) return;
  owner = false;
  try {
    execFileSync("/bin/bash", [CLEANUP_SCRIPT, process.env.WEFT_TEST_RUN!], { stdio: ["ignore", "inherit", "inherit"], timeout: 120_000 });
  } catch (error) {
    console.error(`Cleanup of test run ${process.env.WEFT_TEST_RUN} failed: ${(error as Error).message}`);
  }
}
