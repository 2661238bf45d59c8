// The same 3-node overlay with the two other node sources: a real etcd (Debian's etcd-server), where the agents
// allocate their own subnets by lease as flannel does, and a list/watch Kubernetes API server (the faithful fake
// of test/support), where pod CIDRs come from spec.podCIDR and the agents publish their VTEP MAC and public IP as
// annotations. Both servers run on the test's loopback; the agents reach them through a proxy listening in the
// underlay namespace (192.168.90.1).
import fs from "node:fs";
import path from "node:path";
import { Etcd3 } from "etcd3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SimCluster, startNetnsProxy, UNDERLAY_PREFIX, type NetnsProxy, type SimCluster as Cluster } from "../support/cluster";
import { startEtcd, type TestEtcd } from "../support/etcd";
import { eventually } from "../support/podman";
import { FakeKubeApiServer, type FakeNode } from "../support/fake-kube-apiserver";
import { startEchoServer, tcpEcho, type EchoServer } from "../support/traffic";

const ECHO_PORT = 7007;

/** Starts an echo server in every pod, then checks every pod reaches every other pod with its own address. */
async function podMatrix(cluster: Cluster, servers: EchoServer[]): Promise<string[]> {
  for (const node of cluster.nodes) for (const pod of node.pods) servers.push(await startEchoServer(pod.ns.name, ECHO_PORT));
  const pods = cluster.nodes.flatMap((node) => node.pods);
  const failures: string[] = [];
  for (const from of pods) {
    for (const to of pods) {
      if (from === to) continue;
      const result = tcpEcho(from.ns.name, to.ip, ECHO_PORT);
      if (!result.ok || result.source !== from.ip) failures.push(`${from.ip} → ${to.ip}: ${result.error || `source ${result.source}`}`);
    }
  }
  return failures;
}

describe("3 nodes, vxlan, etcd source (flannel's lease model, real etcd)", () => {
  let cluster: SimCluster;
  let etcd: TestEtcd;
  let proxy: NetnsProxy;
  const servers: EchoServer[] = [];

  beforeAll(async () => {
    cluster = SimCluster.create({ label: "es", nodes: 3 });
    etcd = await startEtcd("e2e-etcd");
    proxy = startNetnsProxy(cluster.underlay.path, 2379, { host: "127.0.0.1", port: Number(new URL(etcd.endpoint).port) });
    const netConf = cluster.writeNetConf({ Network: "10.244.0.0/16", SubnetLen: 24, Backend: { Type: "vxlan" } });
    await cluster.startAgents(() => ["--source", "etcd", "--etcd-endpoints", `http://${UNDERLAY_PREFIX}.1:2379`, "--net-conf", netConf], { timeoutMs: 60_000 });
  }, 120_000);

  afterAll(async () => {
    for (const server of servers) server.stop();
    await cluster?.close();
    await proxy?.close();
    await etcd?.stop();
  });

  it("gives each node its own leased subnet, recorded in etcd with its public IP and VTEP MAC", async () => {
    const client = new Etcd3({ hosts: etcd.endpoint });
    try {
      const leases = await client.getAll().prefix("/coreos.com/network/subnets/").strings();
      expect(Object.keys(leases)).toHaveLength(3);
      const subnets = cluster.nodes.map((node) => node.state().node.podCidrs[0]);
      expect(new Set(subnets).size).toBe(3);
      for (const [index, node] of cluster.nodes.entries()) {
        const key = `/coreos.com/network/subnets/${subnets[index]!.replace("/", "-")}`;
        const attrs = JSON.parse(leases[key]!) as { PublicIP: string; BackendType: string; BackendData: { VtepMAC: string } };
        expect(attrs).toMatchObject({ PublicIP: node.ip, BackendType: "vxlan" });
        expect(attrs.BackendData.VtepMAC).toBe(node.state().node.vtep!.mac);
        expect(node.pods[0]!.ip.startsWith(subnets[index]!.split(".").slice(0, 3).join("."))).toBe(true);
      }
      expect(await client.get("/coreos.com/network/config").string()).toContain("10.244.0.0/16");
    } finally {
      client.close();
    }
  });

  it("carries TCP between pods on every pair of nodes", async () => {
    expect(await podMatrix(cluster, servers)).toEqual([]);
  });

  it("keeps its subnet across an agent restart (reuses its lease)", async () => {
    const node = cluster.nodes[0]!;
    const before = node.state().node.podCidrs;
    await node.stopAgent("SIGTERM");
    node.startAgent(["--source", "etcd", "--etcd-endpoints", `http://${UNDERLAY_PREFIX}.1:2379`, "--net-conf", path.join(cluster.dir, "net-conf.json")]);
    const after = await node.waitReady((s) => s.peers.length === 2);
    expect(after.node.podCidrs).toEqual(before);
    expect(tcpEcho(node.pods[0]!.ns.name, cluster.nodes[1]!.pods[0]!.ip, ECHO_PORT).ok).toBe(true);
  });
});

function kubeNode(name: string, ip: string, podCIDR: string): FakeNode {
  return {
    metadata: { name, labels: { "kubernetes.io/hostname": name } },
    spec: { podCIDR, podCIDRs: [podCIDR] },
    status: { addresses: [{ type: "InternalIP", address: ip }, { type: "Hostname", address: name }], conditions: [{ type: "Ready", status: "True" }] },
  };
}

describe("3 nodes, vxlan, kube source (list/watch API server)", () => {
  let cluster: SimCluster;
  let api: FakeKubeApiServer;
  let proxy: NetnsProxy;
  const servers: EchoServer[] = [];

  beforeAll(async () => {
    cluster = SimCluster.create({ label: "ks", nodes: 3 });
    api = await FakeKubeApiServer.start({ bookmarkIntervalMs: 500 });
    proxy = startNetnsProxy(cluster.underlay.path, 6443, { host: "127.0.0.1", port: Number(new URL(api.url).port) });
    for (const node of cluster.nodes) api.upsertNode(kubeNode(node.name, node.ip, `10.244.${node.index}.0/24`));
    const kubeconfig = path.join(cluster.dir, "kubeconfig");
    fs.writeFileSync(kubeconfig, JSON.stringify({
      apiVersion: "v1", kind: "Config", "current-context": "sim",
      clusters: [{ name: "sim", cluster: { server: `http://${UNDERLAY_PREFIX}.1:6443`, "insecure-skip-tls-verify": true } }],
      users: [{ name: "sim", user: {} }],
      contexts: [{ name: "sim", context: { cluster: "sim", user: "sim" } }],
    }));
    const netConf = cluster.writeNetConf({ Network: "10.244.0.0/16", SubnetLen: 24, Backend: { Type: "vxlan" } });
    await cluster.startAgents(
      (node) => ["--source", "kube", "--kubeconfig", kubeconfig, "--net-conf", netConf, ...(node.index === 3 ? ["--flannel-compat"] : [])],
      { timeoutMs: 60_000 },
    );
  }, 120_000);

  afterAll(async () => {
    for (const server of servers) server.stop();
    await cluster?.close();
    await proxy?.close();
    await api?.stop();
  });

  it("takes the node IP from InternalIP, publishes its VTEP MAC and public IP, and sets NetworkUnavailable=False once ready", async () => {
    for (const node of cluster.nodes) {
      const state = node.state();
      expect(state.node).toMatchObject({ publicIp: node.ip, publicIpFrom: "node address", podCidrs: [`10.244.${node.index}.0/24`] });
      const stored = api.getNode(node.name)!;
      expect(stored.metadata.annotations).toMatchObject({
        "weft.dev/public-ip": node.ip,
        "weft.dev/vtep-mac": state.node.vtep!.mac,
        "weft.dev/backend-type": "vxlan",
      });
      await eventually(() => expect(api.getNode(node.name)!.status?.conditions).toContainEqual(expect.objectContaining({ type: "NetworkUnavailable", status: "False" })));
    }
    // --flannel-compat: flannel's annotations too, so that flannel nodes of a mixed cluster see this one.
    expect(api.getNode("node-3")!.metadata.annotations).toMatchObject({
      "flannel.alpha.coreos.com/public-ip": cluster.nodes[2]!.ip,
      "flannel.alpha.coreos.com/backend-type": "vxlan",
    });
  });

  it("carries TCP between pods on every pair of nodes", async () => {
    expect(await podMatrix(cluster, servers)).toEqual([]);
  });

  it("removes a deleted Node's objects everywhere, and programs a new one from the watch", async () => {
    const [a, , c] = cluster.nodes as [Cluster["nodes"][0], Cluster["nodes"][0], Cluster["nodes"][0]];
    api.deleteNode("node-2");
    await waitFor(() => a.kernelObjects().routes.every((r) => !r.startsWith("10.244.2.0/24")) && c.kernelObjects().routes.every((r) => !r.startsWith("10.244.2.0/24")));
    expect(a.kernelObjects().neighbours.some((n) => n.startsWith("10.244.2.0 "))).toBe(false);
    api.upsertNode({ ...kubeNode("node-9", `${UNDERLAY_PREFIX}.99`, "10.244.9.0/24"), metadata: { name: "node-9", annotations: { "weft.dev/vtep-mac": "0e:00:00:00:00:99", "weft.dev/public-ip": `${UNDERLAY_PREFIX}.99` } } });
    await waitFor(() => a.kernelObjects().routes.includes("10.244.9.0/24 via 10.244.9.0 dev weft.1"));
    expect(a.kernelObjects().fdb).toContain(`0e:00:00:00:00:99 ${UNDERLAY_PREFIX}.99 weft.1`);
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met in ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
