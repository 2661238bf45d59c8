// The README's first command: `bash scripts/demo.sh` brings up 3 simulated nodes running weft-agent with 2 pods
// each, and its report says that every pod reaches every other pod and is masqueraded to its node's IP outside
// the cluster; the commands it prints work; running it again replaces the demo; `down` leaves nothing behind.
//
// The demo uses fixed names (netns weft-demo-*, /run/weft-demo), not the run prefix: a demo left up on this
// machine by hand is replaced by this test, and afterAll always runs `down`. WEFT_DEMO_SKIP_SETUP=1: the test
// run has installed and built everything already.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
const STATE_DIR = "/run/weft-demo";

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function demo(...args: string[]): Run {
  const result = spawnSync("bash", ["scripts/demo.sh", ...args], {
    cwd: repoRoot,
    env: { ...process.env, WEFT_DEMO_SKIP_SETUP: "1" },
    encoding: "utf8",
    timeout: 150_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

function demoNamespaces(): string[] {
  const list = spawnSync("ip", ["netns", "list"], { encoding: "utf8" }).stdout;
  return list.split("\n").map((line) => line.split(" ")[0]!).filter((name) => name.startsWith("weft-demo-")).sort();
}

function recordedPids(dir = STATE_DIR): number[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) return recordedPids(file);
    return entry.name.endsWith(".pid") ? [Number(readFileSync(file, "utf8"))] : [];
  });
}

/** Running (a zombie is not: it holds no namespace, and its parent, gone, cannot reap it). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

/** Live processes whose command line mentions the demo (its agents' flags, its servers' mark). */
function demoProcesses(): string[] {
  return readdirSync("/proc").filter((entry) => /^\d+$/.test(entry) && alive(Number(entry))).flatMap((pid) => {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
      return cmdline.includes("weft-demo") ? [`${pid}: ${cmdline.slice(0, 200)}`] : [];
    } catch {
      return [];
    }
  });
}

const EXPECTED_NAMESPACES = [
  "weft-demo-external", "weft-demo-node-1", "weft-demo-node-2", "weft-demo-node-3",
  "weft-demo-pod-1a", "weft-demo-pod-1b", "weft-demo-pod-2a", "weft-demo-pod-2b", "weft-demo-pod-3a", "weft-demo-pod-3b",
  "weft-demo-underlay",
];

describe("the demo: bash scripts/demo.sh", () => {
  let first: Run;
  let firstPids: number[];

  beforeAll(() => {
    first = demo();
    firstPids = recordedPids();
  }, 180_000);

  afterAll(() => {
    const result = demo("down");
    if (result.code !== 0) console.error(`demo.sh down failed: ${result.stderr}`);
  }, 60_000);

  it("reports every pod reaching every other pod over TCP with its own address, and exits 0", () => {
    expect(first.code, `${first.stdout}\n${first.stderr}`).toBe(0);
    expect(first.stdout).toMatch(/^demo: matrix 30\/30 ok, snat 6\/6 ok, probes \d\/6 answered \(\d+\.\d s\)$/m);
    const rows = first.stdout.split("\n").filter((line) => /^pod-\d[ab] {2}10\.244\.\d\.\d+ /.test(line));
    expect(rows).toHaveLength(6);
    for (const row of rows) {
      expect(row.match(/✓ \d+(\.\d)?/g), row).toHaveLength(5);
      expect(row).not.toContain("✗");
    }
  });

  it("reports every pod masqueraded to its own node's IP by the external host", () => {
    const lines = first.stdout.split("\n").filter((line) => line.includes("→ seen as"));
    expect(lines).toHaveLength(6);
    for (const line of lines) {
      const match = /^ {2}pod-(\d)[ab] 10\.244\.(\d)\.\d+ +→ seen as 192\.168\.90\.1(\d) += node-(\d)'s IP {2}✓/.exec(line);
      expect(match, line).not.toBeNull();
      const [, podNode, subnet, ipNode, named] = match!;
      expect(new Set([podNode, subnet, ipNode, named]).size, line).toBe(1);
    }
  });

  it("runs a weft-agent per node, with its PID and log under /run/weft-demo/<node>/", () => {
    expect(demoNamespaces()).toEqual(EXPECTED_NAMESPACES);
    for (const node of ["node-1", "node-2", "node-3"]) {
      const pid = Number(readFileSync(`${STATE_DIR}/${node}/agent.pid`, "utf8"));
      expect(alive(pid), node).toBe(true);
      expect(readFileSync(`/proc/${pid}/cmdline`, "utf8")).toContain(`--node-name\0${node}\0`);
      expect(readFileSync(`${STATE_DIR}/${node}/agent.log`, "utf8")).toContain('"weft-agent running"');
    }
  });

  it("prints where to look, and the printed commands work", () => {
    const status = "nsenter --net=/run/netns/weft-demo-node-1 dist/weft-agent status";
    expect(first.stdout).toContain(`  ${status}\n`);
    expect(first.stdout).toContain("  bash scripts/demo.sh down\n");
    const statusRun = spawnSync("bash", ["-c", status], { cwd: repoRoot, encoding: "utf8", timeout: 20_000 });
    expect(statusRun.status, statusRun.stderr).toBe(0);
    expect(statusRun.stdout).toMatch(/node-2\s+programmed\s+10\.244\.2\.0\/24\s+192\.168\.90\.12/);
    expect(statusRun.stdout).toMatch(/node-3\s+programmed\s+10\.244\.3\.0\/24\s+192\.168\.90\.13/);
    const metricsCommand = first.stdout.split("\n").find((line) => line.includes("127.0.0.1:9476/metrics") && line.startsWith("  nsenter"));
    expect(metricsCommand).toBeDefined();
    const metrics = spawnSync("bash", ["-c", metricsCommand!], { cwd: repoRoot, encoding: "utf8", timeout: 20_000 });
    expect(metrics.status, metrics.stderr).toBe(0);
    expect(metrics.stdout).toMatch(/^weft_ready 1$/m);
    expect(metrics.stdout).toMatch(/^weft_nodes_known\{status="programmed"\} 2$/m);
  });

  it("replaces the running demo when run again (here with --json: the results as one document)", () => {
    const second = demo("--json");
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toContain("demo: removing the previous demo first");
    const doc = JSON.parse(second.stdout) as { ok: boolean; summary: Record<string, { ok: number; total: number }>; snat: { seenAs: string; nodeIp: string }[] };
    expect(doc.ok).toBe(true);
    expect(doc.summary.matrix).toEqual({ ok: 30, total: 30 });
    expect(doc.summary.snat).toEqual({ ok: 6, total: 6 });
    for (const check of doc.snat) expect(check.seenAs).toBe(check.nodeIp);
    expect(firstPids).toHaveLength(10); // 3 agents, 6 pod servers, the external server
    expect(firstPids.filter(alive)).toEqual([]);
    expect(demoNamespaces()).toEqual(EXPECTED_NAMESPACES);
  });

  it("`down` stops every process it started and removes every namespace and /run/weft-demo", () => {
    const pids = recordedPids();
    expect(pids).toHaveLength(10);
    const result = demo("down");
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain("demo: removed: 10 processes stopped, 11 namespaces deleted");
    expect(pids.filter(alive)).toEqual([]);
    expect(demoProcesses()).toEqual([]);
    expect(demoNamespaces()).toEqual([]);
    expect(existsSync(STATE_DIR)).toBe(false);
    expect(demo("down").stdout).toBe("demo: nothing to remove\n");
  });
});
