// What the benchmarks share: commands that must succeed, throwaway network namespaces named after the run
// (`wft-bench-<id>-<label>`), each remembered so that the run removes it at the end, and the mounts below a run's
// directory, found and unmounted at the end.
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";

/** Runs `command` and returns its standard output; throws with its standard error when it fails. */
export function run(command, args) {
  const result = spawnSync(command, args, { encoding: "utf8", maxBuffer: 256 * 1024 * 1024 });
  if (result.error) throw new Error(`${command} ${args.join(" ")}: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`${command} ${args.slice(0, 6).join(" ")}${args.length > 6 ? " …" : ""} failed (${result.status}): ${result.stderr.trim().slice(0, 2000)}`);
  return result.stdout;
}

/** The median of `values` (the mean of the middle two when their count is even). */
export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** `ip -n NS …` */
export const ipIn = (ns, ...args) => run("ip", ["-n", ns, ...args]);

export class BenchNamespaces {
  /** This run's prefix, for everything else it names too (temporary directories, container IDs). */
  prefix = `wft-bench-${randomBytes(3).toString("hex")}-`;
  #names = [];

  /** A new namespace `<prefix><label>`, loopback up. */
  add(label) {
    const name = `${this.prefix}${label}`;
    run("ip", ["netns", "add", name]);
    this.#names.push(name);
    ipIn(name, "link", "set", "lo", "up");
    return name;
  }

  /** Removes every namespace added so far, the newest first; best effort. */
  removeAll() {
    for (const name of this.#names.splice(0).reverse()) spawnSync("ip", ["netns", "del", name]);
  }
}

/**
 * Runs a benchmark's `main`, then its `cleanup` (also on Ctrl-C), and exits: 1 with the error's message on
 * standard error when main throws (its stack with WEFT_DEBUG=1), else 0.
 */
export async function runBenchmark(name, main, cleanup) {
  process.on("SIGINT", () => {
    void Promise.resolve(cleanup()).then(() => process.exit(130));
  });
  let code = 0;
  try {
    await main();
  } catch (error) {
    process.stderr.write(`${name}: ${error instanceof Error ? (process.env.WEFT_DEBUG === "1" ? error.stack : error.message) : String(error)}\n`);
    code = 1;
  } finally {
    await cleanup();
  }
  process.exit(code);
}

/** Mount points at or below `dir` (from /proc/self/mountinfo), the deepest first. */
export function mountsUnder(dir) {
  const unescape = (field) => field.replace(/\\([0-7]{3})/g, (_, octal) => String.fromCharCode(parseInt(octal, 8)));
  let info = "";
  try {
    info = readFileSync("/proc/self/mountinfo", "utf8");
  } catch {
    return [];
  }
  const points = info.split("\n").filter(Boolean).map((line) => unescape(line.split(" ")[4]));
  return [...new Set(points.filter((point) => point === dir || point.startsWith(`${dir}/`)))].sort((a, b) => b.length - a.length);
}

/** Unmounts everything mounted at or below `dir` (repeatedly, for stacked mounts); returns what is still mounted. */
export function unmountUnder(dir) {
  for (let pass = 0; pass < 5; pass++) {
    const points = mountsUnder(dir);
    if (points.length === 0) break;
    for (const point of points) spawnSync("umount", [point], { stdio: "ignore" });
  }
  return mountsUnder(dir);
}
