#!/usr/bin/env node
// NetworkPolicy: what enforcement costs on the wire, how fast an update is enforced, and the agent's memory with a
// large policy world — the real dist/weft-agent (--policy-source dir) and dist/weft on simulated nodes
// (topology.mjs), in both datapath modes.
//
//   node_modules/.bin/node scripts/bench/policy.mjs [--repeat 3] [--duration 5] [--rr-duration 3] [--rules 1000]
//                                                   [--updates 100,1000,10000] [--pods 10000] [--update-rounds 5]
//
// 1. Wire cost: pod ↔ pod across nodes (vxlan, ip-masq off), iperf3 TCP throughput and sockperf TCP ping-pong, per
//    datapath mode on three 2-node clusters measured round-robin: policy off (--policy-source off), policy on with
//    no pod selected (the programs' one map read), and one NetworkPolicy of --rules ingress and --rules egress
//    rules selecting both pods (ipBlocks with excepts, pod and namespace selectors, ports and port ranges; the
//    last rule allows the measured ports). Each allow cluster is checked to isolate: a port no rule allows times
//    out, where the open clusters refuse it.
// 2. Update → enforced: an eBPF cluster whose policy directory holds --pods pods (in 100 namespaces, on nodes of
//    their own) and N policies (99% in those namespaces, 1% selecting the target pod with peers from 10
//    namespaces, so that its rules expand to many addresses). A prober in the client pod (on the other node) opens
//    a TCP connection to the target every 5 ms; the toggle policy that allows it is written (allow) or removed
//    (deny), and the latency is from the file's rename to the first connection that shows the new verdict —
//    the file source's read and parse of the whole directory, the compile, the map writes, the kernel.
// 3. Memory: one agent's cold start to its first apply of 1,000 policies among --pods pods, and its RSS (VmRSS,
//    2 s idle), with policy off, the file source, and the kube source against the real kube-apiserver (the same
//    objects created through the API; scripts/kube/build.sh's binaries, skipped with a note when absent).
// Prints markdown tables for docs/benchmarks.md. Needs what datapath.mjs needs (root, iproute2, util-linux, iperf3,
// sockperf, nftables, Linux 6.6+ with BTF, `npm run build`), and for the kube row etcd and openssl.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startApiServer } from "./kube-api.mjs";
import { ipIn, median, runBenchmark } from "./lib.mjs";
import { BenchTopology, sleep } from "./topology.mjs";

const HELP = `Usage: node_modules/.bin/node scripts/bench/policy.mjs [options]

NetworkPolicy benchmarks on simulated nodes (throwaway network namespaces wft-bench-<id>-*): the wire cost of an
allow policy of --rules rules against none and against policy off, in both datapath modes; update → enforced
latency at each of --updates policies among --pods pods; the agent's RSS with --pods pods and 1,000 policies.

Options:
  --repeat N          wire rounds (default 3)
  --duration SEC      iperf3 time per run after 1 s of ramp-up (default 5)
  --rr-duration SEC   sockperf ping-pong time per run (default 3)
  --rules N           rules per direction of the allow policy (default 1000)
  --updates LIST      policy counts for the update latency (default 100,1000,10000)
  --pods N            pods in the update/memory world (default 10000)
  --update-rounds N   allow and deny measurements per policy count (default 5)
  --only PARTS        wire, update, memory (comma-separated; default all)
  --no-pin            do not pin clients to CPU 0 and servers to CPU 1
  --dist DIR          where weft and weft-agent are (default dist/ of this checkout)
  --help              this text
`;

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const argv = process.argv.slice(2);
if (argv.includes("--help") || argv.includes("-h")) {
  process.stdout.write(HELP);
  process.exit(0);
}
function fail(message) {
  process.stderr.write(`policy: ${message}\n`);
  process.exit(2);
}
const OPTIONS = ["--repeat", "--duration", "--rr-duration", "--rules", "--updates", "--pods", "--update-rounds", "--only", "--no-pin", "--dist"];
for (const arg of argv) if (arg.startsWith("--") && !OPTIONS.includes(arg)) fail(`unknown option ${arg} (see --help)`);
const raw = (name) => {
  const i = argv.indexOf(`--${name}`);
  return i < 0 ? undefined : argv[i + 1];
};
const number = (name, fallback) => {
  const text = raw(name);
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0) fail(`--${name} needs a positive whole number (see --help)`);
  return value;
};
const REPEAT = number("repeat", 3);
const DURATION = number("duration", 5);
const RR_DURATION = number("rr-duration", 3);
const RULES = number("rules", 1000);
const PODS = number("pods", 10000);
const UPDATE_ROUNDS = number("update-rounds", 5);
const UPDATES = (raw("updates") ?? "100,1000,10000").split(",").map(Number);
if (UPDATES.some((n) => !Number.isInteger(n) || n < 1)) fail("--updates needs whole numbers, comma-separated");
const PARTS = (raw("only") ?? "wire,update,memory").split(",");
if (PARTS.some((p) => !["wire", "update", "memory"].includes(p))) fail("--only takes wire, update, memory");
const DIST = path.resolve(raw("dist") ?? path.join(root, "dist"));
const MEMORY_POLICIES = 1000;
const KUBE_BIN = path.join(process.env.WEFT_KUBE_CACHE ?? "/var/cache/weft-kube", "v1.20.2", "bin");

const t = new BenchTopology({ name: "policy", dist: DIST, pin: !argv.includes("--no-pin") });
const NS = "bench";
const IPERF_PORT = 5201;
const RR_PORT = 11111;
const PROBE_PORT = 7000;

// ---------------------------------------------------------------------------------------------------------------
// Documents, written as a kubectl List, renamed into place so that the agent never reads half a file.

function writeList(dir, file, items) {
  const temp = path.join(dir, `.${file}.tmp`);
  fs.writeFileSync(temp, JSON.stringify({ apiVersion: "v1", kind: "List", items }));
  fs.renameSync(temp, path.join(dir, file));
}

const namespace = (name, labels) => ({ apiVersion: "v1", kind: "Namespace", metadata: { name, labels: { "kubernetes.io/metadata.name": name, ...labels } } });
const pod = (ns, name, labels, nodeName, ip) => ({
  apiVersion: "v1", kind: "Pod", metadata: { name, namespace: ns, labels }, spec: { nodeName, containers: [{ name: "c" }] },
  status: { podIP: ip, podIPs: [{ ip }] },
});
const networkPolicy = (ns, name, spec) => ({ apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name, namespace: ns }, spec });

/**
 * One policy selecting every pod of the bench namespace, `rules` rules each way: rules - 1 that match nothing
 * measured (ipBlocks with an except, pod selectors, namespace + pod selectors, single ports and ranges), and last
 * the rule that allows the measured ports between the bench pods.
 */
function allowPolicy(rules) {
  const filler = (i, peerKey) => {
    const port = 20000 + i;
    const peers = [
      { ipBlock: { cidr: `172.${16 + (i >> 8)}.${i & 255}.0/24`, except: [`172.${16 + (i >> 8)}.${i & 255}.128/25`] } },
      { podSelector: { matchLabels: { app: `absent-${i}` } } },
      { namespaceSelector: { matchLabels: { team: `t-${i}` } }, podSelector: { matchExpressions: [{ key: "tier", operator: "In", values: ["web", `w-${i}`] }] } },
    ];
    const ports = [[{ port, protocol: "TCP" }], [{ port, protocol: "UDP" }], [{ port, endPort: port + 10, protocol: "TCP" }]];
    return { [peerKey]: [peers[i % 3]], ports: ports[i % 3] };
  };
  const measured = (peerKey) => ({ [peerKey]: [{ podSelector: { matchLabels: { app: "bench" } } }], ports: [{ port: IPERF_PORT }, { port: RR_PORT }] });
  return networkPolicy(NS, `allow-${rules}`, {
    podSelector: {},
    policyTypes: ["Ingress", "Egress"],
    ingress: [...Array.from({ length: rules - 1 }, (_, i) => filler(i, "from")), measured("from")],
    egress: [...Array.from({ length: rules - 1 }, (_, i) => filler(i, "to")), measured("to")],
  });
}

/** The bench namespace and its pods as Pod documents (the file source learns pods from documents, not from ADD). */
function benchWorld(pods) {
  return [namespace(NS, { team: "bench" }), ...pods.map((p) => pod(NS, p.name, p.labels, p.node.name, p.ip))];
}

/**
 * The update/memory world: `count` pods in 100 namespaces (team t-<k % 10>) on nodes of their own, IPs in
 * 10.128.0.0/9, labels app-<j % 10> and a tier.
 */
function largeWorld(count) {
  const items = Array.from({ length: 100 }, (_, k) => namespace(`ns-${k}`, { team: `t-${k % 10}` }));
  for (let j = 0; j < count; j++) {
    const ip = `10.${128 + (j >> 16)}.${(j >> 8) & 255}.${j & 255}`;
    items.push(pod(`ns-${j % 100}`, `p-${j}`, { app: `app-${j % 10}`, tier: j % 2 ? "web" : "db" }, `far-node-${j % 500}`, ip));
  }
  return items;
}

/**
 * `count` policies: 99% in the 100 namespaces (selecting their pods, peers there), 1% in the bench namespace
 * selecting the target, each allowing a port of 7001–7050 from the app-k pods of 10 namespaces (1,000 of 10,000
 * pods) — never the client, which stays denied until the toggle allows it.
 */
function policies(count) {
  return Array.from({ length: count }, (_, i) => {
    if (i % 100 === 99) {
      // Team t-k's namespaces hold the app-k pods: 1% of the pods per target policy, 10 groups in turn.
      const k = Math.floor(i / 100) % 10;
      return networkPolicy(NS, `target-${i}`, {
        podSelector: { matchLabels: { role: "target" } },
        ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: `t-${k}` } }, podSelector: { matchLabels: { app: `app-${k}` } } }], ports: [{ port: 7001 + (i % 50) }] }],
      });
    }
    return networkPolicy(`ns-${i % 100}`, `p-${i}`, {
      podSelector: { matchLabels: { app: `app-${i % 10}` } },
      policyTypes: i % 4 === 0 ? ["Ingress", "Egress"] : ["Ingress"],
      ingress: [{ from: [{ podSelector: { matchLabels: { app: `app-${(i + 1) % 10}` } } }, { ipBlock: { cidr: `192.168.${i & 255}.0/24` } }], ports: [{ port: 80 + (i % 20) }] }],
      ...(i % 4 === 0 ? { egress: [{ to: [{ namespaceSelector: { matchLabels: { team: `t-${i % 10}` } } }], ports: [{ port: 53, protocol: "UDP" }] }] } : {}),
    });
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Agent state.

/** Until the policy source is synced with `count` policies applied without error, on every node. */
async function applied(nodes, count, timeoutMs = 120_000) {
  for (const node of nodes) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const p = t.state(node).datapath?.policy;
      if (p?.synced && p.policies === count && !p.lastApply?.error && !p.sourceError) break;
      if (Date.now() > deadline) throw new Error(`${node.name}: ${count} policies not applied in ${timeoutMs} ms: ${JSON.stringify(p)?.slice(0, 1500)}`);
      await sleep(100);
    }
  }
}

/** A TCP connect from a pod: "open" (handshake done), "refused" (RST: allowed, no listener), or "timeout" (dropped). */
function connectFrom(ns, ip, port) {
  const script = `const s = require("node:net").connect(${port}, ${JSON.stringify(ip)}); s.on("connect", () => process.exit(0)); s.on("error", (e) => process.exit(e.code === "ECONNREFUSED" ? 2 : 3)); setTimeout(() => process.exit(1), 500);`;
  const { status } = spawnSync("nsenter", [`--net=/run/netns/${ns}`, process.execPath, "-e", script]);
  return ({ 0: "open", 1: "timeout", 2: "refused" })[status] ?? `error ${status}`;
}

const loadAverage = () => fs.readFileSync("/proc/loadavg", "utf8").split(" ")[0];
const today = () => new Date().toISOString().slice(0, 10);
const cell = (values, digits) => `${median(values).toFixed(digits)} (${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)})`;

function agentRssMb(node) {
  return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${node.agent.pid}/status`, "utf8"))[1]) / 1024;
}

// ---------------------------------------------------------------------------------------------------------------
// 1. Wire cost.

async function wire() {
  const clusters = [];
  let cidr = 240;
  let host = 11;
  for (const datapath of ["ebpf", "kernel"]) {
    for (const variant of ["off", "none", "allow"]) {
      const key = `${datapath[0]}${variant[0]}`;
      const policyDir = path.join(t.tmp, `${key}-policies`);
      fs.mkdirSync(policyDir);
      const agentArgs = variant === "off" ? ["--policy-source", "off"] : ["--policy-source", "dir", "--policy-dir", policyDir];
      const nodes = await t.weftCluster(key, { backend: "vxlan", network: `10.${cidr++}.0.0/16`, ipMasq: false, firstHost: host, datapath, agentArgs });
      host += 10;
      const pods = nodes.map((node, i) => Object.assign(t.addWeftPod(node), { name: `pod-${i + 1}`, labels: { app: "bench" } }));
      if (variant !== "off") {
        writeList(policyDir, "world.json", benchWorld(pods));
        if (variant === "allow") writeList(policyDir, "allow.json", [allowPolicy(RULES)]);
        await applied(nodes, variant === "allow" ? 1 : 0);
      }
      clusters.push({ key, datapath, variant, nodes, pods });
    }
  }
  // Isolation is real where it should be: a port no rule allows is dropped by the allow clusters (the prober times
  // out) and refused by the pod itself everywhere else.
  for (const c of clusters) {
    const verdict = connectFrom(c.pods[0].ns, c.pods[1].ip, 5999);
    const want = c.variant === "allow" ? "timeout" : "refused";
    if (verdict !== want) throw new Error(`${c.key}: a connection to port 5999 was ${verdict}, expected ${want}`);
    if (c.variant === "allow") {
      for (const node of c.nodes) {
        const isolated = t.state(node).datapath.policy.isolatedPods;
        if (isolated !== 1) throw new Error(`${node.name}: ${isolated} isolated pods, expected 1`);
      }
    }
  }
  for (const c of clusters) {
    await t.ensureServers(c.pods[1].ns, c.pods[1].ip);
    Object.assign(c, { gbits: [], retransmits: [], p50: [], p99: [] });
  }
  const load = fs.readFileSync("/proc/loadavg", "utf8").split(" ")[0];
  for (let round = 1; round <= REPEAT; round++) {
    for (const c of clusters) {
      const tcp = t.throughput(c.pods[0].ns, c.pods[1].ip, DURATION);
      const rr = t.latency(c.pods[0].ns, c.pods[1].ip, { duration: RR_DURATION, message: 64 });
      c.gbits.push(tcp.gbits);
      c.retransmits.push(tcp.retransmits);
      c.p50.push(rr.p50);
      c.p99.push(rr.p99);
      process.stderr.write(`round ${round}/${REPEAT} ${c.datapath} ${c.variant}: ${tcp.gbits.toFixed(2)} Gbit/s, ${tcp.retransmits} retransmits, p50 ${rr.p50.toFixed(1)} µs, p99 ${rr.p99.toFixed(1)} µs\n`);
    }
  }
  // What the allow clusters' programs counted (the connections' first packets checked, the rest from the CT map).
  const counts = clusters.filter((c) => c.variant === "allow").map((c) => {
    const total = { allowed: 0, denied: 0 };
    for (const node of c.nodes) {
      for (const e of t.state(node).datapath.ebpf?.policy?.endpoints ?? []) {
        for (const dir of ["ingress", "egress"]) {
          total.allowed += e[dir].allowed;
          total.denied += e[dir].denied;
        }
      }
    }
    const entries = t.state(c.nodes[0]).datapath.ebpf?.policy?.entries;
    return `${c.datapath}: ${total.allowed} allowed, ${total.denied} denied, ${entries} LPM entries on node 1`;
  });
  const byKey = new Map(clusters.map((c) => [c.key, c]));
  const paired = (a, b, key) => median(a[key].map((value, i) => value / b[key][i]));
  const label = { off: "policy off (--policy-source off)", none: "policy on, no pod selected", allow: `allow policy, ${RULES} rules each way, both pods selected` };
  const ratio = (c, key) => {
    const ref = byKey.get(`${c.datapath[0]}${key[0]}`);
    return ref && ref !== c ? `${paired(c, ref, "gbits").toFixed(2)}×, ${paired(c, ref, "p50").toFixed(2)}×` : "";
  };
  return [
    `NetworkPolicy on the wire — pod ↔ pod across nodes, vxlan, ip-masq off; iperf3 TCP 1 stream ${DURATION} s, sockperf TCP ping-pong 64 B ${RR_DURATION} s; median of ${REPEAT} (range)${t.pin ? ", client on CPU 0, server on CPU 1" : ""}; ratios paired by round; ${os.cpus().length} cores, kernel ${os.release()}, load ${load}; ${new Date().toISOString().slice(0, 10)}`,
    "",
    "| datapath | policy | throughput Gbit/s | p50 µs | p99 µs | retransmits | / no pod selected: throughput, p50 | / policy off: throughput, p50 |",
    "|---|---|---:|---:|---:|---:|---:|---:|",
    ...clusters.map((c) => `| ${c.datapath} | ${label[c.variant]} | ${cell(c.gbits, 2)} | ${cell(c.p50, 1)} | ${cell(c.p99, 1)} | ${cell(c.retransmits, 0)} | ${c.variant === "allow" ? ratio(c, "none") : ""} | ${c.variant === "off" ? "" : ratio(c, "off")} |`),
    "",
    `The allow clusters' policy counters over the run (both nodes): ${counts.join("; ")}.`,
  ];
}

// ---------------------------------------------------------------------------------------------------------------
// 2. Update → enforced, and 3. memory.

// The prober: a TCP connect to ip:port every `every` ms, each given `timeout` ms, until every result for 300 ms
// has been the wanted verdict (or `limit` ms); prints the attempts as JSON: start (epoch ms), ok.
const PROBER = `
const net = require("node:net");
const [ip, port, want, every, timeout, limit] = process.argv.slice(1);
const wanted = want === "open";
const started = Date.now();
let wantedSince = 0;
const results = [];
const timer = setInterval(() => {
  const start = Date.now();
  if (start - started > Number(limit) || (wantedSince && start - wantedSince > 300)) {
    clearInterval(timer);
    setTimeout(() => { process.stdout.write(JSON.stringify(results)); process.exit(0); }, Number(timeout) + 20);
    return;
  }
  const socket = net.connect(Number(port), ip);
  let finished = false;
  const done = (ok) => {
    socket.destroy();
    if (finished) return;
    finished = true;
    results.push({ start, ok });
    if (ok !== wanted) wantedSince = 0;
    else if (!wantedSince) wantedSince = Date.now();
  };
  socket.setTimeout(Number(timeout), () => done(false));
  socket.on("connect", () => done(true));
  socket.on("error", () => done(false));
}, Number(every));
`;

/** Starts the prober in `ns`; resolves with its attempts once it has seen `want` (open / closed) settle. */
function probe(ns, ip, want, limitMs) {
  return new Promise((resolve, reject) => {
    const child = spawn("nsenter", [`--net=/run/netns/${ns}`, process.execPath, "-e", PROBER, ip, String(PROBE_PORT), want, "5", "150", String(limitMs)], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("exit", (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`prober: exit ${code}: ${err}`))));
  });
}

/**
 * One toggle: the prober starts, 300 ms later the toggle file appears (allow) or goes (deny); the latency is from
 * then to the start of the first attempt with the new verdict after which every attempt has it.
 */
async function toggle(c, allow) {
  const want = allow ? "open" : "closed";
  const running = probe(c.client.ns, c.target.ip, want, 60_000);
  await sleep(300);
  const at = Date.now();
  if (allow) writeList(c.policyDir, "toggle.json", [networkPolicy(NS, "toggle", { podSelector: { matchLabels: { role: "target" } }, ingress: [{ from: [{ podSelector: { matchLabels: { role: "client" } } }], ports: [{ port: PROBE_PORT }] }] })]);
  else fs.rmSync(path.join(c.policyDir, "toggle.json"));
  const attempts = (await running).sort((a, b) => a.start - b.start);
  const before = attempts.filter((a) => a.start < at - 50);
  if (before.length === 0 || before.some((a) => a.ok === allow)) throw new Error(`the target was already ${allow ? "reachable" : "unreachable"} before the ${allow ? "allow" : "deny"}: ${JSON.stringify(before.slice(-5))}`);
  let settled = attempts.length;
  while (settled > 0 && attempts[settled - 1].ok === allow) settled--;
  if (settled === attempts.length) throw new Error(`the ${allow ? "allow" : "deny"} was not enforced within 60 s`);
  return attempts[settled].start - at;
}

async function update() {
  const policyDir = path.join(t.tmp, "up-policies");
  fs.mkdirSync(policyDir);
  const nodes = await t.weftCluster("up", { backend: "vxlan", network: "10.250.0.0/16", ipMasq: false, firstHost: 91, datapath: "ebpf", agentArgs: ["--policy-source", "dir", "--policy-dir", policyDir] });
  const target = Object.assign(t.addWeftPod(nodes[0]), { name: "target", labels: { app: "bench", role: "target" } });
  const client = Object.assign(t.addWeftPod(nodes[1]), { name: "client", labels: { app: "bench", role: "client" } });
  t.startProcess("nsenter", [`--net=/run/netns/${target.ns}`, process.execPath, "-e", `require("node:net").createServer((s) => s.destroy()).listen(${PROBE_PORT}, ${JSON.stringify(target.ip)})`], { logFile: path.join(t.tmp, "listener.log") });
  const c = { policyDir, nodes, target, client };
  writeList(policyDir, "bench.json", benchWorld([target, client]));
  writeList(policyDir, "pods.json", largeWorld(PODS));
  const rows = [];
  for (const count of UPDATES) {
    writeList(policyDir, "policies.json", policies(count));
    await applied(nodes, count, 300_000);
    const allow = [];
    const deny = [];
    const applyMs = [];
    for (let round = 1; round <= UPDATE_ROUNDS; round++) {
      allow.push(await toggle(c, true));
      applyMs.push(t.state(nodes[0]).datapath.policy.lastApply.ms);
      deny.push(await toggle(c, false));
      applyMs.push(t.state(nodes[0]).datapath.policy.lastApply.ms);
      process.stderr.write(`${count} policies, round ${round}/${UPDATE_ROUNDS}: allow enforced in ${allow.at(-1)} ms, deny in ${deny.at(-1)} ms (agent's compile and write ${applyMs.at(-2).toFixed(0)} / ${applyMs.at(-1).toFixed(0)} ms)\n`);
      await sleep(300);
    }
    const entries = t.state(nodes[0]).datapath.ebpf?.policy?.entries;
    rows.push(`| ${count} | ${PODS} | ${cell(allow, 0)} | ${cell(deny, 0)} | ${cell(applyMs, 0)} | ${entries} |`);
  }
  return [
    `NetworkPolicy update → enforced — eBPF datapath, file source (--policy-source dir); a toggle policy written (allow) or removed (deny) in a directory of N policies and ${PODS} pods; latency from the rename to the first TCP connect (one every 5 ms, from a pod on the other node) with the new verdict; median of ${UPDATE_ROUNDS} (range); ${os.cpus().length} cores, kernel ${os.release()}, load ${loadAverage()}; ${today()}`,
    "",
    "| policies | pods | allow enforced ms | deny enforced ms | agent's compile + map writes ms | LPM entries for the target |",
    "|---:|---:|---:|---:|---:|---:|",
    ...rows,
    "",
  ];
}

// ---------------------------------------------------------------------------------------------------------------
// 3. Memory.

/**
 * One cold start of an agent in `ns` (kernel datapath, one node, file node source) with `policyArgs`: ms until
 * its policy has `count` policies applied (or it is ready, policy off), and its VmRSS 2 s later. Ended after.
 */
async function coldStart(ns, key, policyArgs, count) {
  const dir = path.join(t.tmp, `mem-${key}`);
  fs.mkdirSync(dir);
  const node = { ns, dir, name: "local" };
  spawnSync("ip", ["-n", ns, "link", "del", "weft.1"], { stdio: "ignore" });
  const started = Date.now();
  node.agent = t.startProcess("nsenter", [
    `--net=/run/netns/${ns}`, t.agent, "--node-name", "local", "--source", "file", "--node-file", path.join(t.tmp, "mem-nodes.json"),
    "--net-conf", path.join(t.tmp, "mem-net-conf.json"), "--cni-conf-dir", path.join(dir, "net.d"), "--subnet-file", path.join(dir, "subnet.env"),
    "--state-dir", path.join(dir, "state"), "--ipam-data-dir", path.join(dir, "ipam"), "--debug-addr", "127.0.0.1:9476",
    "--ip-masq=false", "--datapath", "kernel", "--bpf-dir", path.join(t.bpfRoot, `mem-${key}`), ...policyArgs,
  ], { env: { WEFT_CACHE_DIR: path.join(dir, "cache") }, logFile: path.join(dir, "agent.log") });
  const deadline = Date.now() + 300_000;
  let ms;
  while (ms === undefined) {
    if (node.agent.exit !== undefined) throw new Error(`${key}: weft-agent exited (${node.agent.exit}): ${fs.readFileSync(node.agent.logFile, "utf8").slice(-2000)}`);
    if (Date.now() > deadline) throw new Error(`${key}: not applied in 300 s: ${fs.readFileSync(node.agent.logFile, "utf8").slice(-2000)}`);
    const { state } = t.agentState(node);
    const p = state?.datapath?.policy;
    if (state?.readiness?.ready && (count === undefined || (p?.synced && p.policies === count && p.lastApply && !p.lastApply.error))) ms = Date.now() - started;
    else await sleep(100);
  }
  await sleep(2_000);
  const rss = agentRssMb(node);
  node.agent.child.kill("SIGTERM");
  await Promise.race([node.agent.exited, sleep(10_000)]);
  if (node.agent.exit === undefined) {
    node.agent.child.kill("SIGKILL");
    await node.agent.exited;
  }
  return { ms, rss };
}

async function memory() {
  const ns = t.netns.add("mem");
  ipIn(ns, "link", "add", "u0", "type", "veth", "peer", "name", "u1");
  ipIn(ns, "addr", "add", "192.168.0.1/16", "dev", "u0");
  ipIn(ns, "link", "set", "u0", "up");
  ipIn(ns, "link", "set", "u1", "up");
  fs.writeFileSync(path.join(t.tmp, "mem-nodes.json"), JSON.stringify({ nodes: [{ name: "local", podCidrs: ["10.251.1.0/24"], publicIp: "192.168.0.1" }] }));
  fs.writeFileSync(path.join(t.tmp, "mem-net-conf.json"), JSON.stringify({ Network: "10.251.0.0/16", SubnetLen: 24, Backend: { Type: "vxlan" } }));
  // The bench namespace holds the policies that select the update benchmark's target (no pod here).
  const world = [namespace(NS, { team: "bench" }), ...largeWorld(PODS)];
  const policyList = policies(MEMORY_POLICIES);
  const policyDir = path.join(t.tmp, "mem-policies");
  fs.mkdirSync(policyDir);
  writeList(policyDir, "pods.json", world);
  writeList(policyDir, "policies.json", policyList);
  const rows = [];
  const measure = async (label, key, args, count) => {
    const result = await coldStart(ns, key, args, count);
    process.stderr.write(`memory, ${label}: applied in ${result.ms} ms, RSS ${result.rss.toFixed(1)} MB\n`);
    rows.push(`| ${label} | ${result.ms} | ${result.rss.toFixed(1)} |`);
  };
  await measure("policy off", "off", ["--policy-source", "off"]);
  await measure(`file source (--policy-source dir), ${PODS} pods, ${MEMORY_POLICIES} policies`, "dir", ["--policy-source", "dir", "--policy-dir", policyDir], MEMORY_POLICIES);
  let note = "";
  if (fs.existsSync(path.join(KUBE_BIN, "kube-apiserver")) && fs.existsSync("/usr/bin/etcd")) {
    const startIn = (command, args, logFile) => t.startProcess("nsenter", [`--net=/run/netns/${ns}`, command, ...args], { logFile });
    const api = await startApiServer({ ns, dir: path.join(t.tmp, "kube-api"), kubeBin: KUBE_BIN, startIn });
    const created = Date.now();
    const namespaces = world.filter((o) => o.kind === "Namespace");
    api.send(namespaces.map((o) => ({ method: "POST", path: "/api/v1/namespaces", body: o })));
    // The ServiceAccount admission plugin wants each namespace's "default" account, which no controller makes here.
    api.send(namespaces.map((o) => ({ method: "POST", path: `/api/v1/namespaces/${o.metadata.name}/serviceaccounts`, body: { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "default" } } })));
    const pods = world.filter((o) => o.kind === "Pod");
    api.send(pods.map((o) => ({
      method: "POST", path: `/api/v1/namespaces/${o.metadata.namespace}/pods`,
      body: { ...o, spec: { ...o.spec, automountServiceAccountToken: false, containers: [{ name: "c", image: "bench" }] }, status: undefined },
    })));
    api.send(pods.map((o) => ({ method: "PATCH", path: `/api/v1/namespaces/${o.metadata.namespace}/pods/${o.metadata.name}/status`, contentType: "application/merge-patch+json", body: { status: { phase: "Running", ...o.status } } })));
    api.send(policyList.map((o) => ({ method: "POST", path: `/apis/networking.k8s.io/v1/namespaces/${o.metadata.namespace}/networkpolicies`, body: o })));
    const listed = api.timeList("/api/v1/pods");
    note = ` The kube source's objects were created through the API in ${((Date.now() - created) / 1000).toFixed(1)} s; the API server serves the ${listed.items} pods, in pages of 500 as the agent lists them, in ${listed.ms.toFixed(0)} ms (one client, nothing parsed but JSON).`;
    await measure(`kube source (--policy-source kube, real kube-apiserver), ${PODS} pods, ${MEMORY_POLICIES} policies`, "kube", ["--policy-source", "kube", "--kubeconfig", api.kubeconfig], MEMORY_POLICIES);
  } else {
    note = ` The kube source was not measured: no kube-apiserver in ${KUBE_BIN} (scripts/kube/build.sh) or no etcd.`;
  }
  return [
    `weft-agent memory with NetworkPolicy — cold start of one agent (kernel datapath, file node source) to its first apply of every policy, then VmRSS after 2 s idle; ${PODS} pods in 100 namespaces and ${MEMORY_POLICIES} policies (the update benchmark's world); ${os.cpus().length} cores, kernel ${os.release()}, load ${loadAverage()}; ${today()}`,
    "",
    "| policy source | applied in ms (cold start) | RSS MB |",
    "|---|---:|---:|",
    ...rows,
    "",
    note.trim(),
    "",
  ];
}

async function main() {
  t.requireTools();
  const started = Date.now();
  t.setUp();
  const out = [];
  if (PARTS.includes("wire")) out.push(...await wire(), "");
  if (PARTS.includes("update")) out.push(...await update());
  if (PARTS.includes("memory")) out.push(...await memory());
  console.log(out.join("\n"));
  process.stderr.write(`policy: done in ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
}

await runBenchmark("policy", main, () => t.cleanup());
