// Services beside kube-proxy: 3 nodes with the real agent and plugin, in each datapath mode, and in every node's
// namespace the rules kube-proxy's iptables mode writes (fed to iptables-restore --noflush, as kube-proxy applies
// them; Debian's iptables 1.8, the nf_tables backend) for
//   - Service "echo": ClusterIP 10.96.0.10:80 and NodePort 30080 → pods b2 (node-2) and b3 (node-3), port 7013;
//   - Service "local": ClusterIP 10.96.0.11:80 → b2 only, so node-2's other pod has a backend on its own bridge.
// Every pod reaches the ClusterIPs from both backends: the handshake completes only when the replies come back
// from the virtual IP, and the echo returns. Pods keep their own source address, except a backend reaching itself
// (kube-proxy masquerades the hairpin). Each node's host reaches the ClusterIP through OUTPUT, masqueraded; the
// NodePort works on every node from another node's host and from the external host, masqueraded to the node that
// received it. In ebpf mode the counters show the NAT'd replies taken to the kernel path (from_tunnel_pass_nat on
// the client's node when the backend is remote, from_pod_pass_nat on the backend's node when the client is beside
// it), and plain pod↔pod traffic still on the fast path with no NAT verdict.
//
// A direct connection that reuses the source port of a Service connection to the same backend (Linux shares a
// source port between connections to different destinations) needs conntrack to see the clash and give it another
// port; the eBPF path used to send it past conntrack, and it failed (native/bpf/lib/conntrack.h now sends such a
// flow's first packet to the kernel).
//
// br_netfilter, as found on this kernel (6.18, CONFIG_BRIDGE_NETFILTER=y: built in, nothing to load): every new
// namespace has /proc/sys/net/bridge/ with bridge-nf-call-iptables=1, so the nodes' namespaces pass bridged IPv4
// frames through iptables and conntrack. Two pods of one bridge talking through a Service need that: the request
// goes to the bridge's MAC and is DNATed, but the backend answers the client directly, bridged; only br_netfilter
// makes that reply meet conntrack and leave as the virtual IP. Set to 0, the client gets an answer from the
// backend's own address and the connection fails, in both modes (tested below), while clients on other nodes,
// whose replies are routed, keep working. The eBPF path behaves as the kernel path here: from_pod finds the
// reply's NAT'd entry and hands the packet to the bridge (TC_ACT_OK, from_pod_pass_nat), not to the client's
// namespace, so it needs br_netfilter just the same. Without br_netfilter only masquerading helps (the reply then
// goes to the bridge's address and is routed): kube-proxy does it for the hairpin case, --masquerade-all for all.
// Hairpin: a backend reaching itself through its Service is masqueraded to the bridge's address (KUBE-SEP-*'s
// "-s <itself> -j KUBE-MARK-MASQ"); with br_netfilter the DNATed frame is bridged back out of the port it came
// in on, which the bridge does only in hairpin mode (the plugin's hairpinMode, default true; tested below).
// Without br_netfilter that flow is routed and needs no hairpin mode.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hostVethName } from "../../cni/host-veth";
import { SimCluster, type SimNode, type SimPod } from "../support/cluster";
import { kubeProxyRules } from "../support/kube-proxy-rules";

const BACKEND_PORT = 7013;
const CLUSTER_CIDR = "10.244.0.0/16";
const ECHO = { name: "weft-e2e/echo:http", clusterIp: "10.96.0.10", port: 80, nodePort: 30080 };
const LOCAL = { name: "weft-e2e/local:http", clusterIp: "10.96.0.11", port: 80 };

// ---- traffic -------------------------------------------------------------------------------------------------

/** Answers one line with what it saw: the line, its own address (the backend) and the client's address. */
const SERVER = `
const net = require("node:net");
const plain = (a) => String(a).replace(/^::ffff:/, "");
net.createServer((socket) => {
  let buffer = "";
  socket.on("error", () => {});
  socket.on("data", (data) => {
    buffer += data;
    const end = buffer.indexOf("\\n");
    if (end >= 0) socket.end(JSON.stringify({ echo: buffer.slice(0, end), server: plain(socket.localAddress), client: plain(socket.remoteAddress), clientPort: socket.remotePort }));
  });
}).listen(Number(process.argv[1]), "::", () => process.stdout.write("listening\\n"));
`;

/**
 * Connects to host:port up to <attempts> times, one connection after the other, until <distinct> backends have
 * answered or a connection fails; prints one JSON array of the results.
 */
const CLIENT = `
const net = require("node:net");
const [host, port, attempts, distinct, timeoutMs] = [process.argv[1], ...process.argv.slice(2).map(Number)];
const once = (i) => new Promise((resolve) => {
  const message = "weft-svc-" + process.pid + "-" + i;
  const socket = net.connect({ host, port });
  let received = "";
  let local = "";
  const timer = setTimeout(() => done({ ok: false, error: "timeout" }), timeoutMs);
  function done(result) { clearTimeout(timer); socket.destroy(); resolve(result); }
  socket.on("connect", () => { local = socket.localAddress; socket.write(message + "\\n"); });
  socket.on("data", (data) => (received += data));
  socket.on("end", () => {
    let reply;
    try { reply = JSON.parse(received); } catch { return done({ ok: false, error: "not JSON: " + received }); }
    done(reply.echo === message ? { ok: true, local, server: reply.server, client: reply.client } : { ok: false, error: "echo " + received });
  });
  socket.on("error", (error) => done({ ok: false, error: String(error) }));
});
(async () => {
  const results = [];
  const servers = new Set();
  for (let i = 0; i < attempts; i++) {
    const result = await once(i);
    results.push(result);
    if (!result.ok) break;
    servers.add(result.server);
    if (servers.size >= distinct) break;
  }
  process.stdout.write(JSON.stringify(results));
})();
`;

/**
 * Two connections from one source port: first to <host1>:<port1> (a Service), then — the first still open, or
 * closed (its conntrack entry in TIME_WAIT) — to <host2>:<port2> (the backend pod itself). Linux shares a source
 * port between connections to different destinations, so a client may pick one its Service connection uses.
 */
const SAME_PORT_CLIENT = `
const net = require("node:net");
const [host1, port1, host2, port2, localPort, keepOpen] = [process.argv[1], Number(process.argv[2]), process.argv[3], Number(process.argv[4]), Number(process.argv[5]), process.argv[6] === "open"];
const exchange = (host, port, tag) => new Promise((resolve) => {
  const socket = net.connect({ host, port, localPort });
  let received = "";
  const timer = setTimeout(() => resolve({ socket, result: { ok: false, error: "timeout" } }), 2000);
  socket.on("connect", () => socket.write(tag + "\\n"));
  socket.on("data", (data) => (received += data));
  socket.on("end", () => { clearTimeout(timer); const reply = JSON.parse(received); resolve({ socket, result: { ok: reply.echo === tag, server: reply.server, client: reply.client, clientPort: reply.clientPort } }); });
  socket.on("error", (error) => { clearTimeout(timer); resolve({ socket, result: { ok: false, error: String(error) } }); });
});
(async () => {
  const first = await exchange(host1, port1, "first");
  if (!keepOpen) first.socket.destroy();
  await new Promise((r) => setTimeout(r, 200));
  const second = await exchange(host2, port2, "second");
  first.socket.destroy();
  second.socket.destroy();
  process.stdout.write(JSON.stringify([first.result, second.result]));
  process.exit(0);
})();
`;

interface Connection {
  ok: boolean;
  error?: string;
  /** The client socket's own address. */
  local?: string;
  /** The backend that answered, and the client address it saw. */
  server?: string;
  client?: string;
  clientPort?: number;
}

/** Connections from `netnsName` to host:port until `distinct` backends answered (at most `attempts`). */
function connect(netnsName: string, host: string, port: number, options: { attempts?: number; distinct?: number; timeoutMs?: number } = {}): Connection[] {
  const { attempts = 1, distinct = 1, timeoutMs = 2000 } = options;
  const child = spawnSync("ip", ["netns", "exec", netnsName, process.execPath, "-e", CLIENT, host, String(port), String(attempts), String(distinct), String(timeoutMs)], {
    encoding: "utf8",
    timeout: attempts * timeoutMs + 10_000,
  });
  try {
    return JSON.parse(child.stdout) as Connection[];
  } catch {
    return [{ ok: false, error: `client printed ${JSON.stringify(child.stdout)}, stderr ${child.stderr.trim()}` }];
  }
}

async function startServer(netnsName: string, port: number): Promise<ChildProcess> {
  const child = spawn("ip", ["netns", "exec", netnsName, process.execPath, "-e", SERVER, String(port)], { stdio: ["ignore", "pipe", "pipe"] });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server in ${netnsName} did not start`)), 10_000);
    child.stdout!.on("data", (data: Buffer) => {
      if (data.toString().includes("listening")) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`server in ${netnsName} exited with ${code}`));
    });
  });
  child.removeAllListeners("exit");
  return child;
}

function counters(node: SimNode): Record<string, number> {
  return node.state().datapath.ebpf!.counters as Record<string, number>;
}

function bridgeNfCallIptables(node: SimNode): string {
  return node.ns.exec(["cat", "/proc/sys/net/bridge/bridge-nf-call-iptables"]).trim();
}

// ---- the tests -----------------------------------------------------------------------------------------------

for (const datapath of ["kernel", "ebpf"] as const) {
  describe(`Services through kube-proxy's iptables rules, 3 nodes, vxlan, --datapath ${datapath}`, () => {
    let cluster: SimCluster;
    const servers: ChildProcess[] = [];
    let b2: SimPod;
    let b3: SimPod;
    /** Every pod, with its node. */
    let pods: { node: SimNode; pod: SimPod }[];
    /** The ebpf counters when the rules went in, by node name. */
    const before = new Map<string, Record<string, number>>();

    beforeAll(async () => {
      cluster = SimCluster.create({ label: datapath === "kernel" ? "svk" : "sve", nodes: 3, datapath });
      const nodeFile = cluster.writeNodeFile();
      const netConf = cluster.writeNetConf({ Network: CLUSTER_CIDR, SubnetLen: 24, Backend: { Type: "vxlan" } });
      await cluster.startAgents(() => ["--source", "file", "--node-file", nodeFile, "--net-conf", netConf], { podsPerNode: 2, timeoutMs: 60_000 });
      pods = cluster.nodes.flatMap((node) => node.pods.map((pod) => ({ node, pod })));
      for (const { pod } of pods) servers.push(await startServer(pod.ns.name, BACKEND_PORT));
      b2 = cluster.nodes[1]!.pods[0]!;
      b3 = cluster.nodes[2]!.pods[0]!;
      const rules = kubeProxyRules(CLUSTER_CIDR, [
        { ...ECHO, endpoints: [`${b2.ip}:${BACKEND_PORT}`, `${b3.ip}:${BACKEND_PORT}`] },
        { ...LOCAL, endpoints: [`${b2.ip}:${BACKEND_PORT}`] },
      ]);
      for (const node of cluster.nodes) node.ns.exec(["iptables-restore", "--noflush"], { input: rules });
      if (datapath === "ebpf") for (const node of cluster.nodes) before.set(node.name, counters(node));
    }, 120_000);

    afterAll(async () => {
      for (const server of servers) if (server.exitCode === null) server.kill("SIGTERM");
      await cluster?.close();
    });

    it("has kube-proxy's chains in every node's nat table, beside weft's own nftables table", () => {
      for (const node of cluster.nodes) {
        const nat = node.ns.exec(["iptables", "-t", "nat", "-S"]);
        expect(nat).toContain("-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES");
        expect(nat).toMatch(/-A KUBE-SVC-\w+ .*-m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-\w+/);
        expect(nat).toContain(`-j DNAT --to-destination ${b3.ip}:${BACKEND_PORT}`);
        expect(node.ns.exec(["nft", "list", "tables"])).toContain(`table inet weft`);
      }
    });

    it("carries TCP from every pod to a two-backend ClusterIP, answered by the virtual IP, from both backends", () => {
      const failures: string[] = [];
      for (const { node, pod } of pods) {
        // Until both backends answered: a pod beside a backend reaches it over its own bridge, and the other over
        // the tunnel (p < 2^-23 that one backend never comes up).
        const results = connect(pod.ns.name, ECHO.clusterIp, ECHO.port, { attempts: 24, distinct: 2 });
        const where = `${node.name}/${pod.ip} → ${ECHO.clusterIp}:${ECHO.port}`;
        for (const r of results) {
          if (!r.ok) failures.push(`${where}: ${r.error}`);
          // A backend reaching itself is masqueraded to its bridge's address (kube-proxy's hairpin rule).
          else if (r.client !== (r.server === pod.ip ? `10.244.${node.index}.1` : pod.ip)) failures.push(`${where}: ${r.server} saw the client as ${r.client}`);
        }
        const answered = new Set(results.filter((r) => r.ok).map((r) => r.server));
        if (answered.size !== 2 || !answered.has(b2.ip) || !answered.has(b3.ip)) failures.push(`${where}: answered by ${[...answered].join(", ")}`);
      }
      expect(failures).toEqual([]);
    });

    it("carries TCP to a ClusterIP whose only backend is on the client's own bridge (and to itself, hairpin)", () => {
      const failures: string[] = [];
      for (const { node, pod } of pods) {
        for (const r of connect(pod.ns.name, LOCAL.clusterIp, LOCAL.port, { attempts: 3, distinct: 2 })) {
          const where = `${node.name}/${pod.ip} → ${LOCAL.clusterIp}`;
          if (!r.ok) failures.push(`${where}: ${r.error}`);
          else if (r.server !== b2.ip) failures.push(`${where}: answered by ${r.server}`);
          else if (r.client !== (pod === b2 ? "10.244.2.1" : pod.ip)) failures.push(`${where}: seen as ${r.client}`);
        }
      }
      expect(failures).toEqual([]);
    });

    it("carries TCP from each node's host to the ClusterIP, masqueraded to that node's pod subnet", () => {
      const failures: string[] = [];
      for (const node of cluster.nodes) {
        for (const r of connect(node.ns.name, ECHO.clusterIp, ECHO.port, { attempts: 24, distinct: 2 })) {
          if (!r.ok) failures.push(`${node.name} host → ${ECHO.clusterIp}: ${r.error}`);
          else if (!r.client?.startsWith(`10.244.${node.index}.`)) failures.push(`${node.name} host → ${r.server}: seen as ${r.client}`);
        }
      }
      expect(failures).toEqual([]);
    });

    it("serves the NodePort on every node, from another node's host and from the external host, masqueraded", () => {
      const failures: string[] = [];
      for (const node of cluster.nodes) {
        const other = cluster.nodes[node.index % cluster.nodes.length]!;
        for (const [from, netns] of [[`${other.name} host`, other.ns.name], ["external", cluster.external.name]] as const) {
          const results = connect(netns, node.ip, ECHO.nodePort, { attempts: 24, distinct: 2 });
          for (const r of results) {
            if (!r.ok) failures.push(`${from} → ${node.name} ${node.ip}:${ECHO.nodePort}: ${r.error}`);
            else if (!r.client?.startsWith(`10.244.${node.index}.`)) failures.push(`${from} → ${node.name}:${ECHO.nodePort} → ${r.server}: seen as ${r.client}`);
          }
          if (new Set(results.filter((r) => r.ok).map((r) => r.server)).size !== 2) failures.push(`${from} → ${node.name}: not both backends`);
        }
      }
      expect(failures).toEqual([]);
    });

    // The eBPF datapath's own check (the kernel path has no programs to count): defined in that mode only.
    if (datapath === "ebpf") it("took the NAT'd replies to the kernel path: conntrack undid the DNAT", () => {
      const grew = (node: SimNode, name: string) => (counters(node)[name] ?? 0) - (before.get(node.name)![name] ?? 0);
      const [n1, n2, n3] = cluster.nodes as [SimNode, SimNode, SimNode];
      // node-1 has no backend: its pods' replies come back through the tunnel, NAT'd on node-1.
      expect(grew(n1, "from_tunnel_pass_nat"), "node-1 from_tunnel_pass_nat").toBeGreaterThan(0);
      // A backend answering a client beside it: the reply leaves the backend's veth for a local pod, NAT'd here.
      expect(grew(n2, "from_pod_pass_nat"), "node-2 from_pod_pass_nat").toBeGreaterThan(0);
      expect(grew(n3, "from_pod_pass_nat"), "node-3 from_pod_pass_nat").toBeGreaterThan(0);
      // node-2's client answered by b3 (and node-3's by b2): the reply crossed the tunnel to a NAT'd flow.
      expect(grew(n2, "from_tunnel_pass_nat"), "node-2 from_tunnel_pass_nat").toBeGreaterThan(0);
      expect(grew(n3, "from_tunnel_pass_nat"), "node-3 from_tunnel_pass_nat").toBeGreaterThan(0);
      for (const node of cluster.nodes) {
        // (Not to_tunnel_drop_miss: the VTEP's own IPv6 link-local chatter in its first seconds has no node to go to.)
        expect(grew(node, "from_pod_pass_error") + grew(node, "from_tunnel_pass_error"), `${node.name} errors`).toBe(0);
      }
    });

    it("still carries plain pod↔pod TCP with pod addresses (in ebpf mode on the fast path, none of it NAT'd)", () => {
      const start = datapath === "ebpf" ? new Map(cluster.nodes.map((node) => [node.name, counters(node)])) : undefined;
      const failures: string[] = [];
      for (const from of pods) {
        for (const to of pods) {
          if (from === to) continue;
          const [r] = connect(from.pod.ns.name, to.pod.ip, BACKEND_PORT);
          if (!r?.ok) failures.push(`${from.pod.ip} → ${to.pod.ip}: ${r?.error}`);
          else if (r.client !== from.pod.ip || r.server !== to.pod.ip) failures.push(`${from.pod.ip} → ${to.pod.ip}: ${JSON.stringify(r)}`);
        }
      }
      expect(failures).toEqual([]);
      if (!start) return;
      for (const node of cluster.nodes) {
        const now = counters(node);
        const grew = (name: string) => (now[name] ?? 0) - (start.get(node.name)![name] ?? 0);
        // 30 connections, each at least 3 packets each way.
        expect(grew("from_pod_local"), `${node.name} from_pod_local`).toBeGreaterThan(5);
        expect(grew("from_pod_remote"), `${node.name} from_pod_remote`).toBeGreaterThan(20);
        expect(grew("from_tunnel_local"), `${node.name} from_tunnel_local`).toBeGreaterThan(20);
        expect(grew("from_pod_pass_nat") + grew("from_tunnel_pass_nat"), `${node.name} NAT verdicts`).toBe(0);
      }
    });

    it("carries a direct connection that reuses the source port of a Service connection to the same backend", () => {
      const start = datapath === "ebpf" ? counters(cluster.nodes[0]!) : undefined;
      // From another node (the NAT'd entry on the client's node, the backend behind the tunnel) and from the
      // backend's own bridge; with the Service connection still open, and closed (its entry in TIME_WAIT).
      const failures: string[] = [];
      let localPort = 40_100;
      for (const client of [cluster.nodes[0]!.pods[0]!, cluster.nodes[1]!.pods[1]!]) {
        for (const mode of ["open", "closed"]) {
          localPort++;
          const argv = [LOCAL.clusterIp, String(LOCAL.port), b2.ip, String(BACKEND_PORT), String(localPort), mode];
          const child = spawnSync("ip", ["netns", "exec", client.ns.name, process.execPath, "-e", SAME_PORT_CLIENT, ...argv], { encoding: "utf8", timeout: 15_000 });
          const [first, second] = JSON.parse(child.stdout || "[]") as Connection[];
          const from = `${client.ip}:${localPort}`;
          if (!first?.ok) failures.push(`${mode}: ${from} → ${LOCAL.clusterIp}: ${first?.error ?? child.stderr}`);
          if (!second?.ok) failures.push(`${mode}: ${from} → ${b2.ip}:${BACKEND_PORT}: ${second?.error ?? child.stderr}`);
          else if (second.client !== client.ip) failures.push(`${mode}: ${from} → ${b2.ip}: seen as ${second.client}`);
          // conntrack saw the clash and gave the direct flow another source port (in ebpf mode too: its first
          // packet was sent to the kernel path).
          else if (second.clientPort === localPort) failures.push(`${mode}: ${from} → ${b2.ip}: kept its port, the same flow as the Service's to ${b2.ip}`);
        }
      }
      expect(failures).toEqual([]);
      // node-1's client: the direct flow's packets left its veth for the kernel path (the Service flow's do anyway,
      // to the virtual IP, as from_pod_pass_miss).
      if (start) expect(counters(cluster.nodes[0]!).from_pod_pass_nat! - start.from_pod_pass_nat!).toBeGreaterThan(0);
    });

    it("needs br_netfilter for a Service between two pods of one bridge: without it, the reply is bridged un-NAT'd", () => {
      const node = cluster.nodes[1]!;
      const client = node.pods[1]!;
      // Built into this kernel, and on in every new namespace.
      expect(bridgeNfCallIptables(node)).toBe("1");
      node.ns.exec(["sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=0"]);
      let without: Connection[];
      try {
        without = connect(client.ns.name, LOCAL.clusterIp, LOCAL.port, { timeoutMs: 1500 });
        // A backend on another node is unaffected: its reply is routed, not bridged.
        const remote = connect(cluster.nodes[0]!.pods[0]!.ns.name, LOCAL.clusterIp, LOCAL.port);
        expect(remote[0], remote[0]?.error).toMatchObject({ ok: true, server: b2.ip });
      } finally {
        node.ns.exec(["sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1"]);
      }
      expect(without[0]).toMatchObject({ ok: false });
      const again = connect(client.ns.name, LOCAL.clusterIp, LOCAL.port);
      expect(again[0], again[0]?.error).toMatchObject({ ok: true, server: b2.ip, client: client.ip });
    });

    it("needs hairpin mode on a backend's bridge port for it to reach itself through its Service (br_netfilter bridges it back)", () => {
      const node = cluster.nodes[1]!;
      const veth = hostVethName(b2.containerId, "eth0");
      // The plugin's hairpinMode (default true) set it.
      expect(node.ns.exec(["bridge", "-d", "link", "show", "dev", veth])).toMatch(/hairpin on/);
      node.ns.exec(["bridge", "link", "set", "dev", veth, "hairpin", "off"]);
      let without: Connection[];
      try {
        without = connect(b2.ns.name, LOCAL.clusterIp, LOCAL.port, { timeoutMs: 1500 });
      } finally {
        node.ns.exec(["bridge", "link", "set", "dev", veth, "hairpin", "on"]);
      }
      expect(without[0]).toMatchObject({ ok: false });
      const again = connect(b2.ns.name, LOCAL.clusterIp, LOCAL.port);
      expect(again[0], again[0]?.error).toMatchObject({ ok: true, server: b2.ip, client: "10.244.2.1" });
    });
  });
}
