// A simulated cluster for end-to-end tests: nodes are namespaces on one underlay, each running a real
// weft-agent (dist/weft-agent, the bundle the image ships), with pods made by the real `weft` binary from the
// conflist the agent wrote.
//
//   external (198.51.100.10) ── ext0 ┐
//                                    underlay netns: br0 192.168.90.1/24, routes between the two (the "router")
//   node-1 eth0 192.168.90.11 ───────┤
//   node-2 eth0 192.168.90.12 ───────┤   each node: default route via .1, cni0 + pods, weft.1 (vxlan)
//   node-3 eth0 192.168.90.13 ───────┘
//
// The external host has no route to the pod network: a pod reaches it only when weft masquerades. Everything
// lives in namespaces and temp dirs named with the run prefix; close() ends the agents by PID and removes it all.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { AgentState } from "../../agent/debug/state";
import { withNetns } from "../../native/netns";
import { runPlugin, type PluginResult } from "./cni-exec";
import { relay } from "./etcd";
import { WEFT_BINARY } from "./global-setup";
import { createTestNetns, RUN_PREFIX, type TestNetns } from "./netns";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
export const AGENT_LAUNCHER = path.join(repoRoot, "dist/weft-agent");
export const UNDERLAY_PREFIX = "192.168.90";
export const EXTERNAL_IP = "198.51.100.10";

export interface SimPod {
  ns: TestNetns;
  containerId: string;
  ip: string;
  ip6?: string;
  /** What the plugin's ADD wrote on stderr (its notes, e.g. a pod left on the kernel path). */
  addStderr?: string;
}

export interface AgentProcess {
  child: ChildProcess;
  pid: number;
  logFile: string;
  exited: Promise<number | null>;
}

export interface SimNodeOptions {
  /** File source: this node's entry. */
  podCidrs?: string[];
}

export class SimNode {
  readonly name: string;
  readonly index: number;
  readonly ns: TestNetns;
  readonly ip: string;
  readonly dir: string;
  readonly pods: SimPod[] = [];
  agent: AgentProcess | undefined;
  #podCounter = 0;
  #agentCounter = 0;

  /** This node's pin root for the eBPF datapath, on the cluster's own bpffs. */
  readonly bpfDir: string;
  /** The datapath its agent runs unless the test's flags say otherwise. */
  readonly datapath: "kernel" | "ebpf";

  constructor(name: string, index: number, ns: TestNetns, dir: string, options: { bpfRoot: string; datapath: "kernel" | "ebpf" }) {
    this.name = name;
    this.index = index;
    this.ns = ns;
    this.ip = `${UNDERLAY_PREFIX}.${10 + index}`;
    this.dir = dir;
    this.bpfDir = path.join(options.bpfRoot, name);
    this.datapath = options.datapath;
  }

  get conflist(): string {
    return path.join(this.dir, "net.d", "10-weft.conflist");
  }

  get subnetFile(): string {
    return path.join(this.dir, "subnet.env");
  }

  /** The agent's flags for this node, before the source's. */
  agentArgs(): string[] {
    return [
      "--node-name", this.name,
      "--cni-conf-dir", path.join(this.dir, "net.d"),
      "--subnet-file", this.subnetFile,
      "--state-dir", path.join(this.dir, "state"),
      "--ipam-data-dir", path.join(this.dir, "ipam"),
      "--debug-addr", "127.0.0.1:9476",
      "--resync-interval", "1s",
      "--probe-interval", "1s",
      "--probe-timeout", "500ms",
      "--log-level", "debug",
      "--datapath", this.datapath,
      "--bpf-dir", this.bpfDir,
    ];
  }

  /** Starts weft-agent inside the node (nsenter: same PID as the agent, ended by PID). */
  startAgent(args: string[], env: Record<string, string> = {}): AgentProcess {
    if (this.agent && this.agent.child.exitCode === null && this.agent.child.signalCode === null) throw new Error(`${this.name}: agent already running`);
    const logFile = path.join(this.dir, `agent-${this.#agentCounter++}.log`);
    const out = fs.openSync(logFile, "a");
    const child = spawn("nsenter", [`--net=${this.ns.path}`, AGENT_LAUNCHER, ...this.agentArgs(), ...args], {
      stdio: ["ignore", out, out],
      env: { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin", WEFT_CACHE_DIR: path.join(this.dir, "cache"), ...env },
    });
    fs.closeSync(out);
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    this.agent = { child, pid: child.pid!, logFile, exited };
    return this.agent;
  }

  /** Sends `signal` to the agent and waits for it to exit. */
  async stopAgent(signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
    const agent = this.agent;
    if (!agent) return null;
    if (agent.child.exitCode === null && agent.child.signalCode === null) process.kill(agent.pid, signal);
    const code = await agent.exited;
    return code;
  }

  agentLog(): string {
    return this.agent ? fs.readFileSync(this.agent.logFile, "utf8") : "";
  }

  /** `weft-agent status --json` inside the node. Throws when the agent cannot be reached. */
  state(): AgentState {
    const result = spawnSync("nsenter", [`--net=${this.ns.path}`, AGENT_LAUNCHER, "status", "--json", "--debug-addr", "127.0.0.1:9476"], { encoding: "utf8", timeout: 10_000 });
    if (result.status !== 0 && result.status !== 1) throw new Error(`${this.name}: weft-agent status failed (${result.status}): ${result.stderr}`);
    return JSON.parse(result.stdout) as AgentState;
  }

  /** `weft-agent status` as an operator sees it. */
  statusText(): { code: number | null; stdout: string; stderr: string } {
    const result = spawnSync("nsenter", [`--net=${this.ns.path}`, AGENT_LAUNCHER, "status", "--debug-addr", "127.0.0.1:9476"], { encoding: "utf8", timeout: 10_000 });
    return { code: result.status, stdout: result.stdout, stderr: result.stderr };
  }

  /** GET on the agent's debug endpoint inside the node (/readyz, /metrics, …): its HTTP status and body. */
  debugGet(urlPath: string): { status: number; body: string } {
    const script = `fetch("http://127.0.0.1:9476${urlPath}").then(async (r) => process.stdout.write(JSON.stringify({ status: r.status, body: await r.text() })))`;
    return JSON.parse(this.ns.exec([process.execPath, "-e", script])) as { status: number; body: string };
  }

  /** Waits until the agent reports ready (and, optionally, more). */
  async waitReady(check: (state: AgentState) => boolean = () => true, timeoutMs = 30_000): Promise<AgentState> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    while (Date.now() < deadline) {
      if (this.agent && (this.agent.child.exitCode !== null || this.agent.child.signalCode !== null)) {
        throw new Error(`${this.name}: agent exited (${this.agent.child.exitCode ?? this.agent.child.signalCode}):\n${this.agentLog().slice(-4000)}`);
      }
      try {
        const state = this.state();
        last = state;
        if (state.readiness.ready && check(state)) return state;
      } catch (error) {
        last = error;
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    throw new Error(`${this.name}: not ready in ${timeoutMs} ms; last state: ${last instanceof Error ? last.message : JSON.stringify(last, null, 1)?.slice(0, 3000)}\nlog:\n${this.agentLog().slice(-4000)}`);
  }

  /** The plugin's config, from the conflist the agent wrote (its first plugin). */
  pluginConf(): Record<string, unknown> {
    const conflist = JSON.parse(fs.readFileSync(this.conflist, "utf8")) as { cniVersion: string; name: string; plugins: Record<string, unknown>[] };
    return { cniVersion: conflist.cniVersion, name: conflist.name, ...conflist.plugins[0] };
  }

  /** A pod on this node, networked by the real weft binary. */
  addPod(): SimPod {
    const ns = createTestNetns(`${this.name}-p${this.#podCounter}`);
    const containerId = `${RUN_PREFIX}${this.name}-c${this.#podCounter++}`;
    const result: PluginResult = runPlugin(WEFT_BINARY, { command: "ADD", containerId, netns: ns.path, ifname: "eth0", stdin: this.pluginConf(), hostNetns: this.ns.path, path: "/usr/lib/cni" });
    if (result.code !== 0) {
      ns.remove();
      throw new Error(`${this.name}: ADD failed: ${result.stdout} ${result.stderr}`);
    }
    const ips = (result.json.ips as { address: string }[]).map((entry) => entry.address.split("/")[0]!);
    const pod: SimPod = { ns, containerId, ip: ips.find((a) => a.includes("."))!, addStderr: result.stderr };
    const ip6 = ips.find((a) => a.includes(":"));
    if (ip6) pod.ip6 = ip6;
    this.pods.push(pod);
    return pod;
  }

  /** `ip -j …` inside the node, parsed. */
  ipJson<T = Record<string, unknown>[]>(argv: string[]): T {
    return JSON.parse(this.ns.exec(["ip", "-j", ...argv]) || "[]") as T;
  }

  /** The weft-owned objects, as `ip`/`bridge` show them: what the tests compare. */
  kernelObjects(): { routes: string[]; neighbours: string[]; fdb: string[] } {
    const routes = this.ipJson<{ dst: string; gateway?: string; dev: string }[]>(["route", "show", "proto", "87"]).map((r) => `${r.dst} via ${r.gateway ?? "-"} dev ${r.dev}`);
    const neighbours = this.ipJson<{ dst: string; lladdr?: string; dev: string; state?: string[] }[]>(["neigh", "show", "nud", "permanent"])
      .filter((n) => n.dev.startsWith("weft."))
      .map((n) => `${n.dst} ${n.lladdr ?? "-"} ${n.dev}`);
    const fdb = (JSON.parse(this.ns.exec(["bridge", "-j", "fdb", "show"]) || "[]") as { mac: string; dst?: string; ifname?: string; dev?: string }[])
      .filter((f) => (f.ifname ?? f.dev ?? "").startsWith("weft.") && f.dst !== undefined && f.mac !== "00:00:00:00:00:00")
      .map((f) => `${f.mac} ${f.dst} ${f.ifname ?? f.dev}`);
    return { routes: routes.sort(), neighbours: neighbours.sort(), fdb: fdb.sort() };
  }

  /** DEL through the real binary, then the pod's namespace goes. */
  removePod(pod: SimPod): void {
    const result = runPlugin(WEFT_BINARY, { command: "DEL", containerId: pod.containerId, netns: pod.ns.path, ifname: "eth0", stdin: this.pluginConf(), hostNetns: this.ns.path, path: "/usr/lib/cni" });
    if (result.code !== 0) throw new Error(`${this.name}: DEL failed: ${result.stdout} ${result.stderr}`);
    pod.ns.remove();
    this.pods.splice(this.pods.indexOf(pod), 1);
  }

  removePods(): void {
    for (const pod of this.pods.splice(0)) pod.ns.remove();
  }
}

export interface ClusterOptions {
  label: string;
  nodes: number;
  /** The agents' --datapath unless a test's flags say otherwise. Default kernel. */
  datapath?: "kernel" | "ebpf";
}

/** A node's entry in the file source's node list: name, pod CIDR 10.244.<index>.0/24, public IP, then `extra`. */
export function nodeFileEntry(node: SimNode, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name: node.name, podCidrs: [`10.244.${node.index}.0/24`], publicIp: node.ip, ...extra };
}

/** Writes a node list for the file source, to a temp name then renamed, as an operator's tool would. */
export function writeNodeEntries(file: string, entries: Record<string, unknown>[]): void {
  const temp = `${file}.tmp`;
  fs.writeFileSync(temp, `${JSON.stringify({ nodes: entries }, null, 2)}\n`);
  fs.renameSync(temp, file);
}

export class SimCluster {
  readonly underlay: TestNetns;
  readonly external: TestNetns;
  readonly nodes: SimNode[] = [];
  readonly dir: string;
  /**
   * A bpffs of the cluster's own, mounted on its temp dir and unmounted by close(): each node's agent pins under
   * <bpfRoot>/<node>, as if each node had its own /sys/fs/bpf. The machine's /sys/fs/bpf is never used.
   */
  readonly bpfRoot: string;
  readonly datapath: "kernel" | "ebpf";
  #closed = false;

  private constructor(label: string, datapath: "kernel" | "ebpf") {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `${RUN_PREFIX}${label}-`));
    this.datapath = datapath;
    this.bpfRoot = path.join(this.dir, "bpf");
    fs.mkdirSync(this.bpfRoot);
    spawnSync("mount", ["-t", "bpf", "bpf", this.bpfRoot], { stdio: "ignore" });
    this.underlay = createTestNetns(`${label}-u`);
    this.external = createTestNetns(`${label}-x`);
  }

  /** Builds the underlay, the external host and `nodes` nodes (no agents yet). Call close() in afterAll. */
  static create(options: ClusterOptions): SimCluster {
    const cluster = new SimCluster(options.label, options.datapath ?? "kernel");
    try {
      const u = (...argv: string[]) => cluster.underlay.exec(argv);
      u("sysctl", "-qw", "net.ipv4.ip_forward=1");
      u("ip", "link", "add", "br0", "type", "bridge");
      u("ip", "addr", "add", `${UNDERLAY_PREFIX}.1/24`, "dev", "br0");
      u("ip", "link", "set", "br0", "up");
      u("ip", "link", "add", "ext0", "type", "veth", "peer", "name", "eth0", "netns", cluster.external.name);
      u("ip", "addr", "add", "198.51.100.1/24", "dev", "ext0");
      u("ip", "link", "set", "ext0", "up");
      const x = (...argv: string[]) => cluster.external.exec(argv);
      x("ip", "addr", "add", `${EXTERNAL_IP}/24`, "dev", "eth0");
      x("ip", "link", "set", "eth0", "up");
      x("ip", "route", "add", `${UNDERLAY_PREFIX}.0/24`, "via", "198.51.100.1");
      for (let i = 1; i <= options.nodes; i++) cluster.addNode(`node-${i}`);
    } catch (error) {
      cluster.close();
      throw error;
    }
    return cluster;
  }

  addNode(name: string): SimNode {
    const index = this.nodes.length + 1;
    const ns = createTestNetns(name);
    const dir = path.join(this.dir, name);
    fs.mkdirSync(dir, { recursive: true });
    const node = new SimNode(name, index, ns, dir, { bpfRoot: this.bpfRoot, datapath: this.datapath });
    this.nodes.push(node);
    const port = `port${index}`;
    this.underlay.exec(["ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns.name]);
    this.underlay.exec(["ip", "link", "set", port, "master", "br0", "up"]);
    const n = (...argv: string[]) => ns.exec(argv);
    n("sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1");
    n("ip", "addr", "add", `${node.ip}/24`, "dev", "eth0");
    n("ip", "link", "set", "eth0", "up");
    n("ip", "route", "add", "default", "via", `${UNDERLAY_PREFIX}.1`);
    return node;
  }

  /** The node file for the file source: every node's entry (see nodeFileEntry), written as writeNodeEntries does. */
  writeNodeFile(file = path.join(this.dir, "nodes.json"), nodes: SimNode[] = this.nodes, extra: (node: SimNode) => Record<string, unknown> = () => ({})): string {
    writeNodeEntries(file, nodes.map((node) => nodeFileEntry(node, extra(node))));
    return file;
  }

  /**
   * Starts every node's agent with `argsOf(node)`, waits until each is ready with every other node programmed,
   * then adds `podsPerNode` pods on each node.
   */
  async startAgents(argsOf: (node: SimNode) => string[], options: { podsPerNode?: number; timeoutMs?: number } = {}): Promise<void> {
    for (const node of this.nodes) node.startAgent(argsOf(node));
    const others = this.nodes.length - 1;
    await Promise.all(this.nodes.map((node) => node.waitReady((s) => s.peers.filter((p) => p.status === "programmed").length === others, options.timeoutMs)));
    for (const node of this.nodes) for (let i = 0; i < (options.podsPerNode ?? 1); i++) node.addPod();
  }

  writeNetConf(doc: Record<string, unknown>, file = path.join(this.dir, "net-conf.json")): string {
    fs.writeFileSync(file, JSON.stringify(doc));
    return file;
  }

  /** Ends every agent (SIGKILL, by PID), removes every namespace and the temp dir. Safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const node of this.nodes) {
      if (node.agent && node.agent.child.exitCode === null && node.agent.child.signalCode === null) {
        process.kill(node.agent.pid, "SIGKILL");
        await node.agent.exited;
      }
    }
    for (const node of this.nodes) {
      node.removePods();
      node.ns.remove();
    }
    this.external.remove();
    this.underlay.remove();
    spawnSync("umount", [this.bpfRoot], { stdio: "ignore" });
    if (process.env.WEFT_KEEP_CLUSTER_DIR !== "1") fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface NetnsProxy {
  /** The port it listens on, on every address of the namespace. */
  port: number;
  close(): Promise<void>;
}

/**
 * A TCP proxy whose listening socket lives in the namespace `netnsPath` (all its addresses, `port`) and whose
 * upstream connections go to `target` in the test's own namespace: how agents inside simulated nodes reach an
 * etcd or API server on the test's loopback. Node binds a listener without a host synchronously, so the socket
 * is created inside withNetns; accepted connections belong to the listener's namespace.
 */
export function startNetnsProxy(netnsPath: string, port: number, target: { host: string; port: number }): NetnsProxy {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => relay(client, target, sockets));
  withNetns(netnsPath, () => {
    server.listen(port);
  });
  return {
    port,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface AgentRun {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs dist/weft-agent inside `node` to completion with the node's usual flags plus `args` (a start that must
 * fail, a subcommand); ends it with SIGKILL after `timeoutMs`. The FFI cache goes to `cacheDir` (default a
 * directory beside the node's), so that the node's own directory holds only what the agent itself wrote.
 */
export function runAgentOnce(node: SimNode, args: string[], options: { timeoutMs?: number; cacheDir?: string } = {}): AgentRun {
  const result = spawnSync("nsenter", [`--net=${node.ns.path}`, AGENT_LAUNCHER, ...node.agentArgs(), ...args], {
    encoding: "utf8",
    timeout: options.timeoutMs ?? 20_000,
    killSignal: "SIGKILL",
    env: { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin", WEFT_CACHE_DIR: options.cacheDir ?? `${node.dir}.cache` },
  });
  return { status: result.status, signal: result.signal, stdout: result.stdout, stderr: result.stderr };
}

/** A node set up by hand exactly as flannel's vxlan backend and its CNI (bridge + host-local) set one up. */
export interface FlannelNode {
  /** flannel.1's MAC: what flannel publishes (its backend-data annotation) and what peers must program. */
  vtepMac: string;
  /** Programs a remote node as flannel does, in its order: neighbour, FDB entry, onlink route. */
  addPeer(peer: { podCidr: string; publicIp: string; vtepMac: string }): void;
  /** A pod on cni0, addressed by hand (the next address of the /24), MTU 1450 like flannel's pods. */
  addPod(): SimPod;
}

/**
 * Turns `node` (no agent) into a flannel node with pod subnet `podCidr` (a /24): `flannel.1` vxlan id 1 dstport
 * 8472 nolearning local <node ip> dev eth0, MTU 1450, the subnet's network address /32 on it, and a cni0 bridge
 * with the subnet's .1. The commands are flannel's (backend/vxlan/device.go, the bridge plugin), as `ip`/`bridge`.
 */
export function configureAsFlannel(node: SimNode, podCidr: string): FlannelNode {
  const match = /^(\d+\.\d+\.\d+)\.0\/24$/.exec(podCidr);
  if (!match) throw new Error(`configureAsFlannel: ${podCidr} is not a /24 network`);
  const prefix = match[1]!;
  const n = (...argv: string[]) => node.ns.exec(argv);
  n("ip", "link", "add", "flannel.1", "type", "vxlan", "id", "1", "dstport", "8472", "nolearning", "local", node.ip, "dev", "eth0");
  n("ip", "link", "set", "flannel.1", "mtu", "1450");
  n("ip", "addr", "add", `${prefix}.0/32`, "dev", "flannel.1");
  n("ip", "link", "set", "flannel.1", "up");
  n("ip", "link", "add", "cni0", "type", "bridge");
  n("ip", "addr", "add", `${prefix}.1/24`, "dev", "cni0");
  n("ip", "link", "set", "cni0", "mtu", "1450", "up");
  const vtepMac = node.ipJson<{ address: string }[]>(["link", "show", "flannel.1"])[0]!.address;
  let pods = 0;
  return {
    vtepMac,
    addPeer: (peer) => {
      const peerMatch = /^(\d+\.\d+\.\d+\.0)\/24$/.exec(peer.podCidr);
      if (!peerMatch) throw new Error(`configureAsFlannel: ${peer.podCidr} is not a /24 network`);
      const vtepAddress = peerMatch[1]!;
      n("ip", "neigh", "replace", vtepAddress, "lladdr", peer.vtepMac, "dev", "flannel.1", "nud", "permanent");
      n("bridge", "fdb", "replace", peer.vtepMac, "dst", peer.publicIp, "dev", "flannel.1", "self", "permanent");
      n("ip", "route", "replace", peer.podCidr, "via", vtepAddress, "dev", "flannel.1", "onlink");
    },
    addPod: () => {
      const index = pods++;
      const ns = createTestNetns(`${node.name}-fp${index}`);
      const ip = `${prefix}.${10 + index}`;
      const host = `vethf${node.index}x${index}`;
      const pod: SimPod = { ns, containerId: `${RUN_PREFIX}${node.name}-f${index}`, ip };
      node.pods.push(pod);
      n("ip", "link", "add", host, "mtu", "1450", "type", "veth", "peer", "name", "eth0", "mtu", "1450", "netns", ns.name);
      n("ip", "link", "set", host, "master", "cni0", "up");
      ns.exec(["ip", "addr", "add", `${ip}/24`, "dev", "eth0"]);
      ns.exec(["ip", "link", "set", "eth0", "up"]);
      ns.exec(["ip", "route", "add", "default", "via", `${prefix}.1`]);
      return pod;
    },
  };
}
