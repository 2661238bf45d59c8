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
import { startEchoServer, tcpEcho, unreachablePairs, type EchoServer } from "../support/traffic";

const ECHO_PORT = 7007;

/** Starts an echo server in every pod, then checks every pod reaches every other pod with its own address. */
async function podMatrix(cluster: Cluster, servers: EchoServer[]): Promise<string[]> {
  for (const node of cluster.nodes) for (const pod of node.pods) servers.push(await startEchoServer(pod.ns.name, ECHO_PORT));
  return unreachablePairs(cluster.nodes.flatMap((node) => node.pods), ECHO_PORT);
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

  it("re-acquires its lease key, for the same subnet, when it is deleted by hand: peers program it again and traffic resumes", async () => {
    const [a, b, c] = cluster.nodes as [Cluster["nodes"][0], Cluster["nodes"][0], Cluster["nodes"][0]];
    const subnet = b.state().node.podCidrs[0]!;
    const key = `/coreos.com/network/subnets/${subnet.replace("/", "-")}`;
    const route = `${subnet} via ${subnet.split("/")[0]} dev weft.1`;
    const client = new Etcd3({ hosts: etcd.endpoint });
    try {
      await client.delete().key(key);
      await eventually(async () => expect(JSON.parse((await client.get(key).string()) ?? "{}")).toMatchObject({ WeftNodeName: "node-2", PublicIP: b.ip }));
      await waitFor(() => a.kernelObjects().routes.includes(route) && c.kernelObjects().routes.includes(route));
      expect(tcpEcho(a.pods[0]!.ns.name, b.pods[0]!.ip, ECHO_PORT)).toMatchObject({ ok: true, source: a.pods[0]!.ip });
      expect(tcpEcho(b.pods[0]!.ns.name, c.pods[0]!.ip, ECHO_PORT)).toMatchObject({ ok: true, source: b.pods[0]!.ip });
      const state = b.state();
      expect(state.node.podCidrs).toEqual([subnet]);
      expect(state.source.localRecord).toMatchObject({ repairs: { lease: 1 }, lastRepair: { what: "lease", detail: "This node's subnet key was deleted" } });
      expect(state.readiness.localRecord).toBe(true);
      expect(b.debugGet("/metrics").body).toMatch(/^weft_local_record_repairs_total\{what="lease"\} 1$/m);
    } finally {
      client.close();
    }
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

  it("publishes a deleted and re-created Node again: peers reprogram it within 2 s and pods reach it, no restart", async () => {
    const [a, b, c] = cluster.nodes as [Cluster["nodes"][0], Cluster["nodes"][0], Cluster["nodes"][0]];
    const route = "10.244.3.0/24 via 10.244.3.0 dev weft.1";
    const vtepMac = c.state().node.vtep!.mac;
    const pid = c.agent!.child.pid;
    api.deleteNode("node-3");
    await waitFor(() => !a.kernelObjects().routes.includes(route) && !b.kernelObjects().routes.includes(route));
    // node-3's own agent says its Node is gone, in status and /readyz, and keeps its datapath.
    await waitFor(() => c.state().readiness.localRecord === false);
    const gone = "this node's Node object node-3 is gone (deleted, not re-created yet); the datapath is kept";
    expect(c.debugGet("/readyz")).toEqual({ status: 503, body: `not ready: localRecord (${gone})\n` });
    expect(c.statusText().stdout).toContain(`own record: PROBLEM: ${gone}`);
    expect(c.kernelObjects().routes).toContain("10.244.1.0/24 via 10.244.1.0 dev weft.1");

    // What a kubelet registering again creates: no annotations, no NetworkUnavailable condition.
    const recreated = Date.now();
    api.upsertNode(kubeNode("node-3", c.ip, "10.244.3.0/24"));
    await waitFor(() => a.kernelObjects().routes.includes(route) && b.kernelObjects().routes.includes(route), 5_000, 20);
    const elapsed = Date.now() - recreated;
    expect(elapsed).toBeLessThan(2_000);
    expect(a.kernelObjects().fdb).toContain(`${vtepMac} ${c.ip} weft.1`);
    const stored = api.getNode("node-3")!;
    expect(stored.metadata.annotations).toMatchObject({
      "weft.dev/vtep-mac": vtepMac, "weft.dev/public-ip": c.ip, "weft.dev/backend-type": "vxlan",
      "flannel.alpha.coreos.com/backend-data": JSON.stringify({ VNI: 1, VtepMAC: vtepMac }), "flannel.alpha.coreos.com/kube-subnet-manager": "true",
    });
    await eventually(() => expect(api.getNode("node-3")!.status?.conditions).toContainEqual(expect.objectContaining({ type: "NetworkUnavailable", status: "False" })));
    for (const [from, to] of [[a, c], [c, a], [b, c], [c, b]] as const) {
      expect(tcpEcho(from.pods[0]!.ns.name, to.pods[0]!.ip, ECHO_PORT)).toMatchObject({ ok: true, source: from.pods[0]!.ip });
    }
    // The API server has the condition as soon as it took the patch; the agent counts the repair on the answer.
    await eventually(() => expect(c.state().source.localRecord?.repairs).toEqual({ annotations: 1, condition: 1 }));
    const after = await c.waitReady();
    expect(after.readiness.localRecord).toBe(true);
    expect(c.agent!.child.pid).toBe(pid);
    expect(c.agentLog()).toContain("This node's Node object was re-created");
    expect(c.debugGet("/metrics").body).toMatch(/^weft_local_record_repairs_total\{what="annotations"\} 1$/m);
  });

  it("puts back a weft annotation removed by hand and NetworkUnavailable set to True by hand", async () => {
    const a = cluster.nodes[0]!;
    const wanted = api.getNode("node-1")!.metadata.annotations!["weft.dev/vtep-mac"];
    const node = api.getNode("node-1")!;
    delete node.metadata.annotations!["weft.dev/vtep-mac"];
    api.upsertNode(node);
    await waitFor(() => api.getNode("node-1")!.metadata.annotations!["weft.dev/vtep-mac"] === wanted, 2_000, 20);

    const unavailable = api.getNode("node-1")!;
    unavailable.status!.conditions = unavailable.status!.conditions!.map((cond) => (cond.type === "NetworkUnavailable" ? { ...cond, status: "True", reason: "ByHand" } : cond));
    api.upsertNode(unavailable);
    await waitFor(() => api.getNode("node-1")!.status!.conditions!.some((cond) => cond.type === "NetworkUnavailable" && cond.status === "False"), 2_000, 20);
    await eventually(() => expect(a.state().source.localRecord?.repairs).toEqual({ annotations: 1, condition: 1 }));
    expect(a.agentLog()).toMatch(/"msg":"Repaired this node's annotations".*"differed":"weft.dev\/vtep-mac: missing → /);
  });

  it("bounds its patches against a second writer that keeps changing an annotation, and says so in status", async () => {
    const b = cluster.nodes[1]!;
    const wanted = api.getNode("node-2")!.metadata.annotations!["weft.dev/vtep-mac"]!;
    const patchesOf = () => api.requests.filter((r) => r.method === "PATCH" && r.path === "/api/v1/nodes/node-2").length;
    const before = patchesOf();
    for (let i = 0; i < 20; i++) {
      const node = api.getNode("node-2")!;
      node.metadata.annotations!["weft.dev/vtep-mac"] = `0e:00:00:00:02:${String(i).padStart(2, "0")}`;
      api.upsertNode(node);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(patchesOf() - before).toBe(5); // the default: 5 repairs a minute, then a pause
    const status = b.statusText().stdout;
    expect(status).toMatch(/own record: PROBLEM: another writer keeps changing this node's annotations \(weft\.dev\/vtep-mac\): not repairing it for \d+ s/);
    expect(b.agentLog()).toContain("Another writer keeps changing this node's record; pausing repairs instead of fighting it");
    // The other writer gives up and the right value is back: the problem goes.
    const node = api.getNode("node-2")!;
    node.metadata.annotations!["weft.dev/vtep-mac"] = wanted;
    api.upsertNode(node);
    await eventually(() => expect(b.state().readiness.localRecord).toBe(true));
    expect(patchesOf() - before).toBe(5);
  });

  // Fault injection, which the real kube-apiserver of kube-real.test.ts cannot do: every request answered 500.
  it("rides out an API server that answers 500 and closes its watches every second for 8 s: no kernel operation, the error in status, bounded retries, recovery without a restart", async () => {
    const before = cluster.nodes.map((node) => ({ objects: node.kernelObjects(), ops: node.state().reconcile.opsApplied, pid: node.agent!.child.pid }));
    const error = "Kubernetes API: HTTP 500: Internal Server Error";
    const requestsFrom = api.requests.length;
    const started = Date.now();
    api.failRequests(500);
    api.closeWatches();
    const closer = setInterval(() => api.closeWatches(), 1_000);
    const problems: string[] = [];
    try {
      await eventually(() => {
        for (const node of cluster.nodes) expect(node.state().source.error).toBe(error);
      }, 10_000, 200);
      expect(cluster.nodes[0]!.statusText().stdout).toContain(`ERROR: ${error}`);
      while (Date.now() - started < 8_000) {
        cluster.nodes.forEach((node, i) => {
          const state = node.state();
          if (!state.readiness.ready) problems.push(`${node.name}: not ready: ${JSON.stringify(state.readiness)}`);
          if (JSON.stringify(state.reconcile.opsApplied) !== JSON.stringify(before[i]!.ops)) problems.push(`${node.name}: operations applied: ${JSON.stringify(state.reconcile.opsApplied)}`);
          if (JSON.stringify(node.kernelObjects()) !== JSON.stringify(before[i]!.objects)) problems.push(`${node.name}: kernel objects changed`);
        });
        if (problems.length > 0) break;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    } finally {
      clearInterval(closer);
      api.failRequests(undefined);
    }
    expect(problems).toEqual([]);
    const storm = api.requests.slice(requestsFrom).filter((r) => r.at < started + 8_000);
    // Each agent retries its watch on a 1, 2, 4 … s backoff, from its resourceVersion: no lists, a handful of
    // requests each (a loop without backoff makes thousands in 8 s).
    expect(storm.filter((r) => r.query.watch !== "true")).toEqual([]);
    expect(storm.length).toBeGreaterThanOrEqual(cluster.nodes.length * 3);
    expect(storm.length).toBeLessThanOrEqual(cluster.nodes.length * 7);

    // Recovery: the errors clear (within the current backoff step, at most 16 s here), nothing was re-applied,
    // the same processes, and the watch works again.
    await eventually(() => {
      for (const node of cluster.nodes) expect(node.state().source.error).toBeUndefined();
    }, 25_000, 200);
    cluster.nodes.forEach((node, i) => {
      expect(node.state().reconcile.opsApplied, node.name).toEqual(before[i]!.ops);
      expect(node.kernelObjects(), node.name).toEqual(before[i]!.objects);
      expect(node.agent!.child.pid).toBe(before[i]!.pid);
    });
    api.upsertNode({ ...kubeNode("node-8", `${UNDERLAY_PREFIX}.98`, "10.244.8.0/24"), metadata: { name: "node-8", annotations: { "weft.dev/vtep-mac": "0e:00:00:00:00:98", "weft.dev/public-ip": `${UNDERLAY_PREFIX}.98` } } });
    await waitFor(() => cluster.nodes.every((node) => node.kernelObjects().routes.includes("10.244.8.0/24 via 10.244.8.0 dev weft.1")));
    api.deleteNode("node-8");
    await waitFor(() => cluster.nodes.every((node) => node.kernelObjects().routes.every((r) => !r.startsWith("10.244.8.0/24"))));
    const [a, , c] = cluster.nodes;
    const echo = await startEchoServer(c!.pods[0]!.ns.name, ECHO_PORT + 1);
    try {
      expect(tcpEcho(a!.pods[0]!.ns.name, c!.pods[0]!.ip, ECHO_PORT + 1)).toMatchObject({ ok: true, source: a!.pods[0]!.ip });
    } finally {
      echo.stop();
    }
  }, 60_000);

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

async function waitFor(condition: () => boolean, timeoutMs = 15_000, intervalMs = 200): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met in ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
