// The image, built and run: the weft image of this checkout (scripts/image/build.sh: the Dockerfile built by
// podman on a Debian 12 base made with debootstrap, cached) run as the DaemonSet runs it, on 3 simulated nodes.
// Per node, in the node's network namespace: the `install-cni` initContainer copies the plugin out of the image
// into the node's /opt/cni/bin (a directory of the test), then `weft-agent run` in a container with the node's
// network (hostNetwork) and the manifest's security context (root, read-only root filesystem, capabilities
// NET_ADMIN, NET_RAW, BPF and PERFMON only, no privilege escalation, seccomp Unconfined: podman 4.3's default
// profile, like CRI-O's and older containerd's, refuses bpf(2) without CAP_SYS_ADMIN), on the file source, with
// the eBPF datapath pinned in the cluster's own bpffs. Pods are made by the plugin the initContainer copied
// out, and the pod matrix, SNAT and `weft-agent status` (through `podman exec`, as `kubectl exec` would) must pass
// with these agents.
//
// WEFT_TEST_IMAGE=<name> runs an image built beforehand instead of this checkout's.
// The containers run in the machine's podman store (where build.sh puts the image), named `wft-<run>-…`, labelled
// with the run and started with --rm: afterAll removes them by name, also after a failure, and after a crash the
// cleanup script's kill of every process in the run's namespaces ends them, and podman removes them. Their logs
// are files in the test's directory. Without podman the file is skipped, except under CI, where that is a failure.
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentState } from "../../agent/debug/state";
import { EXTERNAL_IP, SimCluster, type SimNode, type SimPod } from "../support/cluster";
import { runPlugin } from "../support/cni-exec";
import { createTestNetns, RUN_PREFIX } from "../support/netns";
import { eventually } from "../support/podman";
import { startEchoServer, startWhoamiServer, tcpWhoami, unreachablePairs, type EchoServer } from "../support/traffic";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const ECHO_PORT = 7031;
const WHOAMI_PORT = 7032;
/** The image's plugin, where the manifest's initContainer finds it. */
const IMAGE_PLUGIN = "/opt/weft/bin/weft";

function podmanMissing(): string | undefined {
  const found = PATH.split(":").some((dir) => fs.existsSync(path.join(dir, "podman")));
  if (found) return undefined;
  const why = "podman is not installed (scripts/install-test-deps.sh installs it)";
  if (process.env.CI) throw new Error(why);
  return why;
}

/** podman with the machine's configuration (scripts/install-test-deps.sh: cgroupfs, runc, no default ulimits). */
function spawnPodman(argv: string[], timeoutMs = 60_000) {
  return spawnSync("podman", argv, { encoding: "utf8", env: { PATH, HOME: process.env.HOME ?? "/root" }, timeout: timeoutMs, killSignal: "SIGKILL" });
}

function podman(argv: string[], options: { allowFailure?: boolean; timeoutMs?: number } = {}): string {
  const result = spawnPodman(argv, options.timeoutMs);
  if (result.status !== 0 && !options.allowFailure) throw new Error(`podman ${argv.join(" ")} failed (${result.status ?? result.signal}): ${result.stderr?.trim() || result.error?.message}`);
  return result.stdout ?? "";
}

/**
 * The image of this checkout: built (or found up to date) by scripts/image/build.sh, which prints its name.
 * WEFT_TEST_IMAGE=<name> runs an image built beforehand instead, as it is.
 */
function buildImage(): string {
  if (process.env.WEFT_TEST_IMAGE) return process.env.WEFT_TEST_IMAGE;
  const started = Date.now();
  const output = execFileSync("bash", [path.join(repoRoot, "scripts/image/build.sh")], { encoding: "utf8", env: { PATH, HOME: process.env.HOME ?? "/root" }, timeout: 900_000, stdio: ["ignore", "pipe", "pipe"] });
  const image = output.trim().split("\n").pop()!;
  console.log(`image: ${image} ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return image;
}

/** The manifest's securityContext for both containers, as podman options (the agent adds its capabilities). */
const SECURITY = ["--user", "0", "--read-only", "--security-opt", "no-new-privileges", "--cap-drop", "all"];

describe.skipIf(podmanMissing())("the weft image as the DaemonSet runs it: install-cni, then weft-agent on 3 nodes", () => {
  let cluster: SimCluster;
  let image: string;
  const containers: string[] = [];
  const servers: EchoServer[] = [];
  /** Per node: the plugin install-cni copied into the node's /opt/cni/bin. */
  const plugins = new Map<SimNode, string>();

  const agentContainer = (node: SimNode) => `${RUN_PREFIX}image-${node.name}-agent`;

  /** `weft-agent status --json` in the agent's container. */
  function status(node: SimNode): AgentState {
    const result = spawnPodman(["exec", agentContainer(node), "weft-agent", "status", "--json", "--debug-addr", "127.0.0.1:9476"], 15_000);
    if (result.status !== 0 && result.status !== 1) throw new Error(`${node.name}: weft-agent status in the container failed (${result.status}): ${result.stderr}`);
    return JSON.parse(result.stdout) as AgentState;
  }

  /** The container's log file (k8s-file: `<time> <stream> <tag> <line>`), which outlives the container. */
  const agentLogFile = (node: SimNode) => path.join(node.dir, "agent-container.log");

  function agentLogs(node: SimNode): string {
    try {
      return fs.readFileSync(agentLogFile(node), "utf8").split("\n").slice(-60).join("\n");
    } catch (error) {
      return `(no log: ${(error as Error).message})`;
    }
  }

  /** The DaemonSet's initContainer: `weft-agent install-cni` with the node's /opt/cni/bin mounted at /host/opt/cni/bin. */
  function installCni(node: SimNode): string {
    const binDir = path.join(node.dir, "opt-cni-bin");
    fs.mkdirSync(binDir, { recursive: true });
    const name = `${RUN_PREFIX}image-${node.name}-install-cni`;
    containers.push(name);
    const output = podman([
      "run", "--rm", "--name", name, "--label", `weft-test-run=${RUN_PREFIX}`, "--network", `ns:${node.ns.path}`, ...SECURITY,
      "--volume", `${binDir}:/host/opt/cni/bin`,
      image, "install-cni", `--cni-source=${IMAGE_PLUGIN}`, "--cni-bin-dir=/host/opt/cni/bin",
    ], { timeoutMs: 120_000 });
    const plugin = path.join(binDir, "weft");
    if (!fs.existsSync(plugin)) throw new Error(`${node.name}: install-cni left no ${plugin}: ${output}`);
    return plugin;
  }

  /**
   * The DaemonSet's agent container: the node's network (hostNetwork), the node's paths mounted where the agent
   * is told to find them (its conflist dir, subnet file, state, IPAM dir and bpffs pins, all under the cluster's
   * temp dir, mounted at the same path, so that the plugin on the node reads what the agent wrote), its own
   * /run/weft for its caches, and the node list and net-conf read-only.
   */
  function startAgent(node: SimNode, args: string[]): void {
    const name = agentContainer(node);
    containers.push(name);
    const runWeft = path.join(node.dir, "run-weft");
    fs.mkdirSync(runWeft, { recursive: true });
    podman([
      "run", "--detach", "--rm", "--name", name, "--label", `weft-test-run=${RUN_PREFIX}`,
      "--log-driver", "k8s-file", "--log-opt", `path=${agentLogFile(node)}`,
      "--network", `ns:${node.ns.path}`, ...SECURITY, "--security-opt", "seccomp=unconfined",
      "--cap-add", "NET_ADMIN,NET_RAW,BPF,PERFMON",
      "--env", "WEFT_DEBUG_ADDR=127.0.0.1:9476",
      "--volume", `${node.dir}:${node.dir}`,
      "--volume", `${node.bpfDir}:${node.bpfDir}`,
      "--volume", `${runWeft}:/run/weft`,
      ...args.filter((arg) => arg.startsWith(cluster.dir) && !arg.startsWith(node.dir)).flatMap((file) => ["--volume", `${file}:${file}:ro`]),
      image, "run", ...node.agentArgs(), ...args,
    ]);
  }

  /** Until the agent is ready with every peer programmed; fails at once, with its log, when its container exited. */
  async function waitReady(node: SimNode, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = "";
    for (;;) {
      const state = podman(["inspect", "--format", "{{.State.Status}}", agentContainer(node)], { allowFailure: true }).trim();
      if (state !== "running") throw new Error(`${node.name}: the agent's container stopped (${state || "gone"}); its log:\n${agentLogs(node)}`);
      try {
        const s = status(node);
        const programmed = s.peers.filter((p) => p.status === "programmed").length;
        if (s.readiness.ready && programmed === cluster.nodes.length - 1) return;
        last = `readiness ${JSON.stringify(s.readiness)}, ${programmed} peers programmed`;
      } catch (error) {
        last = (error as Error).message;
      }
      if (Date.now() > deadline) throw new Error(`${node.name}: not ready in ${timeoutMs} ms: ${last}; the agent's log:\n${agentLogs(node)}`);
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
  }

  /** A pod on `node`, networked by the plugin install-cni copied out, from the conflist the agent wrote. */
  function addPod(node: SimNode): SimPod {
    const index = node.pods.length;
    const ns = createTestNetns(`${node.name}-ip${index}`);
    const containerId = `${RUN_PREFIX}${node.name}-image-${index}`;
    const result = runPlugin(plugins.get(node)!, {
      command: "ADD", containerId, netns: ns.path, ifname: "eth0", stdin: node.pluginConf(), hostNetns: node.ns.path, path: "/usr/lib/cni",
      env: { WEFT_CACHE_DIR: path.join(node.dir, "plugin-cache") },
    });
    if (result.code !== 0) {
      ns.remove();
      throw new Error(`${node.name}: ADD failed: ${result.stdout} ${result.stderr}`);
    }
    const ip = (result.json.ips as { address: string }[]).map((entry) => entry.address.split("/")[0]!).find((a) => a.includes("."))!;
    const pod: SimPod = { ns, containerId, ip, addStderr: result.stderr };
    node.pods.push(pod);
    return pod;
  }

  beforeAll(async () => {
    image = buildImage();
    cluster = SimCluster.create({ label: "im", nodes: 3, datapath: "ebpf" });
    const nodeFile = cluster.writeNodeFile();
    const netConf = cluster.writeNetConf({ Network: "10.244.0.0/16", SubnetLen: 24, Backend: { Type: "vxlan" } });
    for (const node of cluster.nodes) {
      fs.mkdirSync(node.bpfDir, { recursive: true });
      plugins.set(node, installCni(node));
      startAgent(node, ["--source", "file", "--node-file", nodeFile, "--net-conf", netConf]);
    }
    for (const node of cluster.nodes) await waitReady(node, 60_000);
    for (const node of cluster.nodes) for (let i = 0; i < 2; i++) addPod(node);
    for (const node of cluster.nodes) for (const pod of node.pods) servers.push(await startEchoServer(pod.ns.name, ECHO_PORT));
    servers.push(await startWhoamiServer(cluster.external.name, WHOAMI_PORT));
  }, 900_000);

  afterAll(async () => {
    for (const server of servers) server.stop();
    // By name, the ones this file created (SIGKILL at once: --time 0), then the nodes. A container that is exiting
    // on its own at that moment can make `podman rm` fail (its cleanup holds the lock): tried again for 10 s.
    const left = new Set(containers);
    for (let attempt = 0; left.size > 0 && attempt < 20; attempt++) {
      if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 500));
      for (const name of left) {
        const result = spawnPodman(["rm", "--force", "--ignore", "--time", "0", name], 30_000);
        if (result.status === 0) left.delete(name);
        else if (attempt === 19) console.error(`image.test: cannot remove container ${name}: ${result.stderr}`);
      }
    }
    await cluster?.close();
  }, 120_000);

  it("installs the plugin from the image into the node's /opt/cni/bin, executable and answering VERSION", () => {
    for (const node of cluster.nodes) {
      const plugin = plugins.get(node)!;
      expect(fs.statSync(plugin).mode & 0o777).toBe(0o755);
      const version = runPlugin(plugin, { command: "VERSION", stdin: { cniVersion: "1.0.0" }, env: { WEFT_CACHE_DIR: path.join(node.dir, "plugin-cache") } });
      expect(version.json).toMatchObject({ supportedVersions: expect.arrayContaining(["1.0.0", "1.1.0"]) });
    }
    // The same bytes as the image's.
    const inImage = podman(["run", "--rm", "--network", "none", "--entrypoint", "sha256sum", image, IMAGE_PLUGIN]).split(" ")[0];
    const copied = execFileSync("sha256sum", [plugins.get(cluster.nodes[0]!)!], { encoding: "utf8" }).split(" ")[0];
    expect(copied).toBe(inImage);
  });

  it("runs the agents in their containers: ready, every peer programmed, the conflist written, the eBPF datapath on", () => {
    for (const node of cluster.nodes) {
      expect(podman(["inspect", "--format", "{{.State.Status}}", agentContainer(node)]).trim()).toBe("running");
      const state = status(node);
      expect(state.readiness.ready).toBe(true);
      expect(state.peers.map((p) => `${p.name} ${p.status}`).sort()).toEqual(cluster.nodes.filter((n) => n !== node).map((n) => `${n.name} programmed`));
      expect(state.datapath).toMatchObject({ mode: "ebpf", problems: [] });
      expect(fs.existsSync(node.conflist)).toBe(true);
      expect(fs.existsSync(path.join(node.bpfDir, "prog_from_pod"))).toBe(true);
    }
  });

  it("carries TCP between every pair of the 6 pods with their own addresses", () => {
    const pods = cluster.nodes.flatMap((node) => node.pods);
    expect(pods).toHaveLength(6);
    for (const node of cluster.nodes) for (const pod of node.pods) expect(pod.ip).toMatch(new RegExp(`^10\\.244\\.${node.index}\\.\\d+$`));
    expect(unreachablePairs(pods, ECHO_PORT)).toEqual([]);
  });

  it("puts the pods on the fast path: the copied plugin attached them to the programs the containerised agent pinned", async () => {
    for (const node of cluster.nodes) {
      await eventually(() => expect(status(node).datapath.ebpf?.endpoints).toMatchObject({ recorded: 2, attached: 2, onKernelPath: [] }), 10_000, 300);
    }
  });

  it("masquerades pods to their node's IP towards the external host (nft from the image)", () => {
    for (const node of cluster.nodes) {
      const result = tcpWhoami(node.pods[0]!.ns.name, EXTERNAL_IP, WHOAMI_PORT);
      expect(result, result.error).toMatchObject({ ok: true, seenAs: node.ip });
    }
  });

  it("answers `weft-agent status` in the container, as `kubectl exec` would, with overlay probes", async () => {
    const node = cluster.nodes[0]!;
    await eventually(() => {
      const state = status(node);
      expect(state.peers.every((peer) => peer.probes.some((probe) => probe.received > 0))).toBe(true);
    }, 15_000, 500);
    const text = spawnPodman(["exec", agentContainer(node), "weft-agent", "status"], 15_000);
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toContain(cluster.nodes[1]!.name);
  });
});
