// The eBPF datapath end to end (--datapath ebpf): 3 dual-stack nodes with the real agent and plugin, each node
// pinning under its own directory of the cluster's bpffs. Pods reach each other over IPv4 and IPv6 with their own
// addresses through the programs (the counters prove it, and the bridge sees no pod traffic), traffic leaving the
// cluster still takes the kernel path and is masqueraded, and the state says what the datapath does.
import fs, { closeSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeAddr } from "../../native/bpf/maps";
import { mapDelete, mapLookup, mapUpdate, objGet } from "../../native/bpf/syscall";
import { EXTERNAL_IP, SimCluster, type SimNode } from "../support/cluster";
import { eventually } from "../support/podman";
import { startEchoServer, startWhoamiServer, tcpEcho, tcpWhoami, type EchoServer } from "../support/traffic";

const ECHO_PORT = 7011;
const WHOAMI_PORT = 7012;

function rxPackets(node: SimNode, device: string): number {
  return Number(node.ns.exec(["cat", `/sys/class/net/${device}/statistics/rx_packets`]).trim());
}

function counters(node: SimNode): Record<string, number> {
  return node.state().datapath.ebpf!.counters as Record<string, number>;
}

describe("3 nodes, vxlan, dual stack, --datapath ebpf", () => {
  let cluster: SimCluster;
  const servers: EchoServer[] = [];

  beforeAll(async () => {
    cluster = SimCluster.create({ label: "eb", nodes: 3, datapath: "ebpf" });
    const nodeFile = cluster.writeNodeFile(undefined, undefined, (node) => ({ podCidrs: [`10.244.${node.index}.0/24`, `fd00:10:244:${node.index}::/64`] }));
    const netConf = cluster.writeNetConf({ Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00:10:244::/56", IPv6SubnetLen: 64, Backend: { Type: "vxlan" } });
    for (const node of cluster.nodes) node.ns.exec(["sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"]);
    await cluster.startAgents(() => ["--source", "file", "--node-file", nodeFile, "--net-conf", netConf], { podsPerNode: 2, timeoutMs: 60_000 });
    for (const node of cluster.nodes) for (const pod of node.pods) servers.push(await startEchoServer(pod.ns.name, ECHO_PORT));
    servers.push(await startWhoamiServer(cluster.external.name, WHOAMI_PORT));
  }, 120_000);

  afterAll(async () => {
    for (const server of servers) server.stop();
    await cluster?.close();
  });

  it("runs the eBPF datapath: programs pinned, the VTEP collect-metadata, every pod on the fast path", async () => {
    for (const node of cluster.nodes) {
      // The pods were added after the agents were ready: their counts come with the agent's next run (resync 1 s).
      const state = await eventually(() => {
        const s = node.state();
        expect(s.datapath.ebpf?.endpoints.recorded).toBe(2);
        return s;
      }, 10_000, 300);
      expect(state.datapath).toMatchObject({ mode: "ebpf", reason: "--datapath ebpf", problems: [] });
      expect(state.datapath.ebpf).toMatchObject({ endpoints: { recorded: 2, attached: 2, entries: 4, onKernelPath: [] }, nodes: { entries: 4 }, vtep: { ingress: true, egress: true } });
      for (const pin of ["prog_from_pod", "prog_from_tunnel", "prog_to_tunnel", "weft_endpoints", "weft_nodes", "weft_config", "weft_counters", "links/weft_1-ingress", "links/weft_1-egress"]) {
        expect(fs.existsSync(path.join(node.bpfDir, pin)), `${node.name}: ${pin}`).toBe(true);
      }
      const vtep = node.ipJson<{ linkinfo: { info_data: { external?: boolean; id?: number } } }[]>(["-d", "link", "show", "weft.1"])[0]!;
      expect(vtep.linkinfo.info_data.external).toBe(true);
      // No FDB entries: the programs give each packet its destination.
      expect(node.kernelObjects().fdb).toEqual([]);
      expect(fs.readFileSync(node.subnetFile, "utf8")).toContain(`WEFT_DATAPATH=ebpf\nWEFT_BPF_DIR=${node.bpfDir}\n`);
    }
  });

  it("carries TCP between every pair of pods over IPv4 and IPv6 with their own addresses, past the bridge", async () => {
    const pods = cluster.nodes.flatMap((node) => node.pods.map((pod) => ({ node, pod })));
    const before = cluster.nodes.map((node) => ({ bridge: rxPackets(node, "cni0"), counters: counters(node) }));
    // IPv6 neighbours of fresh pods may need a moment (no DAD, but router solicitations).
    await eventually(() => expect(tcpEcho(pods[0]!.pod.ns.name, pods[5]!.pod.ip6!, ECHO_PORT).ok).toBe(true), 10_000, 300);
    const failures: string[] = [];
    for (const from of pods) {
      for (const to of pods) {
        if (from === to) continue;
        for (const [source, target] of [[from.pod.ip, to.pod.ip], [from.pod.ip6!, to.pod.ip6!]] as const) {
          const result = tcpEcho(from.pod.ns.name, target, ECHO_PORT);
          if (!result.ok) failures.push(`${from.node.name}/${source} → ${to.node.name}/${target}: ${result.error}`);
          else if (result.source !== source) failures.push(`${source} → ${target}: source seen as ${result.source}`);
        }
      }
    }
    expect(failures).toEqual([]);
    for (const [i, node] of cluster.nodes.entries()) {
      const after = counters(node);
      const grew = (name: string) => (after[name] ?? 0) - (before[i]!.counters[name] ?? 0);
      // 60 connections of at least 3 packets each way: every node redirected into its pods and tunnelled out.
      expect(grew("from_pod_local"), `${node.name} from_pod_local`).toBeGreaterThan(20);
      expect(grew("from_pod_remote"), `${node.name} from_pod_remote`).toBeGreaterThan(40);
      expect(grew("from_tunnel_local"), `${node.name} from_tunnel_local`).toBeGreaterThan(40);
      expect(grew("from_pod_pass_nat") + grew("from_pod_pass_mtu") + grew("from_pod_pass_error") + grew("to_tunnel_drop_miss"), `${node.name} kernel-path verdicts`).toBe(0);
      // What the bridge still sees is neighbour discovery, not the pods' TCP.
      expect(rxPackets(node, "cni0") - before[i]!.bridge, `${node.name} cni0 rx`).toBeLessThan(40);
    }
  });

  it("sends traffic leaving the cluster through the kernel path, masqueraded to the node's IP", () => {
    for (const node of cluster.nodes) {
      const before = counters(node).from_pod_pass_miss ?? 0;
      const result = tcpWhoami(node.pods[0]!.ns.name, EXTERNAL_IP, WHOAMI_PORT);
      expect(result, result.error).toMatchObject({ ok: true, seenAs: node.ip });
      expect((counters(node).from_pod_pass_miss ?? 0) - before).toBeGreaterThan(0);
    }
  });

  it("lets the host reach remote pods over the external VTEP (the kernel path keyed by to_tunnel), and probes answer", async () => {
    const [a, b] = cluster.nodes as [SimNode, SimNode];
    await eventually(() => {
      const peer = a.state().peers.find((p) => p.name === b.name)!;
      expect(peer.probes.some((probe) => probe.received > 0)).toBe(true);
    }, 15_000, 500);
    expect(counters(a).to_tunnel_keyed ?? 0).toBeGreaterThan(0);
    const result = tcpEcho(a.ns.name, b.pods[0]!.ip, ECHO_PORT);
    expect(result, result.error).toMatchObject({ ok: true });
  });

  it("puts a new pod on the kernel path when the endpoint map is full, says so, and moves it to the fast path once there is room", async () => {
    const node = cluster.nodes[1]!;
    const other = cluster.nodes[0]!.pods[0]!;
    const live = node.state().datapath.ebpf!;
    // Fill weft_endpoints with entries that point at a live pod's veth (the agent keeps those), as 8,000 pods would.
    const map = objGet(path.join(node.bpfDir, "weft_endpoints"));
    const junk: Buffer[] = [];
    try {
      const value = mapLookup(map, encodeAddr(node.pods[0]!.ip), 20)!;
      for (let i = 0; live.endpoints.entries + junk.length < 8192; i++) {
        const key = encodeAddr(`10.250.${i >> 8}.${i & 255}`);
        mapUpdate(map, key, value);
        junk.push(key);
      }
      const pod = node.addPod();
      servers.push(await startEchoServer(pod.ns.name, ECHO_PORT));
      expect(pod.addStderr).toContain("takes the kernel path: the endpoint map is full");
      // Reachable all the same, both ways, through the kernel path.
      expect(tcpEcho(other.ns.name, pod.ip, ECHO_PORT)).toMatchObject({ ok: true, source: other.ip });
      expect(tcpEcho(pod.ns.name, other.ip, ECHO_PORT)).toMatchObject({ ok: true, source: pod.ip });
      await eventually(() => expect(node.state().datapath.ebpf!.endpoints.onKernelPath).toEqual([`${pod.containerId}/eth0: endpoint map full`]), 10_000, 300);
      expect(node.debugGet("/metrics").body).toMatch(/^weft_datapath_endpoints\{path="kernel"\} 1$/m);
      expect(node.agentLog()).toContain("Pods on the kernel path");

      for (const key of junk.splice(0)) mapDelete(map, key);
      await eventually(() => expect(node.state().datapath.ebpf!.endpoints).toMatchObject({ attached: 3, onKernelPath: [] }), 10_000, 300);
      expect(tcpEcho(other.ns.name, pod.ip, ECHO_PORT)).toMatchObject({ ok: true, source: other.ip });
      node.removePod(pod);
    } finally {
      for (const key of junk) mapDelete(map, key);
      closeSync(map);
    }
  });

  it("takes a deleted pod off the fast path: its entries, link pins and record go with DEL", () => {
    const node = cluster.nodes[2]!;
    const pod = node.addPod();
    const recordsBefore = fs.readdirSync(path.join(node.dir, "state", "endpoints")).length;
    expect(recordsBefore).toBe(3);
    const links = fs.readdirSync(path.join(node.bpfDir, "links")).filter((name) => name.startsWith("veth"));
    // from_pod on the host veth's ingress, to_pod on its egress: two links per pod.
    expect(links).toHaveLength(6);
    node.removePod(pod);
    expect(fs.readdirSync(path.join(node.dir, "state", "endpoints"))).toHaveLength(2);
    expect(fs.readdirSync(path.join(node.bpfDir, "links")).filter((name) => name.startsWith("veth"))).toHaveLength(4);
  });
});
