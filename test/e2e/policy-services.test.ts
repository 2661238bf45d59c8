// NetworkPolicy beside kube-proxy: a pod's egress rules name pods, but the pod connects to a Service's virtual IP,
// which kube-proxy's DNAT turns into one of those pods only after the pod's own program has seen the packet. The
// programs check such a connection again after DNAT (native/bpf/weft.h, WEFT_CONFIG_DEFER_EGRESS): allowed when
// DNAT picked an allowed pod, on this node (to_pod) or another (to_tunnel); dropped by the agent's nftables rule
// when it did not make the connection a pod's. The replies arrive from the virtual IP, a tuple the policy map never
// saw: the kernel's conntrack knows them for replies, so the client's isolated ingress lets them in.
// In each node namespace the rules kube-proxy's iptables mode writes (test/support/kube-proxy-rules.ts).
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXTERNAL_IP, SimCluster, type SimNode, type SimPod } from "../support/cluster";
import { kubeProxyRules } from "../support/kube-proxy-rules";
import { eventually } from "../support/podman";
import { startEchoServer, startWhoamiServer, tcpEcho, tcpWhoami, type EchoServer } from "../support/traffic";

const PORT = 7013;
const WHOAMI_PORT = 7014;
const CLUSTER_CIDR = "10.244.0.0/16";
const BACKENDS = { name: "default/backends:http", clusterIp: "10.96.0.20", port: 80 };
const OTHERS = { name: "default/others:http", clusterIp: "10.96.0.21", port: 80 };

function podDocument(name: string, node: SimNode, pod: SimPod, app: string): Record<string, unknown> {
  return {
    apiVersion: "v1", kind: "Pod", metadata: { name, namespace: "default", labels: { app } },
    spec: { nodeName: node.name, containers: [{ name: "c", ports: [{ name: "http", containerPort: PORT }] }] },
    status: { podIP: pod.ip, podIPs: [{ ip: pod.ip }] },
  };
}

describe.each(["ebpf", "kernel"] as const)("NetworkPolicy through kube-proxy's Services, --datapath %s", (datapath) => {
  let cluster: SimCluster;
  const servers: EchoServer[] = [];
  let client: SimPod;
  let otherPod: SimPod;
  let remoteBackend: SimPod;

  beforeAll(async () => {
    cluster = SimCluster.create({ label: `ps${datapath[0]}`, nodes: 2, datapath });
    const policyDir = path.join(cluster.dir, "policies");
    fs.mkdirSync(policyDir);
    const nodeFile = cluster.writeNodeFile();
    const netConf = cluster.writeNetConf({ Network: CLUSTER_CIDR, Backend: { Type: "vxlan" } });
    await cluster.startAgents(() => ["--source", "file", "--node-file", nodeFile, "--net-conf", netConf, "--policy-source", "dir", "--policy-dir", policyDir], { podsPerNode: 0 });
    const [n1, n2] = cluster.nodes as [SimNode, SimNode];
    client = n1.addPod();
    const localBackend = n1.addPod();
    remoteBackend = n2.addPod();
    otherPod = n2.addPod();
    for (const pod of [client, localBackend, remoteBackend, otherPod]) servers.push(await startEchoServer(pod.ns.name, PORT));
    servers.push(await startWhoamiServer(cluster.external.name, WHOAMI_PORT));
    const rules = kubeProxyRules(CLUSTER_CIDR, [
      { ...BACKENDS, endpoints: [`${localBackend.ip}:${PORT}`, `${remoteBackend.ip}:${PORT}`] },
      { ...OTHERS, endpoints: [`${otherPod.ip}:${PORT}`] },
    ]);
    for (const node of cluster.nodes) node.ns.exec(["iptables-restore", "--noflush"], { input: rules });

    // The client may open connections to the backends only, and takes no connection itself.
    const documents = [
      podDocument("client", n1, client, "client"), podDocument("backend-1", n1, localBackend, "backend"),
      podDocument("backend-2", n2, remoteBackend, "backend"), podDocument("other", n2, otherPod, "other"),
      {
        apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name: "client", namespace: "default" },
        spec: {
          podSelector: { matchLabels: { app: "client" } }, policyTypes: ["Ingress", "Egress"],
          egress: [{ to: [{ podSelector: { matchLabels: { app: "backend" } } }], ports: [{ port: "http" }] }],
        },
      },
    ];
    fs.writeFileSync(path.join(policyDir, ".all.tmp"), JSON.stringify({ apiVersion: "v1", kind: "List", items: documents }));
    fs.renameSync(path.join(policyDir, ".all.tmp"), path.join(policyDir, "all.json"));
    await eventually(() => {
      const state = n1.state();
      expect(state.datapath.policy).toMatchObject({ synced: true, policies: 1, isolatedPods: 1 });
      // The deferral needs the masquerade table's drop rule in place: the config says so once it is.
      expect(state.masq.inPlace).toBe(true);
    }, 15_000, 200);
    // One more run, so that the config carries the deferral flag (it follows the masquerade table's state).
    await new Promise((resolve) => setTimeout(resolve, 1_500));
  }, 120_000);

  afterAll(async () => {
    for (const server of servers) server.stop();
    await cluster?.close();
  });

  it("reaches both backends through the Service's virtual IP: allowed after DNAT, on this node and another", () => {
    // kube-proxy picks either backend at random for each connection: 8 connections miss one with p = 1/128.
    for (let i = 0; i < 8; i++) {
      const result = tcpEcho(client.ns.name, BACKENDS.clusterIp, BACKENDS.port);
      expect(result, result.error).toMatchObject({ ok: true, source: client.ip });
    }
    const counters = cluster.nodes[0]!.state().datapath.ebpf!.counters as Record<string, number>;
    expect(counters.policy_egress_deferred ?? 0).toBeGreaterThan(0);
    // The replies came back from the virtual IP and passed the client's isolated ingress through conntrack.
    expect(counters.policy_kernel_reply ?? 0).toBeGreaterThan(0);
  });

  it("reaches the allowed backend directly, and no other pod directly or through its Service", () => {
    expect(tcpEcho(client.ns.name, remoteBackend.ip, PORT).ok).toBe(true);
    expect(tcpEcho(client.ns.name, otherPod.ip, PORT).ok).toBe(false);
    expect(tcpEcho(client.ns.name, OTHERS.clusterIp, OTHERS.port).ok).toBe(false);
  });

  it("reaches nothing outside the cluster: the deferred packet is dropped by the agent's nftables rule", () => {
    const result = tcpWhoami(client.ns.name, EXTERNAL_IP, WHOAMI_PORT);
    expect(result.ok).toBe(false);
    const ruleset = cluster.nodes[0]!.ns.exec(["nft", "list", "chain", "inet", "weft", "forward"]);
    expect(ruleset).toMatch(/meta mark & 0x00040000 == 0x00040000 ip daddr != 10\.244\.0\.0\/16 drop comment "egress denied by NetworkPolicy"/);
  });

  it("keeps the client's ingress closed to connections the client did not open", () => {
    expect(tcpEcho(otherPod.ns.name, client.ip, PORT).ok).toBe(false);
  });
});
