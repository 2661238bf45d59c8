#!/usr/bin/env node
// Datapath: TCP throughput (iperf3) and TCP request/response latency (sockperf ping-pong) between pods, on the
// same node and across nodes, over weft's vxlan and host-gw backends — beside the underlay itself (node ↔ node)
// and a hand-built flannel-identical topology, on the same machine, in the same run.
//
//   node_modules/.bin/node scripts/bench/datapath.mjs [--repeat 3] [--duration 5] [--rr-duration 3]
//
//   underlay netns: br0 (a plain L2 bridge) ─┬─ vx1, vx2   weft-agent, vxlan, ip-masq off    pods by dist/weft
//                                            ├─ vm1, vm2   weft-agent, vxlan, ip-masq on (nftables)
//                                            ├─ hg1, hg2   weft-agent, host-gw, ip-masq off
//                                            └─ fl1, fl2   flannel by hand: cni0 + veth pods, flannel.1 (VNI 1,
//                                                          8472, nolearning, MTU 1450), per remote node a permanent
//                                                          neighbour, an FDB entry and an onlink route
//
// Every node is a network namespace with eth0 (a veth into the underlay's bridge), MTU 1500. weft's nodes run the
// real dist/weft-agent on the file source; their pods are made by the real dist/weft from the conflist the agent
// wrote. Everything is named wft-bench-<id>-*, processes are ended by PID and namespaces removed at the end.
// Each measurement is repeated (round-robin over the paths, so that drift hits all alike) and the median shown
// with the spread. Prints a markdown table for docs/benchmarks.md.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { BenchNamespaces, ipIn, median, run, runBenchmark } from "./lib.mjs";

const HELP = `Usage: node_modules/.bin/node scripts/bench/datapath.mjs [options]

iperf3 TCP throughput (1 stream) and sockperf TCP ping-pong latency, pod to pod over weft (vxlan, host-gw),
node to node over the underlay, and pod to pod over a hand-built flannel-identical topology, in throwaway network
namespaces (wft-bench-<id>-*). Needs root, iproute2, nsenter, nftables, iperf3, sockperf
(apt-get install iproute2 util-linux nftables iperf3 sockperf) and \`npm run build\` first.

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

/** Two weft nodes running the real agent on the file source; pods made by dist/weft from the agent's conflist. */
async function weftCluster(key, { backend, network, ipMasq, firstHost }) {
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
    node.agent = startProcess("nsenter", [
      `--net=/run/netns/${node.ns}`, AGENT,
      "--node-name", node.name, "--source", "file", "--node-file", nodeFile, "--net-conf", netConf,
      "--cni-conf-dir", path.join(node.dir, "net.d"), "--subnet-file", path.join(node.dir, "subnet.env"),
      "--state-dir", path.join(node.dir, "state"), "--ipam-data-dir", path.join(node.dir, "ipam"),
      "--debug-addr", "127.0.0.1:9476", `--ip-masq=${ipMasq}`,
    ], { env: { WEFT_CACHE_DIR: path.join(node.dir, "cache") }, logFile: path.join(node.dir, "agent.log") });
  }
  for (const node of nodes) await waitReady(node);
  for (const node of nodes) node.pods = [];
  return nodes;
}

/** Until `weft-agent status` says ready with the other node programmed (and masq in place when on). */
async function waitReady(node) {
  const deadline = Date.now() + 60_000;
  let last = "";
  while (Date.now() < deadline) {
    if (node.agent.exit !== undefined) throw new Error(`${node.name}: weft-agent exited (${node.agent.exit}):\n${fs.readFileSync(node.agent.logFile, "utf8").slice(-3000)}`);
    const file = path.join(node.dir, "status.json");
    const out = fs.openSync(file, "w");
    const result = spawnSync("nsenter", [`--net=/run/netns/${node.ns}`, AGENT, "status", "--json", "--debug-addr", "127.0.0.1:9476"], { stdio: ["ignore", out, "pipe"], encoding: "utf8" });
    fs.closeSync(out);
    if (result.status === 0 || result.status === 1) {
      try {
        const state = JSON.parse(fs.readFileSync(file, "utf8"));
        last = JSON.stringify(state.readiness);
        if (state.readiness.ready && state.peers.filter((p) => p.status === "programmed").length === 1) return;
      } catch (error) {
        last = String(error);
      }
    } else {
      last = result.stderr;
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

/** A pod as the reference bridge plugin makes it: veth, host end on cni0, MTU 1450, default route via .1. */
function addFlannelPod(node) {
  const index = node.pods.length;
  const ns = netns.add(`${node.label}-pod${index}`);
  const ip = node.podCidr.replace(".0/24", `.${index + 2}`);
  const hostEnd = `veth${node.label}${index}`;
  ipIn(node.ns, "link", "add", hostEnd, "mtu", "1450", "type", "veth", "peer", "name", "eth0", "netns", ns);
  ipIn(node.ns, "link", "set", hostEnd, "master", "cni0", "up");
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
  return report.end.sum_received.bits_per_second / 1e9;
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

function requireTools() {
  if (process.getuid?.() !== 0) throw new Error("needs root (network namespaces)");
  const packages = { ip: "iproute2", bridge: "iproute2", nsenter: "util-linux", taskset: "util-linux", nft: "nftables", iperf3: "iperf3", sockperf: "sockperf" };
  const missing = Object.entries(packages).filter(([tool]) => spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0);
  if (missing.length) throw new Error(`missing ${missing.map(([tool]) => tool).join(", ")}: apt-get install ${[...new Set(missing.map(([, p]) => p))].join(" ")}`);
  for (const file of [AGENT, WEFT]) if (!fs.existsSync(file)) throw new Error(`${file} is missing: run npm run build first`);
}

async function cleanup() {
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
  if (process.env.WEFT_BENCH_KEEP === "1") process.stderr.write(`datapath: kept ${tmp}\n`);
  else fs.rmSync(tmp, { recursive: true, force: true });
}

async function main() {
  requireTools();
  underlay = netns.add("underlay");
  ipIn(underlay, "link", "add", "br0", "type", "bridge");
  ipIn(underlay, "link", "set", "br0", "up");

  const [vx1, vx2] = await weftCluster("vx", { backend: "vxlan", network: "10.244.0.0/16", ipMasq: false, firstHost: 11 });
  const [vm1, vm2] = await weftCluster("vm", { backend: "vxlan", network: "10.245.0.0/16", ipMasq: true, firstHost: 21 });
  const [hg1, hg2] = await weftCluster("hg", { backend: "host-gw", network: "10.246.0.0/16", ipMasq: false, firstHost: 31 });
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
  const fl1a = addFlannelPod(fl1);
  const fl1b = addFlannelPod(fl1);
  const fl2a = addFlannelPod(fl2);

  const paths = [
    { label: "pod ↔ pod, same node — weft", from: vx1a.ns, to: vx1b, compare: "flannel-same" },
    { key: "flannel-same", label: "pod ↔ pod, same node — flannel-identical", from: fl1a.ns, to: fl1b },
    { label: "pod ↔ pod, across nodes, vxlan — weft", from: vx1a.ns, to: vx2a, compare: "flannel-vxlan" },
    { key: "flannel-vxlan", label: "pod ↔ pod, across nodes, vxlan — flannel-identical", from: fl1a.ns, to: fl2a },
    { label: "pod ↔ pod, across nodes, vxlan — weft with ip-masq on (nftables)", from: vm1a.ns, to: vm2a, compare: "flannel-vxlan" },
    { label: "pod ↔ pod, across nodes, host-gw — weft", from: hg1a.ns, to: hg2a },
    { label: "node ↔ node, underlay", from: vx1.ns, to: { ns: vx2.ns, ip: vx2.ip } },
  ];
  for (const p of paths) {
    await ensureServers(p.to.ns, p.to.ip);
    p.gbits = [];
    p.p50 = [];
    p.p99 = [];
  }
  const loadBefore = fs.readFileSync("/proc/loadavg", "utf8").split(" ")[0];
  for (let round = 1; round <= REPEAT; round++) {
    for (const p of paths) {
      p.gbits.push(throughput(p.from, p.to.ip));
      const rr = latency(p.from, p.to.ip);
      p.p50.push(rr.p50);
      p.p99.push(rr.p99);
      process.stderr.write(`round ${round}/${REPEAT} ${p.label}: ${p.gbits.at(-1).toFixed(2)} Gbit/s, p50 ${rr.p50.toFixed(1)} µs, p99 ${rr.p99.toFixed(1)} µs\n`);
    }
  }

  // Ratios are paired: weft's run against the flannel-identical run of the same round (they run back to back),
  // and the median of those, so that a machine that slows down between rounds does not skew them.
  const byKey = new Map(paths.filter((p) => p.key).map((p) => [p.key, p]));
  const pairedRatio = (a, b) => median(a.map((value, i) => value / b[i]));
  const spread = (values, digits) => `${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)}`;
  const lines = [
    `Datapath — iperf3 TCP 1 stream ${DURATION} s, sockperf TCP ping-pong ${MESSAGE} B ${RR_DURATION} s (round trip), median of ${REPEAT} (range)${PIN ? ", client on CPU 0, server on CPU 1" : ", unpinned"}; ${os.cpus().length} cores, kernel ${os.release()}, load average ${loadBefore} before, ${fs.readFileSync("/proc/loadavg", "utf8").split(" ")[0]} after; ${new Date().toISOString().slice(0, 10)}`,
    "",
    "| path | throughput Gbit/s | latency p50 µs | latency p99 µs | weft / flannel-identical (paired): throughput, p50 latency |",
    "|---|---:|---:|---:|---:|",
    ...paths.map((p) => {
      const reference = p.compare ? byKey.get(p.compare) : undefined;
      const ratio = reference ? `${pairedRatio(p.gbits, reference.gbits).toFixed(2)}×, ${pairedRatio(p.p50, reference.p50).toFixed(2)}×` : "";
      return `| ${p.label} | ${median(p.gbits).toFixed(2)} (${spread(p.gbits, 2)}) | ${median(p.p50).toFixed(1)} (${spread(p.p50, 1)}) | ${median(p.p99).toFixed(1)} (${spread(p.p99, 1)}) | ${ratio} |`;
    }),
  ];
  console.log(lines.join("\n"));
}

await runBenchmark("datapath", main, cleanup);
