// The simulated cluster the pod-to-pod benchmarks share (datapath.mjs, policy.mjs): an underlay namespace with a
// plain L2 bridge, nodes as namespaces with eth0 on it, weft's nodes running the real dist/weft-agent on the file
// source (pins under <temp dir>/bpf/<node>, on a bpffs of the run's own), pods made by the real dist/weft from the
// conflist the agent wrote, iperf3 and sockperf between them. Everything is named wft-bench-<id>-*; `cleanup()`
// ends the processes by PID, removes the namespaces and unmounts the bpffs, also after a failure.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { BenchNamespaces, ipIn, run, unmountUnder } from "./lib.mjs";

export const sleep = (delay) => new Promise((resolve) => setTimeout(resolve, delay));

const UNDERLAY = "192.168.90";
const IPERF_PORT = 5201;
const RR_PORT = 11111;

export class BenchTopology {
  netns = new BenchNamespaces();
  prefix = this.netns.prefix;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), this.prefix));
  bpfRoot = path.join(this.tmp, "bpf");
  processes = new Set();
  #servers = new Map();
  #ports = 0;
  #pods = 0;
  #cleaning;

  /** `name`: the benchmark's, for messages; `dist`: where weft and weft-agent are; `pin`: clients on CPU 0, servers on CPU 1. */
  constructor({ name, dist, pin }) {
    this.name = name;
    this.agent = path.join(dist, "weft-agent");
    this.weft = path.join(dist, "weft");
    this.dist = dist;
    this.pin = pin && os.cpus().length >= 2;
  }

  inNs(ns, command, ...args) {
    return run("nsenter", [`--net=/run/netns/${ns}`, command, ...args]);
  }

  /** The command line of a client (CPU 0) or server (CPU 1), pinned unless pinning is off. */
  pinned(cpu, command, ...args) {
    return this.pin ? ["taskset", "-c", String(cpu), command, ...args] : [command, ...args];
  }

  /**
   * RPS on the node's eth0: its received packets are processed (decapsulated, forwarded, delivered) on `cpu`, as a
   * NIC's RSS/aRFS would put them near the application. `ip netns exec` mounts the namespace's own /sys.
   */
  steerReceive(ns, cpu) {
    run("ip", ["netns", "exec", ns, "sh", "-c", `echo ${(1 << cpu).toString(16)} > /sys/class/net/eth0/queues/rx-0/rps_cpus`]);
  }

  /** Starts a long-running process; ended by PID in cleanup. */
  startProcess(command, args, { env, logFile }) {
    const out = fs.openSync(logFile, "a");
    const child = spawn(command, args, { stdio: ["ignore", out, out], env: { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin", ...env } });
    fs.closeSync(out);
    const entry = { child, pid: child.pid, logFile, exit: undefined };
    entry.exited = new Promise((resolve) => child.on("exit", (code, signal) => {
      entry.exit = code ?? signal;
      resolve();
    }));
    this.processes.add(entry);
    return entry;
  }

  /** The tools every pod-to-pod benchmark needs, and the build; throws naming what is missing. */
  requireTools(extra = {}) {
    if (process.getuid?.() !== 0) throw new Error("needs root (network namespaces, a bpf filesystem)");
    const packages = { ip: "iproute2", bridge: "iproute2", nsenter: "util-linux", taskset: "util-linux", mount: "mount", umount: "mount", nft: "nftables", iperf3: "iperf3", sockperf: "sockperf", ...extra };
    const missing = Object.entries(packages).filter(([tool]) => spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0);
    if (missing.length) throw new Error(`missing ${missing.map(([tool]) => tool).join(", ")}: apt-get install ${[...new Set(missing.map(([, p]) => p))].join(" ")}`);
    for (const file of [this.agent, this.weft, path.join(this.dist, "agent", "bpf", "from_pod.o"), path.join(this.dist, "agent", "bpf", "vtep.o")]) {
      if (!fs.existsSync(file)) throw new Error(`${file} is missing: run npm run build first`);
    }
  }

  /** The bpffs of the run on <temp dir>/bpf and the underlay namespace with its bridge br0. */
  setUp() {
    fs.mkdirSync(this.bpfRoot);
    run("mount", ["-t", "bpf", "bpf", this.bpfRoot]);
    this.underlay = this.netns.add("underlay");
    ipIn(this.underlay, "link", "add", "br0", "type", "bridge");
    ipIn(this.underlay, "link", "set", "br0", "up");
  }

  /** A node: a namespace with eth0 (veth into the underlay bridge) at 192.168.90.<host>/24, forwarding on. */
  addNode(label, host) {
    const ns = this.netns.add(label);
    const port = `p${this.#ports++}`;
    ipIn(this.underlay, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns);
    ipIn(this.underlay, "link", "set", port, "master", "br0", "up");
    this.inNs(ns, "sysctl", "-qw", "net.ipv4.ip_forward=1");
    ipIn(ns, "addr", "add", `${UNDERLAY}.${host}/24`, "dev", "eth0");
    ipIn(ns, "link", "set", "eth0", "up");
    return { ns, ip: `${UNDERLAY}.${host}`, label };
  }

  /**
   * Two weft nodes running the real agent on the file source with `--datapath <datapath>` (and `agentArgs`),
   * pinning under <temp dir>/bpf/<node> — kernel mode gets it too, as it removes what an eBPF run pinned there;
   * pods made by dist/weft from the agent's conflist.
   */
  async weftCluster(key, { backend, network, ipMasq, firstHost, datapath, agentArgs = [] }) {
    const dir = path.join(this.tmp, key);
    fs.mkdirSync(dir, { recursive: true });
    const nodes = [1, 2].map((i) => ({ ...this.addNode(`${key}${i}`, firstHost + i - 1), name: `${key}-node-${i}`, dir: path.join(dir, `node-${i}`), podCidr: network.replace(".0.0/16", `.${i}.0/24`) }));
    const nodeFile = path.join(dir, "nodes.json");
    fs.writeFileSync(nodeFile, JSON.stringify({ nodes: nodes.map((n) => ({ name: n.name, podCidrs: [n.podCidr], publicIp: n.ip })) }));
    const netConf = path.join(dir, "net-conf.json");
    fs.writeFileSync(netConf, JSON.stringify({ Network: network, SubnetLen: 24, Backend: { Type: backend } }));
    for (const node of nodes) {
      fs.mkdirSync(node.dir, { recursive: true });
      node.conflist = path.join(node.dir, "net.d", "10-weft.conflist");
      node.datapath = datapath;
      node.agent = this.startProcess("nsenter", [
        `--net=/run/netns/${node.ns}`, this.agent,
        "--node-name", node.name, "--source", "file", "--node-file", nodeFile, "--net-conf", netConf,
        "--cni-conf-dir", path.join(node.dir, "net.d"), "--subnet-file", path.join(node.dir, "subnet.env"),
        "--state-dir", path.join(node.dir, "state"), "--ipam-data-dir", path.join(node.dir, "ipam"),
        "--debug-addr", "127.0.0.1:9476", `--ip-masq=${ipMasq}`, "--datapath", datapath, "--bpf-dir", path.join(this.bpfRoot, node.name),
        ...agentArgs,
      ], { env: { WEFT_CACHE_DIR: path.join(node.dir, "cache") }, logFile: path.join(node.dir, "agent.log") });
    }
    for (const node of nodes) await this.waitReady(node);
    for (const node of nodes) node.pods = [];
    return nodes;
  }

  /** `weft-agent status --json` inside the node: the state, or `{ error }` when the agent cannot be reached. */
  agentState(node) {
    const file = path.join(node.dir, "status.json");
    const out = fs.openSync(file, "w");
    const result = spawnSync("nsenter", [`--net=/run/netns/${node.ns}`, this.agent, "status", "--json", "--debug-addr", "127.0.0.1:9476"], { stdio: ["ignore", out, "pipe"], encoding: "utf8" });
    fs.closeSync(out);
    if (result.status !== 0 && result.status !== 1) return { error: result.stderr || `exit ${result.status}` };
    try {
      return { state: JSON.parse(fs.readFileSync(file, "utf8")) };
    } catch (error) {
      return { error: String(error) };
    }
  }

  /** The state, or a throw naming the node. */
  state(node) {
    const { state, error } = this.agentState(node);
    if (!state) throw new Error(`${node.name}: weft-agent status: ${error}`);
    return state;
  }

  /**
   * Until `weft-agent status` says ready with the other node programmed (and masq in place when on), in the
   * datapath mode asked for.
   */
  async waitReady(node) {
    const deadline = Date.now() + 60_000;
    let last = "";
    while (Date.now() < deadline) {
      if (node.agent.exit !== undefined) throw new Error(`${node.name}: weft-agent exited (${node.agent.exit}):\n${fs.readFileSync(node.agent.logFile, "utf8").slice(-3000)}`);
      const { state, error } = this.agentState(node);
      if (state) {
        last = JSON.stringify(state.readiness);
        const mode = state.datapath?.mode;
        if (mode !== undefined && mode !== node.datapath) throw new Error(`${node.name}: datapath ${mode} (${state.datapath.reason}), not ${node.datapath}`);
        if (state.readiness?.ready && state.peers?.filter((p) => p.status === "programmed").length === 1) return;
      } else {
        last = error;
      }
      await sleep(200);
    }
    throw new Error(`${node.name}: weft-agent not ready in 60 s (${last}):\n${fs.readFileSync(node.agent.logFile, "utf8").slice(-3000)}`);
  }

  /** A pod on a weft node: dist/weft ADD, run like a runtime runs it (nsenter into the node, config on stdin). */
  addWeftPod(node) {
    const ns = this.netns.add(`${node.label}-pod${node.pods.length}`);
    const conflist = JSON.parse(fs.readFileSync(node.conflist, "utf8"));
    const config = { cniVersion: conflist.cniVersion, name: conflist.name, ...conflist.plugins[0] };
    const result = spawnSync("nsenter", [`--net=/run/netns/${node.ns}`, this.weft], {
      input: JSON.stringify(config),
      encoding: "utf8",
      env: {
        PATH: process.env.PATH, CNI_COMMAND: "ADD", CNI_CONTAINERID: `${this.prefix}c${this.#pods++}`, CNI_NETNS: `/run/netns/${ns}`,
        CNI_IFNAME: "eth0", CNI_PATH: "/usr/lib/cni", WEFT_CACHE_DIR: path.join(node.dir, "cache"),
      },
    });
    if (result.status !== 0) throw new Error(`${node.name}: weft ADD failed (${result.status}): ${result.stdout}${result.stderr}`);
    // An eBPF pod whose ADD could not attach it still works, over the kernel path: its row would measure that.
    if (node.datapath === "ebpf" && /takes the kernel path/.test(result.stderr)) throw new Error(`${node.name}: ${result.stderr.trim()}`);
    const ip = JSON.parse(result.stdout).ips[0].address.split("/")[0];
    const pod = { ns, ip, node };
    node.pods.push(pod);
    return pod;
  }

  /** iperf3 and sockperf servers in `ns` for `ip`, once. */
  async ensureServers(ns, ip) {
    const key = `${ns} ${ip}`;
    if (this.#servers.has(key)) return;
    const log = path.join(this.tmp, `servers-${ns}.log`);
    const iperf = this.startProcess("nsenter", [`--net=/run/netns/${ns}`, ...this.pinned(1, "iperf3", "-s", "-B", ip, "-p", String(IPERF_PORT))], { logFile: log });
    const sockperf = this.startProcess("nsenter", [`--net=/run/netns/${ns}`, ...this.pinned(1, "sockperf", "server", "--tcp", "-i", ip, "-p", String(RR_PORT))], { logFile: log });
    this.#servers.set(key, [iperf, sockperf]);
    await sleep(300);
    for (const server of [iperf, sockperf]) if (server.exit !== undefined) throw new Error(`server in ${ns} exited (${server.exit}): ${fs.readFileSync(log, "utf8")}`);
  }

  /** iperf3, 1 TCP stream for `duration` s after 1 s of ramp-up: Gbit/s received and the sender's retransmits. */
  throughput(from, to, duration) {
    const out = this.inNs(from, ...this.pinned(0, "iperf3", "-c", to, "-p", String(IPERF_PORT), "-t", String(duration), "-O", "1", "-J"));
    const report = JSON.parse(out);
    if (report.error) throw new Error(`iperf3 ${from} → ${to}: ${report.error}`);
    // The sender's retransmitted segments (TCP_INFO), over the measured seconds; NaN where iperf3 has none.
    return { gbits: report.end.sum_received.bits_per_second / 1e9, retransmits: Number(report.end.sum_sent?.retransmits ?? Number.NaN) };
  }

  /** sockperf TCP ping-pong for `duration` s with `message`-byte messages: p50 and p99 round trip, µs. */
  latency(from, to, { duration, message }) {
    const out = this.inNs(from, ...this.pinned(0, "sockperf", "ping-pong", "--tcp", "-i", to, "-p", String(RR_PORT), "-t", String(duration), "-m", String(message), "--full-rtt"));
    const text = out.replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g"), ""); // sockperf's colours
    const percentile = (p) => {
      const match = new RegExp(`percentile ${p} =\\s+([0-9.]+)`).exec(text);
      if (!match) throw new Error(`sockperf ${from} → ${to}: no percentile ${p} in its output:\n${text.slice(-1500)}`);
      return Number(match[1]);
    };
    return { p50: percentile("50.000"), p99: percentile("99.000") };
  }

  /** The eBPF datapath's packet counters of a node (weft-agent status), by name. */
  ebpfCounters(node) {
    const state = this.state(node);
    const counters = state.datapath?.ebpf?.counters;
    if (!counters) throw new Error(`${node.name}: no eBPF counters in weft-agent status (datapath ${state.datapath?.mode})`);
    return counters;
  }

  /** Ends processes (by PID), removes namespaces, unmounts what is mounted under the temp dir, removes it. Once. */
  cleanup() {
    this.#cleaning ??= (async () => {
      for (const entry of [...this.processes]) {
        if (entry.exit === undefined) {
          try {
            process.kill(entry.pid, "SIGKILL");
          } catch {
            // already gone
          }
          await entry.exited;
        }
        this.processes.delete(entry);
      }
      this.netns.removeAll();
      // The bpffs, and any an agent mounted itself below it had ours failed; the pins go with it.
      const stillMounted = unmountUnder(this.tmp);
      if (stillMounted.length) process.stderr.write(`${this.name}: still mounted, ${this.tmp} kept: ${stillMounted.join(", ")}\n`);
      else if (process.env.WEFT_BENCH_KEEP === "1") process.stderr.write(`${this.name}: kept ${this.tmp}\n`);
      else fs.rmSync(this.tmp, { recursive: true, force: true });
    })();
    return this.#cleaning;
  }
}
