// Services with the real kube-proxy (v1.20.2, iptables mode, built from Debian's source by scripts/kube/build.sh),
// one in every node namespace, fed by the real kube-apiserver: a Service and its Endpoints created through the API
// for backends on two nodes, as kube-controller-manager's endpoints controller would write them. In both datapath
// modes, every pod reaches the ClusterIP, every node's host reaches it, and the NodePort answers on every node from
// another node's host and from the external host. The agents use the file node source (the kube sources are
// kube-real.test.ts's subject); kube-proxy authenticates as admin (its own RBAC is not weft's).
//
// kube-proxy 1.20 reads EndpointSlices by default (EndpointSliceProxying, beta); nothing here writes those (no
// controller-manager), so it runs with the gate off and reads the Endpoints this test writes. It leaves the
// conntrack limits as they are (--conntrack-max-per-core=0 and zero timeouts): they are the machine's, not the node
// namespace's. br_netfilter: test/e2e/services.test.ts says what this kernel does, and it holds here alike.
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SimCluster, startNetnsProxy, UNDERLAY_PREFIX, type NetnsProxy, type SimNode, type SimPod } from "../support/cluster";
import { createNode, KUBE_PROXY, kubeMissing, startKubeApiServer, writeKubeconfig, type KubeApiServer } from "../support/kube-apiserver";
import { eventually } from "../support/podman";
import { startEchoServer, tcpEcho, type EchoServer } from "../support/traffic";

const BACKEND_PORT = 7013;
const NODE_PORT = 30090;
const API_PORT = 6443;
const missing = kubeMissing();

describe.skipIf(missing !== undefined).each(["kernel", "ebpf"] as const)(`the real kube-proxy, --datapath %s${missing ? ` (skipped: ${missing})` : ""}`, (datapath) => {
  let cluster: SimCluster;
  let api: KubeApiServer;
  let proxy: NetnsProxy;
  const servers: EchoServer[] = [];
  const kubeProxies: ChildProcess[] = [];
  let clusterIp = "";
  let backends: SimPod[] = [];

  beforeAll(async () => {
    cluster = SimCluster.create({ label: `kp${datapath[0]}`, nodes: 3, datapath });
    api = await startKubeApiServer({ label: `kp${datapath[0]}-api`, extraIps: [`${UNDERLAY_PREFIX}.1`] });
    proxy = startNetnsProxy(cluster.underlay.path, API_PORT, { host: "127.0.0.1", port: api.port });
    const nodeFile = cluster.writeNodeFile();
    const netConf = cluster.writeNetConf({ Network: "10.244.0.0/16", SubnetLen: 24, Backend: { Type: "vxlan" } });
    await cluster.startAgents(() => ["--source", "file", "--node-file", nodeFile, "--net-conf", netConf], { podsPerNode: 1, timeoutMs: 60_000 });
    for (const node of cluster.nodes) for (const pod of node.pods) servers.push(await startEchoServer(pod.ns.name, BACKEND_PORT));
    servers.push(await startEchoServer(cluster.external.name, BACKEND_PORT));

    // kube-proxy reads its own Node for its address.
    for (const node of cluster.nodes) await createNode(api, node.name, node.ip, `10.244.${node.index}.0/24`);
    const service = await api.must<{ spec: { clusterIP: string } }>("POST", "/api/v1/namespaces/default/services", {
      apiVersion: "v1", kind: "Service", metadata: { name: "echo", namespace: "default" },
      spec: { type: "NodePort", selector: { app: "echo" }, ports: [{ name: "tcp", port: 80, targetPort: BACKEND_PORT, nodePort: NODE_PORT, protocol: "TCP" }] },
    });
    clusterIp = service.spec.clusterIP;
    backends = [cluster.nodes[1]!.pods[0]!, cluster.nodes[2]!.pods[0]!];
    await api.must("POST", "/api/v1/namespaces/default/endpoints", {
      apiVersion: "v1", kind: "Endpoints", metadata: { name: "echo", namespace: "default" },
      subsets: [{
        addresses: backends.map((pod, i) => ({ ip: pod.ip, nodeName: cluster.nodes[i + 1]!.name })),
        ports: [{ name: "tcp", port: BACKEND_PORT, protocol: "TCP" }],
      }],
    });

    const kubeconfig = writeKubeconfig(path.join(cluster.dir, "kube-proxy.kubeconfig"), api, `https://${UNDERLAY_PREFIX}.1:${API_PORT}`, api.adminToken);
    for (const node of cluster.nodes) {
      const log = fs.openSync(path.join(node.dir, "kube-proxy.log"), "a");
      kubeProxies.push(spawn("nsenter", [
        `--net=${node.ns.path}`, KUBE_PROXY, `--kubeconfig=${kubeconfig}`, `--hostname-override=${node.name}`, "--proxy-mode=iptables",
        "--cluster-cidr=10.244.0.0/16", "--feature-gates=EndpointSliceProxying=false", "--conntrack-max-per-core=0",
        "--conntrack-tcp-timeout-established=0", "--conntrack-tcp-timeout-close-wait=0", "--iptables-sync-period=5s", "--v=1",
      ], { stdio: ["ignore", log, log] }));
      fs.closeSync(log);
    }
    // Its rules are in place when the Service's chain is in every node's nat table.
    for (const node of cluster.nodes) {
      await eventually(() => {
        const kp = kubeProxies[node.index - 1]!;
        if (kp.exitCode !== null) throw new Error(`kube-proxy on ${node.name} exited: ${fs.readFileSync(path.join(node.dir, "kube-proxy.log"), "utf8").slice(-2000)}`);
        expect(node.ns.exec(["iptables-save", "-t", "nat"])).toContain(`-d ${clusterIp}/32 -p tcp -m comment --comment "default/echo:tcp cluster IP"`);
      }, 30_000, 250);
    }
  }, 180_000);

  afterAll(async () => {
    for (const kp of kubeProxies) {
      if (kp.exitCode === null && kp.signalCode === null) {
        kp.kill("SIGTERM");
        await new Promise((resolve) => kp.once("exit", resolve));
      }
    }
    for (const server of servers) server.stop();
    await cluster?.close();
    await proxy?.close();
    await api?.stop();
  });

  it("reaches the ClusterIP (backends on node-2 and node-3) from every pod, 4 connections each, with the pod's own address", () => {
    const failures: string[] = [];
    for (const node of cluster.nodes) {
      for (const pod of node.pods) {
        // kube-proxy picks a backend at random per connection: a few connections reach both.
        for (let i = 0; i < 4; i++) {
          const result = tcpEcho(pod.ns.name, clusterIp, 80);
          const hairpin = backends.some((b) => b.ip === pod.ip);
          if (!result.ok) failures.push(`${node.name} pod ${pod.ip} → ${clusterIp}:80: ${result.error}`);
          else if (!hairpin && result.source !== pod.ip) failures.push(`${node.name} pod ${pod.ip} → ${clusterIp}:80 left as ${result.source}`);
        }
      }
    }
    expect(failures).toEqual([]);
  });

  it("reaches the ClusterIP from every node's host", () => {
    for (const node of cluster.nodes) expect(tcpEcho(node.ns.name, clusterIp, 80), node.name).toMatchObject({ ok: true });
  });

  it("answers the NodePort on every node, from another node's host and from the external host", () => {
    const failures: string[] = [];
    for (const node of cluster.nodes) {
      const other: SimNode = cluster.nodes[node.index % cluster.nodes.length]!;
      for (const [from, ns] of [[other.name, other.ns.name], ["external", cluster.external.name]] as const) {
        const result = tcpEcho(ns, node.ip, NODE_PORT);
        if (!result.ok) failures.push(`${from} → ${node.name} ${node.ip}:${NODE_PORT}: ${result.error}`);
      }
    }
    expect(failures).toEqual([]);
  });

  if (datapath === "ebpf") it("sent the NAT'd replies through the kernel path: the programs left those flows to conntrack", () => {
    const counters = cluster.nodes.map((node) => node.state().datapath.ebpf!.counters as Record<string, number>);
    const nat = counters.reduce((sum, c) => sum + (c.from_tunnel_pass_nat ?? 0) + (c.from_pod_pass_nat ?? 0), 0);
    expect(nat).toBeGreaterThan(0);
  });
});
