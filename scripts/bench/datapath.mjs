#!/usr/bin/env node
// Datapath: TCP throughput (iperf3, with the sender's TCP retransmits) and TCP request/response latency (sockperf
// ping-pong) between pods, on the same node and across nodes, over weft's kernel datapath (vxlan, host-gw) and its
// eBPF datapath (vxlan) — beside the underlay itself (node ↔ node) and a hand-built flannel-identical topology, on
// the same machine, in the same run.
//
//   node_modules/.bin/node scripts/bench/datapath.mjs [--repeat 3] [--duration 5] [--rr-duration 3] [--rps] [--no-pin]
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
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ipIn, median, run, runBenchmark } from "./lib.mjs";
import { BenchTopology } from "./topology.mjs";

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
  --rps              steer each node's received packets to its application's CPU (RPS on eth0: client-side nodes
                     to CPU 0, server-side nodes to CPU 1), as a NIC's RSS/aRFS would; needs the pinning
  --help             this text
`;

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const argv = process.argv.slice(2);
const distIndex = argv.indexOf("--dist");
const DIST = path.resolve(distIndex >= 0 && argv[distIndex + 1] ? argv[distIndex + 1] : path.join(root, "dist"));
if (argv.includes("--help") || argv.includes("-h")) {
  process.stdout.write(HELP);
  process.exit(0);
}
function fail(message) {
  process.stderr.write(`datapath: ${message}\n`);
  process.exit(2);
}
const OPTIONS = ["--repeat", "--duration", "--rr-duration", "--message", "--no-pin", "--rps", "--dist"];
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

const t = new BenchTopology({ name: "datapath", dist: DIST, pin: !argv.includes("--no-pin") });
const PIN = t.pin;
const RPS = argv.includes("--rps");
if (RPS && !PIN) fail("--rps steers to the pinned CPUs: it needs the pinning (2+ cores, no --no-pin)");
const { netns } = t;
const addNode = (label, host) => t.addNode(label, host);
const weftCluster = (key, options) => t.weftCluster(key, options);
const addWeftPod = (node) => t.addWeftPod(node);

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
// ---------------------------------------------------------------------------------------------------------------

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
      const after = t.ebpfCounters(node);
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
  t.requireTools();
  const started = Date.now();
  t.setUp();

  const [vx1, vx2] = await weftCluster("vx", { backend: "vxlan", network: "10.244.0.0/16", ipMasq: false, firstHost: 11, datapath: "kernel" });
  const [vm1, vm2] = await weftCluster("vm", { backend: "vxlan", network: "10.245.0.0/16", ipMasq: true, firstHost: 21, datapath: "kernel" });
  const [hg1, hg2] = await weftCluster("hg", { backend: "host-gw", network: "10.246.0.0/16", ipMasq: false, firstHost: 31, datapath: "kernel" });
  const [eb1, eb2] = await weftCluster("eb", { backend: "vxlan", network: "10.248.0.0/16", ipMasq: false, firstHost: 51, datapath: "ebpf" });
  const [em1, em2] = await weftCluster("em", { backend: "vxlan", network: "10.249.0.0/16", ipMasq: true, firstHost: 61, datapath: "ebpf" });
  const fl1 = flannelNode("fl1", 41, "10.247.1.0/24");
  const fl2 = flannelNode("fl2", 42, "10.247.2.0/24");
  flannelPeer(fl1, fl2);
  flannelPeer(fl2, fl1);
  if (RPS) {
    for (const node of [vx1, vm1, hg1, eb1, em1, fl1]) t.steerReceive(node.ns, 0);
    for (const node of [vx2, vm2, hg2, eb2, em2, fl2]) t.steerReceive(node.ns, 1);
  }

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
    await t.ensureServers(p.to.ns, p.to.ip);
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
  for (const cluster of ebpfClusters) cluster.before = cluster.nodes.map((node) => t.ebpfCounters(node));

  const loadBefore = fs.readFileSync("/proc/loadavg", "utf8").split(" ")[0];
  const measuring = Date.now();
  for (let round = 1; round <= REPEAT; round++) {
    for (const p of paths) {
      await checkpoint();
      const tcp = t.throughput(p.from, p.to.ip, DURATION);
      p.gbits.push(tcp.gbits);
      p.retransmits.push(tcp.retransmits);
      const rr = t.latency(p.from, p.to.ip, { duration: RR_DURATION, message: MESSAGE });
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
    `Datapath — iperf3 TCP 1 stream ${DURATION} s (retransmits: the sender's, per run), sockperf TCP ping-pong ${MESSAGE} B ${RR_DURATION} s (round trip), median of ${REPEAT} (range)${PIN ? ", client on CPU 0, server on CPU 1" : ", unpinned"}${RPS ? ", each node's receive steered to its application's CPU (RPS)" : ""}; ratios paired by round; ${os.cpus().length} cores, kernel ${os.release()}, load average ${loadBefore} before, ${fs.readFileSync("/proc/loadavg", "utf8").split(" ")[0]} after; ${new Date().toISOString().slice(0, 10)}`,
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

await runBenchmark("datapath", main, () => t.cleanup());
