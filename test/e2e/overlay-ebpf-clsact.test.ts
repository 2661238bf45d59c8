// The eBPF datapath attached with clsact filters instead of tcx links (--tc-attach clsact: what auto picks on a
// kernel older than 6.6; forced here, this kernel has tcx), 2 nodes with the real agent and plugin:
//   - every program on its device as a cls_bpf filter in direct-action mode at weft's priority and handle, no tcx
//     link and no link pin anywhere; the plugin attaches new pods the same way (the subnet file says clsact);
//   - pods reach each other on the node and across nodes through the programs (the counters say so);
//   - a filter or a clsact qdisc deleted by hand comes back with the next resync; an agent killed with SIGKILL
//     leaves the filters forwarding, and its restart swaps in its new programs in place;
//   - DEL takes a pod's filters with it;
//   - switching to tcx and back across restarts leaves only the new kind; --datapath kernel and uninstall leave
//     no filter or clsact qdisc of weft's, and someone else's filter (and the qdisc it needs) stays.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentState } from "../../agent/debug/state";
import { hostVethName } from "../../cni/host-veth";
import { isWeftFilter, WEFT_FILTER } from "../../native/bpf/attach";
import { COUNTERS, PINS, sumPerCpu } from "../../native/bpf/maps";
import { closeFd, mapLookup, objGet, possibleCpus, progQueryTcx } from "../../native/bpf/syscall";
import { listFilters, listLinks, NetlinkSocket, replaceBpfFilter, type TcFilter } from "../../native/netlink";
import { withNetns } from "../../native/netns";
import { AGENT_LAUNCHER, SimCluster, type SimNode, type SimPod } from "../support/cluster";
import { eventually } from "../support/podman";
import { startEchoServer, unreachablePairs, type EchoServer } from "../support/traffic";

const ECHO_PORT = 7031;
const NET_CONF = { Network: "10.244.0.0/16", SubnetLen: 24, Backend: { Type: "vxlan" } };

type Attached = Record<string, { ingress: string[]; egress: string[] }>;

/** Every tc filter in the node's namespace, by device and hook. */
function allFilters(node: SimNode): { device: string; filter: TcFilter }[] {
  const sock = NetlinkSocket.openIn(node.ns.path);
  try {
    return listLinks(sock).flatMap((link) => (["ingress", "egress"] as const).flatMap((hook) => listFilters(sock, link.index, hook).map((filter) => ({ device: link.name, filter }))));
  } finally {
    sock.close();
  }
}

/** weft's clsact filters in the node's namespace: per device and hook, the pin of the program each runs (else its ID). */
function weftFilters(node: SimNode, programs: Record<string, number> = {}): Attached {
  const names = new Map(Object.entries(programs).map(([pin, id]) => [id, pin]));
  const found: Attached = {};
  for (const { device, filter } of allFilters(node)) {
    if (!isWeftFilter(filter)) continue;
    expect(filter.directAction, `${device} ${filter.hook}: direct-action`).toBe(true);
    (found[device] ??= { ingress: [], egress: [] })[filter.hook].push(names.get(filter.programId!) ?? String(filter.programId));
  }
  return found;
}

/** The devices of the node with a clsact qdisc, as tc lists them. */
function clsactDevices(node: SimNode): string[] {
  const qdiscs = JSON.parse(node.ns.exec(["tc", "-j", "qdisc", "show"]) || "[]") as { kind: string; dev: string }[];
  return qdiscs.filter((q) => q.kind === "clsact").map((q) => q.dev).sort();
}

/** Every tcx attachment in the node's namespace, by device. */
function tcx(node: SimNode): Record<string, number> {
  const devices = node.ipJson<{ ifindex: number; ifname: string }[]>(["link", "show"]);
  return withNetns(node.ns.path, () => {
    const found: Record<string, number> = {};
    for (const device of devices) {
      const count = progQueryTcx(device.ifindex, "ingress").progIds.length + progQueryTcx(device.ifindex, "egress").progIds.length;
      if (count > 0) found[device.ifname] = count;
    }
    return found;
  });
}

function linkPins(node: SimNode): string[] {
  const dir = path.join(node.bpfDir, PINS.links);
  return fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
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

function hostVethOf(pod: SimPod): string {
  return hostVethName(pod.containerId, "eth0");
}

function programmed(state: AgentState): number {
  return state.peers.filter((p) => p.status === "programmed").length;
}

/** What an ebpf-mode node attaches with clsact: the VTEP's two programs and each pod's two. */
function expectedFilters(node: SimNode): Attached {
  const attached: Attached = { "weft.1": { ingress: ["prog_from_tunnel"], egress: ["prog_to_tunnel"] } };
  for (const pod of node.pods) attached[hostVethOf(pod)] = { ingress: ["prog_from_pod"], egress: ["prog_to_pod"] };
  return attached;
}

describe("--datapath ebpf --tc-attach clsact, 2 nodes", () => {
  let cluster: SimCluster;
  let args: string[];
  const servers: EchoServer[] = [];
  const allPods = () => cluster.nodes.flatMap((node) => node.pods);

  const allReach = async (): Promise<void> => {
    await eventually(() => {
      const failures = unreachablePairs(allPods(), ECHO_PORT);
      expect(failures, failures.join("\n")).toEqual([]);
    }, 10_000, 300);
  };

  /** Waits until the node's agent counts every pod of the node on the fast path. */
  const settled = (node: SimNode): Promise<AgentState> => eventually(() => {
    const s = node.state();
    expect(s.datapath.ebpf).toMatchObject({ endpoints: { recorded: node.pods.length, attached: node.pods.length, onKernelPath: [] }, vtep: { ingress: true, egress: true } });
    expect(s.datapath.problems).toEqual([]);
    return s;
  }, 10_000, 200);

  const restart = async (node: SimNode, flags: string[], ready: (s: AgentState) => boolean = () => true): Promise<AgentState> => {
    const previous = node.state().startedAt;
    expect(await node.stopAgent("SIGTERM")).toBe(0);
    node.startAgent([...args, ...flags]);
    return node.waitReady((s) => s.startedAt !== previous && programmed(s) === 1 && ready(s), 60_000);
  };

  beforeAll(async () => {
    cluster = SimCluster.create({ label: "ec", nodes: 2, datapath: "ebpf" });
    args = ["--source", "file", "--node-file", cluster.writeNodeFile(), "--net-conf", cluster.writeNetConf(NET_CONF)];
    await cluster.startAgents(() => [...args, "--tc-attach", "clsact"], { podsPerNode: 2, timeoutMs: 60_000 });
    for (const pod of allPods()) servers.push(await startEchoServer(pod.ns.name, ECHO_PORT));
  }, 120_000);

  afterAll(async () => {
    for (const server of servers) server.stop();
    await cluster?.close();
  });

  it("attaches every program as weft's clsact filter, in direct-action mode, with no tcx link or link pin; status says so", async () => {
    for (const node of cluster.nodes) {
      const state = await settled(node);
      expect(state.datapath).toMatchObject({ mode: "ebpf", reason: "--datapath ebpf", tcAttach: { kind: "clsact", reason: "--tc-attach clsact" } });
      expect(state.datapath.ebpf!.tcAttach).toBe("clsact");
      expect(weftFilters(node, state.datapath.ebpf!.programs)).toEqual(expectedFilters(node));
      // Nothing else: exactly weft's, one per hook.
      expect(allFilters(node).every(({ filter }) => isWeftFilter(filter))).toBe(true);
      expect(clsactDevices(node)).toEqual(Object.keys(expectedFilters(node)).sort());
      expect(tcx(node)).toEqual({});
      expect(linkPins(node)).toEqual([]);
      expect(fs.readFileSync(node.subnetFile, "utf8")).toContain(`WEFT_DATAPATH=ebpf\nWEFT_BPF_DIR=${node.bpfDir}\nWEFT_ENDPOINTS_DIR=`);
      expect(fs.readFileSync(node.subnetFile, "utf8")).toContain("WEFT_TC_ATTACH=clsact\n");
      expect(node.statusText().stdout).toContain("datapath: ebpf (--datapath ebpf); programs attached with clsact (--tc-attach clsact)");
      // tc itself shows them as one would add them by hand.
      const shown = node.ns.exec(["tc", "filter", "show", "dev", "weft.1", "ingress"]);
      expect(shown).toContain(`pref ${WEFT_FILTER.priority} bpf chain 0 handle 0x${WEFT_FILTER.handle.toString(16)} weft_from_tunne direct-action`);
    }
  });

  it("carries TCP between every pair of pods, on the node and across nodes, through the programs", async () => {
    const before = cluster.nodes.map(pinnedCounters);
    await allReach();
    cluster.nodes.forEach((node, i) => {
      const after = pinnedCounters(node);
      expect(grew(before[i]!, after, "from_pod_local"), `${node.name} from_pod_local`).toBeGreaterThan(5);
      expect(grew(before[i]!, after, "from_pod_remote"), `${node.name} from_pod_remote`).toBeGreaterThan(10);
      expect(grew(before[i]!, after, "from_tunnel_local"), `${node.name} from_tunnel_local`).toBeGreaterThan(10);
      expect(grew(before[i]!, after, "to_pod_pass"), `${node.name} to_pod_pass`).toBeGreaterThan(0);
      // (to_tunnel_drop_miss is not among them: the VTEP's own IPv6 multicast, router solicitations and MLD, has no
      // peer to go to, whatever attaches the programs.)
      const errors = ["from_pod_pass_error", "from_tunnel_pass_error", "to_tunnel_drop_error"].map((name) => grew(before[i]!, after, name));
      expect(errors, `${node.name} errors`).toEqual([0, 0, 0]);
    });
  });

  it("restores a filter and a clsact qdisc deleted by hand with the next resync", async () => {
    const node = cluster.nodes[0]!;
    const [veth, other] = node.pods.map(hostVethOf) as [string, string];
    const where = ["pref", String(WEFT_FILTER.priority), "handle", `0x${WEFT_FILTER.handle.toString(16)}`, "bpf"];
    node.ns.exec(["tc", "filter", "del", "dev", veth, "ingress", "protocol", "all", ...where]);
    node.ns.exec(["tc", "filter", "del", "dev", "weft.1", "egress", "protocol", "all", ...where]);
    node.ns.exec(["tc", "qdisc", "del", "dev", other, "clsact"]);
    expect(weftFilters(node)[veth]).toEqual({ ingress: [], egress: [expect.any(String)] });
    expect(weftFilters(node)[other]).toBeUndefined();
    const programs = node.state().datapath.ebpf!.programs;
    await eventually(() => expect(weftFilters(node, programs)).toEqual(expectedFilters(node)), 10_000, 200);
    expect(node.agentLog()).toMatch(/Attached an eBPF program.*"device":"weft\.1","direction":"egress","program":"prog_to_tunnel","with":"clsact"/);
    await allReach();
  });

  it("keeps forwarding with the agent killed (SIGKILL); the restarted agent swaps its programs into the same filters", async () => {
    const node = cluster.nodes[0]!;
    const previous = node.state().startedAt;
    expect(await node.stopAgent("SIGKILL")).toBe(null);
    const dead = pinnedCounters(node);
    await allReach();
    const stillDead = pinnedCounters(node);
    for (const counter of ["from_pod_local", "from_pod_remote", "from_tunnel_local"]) expect(grew(dead, stillDead, counter), counter).toBeGreaterThan(0);
    expect(weftFilters(node)).toEqual(Object.fromEntries(Object.keys(expectedFilters(node)).map((device) => [device, { ingress: [expect.any(String)], egress: [expect.any(String)] }])));

    const log = node.startAgent([...args, "--tc-attach", "clsact"]).logFile;
    const state = await node.waitReady((s) => s.startedAt !== previous && programmed(s) === 1, 60_000);
    await settled(node);
    // The programs were loaded again (new IDs) and replaced those of the filters in place: nothing attached anew.
    expect(weftFilters(node, state.datapath.ebpf!.programs)).toEqual(expectedFilters(node));
    expect(fs.readFileSync(log, "utf8")).not.toContain("Attached an eBPF program");
    await allReach();
  });

  it("attaches a new pod's programs in ADD, and DEL takes them away", async () => {
    const node = cluster.nodes[1]!;
    const pod = node.addPod();
    // The plugin attached them itself: before the agent's next resync could have.
    expect(Object.keys(weftFilters(node))).toContain(hostVethOf(pod));
    servers.push(await startEchoServer(pod.ns.name, ECHO_PORT));
    await allReach();
    node.removePod(pod);
    expect(node.ipJson<{ ifname: string }[]>(["link", "show"]).map((l) => l.ifname)).not.toContain(hostVethOf(pod));
    expect(weftFilters(node, (await settled(node)).datapath.ebpf!.programs)).toEqual(expectedFilters(node));
    expect(fs.readdirSync(path.join(node.dir, "state", "endpoints"))).toHaveLength(node.pods.length);
  });

  it("switching to tcx and back across restarts leaves only the attachments of the new kind", async () => {
    const node = cluster.nodes[0]!;
    await restart(node, ["--tc-attach", "tcx"]);
    let state = await settled(node);
    expect(state.datapath.tcAttach).toEqual({ kind: "tcx", reason: "--tc-attach tcx" });
    expect(weftFilters(node)).toEqual({});
    expect(clsactDevices(node)).toEqual([]);
    expect(Object.keys(tcx(node)).sort()).toEqual(Object.keys(expectedFilters(node)).sort());
    expect(linkPins(node)).toHaveLength(2 * Object.keys(expectedFilters(node)).length);
    expect(fs.readFileSync(node.subnetFile, "utf8")).toContain("WEFT_TC_ATTACH=tcx\n");
    await allReach();

    await restart(node, ["--tc-attach", "clsact"]);
    state = await settled(node);
    expect(weftFilters(node, state.datapath.ebpf!.programs)).toEqual(expectedFilters(node));
    expect(tcx(node)).toEqual({});
    expect(linkPins(node)).toEqual([]);
    await allReach();
  });

  it("--datapath kernel removes weft's filters and the clsact qdiscs they leave empty; someone else's filter and its qdisc stay", async () => {
    const node = cluster.nodes[1]!;
    const veth = hostVethOf(node.pods[0]!);
    // Someone else's filter on a pod's veth, first in line on its egress: a program of its own name.
    const sock = NetlinkSocket.openIn(node.ns.path);
    try {
      const fd = objGet(path.join(node.bpfDir, PINS.toPod));
      try {
        replaceBpfFilter(sock, { index: listLinks(sock).find((l) => l.name === veth)!.index, hook: "egress", priority: 1, handle: 1, programFd: fd, name: "someone_else" });
      } finally {
        closeFd(fd);
      }
    } finally {
      sock.close();
    }
    await restart(node, ["--datapath", "kernel"], (s) => s.datapath.mode === "kernel");
    expect(weftFilters(node)).toEqual({});
    expect(allFilters(node).map(({ device, filter }) => `${device} ${filter.hook} ${filter.name}`)).toEqual([`${veth} egress someone_else`]);
    expect(clsactDevices(node)).toEqual([veth]);
    expect(fs.existsSync(node.bpfDir) ? fs.readdirSync(node.bpfDir) : []).toEqual([]);
    expect(node.agentLog()).toMatch(/Removed the eBPF datapath of an earlier run.*filter weft\.1 ingress/);
    await allReach();
  });

  it("uninstall removes weft's filters first, and leaves no clsact qdisc of weft's", async () => {
    const node = cluster.nodes[0]!;
    expect(await node.stopAgent("SIGTERM")).toBe(0);
    const result = spawnSync("nsenter", [`--net=${node.ns.path}`, AGENT_LAUNCHER, "uninstall", "--cni-conf-dir", path.join(node.dir, "net.d"), "--subnet-file", node.subnetFile,
      "--state-dir", path.join(node.dir, "state"), "--ipam-data-dir", path.join(node.dir, "ipam"), "--cni-bin-dir", path.join(node.dir, "bin"), "--bpf-dir", node.bpfDir], { encoding: "utf8", timeout: 30_000 });
    expect(result.status, result.stderr).toBe(0);
    for (const device of Object.keys(expectedFilters(node))) {
      expect(result.stdout).toContain(`removed filter ${device} ingress\n`);
      expect(result.stdout).toContain(`removed filter ${device} egress\n`);
    }
    expect(allFilters(node)).toEqual([]);
    expect(clsactDevices(node)).toEqual([]);
    expect(fs.existsSync(node.bpfDir) ? fs.readdirSync(node.bpfDir) : []).toEqual([]);
  });
});
