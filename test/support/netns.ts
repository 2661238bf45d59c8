// Throwaway network namespaces for kernel tests. Every name starts with the run prefix `wft-<run>-`, so a crashed
// run's leftovers can be found and removed by scripts/cleanup-test-state.sh; tests remove theirs in afterAll.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";

export const RUN_PREFIX = `wft-${process.env.WEFT_TEST_RUN ?? randomBytes(3).toString("hex")}-`;

export interface TestNetns {
  name: string;
  path: string;
  /** Runs a command inside the namespace (argv, no shell) and returns its stdout. */
  exec(argv: string[], options?: { input?: string; allowFailure?: boolean }): string;
  remove(): void;
}

/**
 * The links of a namespace as "<index>:<name>": what a test compares before and after to show that nothing was
 * created, removed or replaced. Not `ip link`'s whole text: a bridge's carrier and operstate change on their own
 * for a second after its last port goes.
 */
export function linkNames(ns: Pick<TestNetns, "exec">): string[] {
  const links = JSON.parse(ns.exec(["ip", "-j", "link", "show"]) || "[]") as { ifindex: number; ifname: string }[];
  return links.map((link) => `${link.ifindex}:${link.ifname}`);
}

let counter = 0;

export function ip(argv: string[], options: { input?: string; allowFailure?: boolean } = {}): string {
  return run(["ip", ...argv], options);
}

export function run(argv: string[], options: { input?: string; allowFailure?: boolean } = {}): string {
  const [command, ...args] = argv as [string, ...string[]];
  try {
    return execFileSync(command, args, { input: options.input, encoding: "utf8", stdio: ["pipe", "pipe", "pipe"] });
  } catch (error) {
    if (options.allowFailure) return "";
    const e = error as { stderr?: string; message: string };
    throw new Error(`${argv.join(" ")} failed: ${e.stderr?.trim() || e.message}`);
  }
}

/** Creates `wft-<run>-<label>-<n>` with loopback up. Register `remove` in afterAll/finally right after. */
export function createTestNetns(label: string): TestNetns {
  const name = `${RUN_PREFIX}${label}-${counter++}`;
  ip(["netns", "add", name]);
  const netns: TestNetns = {
    name,
    path: `/run/netns/${name}`,
    exec: (argv, options) => run(["ip", "netns", "exec", name, ...argv], options),
    remove: () => {
      ip(["netns", "del", name], { allowFailure: true });
    },
  };
  netns.exec(["ip", "link", "set", "lo", "up"]);
  return netns;
}
