// The kube sources against the real kube-apiserver (v1.20.2 from Debian's source: scripts/kube/build.sh), over a
// real etcd: 3 simulated nodes with the real agents, each authenticated as the DaemonSet's ServiceAccount with the
// ClusterRole of manifests/weft.yaml (a TokenRequest token, not an admin), reaching the server through a proxy in
// the underlay namespace. Nodes, Pods and NetworkPolicies are written through the API, as the control plane and
// kubectl would. What the list/watch stand-in (test/support/fake-kube-apiserver.ts) still covers is fault
// injection the real server does not do on demand: watch expiry (410) at a chosen moment, bookmarks, closed streams,
// requests answered 500. Here a real 410 comes from the restarted server's watch cache after etcd moved on.
import path from "node:path";
import { Etcd3 } from "etcd3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SimCluster, startNetnsProxy, UNDERLAY_PREFIX, type NetnsProxy, type SimNode } from "../support/cluster";
import {
  createNode, createPod, kubeMissing, serviceAccountToken, startKubeApiServer, writeKubeconfig, type KubeApiServer,
} from "../support/kube-apiserver";
import { eventually } from "../support/podman";
import { startEchoServer, tcpEcho, unreachablePairs, type EchoServer } from "../support/traffic";

const ECHO_PORT = 7031;
const API_PORT = 6443;
const missing = kubeMissing();

interface NodeObject {
  metadata: { annotations?: Record<string, string> };
  status?: { conditions?: { type: string; status: string }[] };
}

describe.skipIf(missing !== undefined)(`3 nodes against the real kube-apiserver${missing ? ` (skipped: ${missing})` : ""}`, () => {
  let cluster: SimCluster;
  let api: KubeApiServer;
  let proxy: NetnsProxy;
  let kubeconfig: string;
  const servers: EchoServer[] = [];

  beforeAll(async () => {
    cluster = SimCluster.create({ label: "kr", nodes: 3, datapath: "ebpf" });
    api = await startKubeApiServer({ label: "kr-api", extraIps: [`${UNDERLAY_PREFIX}.1`] });
    proxy = startNetnsProxy(cluster.underlay.path, API_PORT, { host: "127.0.0.1", port: api.port });
    for (const node of cluster.nodes) await createNode(api, node.name, node.ip, `10.244.${node.index}.0/24`);
    await api.must("POST", "/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: "shop", labels: { team: "shop" } } });
    const token = await serviceAccountToken(api);
    kubeconfig = writeKubeconfig(path.join(cluster.dir, "kubeconfig"), api, `https://${UNDERLAY_PREFIX}.1:${API_PORT}`, token);
    const netConf = cluster.writeNetConf({ Network: "10.244.0.0/16", SubnetLen: 24, Backend: { Type: "vxlan" } });
    await cluster.startAgents(() => ["--source", "kube", "--kubeconfig", kubeconfig, "--net-conf", netConf, "--policy-source", "kube"], { timeoutMs: 60_000 });
    for (const node of cluster.nodes) for (const pod of node.pods) servers.push(await startEchoServer(pod.ns.name, ECHO_PORT));
  }, 180_000);

  afterAll(async () => {
    for (const server of servers) server.stop();
    await cluster?.close();
    await proxy?.close();
    await api?.stop();
  });

  it("publishes each node's annotations and sets NetworkUnavailable=False, as the manifest's ServiceAccount", async () => {
    for (const node of cluster.nodes) {
      const state = node.state();
      await eventually(async () => {
        const stored = await api.must<NodeObject>("GET", `/api/v1/nodes/${node.name}`);
        expect(stored.metadata.annotations).toMatchObject({ "weft.dev/public-ip": node.ip, "weft.dev/vtep-mac": state.node.vtep!.mac, "weft.dev/backend-type": "vxlan" });
        expect(stored.status?.conditions).toContainEqual(expect.objectContaining({ type: "NetworkUnavailable", status: "False" }));
      }, 10_000, 200);
      expect(state.readiness.ready).toBe(true);
    }
  });

  it("carries TCP between pods on every pair of nodes", () => {
    expect(unreachablePairs(cluster.nodes.flatMap((node) => node.pods), ECHO_PORT)).toEqual([]);
  });

  it("removes a Node deleted through the API from every other node within a second, and programs it again when re-created", async () => {
    const [a, b, c] = cluster.nodes as [SimNode, SimNode, SimNode];
    const route = "10.244.3.0/24 via 10.244.3.0 dev weft.1";
    const started = Date.now();
    await api.must("DELETE", "/api/v1/nodes/node-3");
    await eventually(() => {
      expect(a.state().peers.map((p) => p.name)).not.toContain("node-3");
      expect(b.state().peers.map((p) => p.name)).not.toContain("node-3");
    }, 5_000, 20);
    const removedMs = Date.now() - started;
    expect(removedMs).toBeLessThan(1_000);
    // eBPF datapath: the route stays the kernel path's fallback only while programmed; weft_nodes drops the CIDR.
    expect(a.kernelObjects().routes).not.toContain(route);
    await createNode(api, "node-3", c.ip, "10.244.3.0/24");
    await eventually(() => {
      for (const node of [a, b]) expect(node.state().peers.find((p) => p.name === "node-3")?.status).toBe("programmed");
    }, 10_000, 100);
    expect(tcpEcho(a.pods[0]!.ns.name, c.pods[0]!.ip, ECHO_PORT)).toMatchObject({ ok: true, source: a.pods[0]!.ip });
  });

  it("enforces a NetworkPolicy written through the API, and lifts it when deleted", async () => {
    const [a, b, c] = cluster.nodes as [SimNode, SimNode, SimNode];
    const pods = [
      { name: "web", node: a, pod: a.pods[0]!, labels: { app: "web" } },
      { name: "db", node: b, pod: b.pods[0]!, labels: { app: "db" } },
      { name: "cache", node: c, pod: c.pods[0]!, labels: { app: "cache" } },
    ];
    for (const p of pods) await createPod(api, { namespace: "shop", name: p.name, node: p.node.name, ip: p.pod.ip, labels: p.labels, ports: [{ name: "echo", containerPort: ECHO_PORT }] });
    await api.must("POST", "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies", {
      apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name: "db-from-web", namespace: "shop" },
      spec: { podSelector: { matchLabels: { app: "db" } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: "web" } } }], ports: [{ port: "echo" }] }] },
    });
    await eventually(() => expect(b.state().datapath.policy).toMatchObject({ source: "kube", synced: true, policies: 1, isolatedPods: 1 }), 10_000, 100);
    expect(tcpEcho(a.pods[0]!.ns.name, b.pods[0]!.ip, ECHO_PORT).ok).toBe(true);
    expect(tcpEcho(c.pods[0]!.ns.name, b.pods[0]!.ip, ECHO_PORT).ok).toBe(false);

    await api.must("DELETE", "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies/db-from-web");
    await eventually(() => expect(b.state().datapath.policy).toMatchObject({ policies: 0, isolatedPods: 0 }), 10_000, 100);
    expect(tcpEcho(c.pods[0]!.ns.name, b.pods[0]!.ip, ECHO_PORT).ok).toBe(true);
  });

  it("rejects a Node whose pod CIDR is outside the cluster network, naming it in status, and programs the others", async () => {
    await api.must("POST", "/api/v1/nodes", {
      apiVersion: "v1", kind: "Node", metadata: { name: "stray", annotations: { "weft.dev/vtep-mac": "02:57:46:00:00:99", "weft.dev/public-ip": `${UNDERLAY_PREFIX}.99`, "weft.dev/backend-type": "vxlan" } },
      spec: { podCIDR: "172.16.9.0/24", podCIDRs: ["172.16.9.0/24"] },
    });
    const node = cluster.nodes[0]!;
    await eventually(() => {
      const stray = node.state().peers.find((p) => p.name === "stray");
      expect(stray).toMatchObject({ status: "rejected" });
      expect(stray!.reason).toContain("172.16.9.0/24");
    }, 10_000, 100);
    expect(node.state().peers.filter((p) => p.status === "programmed").map((p) => p.name).sort()).toEqual(["node-2", "node-3"]);
    await api.must("DELETE", "/api/v1/nodes/stray");
  });

  it("keeps the datapath through 30 s without the API server, shows the error, and recovers without a restart, relisting on the real 410", async () => {
    const [a, b] = cluster.nodes as [SimNode, SimNode];
    const pids = cluster.nodes.map((node) => node.agent!.pid);
    const objects = cluster.nodes.map((node) => node.kernelObjects());
    const relists = () => cluster.nodes.map((node) => node.agentLog().split("Watch expired (410 Gone): listing the nodes again").length - 1);
    const relistsBefore = relists();
    const down = Date.now();
    await api.pause();
    await eventually(() => {
      for (const node of cluster.nodes) expect(node.state().source.error).toMatch(/ECONNREFUSED|fetch failed|socket|closed/i);
    }, 20_000, 200);
    // Meanwhile the cluster's etcd moves on (another API server's writes, leases): its revision passes the one
    // the agents' watches stand at, so the restarted server's watch cache answers their resume with 410 Gone.
    const etcd = new Etcd3({ hosts: api.etcdEndpoint });
    try {
      await etcd.put("/weft-test/revision-bump").value(String(Date.now()));
    } finally {
      etcd.close();
    }
    while (Date.now() - down < 30_000) {
      cluster.nodes.forEach((node, i) => expect(node.kernelObjects(), node.name).toEqual(objects[i]));
      expect(tcpEcho(a.pods[0]!.ns.name, b.pods[0]!.ip, ECHO_PORT).ok).toBe(true);
      await new Promise((resolve) => setTimeout(resolve, 2_000));
    }
    await api.resume();
    await eventually(() => {
      for (const node of cluster.nodes) expect(node.state().source.error).toBeUndefined();
    }, 60_000, 500);
    expect(relists().map((n, i) => n - relistsBefore[i]!)).toEqual([1, 1, 1]);
    cluster.nodes.forEach((node, i) => {
      expect(node.agent!.pid).toBe(pids[i]);
      expect(node.state().readiness.ready).toBe(true);
      expect(node.kernelObjects(), node.name).toEqual(objects[i]);
    });
    // The watch after the relist works: a Node created now is programmed everywhere.
    await createNode(api, "late", `${UNDERLAY_PREFIX}.77`, "10.244.77.0/24");
    await eventually(() => {
      for (const node of cluster.nodes) expect(node.state().peers.map((p) => p.name)).toContain("late");
    }, 10_000, 200);
    await api.must("DELETE", "/api/v1/nodes/late");
    await eventually(() => {
      for (const node of cluster.nodes) expect(node.state().peers.map((p) => p.name)).not.toContain("late");
    }, 10_000, 200);
  }, 120_000);

  it("says the API refused its credentials when the token is wrong, and stays not ready without touching the datapath", async () => {
    const node = cluster.nodes[1]!;
    const bogus = writeKubeconfig(path.join(cluster.dir, "kubeconfig-bogus"), api, `https://${UNDERLAY_PREFIX}.1:${API_PORT}`, "not-a-token");
    const objects = node.kernelObjects();
    await node.stopAgent("SIGTERM");
    const netConf = path.join(cluster.dir, "net-conf.json");
    node.startAgent(["--source", "kube", "--kubeconfig", bogus, "--net-conf", netConf, "--policy-source", "kube"]);
    await eventually(() => {
      const readiness = node.debugGet("/readyz");
      expect(readiness.status).toBe(503);
      expect(readiness.body).toContain("HTTP 401");
    }, 20_000, 200);
    expect(node.kernelObjects()).toEqual(objects);
    await node.stopAgent("SIGTERM");
    node.startAgent(["--source", "kube", "--kubeconfig", kubeconfig, "--net-conf", netConf, "--policy-source", "kube"]);
    await node.waitReady();
  });

  it("says which call was refused when its role lacks a verb, and stays not ready without touching the datapath", async () => {
    const node = cluster.nodes[0]!;
    // The manifest's rules without `patch` on nodes: the agent cannot publish its annotations.
    const token = await serviceAccountToken(api, {
      name: "weft-no-patch",
      rules: [
        { apiGroups: [""], resources: ["nodes"], verbs: ["get", "list", "watch"] },
        { apiGroups: [""], resources: ["pods", "namespaces"], verbs: ["list", "watch"] },
        { apiGroups: ["networking.k8s.io"], resources: ["networkpolicies"], verbs: ["list", "watch"] },
      ],
    });
    const limited = writeKubeconfig(path.join(cluster.dir, "kubeconfig-no-patch"), api, `https://${UNDERLAY_PREFIX}.1:${API_PORT}`, token);
    const objects = node.kernelObjects();
    await node.stopAgent("SIGTERM");
    // Change what the agent must publish, so that it has to patch.
    await api.must("PATCH", `/api/v1/nodes/${node.name}`, { metadata: { annotations: { "weft.dev/vtep-mac": null } } }, { contentType: "application/merge-patch+json" });
    const netConf = path.join(cluster.dir, "net-conf.json");
    node.startAgent(["--source", "kube", "--kubeconfig", limited, "--net-conf", netConf, "--policy-source", "kube"]);
    await eventually(() => expect(node.agentLog()).toMatch(/forbidden|Forbidden/), 20_000, 200);
    const log = node.agentLog();
    expect(log).toContain('cannot patch resource \\"nodes\\"');
    expect(node.kernelObjects()).toEqual(objects);
    // Not ready, and /readyz says why: the call, and who was refused.
    const readiness = node.debugGet("/readyz");
    expect(readiness.status).toBe(503);
    expect(readiness.body).toContain('Cannot annotate this node: Kubernetes API: HTTP 403: nodes "node-1" is forbidden: User "system:serviceaccount:weft:weft-no-patch" cannot patch resource "nodes"');
    await node.stopAgent("SIGTERM");
    node.startAgent(["--source", "kube", "--kubeconfig", kubeconfig, "--net-conf", netConf, "--policy-source", "kube"]);
    await node.waitReady();
  });
});
