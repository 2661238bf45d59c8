// The eBPF datapath in its life with the rest of the cluster (--datapath ebpf), with the real agent and plugin:
//   - an agent killed with SIGKILL and restarted under pod↔pod ping and TCP: the pins keep forwarding while it is
//     gone, and the restarted agent finds every map, link and kernel object as it left them (its programs it
//     loads again and swaps in place, same code, through the same links);
//   - a mode switch kernel → ebpf → kernel across restarts: each switch leaves exactly what a fresh start of the
//     mode gives (the VTEP's form, FDB, pins, tcx programs, endpoint records), and old and new pods keep talking;
//   - a mixed cluster (an ebpf node, a kernel-mode node, a node built by hand as flannel builds one): TCP both
//     ways with the pods' own addresses, and flannel's wire format checked on the underlay itself;
//   - MTU: a pod whose eth0 is 1500 on a 1450 overlay never gets a packet encapsulated past the VTEP's MTU: the
//     oversize ones take the kernel path, which fragments them (DF clear) or answers ICMP fragmentation needed
//     (DF), as in kernel mode, before encapsulation.
// Tunnel packets are observed where they travel: nftables counters on the underlay bridge (family bridge), which
// match the outer headers (fragments, VNI, the inner destination MAC).
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentState } from "../../agent/debug/state";
import { hostVethName } from "../../cni/host-veth";
import { COUNTERS, PINS, sumPerCpu } from "../../native/bpf/maps";
import { closeFd, mapLookup, objGet, objInfo, possibleCpus, progQueryTcx } from "../../native/bpf/syscall";
import { withNetns } from "../../native/netns";
import { configureAsFlannel, nodeFileEntry, SimCluster, writeNodeEntries, type SimNode, type SimPod } from "../support/cluster";
import { linkNames } from "../support/netns";
import { eventually } from "../support/podman";
import {
  startEchoServer, startPing, startTcpStream, unreachablePairs, type EchoServer, type PingSummary, type StreamReport,
} from "../support/traffic";

const ECHO_PORT = 7021;
const UDP_PORT = 7022;
const SINK_PORT = 7023;
const NET_CONF = { Network: "10.244.0.0/16", SubnetLen: 24, Backend: { Type: "vxlan" } };
/** What an eBPF run pins under a node's pin root, besides two links per pod (from_pod on ingress, to_pod on egress). */
const EBPF_PINS = [
  "links", "links/weft_1-egress", "links/weft_1-ingress", "prog_from_pod", "prog_from_tunnel", "prog_to_pod", "prog_to_tunnel",
  "weft_cluster", "weft_config", "weft_counters", "weft_endpoints", "weft_nodes",
  "weft_policy", "weft_policy_ct", "weft_policy_endpoints", "weft_policy_host", "weft_policy_stats",
];

/** A pod's two link pins. */
function podLinks(hostVeth: string): string[] {
  return [`links/${hostVeth}-egress`, `links/${hostVeth}-ingress`];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function programmed(state: AgentState): string[] {
  return state.peers.filter((p) => p.status === "programmed").map((p) => p.name);
}

/** Everything under the node's pin root, as relative paths; [] when there is nothing (or no directory). */
function pins(node: SimNode): string[] {
  if (!fs.existsSync(node.bpfDir)) return [];
  return (fs.readdirSync(node.bpfDir, { recursive: true }) as string[]).sort();
}

/**
 * Each pin's object: a map or link by its ID (a pin replaced by another object of that name shows), a program by
 * its tag (its instructions: the agent may load the same code again on restart and swap it in place); and the
 * pinned programs' IDs → their pin, to name what each device runs.
 */
function pinnedObjects(node: SimNode): { objects: Record<string, string>; programs: Map<number, string> } {
  const objects: Record<string, string> = {};
  const programs = new Map<number, string>();
  for (const pin of pins(node)) {
    const file = path.join(node.bpfDir, pin);
    if (fs.statSync(file).isDirectory()) continue;
    const fd = objGet(file);
    try {
      const info = objInfo(fd);
      objects[pin] = info.kind === "prog" ? `prog ${info.tag}` : `${info.kind} ${info.id}`;
      if (info.kind === "prog") programs.set(info.id, pin);
    } finally {
      closeFd(fd);
    }
  }
  return { objects, programs };
}

function endpointRecords(node: SimNode): string[] {
  const dir = path.join(node.dir, "state", "endpoints");
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((name) => name.endsWith(".json")).sort() : [];
}

type Tcx<T = number> = Record<string, { ingress: T[]; egress: T[] }>;

/** Every tcx attachment in the node's namespace, by device and direction: the program IDs, in the kernel's order. */
function tcx(node: SimNode): Tcx;
/** … as "<program's pin or ID>@<link ID>". */
function tcx(node: SimNode, names: Map<number, string>): Tcx<string>;
function tcx(node: SimNode, names?: Map<number, string>): Tcx<number | string> {
  const devices = node.ipJson<{ ifindex: number; ifname: string }[]>(["link", "show"]);
  return withNetns(node.ns.path, () => {
    const found: Tcx<number | string> = {};
    for (const device of devices) {
      const [ingress, egress] = (["ingress", "egress"] as const).map((direction) => {
        const attached = progQueryTcx(device.ifindex, direction);
        return names ? attached.progIds.map((id, i) => `${names.get(id) ?? id}@${attached.linkIds[i]}`) : attached.progIds;
      }) as [(number | string)[], (number | string)[]];
      if (ingress.length + egress.length > 0) found[device.ifname] = { ingress, egress };
    }
    return found;
  });
}

/** The pinned per-CPU counters, read from the pin itself: works while the agent is down. */
function pinnedCounters(node: SimNode): Record<string, number> {
  const fd = objGet(path.join(node.bpfDir, PINS.counters), { readOnly: true });
  try {
    const values: Record<string, number> = {};
    COUNTERS.forEach((name, index) => {
      const key = Buffer.alloc(4);
      key.writeUInt32LE(index);
      const value = mapLookup(fd, key, 8 * possibleCpus());
      values[name] = value ? Number(sumPerCpu(value)) : 0;
    });
    return values;
  } finally {
    closeFd(fd);
  }
}

function grew(before: Record<string, number>, after: Record<string, number>, name: string): number {
  return (after[name] ?? 0) - (before[name] ?? 0);
}

interface VtepView {
  ifindex: number;
  address: string;
  mtu: number;
  external: boolean;
  info: Record<string, unknown>;
  addresses: string[];
}

function vtepOf(node: SimNode): VtepView {
  const link = node.ipJson<{ ifindex: number; address: string; mtu: number; linkinfo: { info_data: Record<string, unknown> } }[]>(["-d", "link", "show", "weft.1"])[0]!;
  const addresses = node.ipJson<{ addr_info: { local: string; prefixlen: number }[] }[]>(["addr", "show", "weft.1"])[0]!.addr_info.map((a) => `${a.local}/${a.prefixlen}`);
  return { ifindex: link.ifindex, address: link.address, mtu: link.mtu, external: link.linkinfo.info_data.external === true, info: link.linkinfo.info_data, addresses: addresses.sort() };
}

/** TCP echo between every ordered pair of `pods`; the failures, empty when all reach each other with their own address. */
function unreachable(pods: SimPod[]): string[] {
  return unreachablePairs(pods, ECHO_PORT);
}

async function allReach(pods: SimPod[], timeoutMs = 10_000): Promise<void> {
  expect(await eventually(() => {
    const failures = unreachable(pods);
    expect(failures, failures.join("\n")).toEqual([]);
    return failures;
  }, timeoutMs, 300)).toEqual([]);
}

/** The host end of a pod made by the plugin. */
function hostVethOf(pod: SimPod): string {
  return hostVethName(pod.containerId, "eth0");
}

/** The IP counters of /proc/net/snmp ("Ip:" lines) in the node's namespace: FragCreates, ReasmReqds, … */
function ipStats(node: SimNode): Record<string, number> {
  const text = node.ns.exec(["cat", "/proc/net/snmp"]);
  const lines = text.split("\n").filter((line) => line.startsWith("Ip:"));
  const [names, values] = [lines[0]!.split(/\s+/).slice(1), lines[1]!.split(/\s+/).slice(1).map(Number)];
  return Object.fromEntries(names.map((name, i) => [name, values[i]!]));
}

/**
 * nftables counters on the underlay bridge: every IPv4 fragment crossing it (an encapsulated packet the sender
 * had to fragment: the overlay's MTU was not respected), and per ordered pair of nodes the VXLAN packets (UDP
 * 8472) and those of them in flannel's format (VNI 1, inner destination MAC the receiver's VTEP MAC).
 */
class UnderlayWatch {
  readonly #cluster: SimCluster;
  constructor(cluster: SimCluster, pairs: { from: SimNode; to: SimNode; vtepMac: string }[]) {
    this.#cluster = cluster;
    const rules = [
      "add table bridge weft_watch",
      "add chain bridge weft_watch forward { type filter hook forward priority 0; policy accept; }",
      'add rule bridge weft_watch forward ether type ip ip frag-off & 0x3fff != 0 counter comment "fragments"',
    ];
    for (const { from, to, vtepMac } of pairs) {
      const match = `ip saddr ${from.ip} ip daddr ${to.ip} udp dport 8472`;
      rules.push(`add rule bridge weft_watch forward ${match} counter comment "vxlan ${from.name} ${to.name}"`);
      rules.push(`add rule bridge weft_watch forward ${match} @th,96,24 1 @th,128,48 0x${vtepMac.replaceAll(":", "")} counter comment "flannel ${from.name} ${to.name}"`);
    }
    cluster.underlay.exec(["nft", "-f", "-"], { input: `${rules.join("\n")}\n` });
  }

  /** Packets per rule comment. */
  counts(): Record<string, number> {
    const doc = JSON.parse(this.#cluster.underlay.exec(["nft", "-j", "list", "table", "bridge", "weft_watch"])) as {
      nftables: { rule?: { comment?: string; expr: { counter?: { packets: number } }[] } }[];
    };
    const counts: Record<string, number> = {};
    for (const { rule } of doc.nftables) {
      if (!rule?.comment) continue;
      counts[rule.comment] = rule.expr.find((e) => e.counter)?.counter?.packets ?? 0;
    }
    return counts;
  }
}

describe("--datapath ebpf, 3 nodes: an agent killed (SIGKILL) and restarted under traffic", () => {
  let cluster: SimCluster;
  let args: string[];
  const servers: EchoServer[] = [];

  beforeAll(async () => {
    cluster = SimCluster.create({ label: "ek", nodes: 3, datapath: "ebpf" });
    args = ["--source", "file", "--node-file", cluster.writeNodeFile(), "--net-conf", cluster.writeNetConf(NET_CONF)];
    await cluster.startAgents(() => args, { podsPerNode: 2, timeoutMs: 60_000 });
    for (const node of cluster.nodes) for (const pod of node.pods) servers.push(await startEchoServer(pod.ns.name, ECHO_PORT));
  }, 120_000);

  afterAll(async () => {
    for (const server of servers) server.stop();
    await cluster?.close();
  });

  it("keeps ping and TCP within the node and across nodes going without loss; the restarted agent finds every map, link and kernel object in place", async () => {
    const [node1, node2, node3] = cluster.nodes as [SimNode, SimNode, SimNode];
    const [a, a2] = node1.pods as [SimPod, SimPod];
    const [b, c] = [node2.pods[0]!, node3.pods[0]!];
    const snapshot = () => {
      const pinned = pinnedObjects(node1);
      return { pins: pinned.objects, tcx: tcx(node1, pinned.programs), objects: node1.kernelObjects(), links: linkNames(node1.ns), records: endpointRecords(node1) };
    };
    // The pods were added after the start-up run: the next resync counts them.
    const state = await eventually(() => {
      const s = node1.state();
      expect(s.datapath.ebpf).toMatchObject({ endpoints: { recorded: 2, attached: 2, entries: 2, onKernelPath: [] }, vtep: { ingress: true, egress: true } });
      return s;
    }, 5_000, 200);
    const before = { ...snapshot(), state, counters: pinnedCounters(node1) };
    expect(pins(node1)).toEqual([...EBPF_PINS, ...[a, a2].flatMap((pod) => podLinks(hostVethOf(pod)))].sort());
    const runs = (attached: Tcx<string>) => JSON.parse(JSON.stringify(attached).replace(/@\d+/g, "")) as Tcx<string>;
    expect(runs(before.tcx)).toEqual({
      "weft.1": { ingress: ["prog_from_tunnel"], egress: ["prog_to_tunnel"] },
      [hostVethOf(a)]: { ingress: ["prog_from_pod"], egress: ["prog_to_pod"] },
      [hostVethOf(a2)]: { ingress: ["prog_from_pod"], egress: ["prog_to_pod"] },
    });

    // Out of node-1 to another node, within node-1, and into node-1 from another node.
    const pings = [startPing(a.ns.name, b.ip, { count: 100 }), startPing(a.ns.name, a2.ip, { count: 100 }), startPing(c.ns.name, a2.ip, { count: 100 })];
    const streams: Awaited<ReturnType<typeof startTcpStream>>[] = [];
    let traffic: [PingSummary[], StreamReport[]];
    try {
      for (const [from, to] of [[a, b], [a2, a], [c, a2]] as const) streams.push(await startTcpStream(from.ns.name, to.ip, ECHO_PORT));
      await sleep(500);
      const previous = before.state.startedAt;
      expect(await node1.stopAgent("SIGKILL")).toBe(null);
      // With no agent, the pinned programs forward: their counters move.
      const dead = pinnedCounters(node1);
      await sleep(1_000);
      const stillDead = pinnedCounters(node1);
      for (const counter of ["from_pod_local", "from_pod_remote", "from_tunnel_local"]) {
        expect(grew(dead, stillDead, counter), `${counter} with the agent down`).toBeGreaterThan(10);
      }
      node1.startAgent(args);
      const restarted = await node1.waitReady((s) => programmed(s).length === 2 && s.startedAt !== previous);
      expect(restarted.datapath).toMatchObject({ mode: "ebpf", problems: [] });
      expect(restarted.datapath.ebpf).toMatchObject({
        endpoints: { recorded: 2, attached: 2, entries: 2, onKernelPath: [] }, nodes: { entries: 2 }, vtep: { ingress: true, egress: true },
      });
      // Nothing planned, applied or attached: the kernel and the pins were as the agent wanted them. The same
      // maps and links (by ID); every device runs the pinned program of its kind, with the same instructions.
      expect(restarted.reconcile.lastRun?.planned).toEqual([]);
      expect(restarted.reconcile.opsApplied).toEqual({});
      expect(restarted.reconcile.runsWithErrors).toBe(0);
      expect(node1.agentLog()).not.toContain("Attached an eBPF program");
      expect(snapshot()).toEqual({ pins: before.pins, tcx: before.tcx, objects: before.objects, links: before.links, records: before.records });
      await sleep(500);
      // Through it all, nothing took the kernel path for want of configuration, and nothing failed. (Not
      // to_tunnel_drop_miss: the VTEP's own IPv6 multicast, MLD reports, ends there, with or without an agent.)
      const after = pinnedCounters(node1);
      for (const counter of ["from_pod_pass_not_ready", "from_pod_pass_error", "from_tunnel_pass_not_ready", "from_tunnel_pass_error", "to_tunnel_drop_error"]) {
        expect(grew(before.counters, after, counter), counter).toBe(0);
      }
    } finally {
      traffic = await Promise.all([Promise.all(pings.map((ping) => ping.stop())), Promise.all(streams.map((stream) => stream.stop()))]);
    }
    const [pinged, streamed] = traffic;
    for (const ping of pinged) {
      expect(ping.transmitted).toBeGreaterThanOrEqual(40);
      expect(ping.lossy, "ping rounds with loss").toEqual([]);
      expect(ping.received).toBe(ping.transmitted);
    }
    for (const stream of streamed) {
      expect(stream).toMatchObject({ connected: true, closed: false, error: "", outOfOrder: 0 });
      expect(stream.sent).toBeGreaterThan(100);
      expect(stream.received).toBe(stream.sent);
      expect(stream.maxGapMs).toBeLessThan(1_000);
    }
  }, 60_000);
});

describe("kernel → ebpf → kernel across agent restarts, 3 nodes", () => {
  let cluster: SimCluster;
  let args: string[];
  const servers: EchoServer[] = [];
  /** What a fresh start in kernel mode gave, per node. */
  let fresh: { objects: ReturnType<SimNode["kernelObjects"]>; vtep: VtepView }[];

  const switchTo = async (mode: "kernel" | "ebpf") => {
    await Promise.all(cluster.nodes.map((node) => node.stopAgent("SIGTERM")));
    for (const node of cluster.nodes) node.startAgent([...args, "--datapath", mode]);
    return Promise.all(cluster.nodes.map((node) => node.waitReady((s) => s.datapath.mode === mode && programmed(s).length === 2, 60_000)));
  };
  const addPods = async () => {
    const pods = cluster.nodes.map((node) => node.addPod());
    for (const pod of pods) servers.push(await startEchoServer(pod.ns.name, ECHO_PORT));
    return pods;
  };
  const allPods = () => cluster.nodes.flatMap((node) => node.pods);
  const withoutIndex = (vtep: VtepView) => ({ ...vtep, ifindex: undefined });

  /** Kernel mode: flannel's VTEP with its FDB, and nothing of the eBPF datapath anywhere. */
  const expectKernelMode = (states: AgentState[]) => {
    cluster.nodes.forEach((node, i) => {
      expect(states[i]!.datapath).toMatchObject({ mode: "kernel", problems: [] });
      expect(states[i]!.datapath.ebpf).toBeUndefined();
      const vtep = vtepOf(node);
      expect(vtep.external, `${node.name}: VTEP external`).toBe(false);
      expect(vtep.info).toMatchObject({ id: 1, port: 8472, local: node.ip });
      expect(node.kernelObjects().fdb, `${node.name}: FDB`).toHaveLength(2);
      expect(pins(node), `${node.name}: pins`).toEqual([]);
      expect(tcx(node), `${node.name}: tcx programs`).toEqual({});
      expect(endpointRecords(node), `${node.name}: endpoint records`).toEqual([]);
      expect(fs.readFileSync(node.subnetFile, "utf8")).not.toContain("WEFT_DATAPATH");
    });
  };

  beforeAll(async () => {
    cluster = SimCluster.create({ label: "es", nodes: 3, datapath: "ebpf" });
    const nodeFile = cluster.writeNodeFile();
    const netConf = cluster.writeNetConf(NET_CONF);
    args = ["--source", "file", "--node-file", nodeFile, "--net-conf", netConf];
    await cluster.startAgents(() => [...args, "--datapath", "kernel"], { podsPerNode: 1, timeoutMs: 60_000 });
    for (const pod of allPods()) servers.push(await startEchoServer(pod.ns.name, ECHO_PORT));
    fresh = cluster.nodes.map((node) => ({ objects: node.kernelObjects(), vtep: vtepOf(node) }));
  }, 120_000);

  afterAll(async () => {
    for (const server of servers) server.stop();
    await cluster?.close();
  });

  it("leaves after each switch exactly what a fresh start of the mode gives, and old and new pods reach each other", async () => {
    expectKernelMode(cluster.nodes.map((node) => node.state()));
    await allReach(allPods());
    const kernelPods = allPods();

    // → ebpf: the VTEP collect-metadata, no FDB, the programs pinned and attached; the kernel-mode pods have no
    // endpoint record and keep the kernel path (listed) but get the programs (NetworkPolicy), the new ones are on
    // the fast path.
    const ebpfStates = await switchTo("ebpf");
    const ebpfPods = await addPods();
    for (const [i, node] of cluster.nodes.entries()) {
      const state = await eventually(() => {
        const s = node.state();
        expect(s.datapath.ebpf).toMatchObject({ endpoints: { recorded: 1, attached: 1, entries: 1 }, nodes: { entries: 2 }, vtep: { ingress: true, egress: true } });
        return s;
      }, 5_000, 200);
      const programs = state.datapath.ebpf!.programs;
      const kernelPod = kernelPods[i]!;
      const ebpfPod = ebpfPods[i]!;
      expect(ebpfStates[i]!.datapath.ebpf!.endpoints.onKernelPath).toEqual([`${kernelPod.containerId}/eth0: no endpoint record (created before the eBPF datapath?)`]);
      expect(state.datapath).toMatchObject({ mode: "ebpf", problems: [] });
      expect(state.datapath.ebpf!.endpoints.onKernelPath).toEqual(ebpfStates[i]!.datapath.ebpf!.endpoints.onKernelPath);
      const vtep = vtepOf(node);
      expect(vtep.external, `${node.name}: VTEP external`).toBe(true);
      expect(vtep.info).toMatchObject({ port: 8472, learning: false });
      expect({ address: vtep.address, mtu: vtep.mtu, addresses: vtep.addresses }).toEqual({ address: fresh[i]!.vtep.address, mtu: fresh[i]!.vtep.mtu, addresses: fresh[i]!.vtep.addresses });
      expect(node.kernelObjects()).toEqual({ ...fresh[i]!.objects, fdb: [] });
      expect(pins(node)).toEqual([...EBPF_PINS, ...podLinks(hostVethOf(ebpfPod)), ...podLinks(hostVethOf(kernelPod))].sort());
      expect(tcx(node)).toEqual({
        "weft.1": { ingress: [programs.prog_from_tunnel], egress: [programs.prog_to_tunnel] },
        [hostVethOf(ebpfPod)]: { ingress: [programs.prog_from_pod], egress: [programs.prog_to_pod] },
        [hostVethOf(kernelPod)]: { ingress: [programs.prog_from_pod], egress: [programs.prog_to_pod] },
      });
      expect(endpointRecords(node)).toEqual([`${hostVethOf(ebpfPod)}.json`]);
      expect(fs.readFileSync(node.subnetFile, "utf8")).toContain("WEFT_DATAPATH=ebpf\n");
    }
    const counters = cluster.nodes.map((node) => pinnedCounters(node));
    await allReach(allPods());
    cluster.nodes.forEach((node, i) => {
      const after = pinnedCounters(node);
      expect(grew(counters[i]!, after, "from_pod_remote"), `${node.name} from_pod_remote`).toBeGreaterThan(0);
      expect(grew(counters[i]!, after, "from_tunnel_local"), `${node.name} from_tunnel_local`).toBeGreaterThan(0);
      expect(grew(counters[i]!, after, "to_tunnel_keyed"), `${node.name} to_tunnel_keyed (the kernel-path pods)`).toBeGreaterThan(0);
    });

    // → kernel: as fresh as the first start (same VTEP but for its index, same objects), nothing pinned or attached.
    const kernelStates = await switchTo("kernel");
    expectKernelMode(kernelStates);
    cluster.nodes.forEach((node, i) => {
      expect(withoutIndex(vtepOf(node))).toEqual(withoutIndex(fresh[i]!.vtep));
      expect(node.kernelObjects()).toEqual(fresh[i]!.objects);
    });
    await addPods();
    await allReach(allPods());
    // A pod made in ebpf mode is deleted in kernel mode: nothing is left of it.
    const node = cluster.nodes[0]!;
    node.removePod(ebpfPods[0]!);
    expect(node.ipJson<{ ifname: string }[]>(["link", "show"]).map((link) => link.ifname)).not.toContain(hostVethOf(ebpfPods[0]!));
    expectKernelMode(cluster.nodes.map((n) => n.state()));
  }, 90_000);
});

/** Runs a Node script inside a pod's namespace to completion; its stdout. */
function runInPod(pod: SimPod, script: string, args: string[], timeoutMs = 20_000): string {
  return pod.ns.exec(["timeout", String(Math.ceil(timeoutMs / 1000)), process.execPath, "-e", script, ...args]);
}

const UDP_RECEIVER = `
const socket = require("node:dgram").createSocket("udp4");
socket.on("message", (message) => process.stdout.write(message.length + "\\n"));
socket.bind(Number(process.argv[1]), () => process.stdout.write("listening\\n"));
`;

const UDP_SENDER = `
const socket = require("node:dgram").createSocket("udp4");
const [host, port, size, count] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3]), Number(process.argv[4])];
let sent = 0;
const next = () => {
  if (sent === count) return socket.close();
  socket.send(Buffer.alloc(size, 0x61), port, host, (error) => { if (error) { console.error(String(error)); process.exit(1); } sent++; setTimeout(next, 50); });
};
next();
`;

/** A TCP sink: answers each connection, once the client has finished sending, with the number of bytes received. */
const SINK_SERVER = `
const server = require("node:net").createServer((socket) => {
  let received = 0;
  socket.on("data", (data) => (received += data.length));
  socket.on("end", () => socket.end(String(received)));
  socket.on("error", () => undefined);
});
server.listen(Number(process.argv[1]), "::", () => process.stdout.write("listening\\n"));
`;

/** Sends `bytes` to a sink and prints what it says it received, and how long it took. */
const TCP_BULK = `
const net = require("node:net");
const [host, port, bytes] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
const started = performance.now();
const socket = net.connect({ host, port });
let answer = "";
socket.on("connect", () => socket.end(Buffer.alloc(bytes, 0x62)));
socket.on("data", (data) => (answer += data));
socket.on("end", () => { process.stdout.write(JSON.stringify({ received: Number(answer), ms: Math.round(performance.now() - started) })); process.exit(0); });
socket.on("error", (error) => { process.stderr.write(String(error)); process.exit(1); });
setTimeout(() => { process.stderr.write("timeout"); process.exit(2); }, 15000);
`;

/** Waits for a child's stdout to show `line`; ends the child (by its PID) when it does not within 10 s. */
async function waitForLine(child: ChildProcess, line: string, what: string): Promise<void> {
  let out = "";
  child.stdout!.on("data", (data: Buffer) => (out += data.toString()));
  const deadline = Date.now() + 10_000;
  while (!out.split("\n").includes(line)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      if (child.exitCode === null) child.kill("SIGKILL");
      throw new Error(`${what} did not start: ${out}`);
    }
    await sleep(20);
  }
}

async function startSinkServer(pod: SimPod, port: number): Promise<EchoServer> {
  const child = spawn("ip", ["netns", "exec", pod.ns.name, process.execPath, "-e", SINK_SERVER, String(port)], { stdio: ["ignore", "pipe", "pipe"] });
  await waitForLine(child, "listening", `sink server in ${pod.ns.name}`);
  return { stop: () => void (child.exitCode === null && child.kill("SIGTERM")) };
}

interface UdpReceiver {
  sizes(): number[];
  stop(): void;
}

async function startUdpReceiver(pod: SimPod, port: number): Promise<UdpReceiver> {
  const child: ChildProcess = spawn("ip", ["netns", "exec", pod.ns.name, process.execPath, "-e", UDP_RECEIVER, String(port)], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (data: Buffer) => (out += data.toString()));
  await waitForLine(child, "listening", `UDP receiver in ${pod.ns.name}`);
  return {
    sizes: () => out.split("\n").filter((line) => /^\d+$/.test(line)).map(Number),
    stop: () => {
      if (child.exitCode === null) child.kill("SIGTERM");
    },
  };
}

/** What a pod at MTU 1500 sent, as the sending node, the underlay and the datapath's counters saw it. */
interface MtuResult {
  udp: { sizes: number[]; fragCreates: number; wireFragments: number; passMtu: number };
  tcp: { received: number; fragCreates: number; wireFragments: number; passMtu: number; remote: number; pathMtu: string | undefined };
}

const BULK_BYTES = 4 * 1024 * 1024;

/** A pod whose eth0 and host veth have MTU 1500 on the 1450 overlay: what a hand-made pod or a wrong config gives. */
function widenMtu(node: SimNode, pod: SimPod): void {
  pod.ns.exec(["ip", "link", "set", "eth0", "mtu", "1500"]);
  node.ns.exec(["ip", "link", "set", hostVethOf(pod), "mtu", "1500"]);
}

describe("a mixed cluster: an ebpf node, a kernel-mode node and a node built by hand as flannel builds one", () => {
  let cluster: SimCluster;
  let ebpfNode: SimNode;
  let kernelNode: SimNode;
  let flannelNode: SimNode;
  let watch: UnderlayWatch;
  const servers: EchoServer[] = [];
  const macs = new Map<SimNode, string>();

  beforeAll(async () => {
    cluster = SimCluster.create({ label: "ex", nodes: 3, datapath: "ebpf" });
    [ebpfNode, kernelNode, flannelNode] = cluster.nodes as [SimNode, SimNode, SimNode];
    const flannel = configureAsFlannel(flannelNode, "10.244.3.0/24");
    macs.set(flannelNode, flannel.vtepMac);
    const nodeFile = path.join(cluster.dir, "nodes.json");
    writeNodeEntries(nodeFile, [nodeFileEntry(ebpfNode), nodeFileEntry(kernelNode), nodeFileEntry(flannelNode, { vtepMac: flannel.vtepMac })]);
    const netConf = cluster.writeNetConf(NET_CONF);
    const args = ["--source", "file", "--node-file", nodeFile, "--net-conf", netConf];
    ebpfNode.startAgent(args);
    kernelNode.startAgent([...args, "--datapath", "kernel"]);
    const states = await Promise.all([ebpfNode, kernelNode].map((node) => node.waitReady((s) => programmed(s).length === 2, 60_000)));
    expect(states.map((s) => s.datapath.mode)).toEqual(["ebpf", "kernel"]);
    for (const [i, node] of [ebpfNode, kernelNode].entries()) {
      macs.set(node, states[i]!.node.vtep!.mac);
      // What flannel on node-3 does with the weft nodes' annotations (backend-data VtepMAC, public-ip).
      flannel.addPeer({ podCidr: `10.244.${node.index}.0/24`, publicIp: node.ip, vtepMac: states[i]!.node.vtep!.mac });
    }
    ebpfNode.addPod();
    kernelNode.addPod();
    flannel.addPod();
    for (const node of cluster.nodes) servers.push(await startEchoServer(node.pods[0]!.ns.name, ECHO_PORT));
    const pairs = cluster.nodes.flatMap((from) => cluster.nodes.filter((to) => to !== from).map((to) => ({ from, to, vtepMac: macs.get(to)! })));
    watch = new UnderlayWatch(cluster, pairs);
  }, 120_000);

  afterAll(async () => {
    for (const server of servers) server.stop();
    await cluster?.close();
  });

  it("carries TCP both ways between every pair of the three, with the pods' own addresses, in flannel's wire format", async () => {
    const before = { counters: pinnedCounters(ebpfNode), wire: watch.counts() };
    await allReach(cluster.nodes.map((node) => node.pods[0]!));
    const after = { counters: pinnedCounters(ebpfNode), wire: watch.counts() };
    // The ebpf node sent and received on the fast path, to and from both others.
    expect(grew(before.counters, after.counters, "from_pod_remote")).toBeGreaterThan(10);
    expect(grew(before.counters, after.counters, "from_tunnel_local")).toBeGreaterThan(10);
    // Every node sent VXLAN to every other, all of it with VNI 1 and the receiver's VTEP MAC as inner destination.
    for (const from of cluster.nodes) {
      for (const to of cluster.nodes) {
        if (from === to) continue;
        const vxlan = grew(before.wire, after.wire, `vxlan ${from.name} ${to.name}`);
        expect(vxlan, `${from.name} → ${to.name} VXLAN packets`).toBeGreaterThanOrEqual(4);
        expect(grew(before.wire, after.wire, `flannel ${from.name} ${to.name}`), `${from.name} → ${to.name} in flannel's format`).toBe(vxlan);
      }
    }
    expect(after.wire.fragments).toBe(0);
  });

  it("never encapsulates a packet larger than the VTEP's MTU for a pod whose eth0 is 1500: the kernel path gets it", async () => {
    // A wide pod (eth0 and host veth at 1500) on the ebpf node and one on the kernel-mode node, for reference.
    const wide = new Map<SimNode, SimPod>();
    for (const node of [ebpfNode, kernelNode]) {
      const pod = node.addPod();
      widenMtu(node, pod);
      servers.push(await startSinkServer(pod, SINK_PORT));
      wide.set(node, pod);
    }
    const receivers = new Map<SimNode, UdpReceiver>();
    try {
      for (const node of [ebpfNode, kernelNode]) receivers.set(node, await startUdpReceiver(node.pods[0]!, UDP_PORT));
      const seen = (node: SimNode) => ({ ip: ipStats(node), wire: watch.counts(), counters: node === ebpfNode ? pinnedCounters(node) : {} });
      const results = new Map<SimNode, MtuResult>();
      // The kernel-mode node first: the reference for what the kernel path does with the same packets.
      for (const [from, to] of [[kernelNode, ebpfNode], [ebpfNode, kernelNode]] as const) {
        const pod = wide.get(from)!;
        const before = seen(from);
        // UDP, 1472 bytes of payload (a 1500-byte packet), DF clear (no path MTU discovery in the pod), to a pod at 1450.
        const received = receivers.get(to)!.sizes().length;
        pod.ns.exec(["sysctl", "-qw", "net.ipv4.ip_no_pmtu_disc=1"]);
        try {
          runInPod(pod, UDP_SENDER, [to.pods[0]!.ip, String(UDP_PORT), "1472", "5"]);
        } finally {
          pod.ns.exec(["sysctl", "-qw", "net.ipv4.ip_no_pmtu_disc=0"]);
        }
        await eventually(() => expect(receivers.get(to)!.sizes().length - received).toBe(5), 5_000, 100);
        const afterUdp = seen(from);
        // TCP with path MTU discovery (DF) between the two wide pods, both announcing an MSS of 1460 (no path MTU
        // remembered from an earlier run).
        for (const end of wide.values()) end.ns.exec(["ip", "route", "flush", "cache"]);
        const bulk = JSON.parse(runInPod(pod, TCP_BULK, [wide.get(to)!.ip, String(SINK_PORT), String(BULK_BYTES)])) as { received: number; ms: number };
        const afterTcp = seen(from);
        results.set(from, {
          udp: {
            sizes: receivers.get(to)!.sizes().slice(received), fragCreates: afterUdp.ip.FragCreates! - before.ip.FragCreates!,
            wireFragments: afterUdp.wire.fragments! - before.wire.fragments!, passMtu: grew(before.counters, afterUdp.counters, "from_pod_pass_mtu"),
          },
          tcp: {
            received: bulk.received, fragCreates: afterTcp.ip.FragCreates! - afterUdp.ip.FragCreates!, wireFragments: afterTcp.wire.fragments! - afterUdp.wire.fragments!,
            passMtu: grew(afterUdp.counters, afterTcp.counters, "from_pod_pass_mtu"), remote: grew(afterUdp.counters, afterTcp.counters, "from_pod_remote"),
            pathMtu: /\bmtu (\d+)/.exec(pod.ns.exec(["ip", "route", "get", wide.get(to)!.ip]))?.[1],
          },
        });
      }
      const [ebpf, kernel] = [results.get(ebpfNode)!, results.get(kernelNode)!];
      // Kernel mode: the forwarding path fragments the DF-clear datagrams before they reach the VTEP (2 fragments
      // each, counted by the node's own IP stack), and answers full-size TCP segments with ICMP fragmentation
      // needed: the pod learns a path MTU of 1450. Nothing crosses the underlay fragmented.
      expect(kernel.udp).toMatchObject({ sizes: [1472, 1472, 1472, 1472, 1472], fragCreates: 10, wireFragments: 0 });
      expect(kernel.tcp).toMatchObject({ received: BULK_BYTES, fragCreates: 0, wireFragments: 0, pathMtu: "1450" });
      // eBPF: every oversize packet handed to that same kernel path (counted), with the same outcome; the rest of
      // the stream, at the learnt MSS, on the fast path.
      expect(ebpf.udp).toEqual({ ...kernel.udp, passMtu: 5 });
      expect(ebpf.tcp).toMatchObject({ received: BULK_BYTES, fragCreates: 0, wireFragments: 0, pathMtu: "1450" });
      expect(ebpf.tcp.passMtu).toBeGreaterThan(0);
      expect(ebpf.tcp.remote).toBeGreaterThan(ebpf.tcp.passMtu);
    } finally {
      for (const receiver of receivers.values()) receiver.stop();
    }
  });
});
