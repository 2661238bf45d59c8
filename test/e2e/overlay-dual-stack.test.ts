// Dual stack end to end: an IPv6 network beside the IPv4 one. Each pod gets an address of each family from its
// node's two subnets, and pods on different nodes reach each other over both, through the one VTEP (IPv6 inside
// the IPv4 tunnel), with their own source addresses; the overlay probes answer for both families.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SimCluster } from "../support/cluster";
import { eventually } from "../support/podman";
import { startEchoServer, tcpEcho, type EchoServer } from "../support/traffic";

const ECHO_PORT = 7009;

describe("2 nodes, vxlan, dual stack (file source)", () => {
  let cluster: SimCluster;
  const servers: EchoServer[] = [];

  beforeAll(async () => {
    cluster = SimCluster.create({ label: "ds", nodes: 2 });
    const nodeFile = cluster.writeNodeFile(undefined, undefined, (node) => ({ podCidrs: [`10.244.${node.index}.0/24`, `fd00:10:244:${node.index}::/64`] }));
    const netConf = cluster.writeNetConf({ Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00:10:244::/56", IPv6SubnetLen: 64, Backend: { Type: "vxlan" } });
    for (const node of cluster.nodes) node.startAgent(["--source", "file", "--node-file", nodeFile, "--net-conf", netConf]);
    await Promise.all(cluster.nodes.map((node) => node.waitReady((s) => s.peers.some((p) => p.status === "programmed"))));
    for (const node of cluster.nodes) {
      node.ns.exec(["sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"]);
      const pod = node.addPod();
      servers.push(await startEchoServer(pod.ns.name, ECHO_PORT));
    }
  }, 120_000);

  afterAll(async () => {
    for (const server of servers) server.stop();
    await cluster?.close();
  });

  it("gives every pod one address of each family from its node's subnets", () => {
    for (const node of cluster.nodes) {
      const pod = node.pods[0]!;
      expect(pod.ip).toMatch(new RegExp(`^10\\.244\\.${node.index}\\.`));
      expect(pod.ip6).toMatch(new RegExp(`^fd00:10:244:${node.index}::`));
    }
  });

  it("programs a route and a neighbour per family and one FDB entry per peer, on one VTEP", () => {
    const objects = cluster.nodes[0]!.kernelObjects();
    expect(objects.routes).toEqual(["10.244.2.0/24 via 10.244.2.0 dev weft.1"]); // `ip route` lists IPv4 only
    const routes6 = cluster.nodes[0]!.ipJson<{ dst: string; gateway: string; dev: string }[]>(["-6", "route", "show", "proto", "87"]);
    expect(routes6.map((r) => `${r.dst} via ${r.gateway} dev ${r.dev}`)).toEqual(["fd00:10:244:2::/64 via fd00:10:244:2:: dev weft.1"]);
    const routes4 = cluster.nodes[0]!.ipJson<{ dst: string; gateway: string; dev: string }[]>(["-4", "route", "show", "proto", "87"]);
    expect(routes4.map((r) => `${r.dst} via ${r.gateway} dev ${r.dev}`)).toEqual(["10.244.2.0/24 via 10.244.2.0 dev weft.1"]);
    expect(objects.neighbours.map((n) => n.split(" ")[0]).sort()).toEqual(["10.244.2.0", "fd00:10:244:2::"]);
    expect(objects.fdb).toHaveLength(1);
  });

  it("carries TCP across nodes over IPv4 and IPv6 with the pods' own addresses", async () => {
    const [a, b] = cluster.nodes as [SimCluster["nodes"][0], SimCluster["nodes"][0]];
    const from = a.pods[0]!;
    const to = b.pods[0]!;
    await eventually(() => {
      const v6 = tcpEcho(from.ns.name, to.ip6!, ECHO_PORT);
      expect(v6, v6.error).toMatchObject({ ok: true, source: from.ip6 });
    }, 10_000, 300);
    const v4 = tcpEcho(from.ns.name, to.ip, ECHO_PORT);
    expect(v4, v4.error).toMatchObject({ ok: true, source: from.ip });
    const back = tcpEcho(to.ns.name, from.ip6!, ECHO_PORT);
    expect(back, back.error).toMatchObject({ ok: true, source: to.ip6 });
  });

  it("probes the peer's VTEP addresses of both families", async () => {
    const state = await eventually(() => {
      const s = cluster.nodes[0]!.state();
      const probes = s.peers[0]!.probes;
      if (probes.length !== 2 || probes.some((p) => p.received === 0)) throw new Error(`probes: ${JSON.stringify(probes)}`);
      return s;
    }, 15_000, 300);
    expect(state.peers[0]!.probes.map((p) => p.address).sort()).toEqual(["10.244.2.0", "fd00:10:244:2::"]);
  });
});
