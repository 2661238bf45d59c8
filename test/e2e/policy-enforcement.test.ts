// NetworkPolicy enforced by the agents' eBPF programs, in both datapath modes (and in ebpf mode with the programs
// attached as clsact filters), with the file policy source (--policy-source dir): 2 nodes, 3 pods. What the
// truth-table matrix (policy-matrix.test.ts) does not show: the node's own traffic to its pods stays allowed, the
// replies of what a pod opens pass its isolated ingress, status and /metrics count what the programs allowed and
// denied, a rejected policy is named while the others stay enforced, and an agent killed with SIGKILL leaves its
// policies enforced, with no open window while it restarts.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AGENT_LAUNCHER, SimCluster, type SimNode, type SimPod } from "../support/cluster";
import { eventually } from "../support/podman";
import { startEchoServer, tcpEcho, type EchoServer } from "../support/traffic";

const PORT = 7011;

interface LabelledPod {
  name: string;
  pod: SimPod;
  node: SimNode;
  labels: Record<string, string>;
}

function podDocument(p: LabelledPod): Record<string, unknown> {
  return {
    apiVersion: "v1", kind: "Pod",
    metadata: { name: p.name, namespace: "default", labels: p.labels },
    spec: { nodeName: p.node.name, containers: [{ name: "c", ports: [{ name: "echo", containerPort: PORT, protocol: "TCP" }] }] },
    status: { podIP: p.pod.ip, podIPs: [{ ip: p.pod.ip }] },
  };
}

function writeDocument(dir: string, file: string, documents: unknown[]): void {
  const temp = path.join(dir, `.${file}.tmp`);
  fs.writeFileSync(temp, JSON.stringify({ apiVersion: "v1", kind: "List", items: documents }));
  fs.renameSync(temp, path.join(dir, file));
}

function policy(name: string, spec: Record<string, unknown>): Record<string, unknown> {
  return { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name, namespace: "default" }, spec };
}

function reaches(from: SimPod, to: SimPod): boolean {
  return tcpEcho(from.ns.name, to.ip, PORT).ok;
}

/** `weft-agent policy explain` against the node's running agent. */
function explain(node: SimNode, from: string, to: string, port: string): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync("nsenter", [`--net=${node.ns.path}`, AGENT_LAUNCHER, "policy", "explain", "--from", from, "--to", to, "--port", port, "--debug-addr", "127.0.0.1:9476"], { encoding: "utf8" });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The node's own address toward its pods: its bridge's gateway. */
function fromNode(node: SimNode, to: SimPod): boolean {
  return tcpEcho(node.ns.name, to.ip, PORT).ok;
}

// The programs attached with tcx (this kernel's default), and with clsact filters (--tc-attach clsact: older kernels).
const MODES = [
  { name: "ebpf", datapath: "ebpf", label: "pee", flags: [] },
  { name: "kernel", datapath: "kernel", label: "pek", flags: [] },
  { name: "ebpf --tc-attach clsact", datapath: "ebpf", label: "pec", flags: ["--tc-attach", "clsact"] },
] as const;

describe.each(MODES)("NetworkPolicy with --datapath $name", ({ datapath, label, flags }) => {
  let cluster: SimCluster;
  let policyDir: string;
  const servers: EchoServer[] = [];
  let a: LabelledPod;
  let b: LabelledPod;
  let c: LabelledPod;
  let agentFlags: string[];

  const applied = async (count: number): Promise<void> => {
    for (const node of cluster.nodes) {
      await eventually(() => {
        const p = node.state().datapath.policy;
        expect(p?.synced).toBe(true);
        expect(p?.policies).toBe(count);
        expect(p?.lastApply?.error).toBeUndefined();
      }, 10_000, 100);
    }
  };

  beforeAll(async () => {
    cluster = SimCluster.create({ label, nodes: 2, datapath });
    policyDir = path.join(cluster.dir, "policies");
    fs.mkdirSync(policyDir);
    const nodeFile = cluster.writeNodeFile();
    const netConf = cluster.writeNetConf({ Network: "10.244.0.0/16", Backend: { Type: "vxlan" } });
    agentFlags = ["--source", "file", "--node-file", nodeFile, "--net-conf", netConf, "--policy-source", "dir", "--policy-dir", policyDir, ...flags];
    await cluster.startAgents(() => agentFlags, { podsPerNode: 0 });
    const [n1, n2] = cluster.nodes as [SimNode, SimNode];
    a = { name: "a", pod: n1.addPod(), node: n1, labels: { app: "a" } };
    b = { name: "b", pod: n1.addPod(), node: n1, labels: { app: "b" } };
    c = { name: "c", pod: n2.addPod(), node: n2, labels: { app: "c" } };
    for (const p of [a, b, c]) servers.push(await startEchoServer(p.pod.ns.name, PORT));
    writeDocument(policyDir, "world.json", [{ apiVersion: "v1", kind: "Namespace", metadata: { name: "default", labels: { team: "one" } } }, ...[a, b, c].map(podDocument)]);
    await applied(0);
  }, 120_000);

  afterAll(async () => {
    for (const server of servers) server.stop();
    await cluster?.close();
  });

  it("allows everything while no policy selects a pod, and says policy is enforced", () => {
    expect(reaches(b.pod, a.pod)).toBe(true);
    expect(reaches(c.pod, a.pod)).toBe(true);
    expect(reaches(a.pod, c.pod)).toBe(true);
    const status = cluster.nodes[0]!.state().datapath.policy!;
    expect(status).toMatchObject({ source: "dir", synced: true, enforced: true, policies: 0, isolatedPods: 0, errors: [] });
  });

  it("denies ingress to an isolated pod from every pod, on this node and across nodes; its own node and its replies pass", async () => {
    writeDocument(policyDir, "deny.json", [policy("deny-a", { podSelector: { matchLabels: { app: "a" } }, policyTypes: ["Ingress"] })]);
    await applied(1);
    expect(reaches(b.pod, a.pod)).toBe(false);
    expect(reaches(c.pod, a.pod)).toBe(false);
    // What a opens still works: its replies come back through its isolated ingress.
    expect(reaches(a.pod, c.pod)).toBe(true);
    expect(reaches(a.pod, b.pod)).toBe(true);
    // kubelet probes: the node's own traffic to its pods is always allowed.
    expect(fromNode(a.node, a.pod)).toBe(true);
    // The others are not isolated.
    expect(reaches(c.pod, b.pod)).toBe(true);

    const state = a.node.state();
    const endpoint = state.datapath.ebpf!.policy.endpoints.find((e) => e.pod === "default/a")!;
    expect(endpoint).toMatchObject({ policies: ["default/deny-a"], egressSet: 0 });
    expect(endpoint.ingressSet).toBeGreaterThan(0);
    expect(endpoint.ingress.denied).toBeGreaterThan(0);
    expect(state.datapath.policy).toMatchObject({ policies: 1, isolatedPods: 1 });
    const metrics = a.node.debugGet("/metrics").body;
    expect(metrics).toMatch(/^weft_policy_packets_total\{pod="default\/a",direction="ingress",verdict="denied",policies="default\/deny-a"\} [1-9]\d*$/m);
    expect(metrics).toMatch(/^weft_policy_isolated_pods 1$/m);
  });

  it("allows the peers a rule selects, and only those", async () => {
    writeDocument(policyDir, "deny.json", [
      policy("deny-a", { podSelector: { matchLabels: { app: "a" } }, policyTypes: ["Ingress"] }),
      policy("a-from-c", { podSelector: { matchLabels: { app: "a" } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: "c" } } }], ports: [{ port: "echo" }] }] }),
    ]);
    await applied(2);
    expect(reaches(c.pod, a.pod)).toBe(true);
    expect(reaches(b.pod, a.pod)).toBe(false);

    // The model's explanation agrees with what the kernel did, and names the rule.
    const allowed = explain(a.node, "default/c", "default/a", `${PORT}/TCP`);
    expect(allowed.status, allowed.stderr).toBe(0);
    expect(allowed.stdout).toMatch(/^ALLOWED: /);
    expect(allowed.stdout).toContain("ingress: isolated by default/a-from-c, default/deny-a; allowed by default/a-from-c ingress[0]");
    const denied = explain(a.node, "default/b", "default/a", `${PORT}/TCP`);
    expect(denied.stdout).toMatch(/^DENIED: /);
    expect(denied.stdout).toContain("no rule allows it");
    expect(explain(a.node, "default/b", "default/a", "80/XTP").stderr).toContain('Invalid --port "80/XTP"');
    expect(explain(a.node, "default/b", "default/zz", "80/TCP").stderr).toContain("no pod default/zz");
  });

  it("names a rejected policy in status and keeps enforcing the others", async () => {
    writeDocument(policyDir, "bad.json", [policy("bad-cidr", { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: "10.0.0.0/33" } }] }] })]);
    await eventually(() => {
      const p = a.node.state().datapath.policy!;
      expect(p.errors.map((e) => `${e.object}: ${e.error}`).join("\n")).toContain("bad-cidr");
    }, 10_000, 100);
    expect(a.node.agentLog()).toContain("Rejecting a NetworkPolicy object");
    expect(reaches(c.pod, a.pod)).toBe(true);
    expect(reaches(b.pod, a.pod)).toBe(false);
    // Not applied: b stays open, as no valid policy selects it.
    expect(reaches(a.pod, b.pod)).toBe(true);
    fs.rmSync(path.join(policyDir, "bad.json"));
  });

  it("keeps enforcing through an agent killed with SIGKILL and its restart", async () => {
    const node = a.node;
    await node.stopAgent("SIGKILL");
    expect(reaches(b.pod, a.pod)).toBe(false);
    expect(reaches(c.pod, a.pod)).toBe(true);
    node.startAgent(agentFlags);
    // While the new agent starts, loads and syncs, the pinned rules stay in force.
    for (let i = 0; i < 3; i++) expect(reaches(b.pod, a.pod)).toBe(false);
    await node.waitReady();
    await applied(2);
    expect(reaches(b.pod, a.pod)).toBe(false);
    expect(reaches(c.pod, a.pod)).toBe(true);
  });

  it("enforces an update among 1,000 policies within a second of the agent seeing it", async () => {
    // 1,000 policies that select pods which do not exist, beside the one under test.
    const others = Array.from({ length: 1_000 }, (_, i) => policy(`other-${i}`, {
      podSelector: { matchLabels: { app: `absent-${i}` } },
      ingress: [{ from: [{ ipBlock: { cidr: `10.${i >> 8}.${i & 255}.0/24` } }], ports: [{ port: 8000 + (i % 100) }] }],
    }));
    writeDocument(policyDir, "others.json", others);
    await applied(1_002);
    expect(reaches(c.pod, a.pod)).toBe(true);
    // Flip c → a from allowed to denied: a-from-c now names b instead.
    writeDocument(policyDir, "deny.json", [
      policy("deny-a", { podSelector: { matchLabels: { app: "a" } }, policyTypes: ["Ingress"] }),
      policy("a-from-c", { podSelector: { matchLabels: { app: "a" } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: "b" } } }] }] }),
    ]);
    const before = a.node.state().datapath.policy!.applies;
    await eventually(() => expect(a.node.state().datapath.policy!.applies).toBeGreaterThan(before), 10_000, 50);
    const apply = a.node.state().datapath.policy!.lastApply!;
    expect(apply.error).toBeUndefined();
    // The agent's whole compile-and-write at 1,002 policies (docs/benchmarks.md has the measured figures).
    expect(apply.ms).toBeLessThan(1_000);
    expect(reaches(c.pod, a.pod)).toBe(false);
    expect(reaches(b.pod, a.pod)).toBe(true);
    fs.rmSync(path.join(policyDir, "others.json"));
    writeDocument(policyDir, "deny.json", [
      policy("deny-a", { podSelector: { matchLabels: { app: "a" } }, policyTypes: ["Ingress"] }),
      policy("a-from-c", { podSelector: { matchLabels: { app: "a" } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: "c" } } }], ports: [{ port: "echo" }] }] }),
    ]);
    await applied(2);
  });

  it("opens the pod again when its policies are removed", async () => {
    fs.rmSync(path.join(policyDir, "deny.json"));
    await applied(0);
    expect(reaches(b.pod, a.pod)).toBe(true);
    expect(a.node.state().datapath.ebpf!.policy).toMatchObject({ active: false, sets: 0, entries: 0, endpoints: [] });
  });
});
