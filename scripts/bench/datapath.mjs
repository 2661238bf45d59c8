#!/usr/bin/env node
// Datapath: TCP throughput (iperf3, with the sender's TCP retransmits) and TCP request/response latency (sockperf
// ping-pong) between pods, on the same node and across nodes, over weft's kernel datapath (vxlan, host-gw) and its
// eBPF datapath (vxlan) — beside the underlay itself (node ↔ node) and a hand-built flannel-identical topology, on
// the same machine, in the same run.
//
//   node_modules/.bin/node scripts/bench/datapath.mjs [--repeat 3] [--duration 5] [--rr-duration 3]
//
//   underlay netns: br0 (a plain L2 bridge) ─┬─ vx1, vx2   weft-agent --datapath kernel, vxlan, ip-masq off
//                                            ├─ vm1, vm2   weft-agent --datapath kernel, vxlan, ip-masq on (nftables)
//                                            ├─ hg1, hg2   weft-agent --datapath kernel, host-gw, ip-masq off
//                                            ├─ eb1, eb2   weft-agent --datapath ebpf, vxlan, ip-masq off
//                                            ├─ em1, em2   weft-agent --datapath ebpf, vxlan, ip-masq on (nftables)
//                                            └─ fl1, fl2   flannel by hand: cni0 + veth pods (MTU 1450 on both
//                                                          ends, as the bridge plugin makes them), flannel.1 (VNI 1,
//                                                          8472, nolearning, MTU 1450), per remote node a permanent
//                                                          neighbour, an FDB entry and an onlink route
//
// Every node is a network namespace with eth0 (a veth into the underlay's bridge), MTU 1500. weft's nodes run the
// real dist/weft-agent on the file source; their pods are made by the real dist/weft from the conflist the agent
// wrote. Each agent pins under <temp dir>/bpf/<node>, on a bpffs this script mounts on its own temp dir (as if
// each node had its own /sys/fs/bpf; the machine's is never touched — kernel mode too removes an earlier eBPF
// run's pins there). Everything is named wft-bench-<id>-*; processes are ended by PID, namespaces removed and the
// bpffs unmounted at the end, also on failure and Ctrl-C. The eBPF rows are checked to have taken the programs:
// their counters (weft-agent status) must have grown on every path they stand for, and no eBPF pod may have been
// left on the kernel path by its ADD.
// Each measurement is repeated (round-robin over the paths, so that drift hits all alike) and the median shown
// with the spread. Prints a markdown table for docs/benchmarks.md.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { BenchNamespaces, ipIn, median, run, runBenchmark, unmountUnder } from "./lib.mjs";

const HELP = `Usage: node_modules/.bin/node scripts/bench/datapath.mjs [options]

iperf3 TCP throughput (1 stream, with the sender's TCP retransmits) and sockperf TCP ping-pong latency, pod to
pod over weft's kernel datapath (vxlan, vxlan with ip-masq on, host-gw) and its eBPF datapath (vxlan, vxlan with
ip-masq on), node to node over the underlay, and pod to pod over a hand-built flannel-identical topology, in
throwaway network namespaces (wft-bench-<id>-*). Needs root, iproute2, nsenter, mount, nftables, iperf3, sockperf
(apt-get install iproute2 util-linux mount nftables iperf3 sockperf), for the eBPF rows Linux 6.6 or later with
BTF (/sys/kernel/btf/vmlinux), and \`npm run build\` first (dist/, with dist/agent/bpf/*.o). The script mounts a
bpffs of its own on its temp dir for the agents' pins (never the machine's /sys/fs/bpf) and unmounts it at the end.

Rows, each measured once per round, round-robin: same node (weft kernel, weft eBPF, flannel-identical), across
nodes over vxlan (the same three), across nodes with ip-masq on (weft kernel, weft eBPF), across nodes over
host-gw (weft kernel), node to node (the underlay). Paired ratios (median of the per-round ratios): against
flannel-identical, eBPF against weft kernel, against the underlay, and ip-masq on against off.

Options:
  --repeat N         runs of each measurement; the median is shown (default 3)
  --duration SEC     iperf3 time per run, after 1 s of ramp-up left out (default 5)
  --rr-duration SEC  sockperf ping-pong time per run (default 3)
  --message BYTES    sockperf message size (default 64)
  --dist DIR         where weft and weft-agent are (default dist/ of this checkout)
  --no-pin           do not pin clients to CPU 0 and servers to CPU 1 (taskset), which gives every path the
                     same placement of its two ends
  --help             this text
`;

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const argv = process.argv.slice(2);
const distIndex = argv.indexOf("--dist");
const DIST = path.resolve(distIndex >= 0 && argv[distIndex + 1] ? argv[distIndex + 1] : path.join(root, "dist"));
const AGENT = path.join(DIST, "weft-agent");
const WEFT = path.join(DIST, "weft");
if (argv.includes("--help") || argv.includes("-h")) {
  process.stdout.write(HELP);
  process.exit(0);
}
function fail(message) {
  process.stderr.write(`datapath: ${message}\n`);
  process.exit(2);
}
const OPTIONS = ["--repeat", "--duration", "--rr-duration", "--message", "--no-pin", "--dist"];
for (const arg of argv) if (arg.startsWith("--") && !OPTIONS.includes(arg)) fail(`unknown option ${arg} (see --help)`);
const option = (name, fallback) => {
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const value = Number(argv[i + 1]);
  if (!Number.isFinite(value) || value <= 0) fail(`--${name} needs a positive number (see --help)`);
  return value;
};
const REPEAT = option("repeat", 3);
const DURATION = option("duration", 5);
const RR_DURATION = option("rr-duration", 3);
const MESSAGE = option("message", 64);
const PIN = !argv.includes("--no-pin") && os.cpus().length >= 2;
/** The command line of a client (CPU 0) or server (CPU 1), pinned unless --no-pin. */
const pinned = (cpu, command, ...args) => (PIN ? ["taskset", "-c", String(cpu), command, ...args] : [command, ...args]);

const netns = new BenchNamespaces();
const prefix = netns.prefix;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
const bpfRoot = path.join(tmp, "bpf");
const processes = new Set();
const UNDERLAY = "192.168.90";
const IPERF_PORT = 5201;
const RR_PORT = 11111;

// ---------------------------------------------------------------------------------------------------------------
// Namespaces and commands inside them.

const inNs = (ns, command, ...args) => run("nsenter", [`--net=/run/netns/${ns}`, command, ...args]);

/** Starts a long-running process; ended by PID in cleanup. */
function startProcess(command, args, { env, logFile }) {
  const out = fs.openSync(logFile, "a");
  const child = spawn(command, args, { stdio: ["ignore", out, out], env: { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin", ...env } });
  fs.closeSync(out);
  const entry = { child, pid: child.pid, logFile, exit: undefined };
  entry.exited = new Promise((resolve) => child.on("exit", (code, signal) => {
    entry.exit = code ?? signal;
    resolve();
  }));
  processes.add(entry);
  return entry;
}

const sleep = (delay) => new Promise((resolve) => setTimeout(resolve, delay));

// ---------------------------------------------------------------------------------------------------------------
// The topology.

let underlay;
let portCounter = 0;

/** A node: a namespace with eth0 (veth into the underlay bridge) at 192.168.90.<host>/24, forwarding on. */
function addNode(label, host) {
  const ns = netns.add(label);
  const port = `p${portCounter++}`;
  ipIn(underlay, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns);
  ipIn(underlay, "link", "set", port, "master", "br0", "up");
  inNs(ns, "sysctl", "-qw", "net.ipv4.ip_forward=1");
  ipIn(ns, "addr", "add", `${UNDERLAY}.${host}/24`, "dev", "eth0");
  ipIn(ns, "link", "set", "eth0", "up");
  return { ns, ip: `${UNDERLAY}.${host}`, label };
}

/**
 * Two weft nodes running the real agent on the file source with `--datapath <datapath>`, pinning (eBPF) under
 * <temp dir>/bpf/<node> — kernel mode gets it too, as it removes what an eBPF run pinned there; pods made by
 * dist/weft from the agent's conflist.
 */
async function weftCluster(key, { backend, network, ipMasq, firstHost, datapath }) {
  const dir = path.join(tmp, key);
  fs.mkdirSync(dir, { recursive: true });
  const nodes = [1, 2].map((i) => ({ ...addNode(`${key}${i}`, firstHost + i - 1), name: `${key}-node-${i}`, dir: path.join(dir, `node-${i}`), podCidr: network.replace(".0.0/16", `.${i}.0/24`) }));
  const nodeFile = path.join(dir, "nodes.json");
  fs.writeFileSync(nodeFile, JSON.stringify({ nodes: nodes.map((n) => ({ name: n.name, podCidrs: [n.podCidr], publicIp: n.ip })) }));
  const netConf = path.join(dir, "net-conf.json");
  fs.writeFileSync(netConf, JSON.stringify({ Network: network, SubnetLen: 24, Backend: { Type: backend } }));
  for (const node of nodes) {
    fs.mkdirSync(node.dir, { recursive: true });
    node.conflist = path.join(node.dir, "net.d", "10-weft.conflist");
    node.datapath = datapath;
    node.agent = startProcess("nsenter", [
      `--net=/run/netns/${node.ns}`, AGENT,
      "--node-name", node.name, "--source", "file", "--node-file", nodeFile, "--net-conf", netConf,
      "--cni-conf-dir", path.join(node.dir, "net.d"), "--subnet-file", path.join(node.dir, "subnet.env"),
      "--state-dir", path.join(node.dir, "state"), "--ipam-data-dir", path.join(node.dir, "ipam"),
      "--debug-addr", "127.0.0.1:9476", `--ip-masq=${ipMasq}`, "--datapath", datapath, "--bpf-dir", path.join(bpfRoot, node.name),
    ], { env: { WEFT_CACHE_DIR: path.join(node.dir, "cache") }, logFile: path.join(node.dir, "agent.log") });
  }
  for (const node of nodes) await waitReady(node);
  for (const node of nodes) node.pods = [];
  return nodes;
}

/** `weft-agent status --json` inside the node: the state, or `{ error }` when the agent cannot be reached. */
function agentState(node) {
  const file = path.join(node.dir, "status.json");
  const out = fs.openSync(file, "w");
  const result = spawnSync("nsenter", [`--net=/run/netns/${node.ns}`, AGENT, "status", "--json", "--debug-addr", "127.0.0.1:9476"], { stdio: ["ignore", out, "pipe"], encoding: "utf8" });
  fs.closeSync(out);
  if (result.status !== 0 && result.status !== 1) return { error: result.stderr || `exit ${result.status}` };
  try {
    return { state: JSON.parse(fs.readFileSync(file, "utf8")) };
  } catch (error) {
    return { error: String(error) };
  }
}

/**
 * Until `weft-agent status` says ready with the other node programmed (and masq in place when on), in the
 * datapath mode asked for.
 */
async function waitReady(node) {
  const deadline = Date.now() + 60_000;
  let last = "";
  while (Date.now() < deadline) {
    if (node.agent.exit !== undefined) throw new Error(`${node.name}: weft-agent exited (${node.agent.exit}):\n${fs.readFileSync(node.agent.logFile, "utf8").slice(-3000)}`);
    const { state, error } = agentState(node);
    if (state) {
      last = JSON.stringify(state.readiness);
      const mode = state.datapath?.mode;
      if (mode !== undefined && mode !== node.datapath) throw new Error(`${node.name}: datapath ${mode} (${state.datapath.reason}), not ${node.datapath}`);
      if (state.readiness?.ready && state.peers?.filter((p) => p.status === "programmed").length === 1) return;
    } else {
      last = error;
    }
    await sleep(200);
  }
  throw new Error(`${node.name}: weft-agent not ready in 60 s (${last}):\n${fs.readFileSync(node.agent.logFile, "utf8").slice(-3000)}`);
}

let podCounter = 0;

/** A pod on a weft node: dist/weft ADD, run like a runtime runs it (nsenter into the node, config on stdin). */
function addWeftPod(node) {
  const ns = netns.add(`${node.label}-pod${node.pods.length}`);
  const conflist = JSON.parse(fs.readFileSync(node.conflist, "utf8"));
  const config = { cniVersion: conflist.cniVersion, name: conflist.name, ...conflist.plugins[0] };
  const result = spawnSync("nsenter", [`--net=/run/netns/${node.ns}`, WEFT], {
    input: JSON.stringify(config),
    encoding: "utf8",
    env: {
      PATH: process.env.PATH, CNI_COMMAND: "ADD", CNI_CONTAINERID: `${prefix}c${podCounter++}`, CNI_NETNS: `/run/netns/${ns}`,
      CNI_IFNAME: "eth0", CNI_PATH: "/usr/lib/cni", WEFT_CACHE_DIR: path.join(node.dir, "cache"),
    },
  });
  if (result.status !== 0) throw new Error(`${node.name}: weft ADD failed (${result.status}): ${result.stdout}${result.stderr}`);
  // An eBPF pod whose ADD could not attach it still works, over the kernel path: its row would measure that.
  if (node.datapath === "ebpf" && /takes the kernel path/.test(result.stderr)) throw new Error(`${node.name}: ${result.stderr.trim()}`);
  const ip = JSON.parse(result.stdout).ips[0].address.split("/")[0];
  const pod = { ns, ip };
  node.pods.push(pod);
  return pod;
}

/** flannel's node, by hand, exactly as ARCHITECTURE.md describes it (and as flannel's vxlan backend does it). */
function flannelNode(label, host, podCidr) {
  const node = { ...addNode(label, host), podCidr, pods: [] };
  const gateway = podCidr.replace(".0/24", ".1");
  const vtepAddress = podCidr.replace("/24", "");
  ipIn(node.ns, "link", "add", "flannel.1", "type", "vxlan", "id", "1", "dstport", "8472", "local", node.ip, "dev", "eth0", "nolearning");
  ipIn(node.ns, "link", "set", "flannel.1", "mtu", "1450", "up");
  ipIn(node.ns, "addr", "add", `${vtepAddress}/32`, "dev", "flannel.1");
  node.vtepMac = JSON.parse(ipIn(node.ns, "-j", "link", "show", "flannel.1"))[0].address;
  ipIn(node.ns, "link", "add", "cni0", "mtu", "1450", "type", "bridge");
  ipIn(node.ns, "addr", "add", `${gateway}/24`, "dev", "cni0");
  ipIn(node.ns, "link", "set", "cni0", "up");
  return node;
}

/**
 * A pod as the reference bridge plugin makes it: veth, host end on cni0, MTU 1450 on both ends, default route via
 * .1. (`ip link add X mtu 1450 type veth peer name eth0 netns P` sets the host end's MTU only; the pod end would
 * stay at 1500, unlike flannel's pods, which the bridge plugin gives the overlay MTU.)
 */
function addFlannelPod(node) {
  const index = node.pods.length;
  const ns = netns.add(`${node.label}-pod${index}`);
  const ip = node.podCidr.replace(".0/24", `.${index + 2}`);
  const hostEnd = `veth${node.label}${index}`;
  ipIn(node.ns, "link", "add", hostEnd, "mtu", "1450", "type", "veth", "peer", "name", "eth0", "netns", ns);
  ipIn(node.ns, "link", "set", hostEnd, "master", "cni0", "up");
  ipIn(ns, "link", "set", "eth0", "mtu", "1450");
  ipIn(ns, "addr", "add", `${ip}/24`, "dev", "eth0");
  ipIn(ns, "link", "set", "eth0", "up");
  ipIn(ns, "route", "add", "default", "via", node.podCidr.replace(".0/24", ".1"));
  const pod = { ns, ip };
  node.pods.push(pod);
  return pod;
}

/** Per remote node, in flannel's order: neighbour, FDB entry, onlink route. */
function flannelPeer(node, remote) {
  const remoteVtep = remote.podCidr.replace("/24", "");
  ipIn(node.ns, "neigh", "replace", remoteVtep, "lladdr", remote.vtepMac, "dev", "flannel.1", "nud", "permanent");
  run("bridge", ["-n", node.ns, "fdb", "replace", remote.vtepMac, "dev", "flannel.1", "dst", remote.ip, "self", "permanent"]);
  ipIn(node.ns, "route", "replace", remote.podCidr, "via", remoteVtep, "dev", "flannel.1", "onlink");
}

// ---------------------------------------------------------------------------------------------------------------
// Measurements.

const servers = new Map();

/** iperf3 and sockperf servers in `ns` for `ip`, once. */
async function ensureServers(ns, ip) {
  const key = `${ns} ${ip}`;
  if (servers.has(key)) return;
  const log = path.join(tmp, `servers-${ns}.log`);
  const iperf = startProcess("nsenter", [`--net=/run/netns/${ns}`, ...pinned(1, "iperf3", "-s", "-B", ip, "-p", String(IPERF_PORT))], { logFile: log });
  const sockperf = startProcess("nsenter", [`--net=/run/netns/${ns}`, ...pinned(1, "sockperf", "server", "--tcp", "-i", ip, "-p", String(RR_PORT))], { logFile: log });
  servers.set(key, [iperf, sockperf]);
  await sleep(300);
  for (const server of [iperf, sockperf]) if (server.exit !== undefined) throw new Error(`server in ${ns} exited (${server.exit}): ${fs.readFileSync(log, "utf8")}`);
}

function throughput(from, to) {
  const out = inNs(from, ...pinned(0, "iperf3", "-c", to, "-p", String(IPERF_PORT), "-t", String(DURATION), "-O", "1", "-J"));
  const report = JSON.parse(out);
  if (report.error) throw new Error(`iperf3 ${from} → ${to}: ${report.error}`);
  // The sender's retransmitted segments (TCP_INFO), over the measured seconds; NaN where iperf3 has none.
  return { gbits: report.end.sum_received.bits_per_second / 1e9, retransmits: Number(report.end.sum_sent?.retransmits ?? Number.NaN) };
}

function latency(from, to) {
  const out = inNs(from, ...pinned(0, "sockperf", "ping-pong", "--tcp", "-i", to, "-p", String(RR_PORT), "-t", String(RR_DURATION), "-m", String(MESSAGE), "--full-rtt"));
  const text = out.replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g"), ""); // sockperf's colours
  const percentile = (p) => {
    const match = new RegExp(`percentile ${p} =\\s+([0-9.]+)`).exec(text);
    if (!match) throw new Error(`sockperf ${from} → ${to}: no percentile ${p} in its output:\n${text.slice(-1500)}`);
    return Number(match[1]);
  };
  return { p50: percentile("50.000"), p99: percentile("99.000") };
}

// ---------------------------------------------------------------------------------------------------------------

/** The eBPF datapath's packet counters of a node (weft-agent status), by name. */
function ebpfCounters(node) {
  const { state, error } = agentState(node);
  if (!state) throw new Error(`${node.name}: weft-agent status: ${error}`);
  const counters = state.datapath?.ebpf?.counters;
  if (!counters) throw new Error(`${node.name}: no eBPF counters in weft-agent status (datapath ${state.datapath?.mode})`);
  return counters;
}

/**
 * What the eBPF nodes' counters say about the measurements: per cluster, the growth of the verdicts that prove the
 * programs carried the rows' traffic, and of every kernel-path verdict. `expect` lists, per node, the verdicts that
 * must have grown by at least `minimum`.
 */
function checkEbpfCounters(clusters, minimum) {
  const notes = [];
  const problems = [];
  for (const { key, nodes, before, expect } of clusters) {
    const grown = nodes.map((node, i) => {
      const after = ebpfCounters(node);
      return Object.fromEntries(Object.keys(after).map((name) => [name, (after[name] ?? 0) - (before[i][name] ?? 0)]));
    });
    const total = (name) => grown.reduce((sum, g) => sum + (g[name] ?? 0), 0);
    const kernelPath = [...new Set(grown.flatMap((g) => Object.keys(g)))].filter((name) => /_pass_/.test(name) && total(name) > 0);
    notes.push(`${key}: from_pod_local ${total("from_pod_local")}, from_pod_remote ${total("from_pod_remote")}, from_tunnel_local ${total("from_tunnel_local")}, kernel path ${kernelPath.reduce((sum, name) => sum + total(name), 0)}${kernelPath.length ? ` (${kernelPath.map((name) => `${name} ${total(name)}`).join(", ")})` : ""}`);
    expect.forEach((names, i) => {
      for (const name of names) if ((grown[i][name] ?? 0) < minimum) problems.push(`${nodes[i].name}: ${name} grew by ${grown[i][name] ?? 0} (< ${minimum})`);
    });
  }
  return { note: `eBPF datapath counters over the measurements (packets, both nodes) — ${notes.join("; ")}`, problems };
}

// ---------------------------------------------------------------------------------------------------------------

function requireTools() {
  if (process.getuid?.() !== 0) throw new Error("needs root (network namespaces, a bpf filesystem)");
  const packages = { ip: "iproute2", bridge: "iproute2", nsenter: "util-linux", taskset: "util-linux", mount: "mount", umount: "mount", nft: "nftables", iperf3: "iperf3", sockperf: "sockperf" };
  const missing = Object.entries(packages).filter(([tool]) => spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0);
  if (missing.length) throw new Error(`missing ${missing.map(([tool]) => tool).join(", ")}: apt-get install ${[...new Set(missing.map(([, p]) => p))].join(" ")}`);
  for (const file of [AGENT, WEFT, path.join(DIST, "agent", "bpf", "from_pod.o"), path.join(DIST, "agent", "bpf", "vtep.o")]) {
    if (!fs.existsSync(file)) throw new Error(`${file} is missing: run npm run build first`);
  }
}

/** A bpffs of the run's own on <temp dir>/bpf: each agent pins under <temp dir>/bpf/<node>. */
function mountBpffs() {
  fs.mkdirSync(bpfRoot);
  run("mount", ["-t", "bpf", "bpf", bpfRoot]);
}

let cleaning;
/** Ends processes (by PID), removes namespaces, unmounts what is mounted under the temp dir, removes it. Once. */
function cleanup() {
  cleaning ??= (async () => {
    for (const entry of [...processes]) {
      if (entry.exit === undefined) {
        try {
          process.kill(entry.pid, "SIGKILL");
        } catch {
          // already gone
        }
        await entry.exited;
      }
      processes.delete(entry);
    }
    netns.removeAll();
    // The bpffs, and any an agent mounted itself below it had ours failed; the pins go with it.
    const stillMounted = unmountUnder(tmp);
    if (stillMounted.length) process.stderr.write(`datapath: still mounted, ${tmp} kept: ${stillMounted.join(", ")}\n`);
    else if (process.env.WEFT_BENCH_KEEP === "1") process.stderr.write(`datapath: kept ${tmp}\n`);
    else fs.rmSync(tmp, { recursive: true, force: true });
  })();
  return cleaning;
}

// Ctrl-C: runBenchmark's handler cleans up and exits; the measurements stop at the next path rather than go on
// against processes and namespaces that are being removed.
let interrupted = false;
process.on("SIGINT", () => {
  interrupted = true;
});
async function checkpoint() {
  await new Promise((resolve) => setImmediate(resolve));
  if (interrupted) throw new Error("interrupted");
}

async function main() {
  requireTools();
  const started = Date.now();
  mountBpffs();
  underlay = netns.add("underlay");
  ipIn(underlay, "link", "add", "br0", "type", "bridge");
  ipIn(underlay, "link", "set", "br0", "up");

  const [vx1, vx2] = await weftCluster("vx", { backend: "vxlan", network: "10.244.0.0/16", ipMasq: false, firstHost: 11, datapath: "kernel" });
  const [vm1, vm2] = await weftCluster("vm", { backend: "vxlan", network: "10.245.0.0/16", ipMasq: true, firstHost: 21, datapath: "kernel" });
  const [hg1, hg2] = await weftCluster("hg", { backend: "host-gw", network: "10.246.0.0/16", ipMasq: false, firstHost: 31, datapath: "kernel" });
  const [eb1, eb2] = await weftCluster("eb", { backend: "vxlan", network: "10.248.0.0/16", ipMasq: false, firstHost: 51, datapath: "ebpf" });
  const [em1, em2] = await weftCluster("em", { backend: "vxlan", network: "10.249.0.0/16", ipMasq: true, firstHost: 61, datapath: "ebpf" });
  const fl1 = flannelNode("fl1", 41, "10.247.1.0/24");
  const fl2 = flannelNode("fl2", 42, "10.247.2.0/24");
  flannelPeer(fl1, fl2);
  flannelPeer(fl2, fl1);

  const vx1a = addWeftPod(vx1);
  const vx1b = addWeftPod(vx1);
  const vx2a = addWeftPod(vx2);
  const vm1a = addWeftPod(vm1);
  const vm2a = addWeftPod(vm2);
  const hg1a = addWeftPod(hg1);
  const hg2a = addWeftPod(hg2);
  const eb1a = addWeftPod(eb1);
  const eb1b = addWeftPod(eb1);
  const eb2a = addWeftPod(eb2);
  const em1a = addWeftPod(em1);
  const em2a = addWeftPod(em2);
  const fl1a = addFlannelPod(fl1);
  const fl1b = addFlannelPod(fl1);
  const fl2a = addFlannelPod(fl2);

  // Each row names the rows its paired ratios are taken against: `flannel` (flannel-identical), `kernel` (weft's
  // kernel datapath, for the eBPF rows; on the same node that is the bridge path), `masqOff` (the same datapath
  // with ip-masq off); every row but the underlay's is also taken against the underlay.
  const paths = [
    { key: "kernel-same", label: "pod ↔ pod, same node — weft, kernel datapath", from: vx1a.ns, to: vx1b, flannel: "flannel-same" },
    { key: "ebpf-same", label: "pod ↔ pod, same node — weft, eBPF datapath", from: eb1a.ns, to: eb1b, flannel: "flannel-same", kernel: "kernel-same" },
    { key: "flannel-same", label: "pod ↔ pod, same node — flannel-identical", from: fl1a.ns, to: fl1b },
    { key: "kernel-vxlan", label: "pod ↔ pod, across nodes, vxlan — weft, kernel datapath", from: vx1a.ns, to: vx2a, flannel: "flannel-vxlan" },
    { key: "ebpf-vxlan", label: "pod ↔ pod, across nodes, vxlan — weft, eBPF datapath", from: eb1a.ns, to: eb2a, flannel: "flannel-vxlan", kernel: "kernel-vxlan" },
    { key: "flannel-vxlan", label: "pod ↔ pod, across nodes, vxlan — flannel-identical", from: fl1a.ns, to: fl2a },
    { key: "kernel-masq", label: "pod ↔ pod, across nodes, vxlan — weft, kernel datapath, ip-masq on (nftables)", from: vm1a.ns, to: vm2a, flannel: "flannel-vxlan", masqOff: "kernel-vxlan" },
    { key: "ebpf-masq", label: "pod ↔ pod, across nodes, vxlan — weft, eBPF datapath, ip-masq on (nftables)", from: em1a.ns, to: em2a, flannel: "flannel-vxlan", kernel: "kernel-masq", masqOff: "ebpf-vxlan" },
    { key: "host-gw", label: "pod ↔ pod, across nodes, host-gw — weft, kernel datapath", from: hg1a.ns, to: hg2a },
    { key: "underlay", label: "node ↔ node, underlay", from: vx1.ns, to: { ns: vx2.ns, ip: vx2.ip } },
  ];
  for (const p of paths) {
    await ensureServers(p.to.ns, p.to.ip);
    p.gbits = [];
    p.retransmits = [];
    p.p50 = [];
    p.p99 = [];
  }
  // The eBPF rows must be the programs' work: same node, eb1's from_pod_local; across nodes, both ways, each
  // sender's from_pod_remote and each receiver's from_tunnel_local.
  const across = ["from_pod_remote", "from_tunnel_local"];
  const ebpfClusters = [
    { key: "eb", nodes: [eb1, eb2], expect: [["from_pod_local", ...across], across] },
    { key: "em", nodes: [em1, em2], expect: [across, across] },
  ];
  for (const cluster of ebpfClusters) cluster.before = cluster.nodes.map(ebpfCounters);

  const loadBefore = fs.readFileSync("/proc/loadavg", "utf8").split(" ")[0];
  const measuring = Date.now();
  for (let round = 1; round <= REPEAT; round++) {
    for (const p of paths) {
      await checkpoint();
      const tcp = throughput(p.from, p.to.ip);
      p.gbits.push(tcp.gbits);
      p.retransmits.push(tcp.retransmits);
      const rr = latency(p.from, p.to.ip);
      p.p50.push(rr.p50);
      p.p99.push(rr.p99);
      process.stderr.write(`round ${round}/${REPEAT} ${p.label}: ${tcp.gbits.toFixed(2)} Gbit/s, ${tcp.retransmits} retransmits, p50 ${rr.p50.toFixed(1)} µs, p99 ${rr.p99.toFixed(1)} µs\n`);
    }
  }
  const measured = Date.now();
  const check = checkEbpfCounters(ebpfClusters, 1000 * REPEAT);

  // Ratios are paired: a row's run against the reference's run of the same round (they run close together), and
  // the median of those, so that a machine that slows down between rounds does not skew them. Retransmits: over
  // the rounds where the reference retransmitted at all ("–" when it never did).
  const byKey = new Map(paths.map((p) => [p.key, p]));
  const pairedRatio = (a, b) => median(a.map((value, i) => value / b[i]));
  const times = (value) => (Number.isFinite(value) ? `${value.toFixed(2)}×` : "–");
  const retransmitRatio = (a, b) => {
    const rounds = a.map((value, i) => [value, b[i]]).filter(([value, reference]) => Number.isFinite(value) && reference > 0);
    return rounds.length ? median(rounds.map(([value, reference]) => value / reference)) : Number.NaN;
  };
  const against = (p, key, { retransmits = false } = {}) => {
    const reference = key ? byKey.get(key) : undefined;
    if (!reference) return "";
    const ratios = [pairedRatio(p.gbits, reference.gbits), pairedRatio(p.p50, reference.p50)];
    if (retransmits) ratios.push(retransmitRatio(p.retransmits, reference.retransmits));
    return ratios.map(times).join(", ");
  };
  const spread = (values, digits) => `${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)}`;
  const cell = (values, digits) => (values.every(Number.isFinite) ? `${median(values).toFixed(digits)} (${spread(values, digits)})` : "n/a");
  const lines = [
    `Datapath — iperf3 TCP 1 stream ${DURATION} s (retransmits: the sender's, per run), sockperf TCP ping-pong ${MESSAGE} B ${RR_DURATION} s (round trip), median of ${REPEAT} (range)${PIN ? ", client on CPU 0, server on CPU 1" : ", unpinned"}; ratios paired by round; ${os.cpus().length} cores, kernel ${os.release()}, load average ${loadBefore} before, ${fs.readFileSync("/proc/loadavg", "utf8").split(" ")[0]} after; ${new Date().toISOString().slice(0, 10)}`,
    "",
    "| path | throughput Gbit/s | latency p50 µs | latency p99 µs | TCP retransmits | / flannel-identical: throughput, p50, retransmits | eBPF / weft kernel: throughput, p50, retransmits | / underlay: throughput, p50 | ip-masq on / off: throughput, p50 |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ...paths.map((p) => `| ${p.label} | ${cell(p.gbits, 2)} | ${cell(p.p50, 1)} | ${cell(p.p99, 1)} | ${cell(p.retransmits, 0)} | ${against(p, p.flannel, { retransmits: true })} | ${against(p, p.kernel, { retransmits: true })} | ${p.key === "underlay" ? "" : against(p, "underlay")} | ${against(p, p.masqOff)} |`),
    "",
    check.note,
  ];
  console.log(lines.join("\n"));
  process.stderr.write(`datapath: set up in ${((measuring - started) / 1000).toFixed(0)} s, measured in ${((measured - measuring) / 1000).toFixed(0)} s\n`);
  if (check.problems.length) throw new Error(`the eBPF rows did not all take the eBPF datapath: ${check.problems.join("; ")}`);
}

await runBenchmark("datapath", main, cleanup);
