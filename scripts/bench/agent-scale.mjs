#!/usr/bin/env node
// Agent scale: how long the real weft-agent (dist/weft-agent, file source, vxlan backend) takes to program N remote
// nodes from a cold start and after 10% of them are replaced, and how much memory it holds — beside the floor:
// `ip -batch` + `bridge -batch` applying the same objects (VTEP, then per node one neighbour, one FDB entry and one
// route) in a fresh namespace, on the same machine, in the same run.
//
//   node_modules/.bin/node scripts/bench/agent-scale.mjs [--nodes 100,1000,5000] [--churn 0.1] [--rounds 5]
//                                                        [--detect log|kernel] [--cpu-prof DIR]
//                                                        [--endpoints [--only-endpoints]] [--agent PATH]
//
// Each N gets its own throwaway node namespace `wft-bench-<id>-…` holding a veth pair as the underlay
// (192.168.0.1/16, MTU 1500) and nothing else; the agent runs inside it (nsenter, then exec: the PID we hold is
// the agent's) and is ended by PID. Convergence is detected, by default, from the agent's own "Reconciled" log
// line (it is written right after the synchronous observe → plan → apply run), then checked against the kernel:
// every route (proto 87), permanent neighbour and FDB entry of weft.1 must be exactly the expected set.
// `--detect kernel` polls the kernel instead (every 100 ms; the dumps compete with the agent for the CPU).
// `--endpoints`: after the cold start at each N, once the agent is idle, a client inside the node's namespace
// (this Node, through nsenter) times sequential GETs of /readyz, /metrics and /debug/state over one keep-alive
// connection — what the kubelet's probe, Prometheus and `weft-agent status` cost at that N.
// Prints markdown tables for docs/benchmarks.md.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { BenchNamespaces, ipIn, median, run, runBenchmark } from "./lib.mjs";

// --endpoints: what each timed client run asks for, in this order.
const ENDPOINT_PLAN = [
  { path: "/readyz", requests: 200 },
  { path: "/metrics", requests: 200 },
  { path: "/debug/state", requests: 50 },
];
const ENDPOINT_WARMUP = 5;

const HELP = `Usage: node_modules/.bin/node scripts/bench/agent-scale.mjs [options]

Times the real dist/weft-agent (file source, vxlan) converging N remote nodes — cold start and after churn —
and its memory, beside ip -batch/bridge -batch applying the same objects. Needs root, iproute2, nsenter, and
\`npm run build\` first. Everything it creates is in namespaces named wft-bench-<id>-*, removed at the end.

Options:
  --nodes LIST      comma-separated remote node counts (default 100,1000,5000)
  --churn FRACTION  share of the nodes replaced by new ones (new names, CIDRs, MACs, IPs) (default 0.1)
  --rounds N        churn rounds, back and forth between the two lists; the tables give the median (default 5)
  --detect MODE     log: the agent's "Reconciled" log line, then one kernel check (default)
                    kernel: poll the kernel's objects every 100 ms until they match
  --cpu-prof DIR    run the agent with --cpu-prof, write DIR/<N>/*.cpuprofile and print where its time went
  --timeout SEC     give up waiting for one convergence after this long: the table then shows "> timeout"
                    and that N's churn is not measured (default 120)
  --agent PATH      the agent launcher to measure (default dist/weft-agent; e.g. another checkout's build)
  --endpoints       also time the debug endpoint after the cold start at each N, once the agent is idle:
                    sequential GETs over one keep-alive connection from a client in the node's namespace,
                    ${ENDPOINT_PLAN.map((e) => `${e.path} ×${e.requests}`).join(", ")} (after ${ENDPOINT_WARMUP} warm-up requests each, not counted);
                    an extra table: p50/p95/max per request (client wall time), body bytes, the agent's CPU
                    (its whole process, GC threads too); the churn and RSS columns then come after these requests
  --only-endpoints  --endpoints without the rest: no churn rounds, no ip -batch floor, no 0-node baseline
  --help            this text
`;

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const argv = process.argv.slice(2);
if (argv.includes("--help") || argv.includes("-h")) {
  process.stdout.write(HELP);
  process.exit(0);
}
const option = (name, fallback) => {
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const value = argv[i + 1];
  if (value === undefined || value.startsWith("--")) fail(`--${name} needs a value (see --help)`);
  return value;
};
function fail(message) {
  process.stderr.write(`agent-scale: ${message}\n`);
  process.exit(2);
}
for (const arg of argv) {
  if (arg.startsWith("--") && !["--nodes", "--churn", "--rounds", "--detect", "--cpu-prof", "--timeout", "--agent", "--endpoints", "--only-endpoints"].includes(arg)) fail(`unknown option ${arg} (see --help)`);
}
const SIZES = option("nodes", "100,1000,5000").split(",").map((s) => Number(s.trim()));
if (SIZES.some((n) => !Number.isInteger(n) || n < 1 || n > 50_000)) fail("--nodes: integers from 1 to 50000");
const CHURN = Number(option("churn", "0.1"));
if (!(CHURN > 0 && CHURN <= 1)) fail("--churn: a fraction in (0, 1]");
const ROUNDS = Number(option("rounds", "5"));
if (!Number.isInteger(ROUNDS) || ROUNDS < 1 || ROUNDS > 100) fail("--rounds: an integer from 1 to 100");
const DETECT = option("detect", "log");
if (!["log", "kernel"].includes(DETECT)) fail("--detect: log or kernel");
const CPU_PROF = option("cpu-prof", undefined);
const TIMEOUT_MS = Number(option("timeout", "120")) * 1000;
if (!(TIMEOUT_MS > 0)) fail("--timeout: seconds, more than 0");
const AGENT = path.resolve(option("agent", path.join(root, "dist/weft-agent")));
const ONLY_ENDPOINTS = argv.includes("--only-endpoints");
const ENDPOINTS = ONLY_ENDPOINTS || argv.includes("--endpoints");

const VNI = 1;
const VTEP = `weft.${VNI}`;
const LOCAL = { name: "local", podCidrs: ["10.0.0.0/24"], publicIp: "192.168.0.1", vtepMac: "02:57:46:ff:ff:ff" };
const UNDERLAY = "u0";

const netns = new BenchNamespaces();
const prefix = netns.prefix;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
// The agent's /run/weft (state dir, subnet file) on tmpfs, as /run is on a node: the VTEP MAC file's fsync at a
// first start costs ~90 ms on this machine's disk and nothing on tmpfs. The CNI config stays on disk, as
// /etc/cni/net.d is.
const runDir = fs.mkdtempSync(path.join(fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir(), prefix));
const agents = new Set();
const clients = new Set(); // --endpoints: the client processes running (PIDs we started)

// ---------------------------------------------------------------------------------------------------------------
// The kernel, through iproute2, inside our namespaces only.

/** A node: loopback up, and a veth pair as its underlay (both ends inside), u0 holding the public IP. */
function addNodeNetns(label) {
  const ns = netns.add(label);
  ipIn(ns, "link", "add", UNDERLAY, "mtu", "1500", "type", "veth", "peer", "name", "u1");
  ipIn(ns, "addr", "add", `${LOCAL.publicIp}/16`, "dev", UNDERLAY);
  ipIn(ns, "link", "set", UNDERLAY, "up");
  ipIn(ns, "link", "set", "u1", "up");
  return ns;
}

/** The weft-owned objects in `ns`, as sets of strings comparable with expectedObjects(). */
function kernelObjects(ns) {
  const routes = JSON.parse(ipIn(ns, "-j", "route", "show", "proto", "87") || "[]");
  const hasVtep = JSON.parse(ipIn(ns, "-j", "link", "show") || "[]").some((l) => l.ifname === VTEP);
  if (!hasVtep) return { routes: new Set(routes.map((r) => `${r.dst} via ${r.gateway}`)), neighbours: new Set(), fdb: new Set() };
  const neighbours = JSON.parse(ipIn(ns, "-j", "neigh", "show", "dev", VTEP, "nud", "permanent") || "[]");
  const fdb = JSON.parse(run("bridge", ["-n", ns, "-j", "fdb", "show", "dev", VTEP]) || "[]");
  return {
    routes: new Set(routes.map((r) => `${r.dst} via ${r.gateway}`)),
    neighbours: new Set(neighbours.map((n) => `${n.dst} ${n.lladdr}`)),
    fdb: new Set(fdb.filter((f) => f.dst !== undefined && f.mac !== "00:00:00:00:00:00").map((f) => `${f.mac} ${f.dst}`)),
  };
}

function expectedObjects(nodes) {
  return {
    routes: new Set(nodes.map((n) => `${n.podCidrs[0]} via ${vtepAddress(n)}`)),
    neighbours: new Set(nodes.map((n) => `${vtepAddress(n)} ${n.vtepMac}`)),
    fdb: new Set(nodes.map((n) => `${n.vtepMac} ${n.publicIp}`)),
  };
}

/** Empty when `actual` is exactly `expected`; otherwise what differs, briefly. */
function difference(actual, expected) {
  const problems = [];
  for (const kind of ["routes", "neighbours", "fdb"]) {
    const missing = [...expected[kind]].filter((x) => !actual[kind].has(x));
    const extra = [...actual[kind]].filter((x) => !expected[kind].has(x));
    if (missing.length || extra.length) problems.push(`${kind}: ${missing.length} missing (${missing.slice(0, 2).join("; ")}), ${extra.length} unexpected (${extra.slice(0, 2).join("; ")})`);
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------------------------
// The nodes: remote node i has pod CIDR 10.<1 + i/256>.<i%256>.0/24, public IP 192.168.<1 + i/250>.<1 + i%250>
// (on the underlay's /16) and VTEP MAC 02:57:46:<i as 3 bytes>, all distinct.

const hex = (n) => n.toString(16).padStart(2, "0");
function remoteNode(i) {
  return {
    name: `node-${i}`,
    podCidrs: [`10.${1 + (i >> 8)}.${i & 255}.0/24`],
    publicIp: `192.168.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`,
    vtepMac: `02:57:46:${hex((i >> 16) & 255)}:${hex((i >> 8) & 255)}:${hex(i & 255)}`,
  };
}
const vtepAddress = (node) => node.podCidrs[0].split("/")[0];

/** The cold list, and the churned one: every k-th node (spread over the list) replaced by a brand-new one. */
function nodeLists(n) {
  const cold = Array.from({ length: n }, (_, i) => remoteNode(i));
  const replaced = Math.max(1, Math.round(n * CHURN));
  const step = n / replaced;
  const out = new Set(Array.from({ length: replaced }, (_, j) => Math.floor(j * step)));
  let next = n;
  const churned = cold.map((node, i) => (out.has(i) ? remoteNode(next++) : node));
  return { cold, churned, removed: cold.filter((_, i) => out.has(i)), added: churned.filter((_, i) => out.has(i)) };
}

function writeNodeFile(file, remotes) {
  const temp = `${file}.tmp`;
  fs.writeFileSync(temp, JSON.stringify({ nodes: [LOCAL, ...remotes] }));
  fs.renameSync(temp, file);
}

// ---------------------------------------------------------------------------------------------------------------
// The agent.

const ms = (from) => Number(process.hrtime.bigint() - from) / 1e6;

function startAgent(ns, dir, { profileDir } = {}) {
  const env = { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin", WEFT_CACHE_DIR: path.join(dir, "cache") };
  if (profileDir) {
    fs.mkdirSync(profileDir, { recursive: true });
    env.NODE_OPTIONS = `--cpu-prof --cpu-prof-dir=${profileDir}`;
  }
  const args = [
    `--net=/run/netns/${ns}`, AGENT,
    "--node-name", LOCAL.name, "--source", "file", "--node-file", path.join(dir, "nodes.json"), "--net-conf", path.join(dir, "net-conf.json"),
    "--cni-conf-dir", path.join(dir, "net.d"), "--subnet-file", path.join(runDir, path.basename(dir), "subnet.env"), "--state-dir", path.join(runDir, path.basename(dir), "state"),
    "--ipam-data-dir", path.join(dir, "ipam"), "--debug-addr", "127.0.0.1:9476", "--resync-interval", "60s", "--probe-interval", "0",
    "--ip-masq=false", "--log-level", "info", "--datapath", "kernel", "--bpf-dir", path.join(runDir, path.basename(dir), "bpf"),
  ];
  const started = process.hrtime.bigint();
  const child = spawn("nsenter", args, { stdio: ["ignore", "ignore", "pipe"], env });
  const log = fs.createWriteStream(path.join(dir, "agent.log"));
  const agent = { child, pid: child.pid, started, lines: [], waiters: new Set(), exit: undefined };
  agents.add(agent);
  agent.exited = new Promise((resolve) => child.on("exit", (code, signal) => {
    agent.exit = code ?? signal;
    agent.exitAfterMs = ms(started);
    for (const waiter of agent.waiters) waiter();
    resolve();
  }));
  let rest = "";
  child.stderr.on("data", (chunk) => {
    const at = process.hrtime.bigint();
    log.write(chunk);
    const parts = (rest + chunk).split("\n");
    rest = parts.pop();
    for (const text of parts) {
      let line;
      try {
        line = JSON.parse(text);
      } catch {
        line = { msg: text };
      }
      agent.lines.push({ at, line });
    }
    for (const waiter of agent.waiters) waiter();
  });
  agent.log = log;
  return agent;
}

class TimedOut extends Error {}

/** Resolves with the first log line after `index` that satisfies `predicate` (and when it arrived). */
function waitForLine(agent, fromIndex, predicate) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(() => reject(new TimedOut(`no matching agent log line in ${TIMEOUT_MS} ms`))), TIMEOUT_MS);
    const check = () => {
      for (let i = fromIndex; i < agent.lines.length; i++) {
        if (predicate(agent.lines[i].line)) return done(() => resolve({ ...agent.lines[i], index: i }));
      }
      if (agent.exit !== undefined) done(() => reject(agentDied(agent)));
    };
    const done = (settle) => {
      clearTimeout(timer);
      agent.waiters.delete(check);
      settle();
    };
    agent.waiters.add(check);
    check();
  });
}

function agentDied(agent) {
  const tail = agent.lines.slice(-5).map((l) => JSON.stringify(l.line).slice(0, 300)).join("\n");
  return new Error(`weft-agent (PID ${agent.pid}) died: ${agent.exit} after ${Math.round(agent.exitAfterMs)} ms; its last log lines:\n${tail}`);
}

async function waitForKernel(ns, expected, from, agent) {
  const deadline = Date.now() + TIMEOUT_MS;
  for (;;) {
    if (agent.exit !== undefined) throw agentDied(agent);
    let state;
    try {
      state = kernelObjects(ns);
    } catch {
      state = undefined; // weft.1 may appear between two dumps
    }
    if (state && difference(state, expected).length === 0) return ms(from);
    if (Date.now() > deadline) throw new TimedOut(`kernel did not converge in ${TIMEOUT_MS} ms: ${state ? difference(state, expected).join("; ") : "no state"}`);
    await sleep(100);
  }
}

const sleep = (delay) => new Promise((resolve) => setTimeout(resolve, delay));

function memory(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
  return { rss: kb("VmRSS") / 1024, hwm: kb("VmHWM") / 1024, anon: kb("RssAnon") / 1024, file: kb("RssFile") / 1024 };
}

const CLOCK_TICKS = 100; // per second, in /proc/<pid>/stat (USER_HZ)

function cpuTicks(agent) {
  if (agent.exit !== undefined) throw agentDied(agent);
  const fields = fs.readFileSync(`/proc/${agent.pid}/stat`, "utf8").split(") ")[1].split(" ");
  return Number(fields[11]) + Number(fields[12]); // utime + stime
}

/**
 * Waits until the agent is idle — at most 2 clock ticks (20 ms) of CPU in 500 ms, which --cpu-prof's sampler
 * stays under — e.g. until its follow-up reconcile after start is done.
 */
async function waitIdle(agent) {
  const deadline = Date.now() + TIMEOUT_MS;
  let last = cpuTicks(agent);
  for (;;) {
    await sleep(500);
    const now = cpuTicks(agent);
    if (now - last <= 2) return;
    if (Date.now() > deadline) throw new TimedOut(`the agent was still busy after ${TIMEOUT_MS} ms`);
    last = now;
  }
}

async function stopAgent(agent) {
  if (agent.exit === undefined) {
    process.kill(agent.pid, "SIGTERM");
    const killed = await Promise.race([agent.exited.then(() => true), sleep(10_000).then(() => false)]);
    if (!killed) {
      process.kill(agent.pid, "SIGKILL");
      await agent.exited;
    }
  }
  agent.log.end();
  agents.delete(agent);
}

/** `weft-agent status --json`, timed. Its stdout goes to a file: through a pipe, the agent cuts it short. */
function statusMs(ns, dir) {
  const file = path.join(dir, "status.json");
  const out = fs.openSync(file, "w");
  const started = process.hrtime.bigint();
  const result = spawnSync("nsenter", [`--net=/run/netns/${ns}`, AGENT, "status", "--json", "--debug-addr", "127.0.0.1:9476"], { stdio: ["ignore", out, "pipe"], encoding: "utf8" });
  const elapsed = ms(started);
  fs.closeSync(out);
  if (result.status !== 0) throw new Error(`weft-agent status failed (${result.status}): ${result.stderr}`);
  const state = JSON.parse(fs.readFileSync(file, "utf8"));
  return { ms: elapsed, bytes: fs.statSync(file).size, ready: state.readiness.ready, kernel: state.kernel };
}

// ---------------------------------------------------------------------------------------------------------------
// --endpoints: the debug endpoint's latency, from a client in the node's namespace.

/**
 * The client, run as `nsenter --net=… node -e CLIENT HOST PORT PLAN`: for each {path, warmup, requests} of PLAN
 * (JSON), `warmup` GETs not counted, then `requests` GETs, one after the other over one keep-alive connection,
 * each timed from the request's start to its body's last byte. Prints JSON on stdout: per path the times (ms),
 * body sizes and status codes, then the number of connections opened; with `keep`, the last body too.
 */
const ENDPOINT_CLIENT = `
const http = process.getBuiltinModule("node:http");
const [host, port, plan] = [process.argv[1], Number(process.argv[2]), JSON.parse(process.argv[3])];
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const sockets = new Set();
function get(path, keep) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const request = http.get({ host, port, path, agent, timeout: 60000 }, (response) => {
      let bytes = 0;
      const chunks = [];
      response.on("data", (chunk) => { bytes += chunk.length; if (keep) chunks.push(chunk); });
      response.on("end", () => resolve({ ms: performance.now() - started, status: response.statusCode, bytes, body: keep ? Buffer.concat(chunks).toString("utf8") : undefined }));
      response.on("error", reject);
    });
    request.on("socket", (socket) => sockets.add(socket));
    request.on("timeout", () => request.destroy(new Error("GET " + path + ": no answer in 60 s")));
    request.on("error", reject);
  });
}
async function main() {
  const out = [];
  for (const { path, warmup, requests, keep } of plan) {
    for (let i = 0; i < warmup; i++) await get(path, false);
    const ms = [], bytes = [], statuses = [];
    let body;
    for (let i = 0; i < requests; i++) {
      const r = await get(path, keep && i === requests - 1);
      ms.push(r.ms); bytes.push(r.bytes); statuses.push(r.status);
      body = r.body ?? body;
    }
    out.push({ path, ms, bytes, statuses, body });
  }
  agent.destroy();
  process.stdout.write(JSON.stringify({ results: out, connections: sockets.size }));
}
main().catch((error) => { process.stderr.write(String(error && error.stack || error) + "\\n"); process.exit(1); });
`;

/** Runs the client in `ns` with `plan`; rejects when it fails or takes longer than --timeout (then it is killed). */
function runEndpointClient(ns, plan) {
  return new Promise((resolve, reject) => {
    const child = spawn("nsenter", [`--net=/run/netns/${ns}`, process.execPath, "-e", ENDPOINT_CLIENT, "127.0.0.1", "9476", JSON.stringify(plan)], { stdio: ["ignore", "pipe", "pipe"] });
    clients.add(child);
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill("SIGKILL"), TIMEOUT_MS);
    child.on("error", (error) => {
      clearTimeout(timer);
      clients.delete(child);
      reject(error);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      clients.delete(child);
      if (code !== 0) return reject(new Error(`the endpoint client (PID ${child.pid}) ${signal === "SIGKILL" ? `was killed after ${TIMEOUT_MS} ms` : `failed (${code ?? signal})`}: ${stderr.trim().slice(0, 1000)}`));
      try {
        resolve(JSON.parse(stdout));
      } catch (error) {
        reject(new Error(`the endpoint client printed no JSON (${error.message}): ${stdout.slice(0, 200)}`));
      }
    });
  });
}

/** The nearest-rank percentile `p` (0–100) of `values`. */
function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** The agent's reconcile runs so far, from one untimed GET /metrics (to tell whether a run fell in the window). */
async function reconcileRuns(ns) {
  const { results } = await runEndpointClient(ns, [{ path: "/metrics", warmup: 0, requests: 1, keep: true }]);
  const match = /^weft_reconcile_runs_total(?:\{[^}]*\})? (\d+)/m.exec(results[0].body ?? "");
  return match ? Number(match[1]) : undefined;
}

/**
 * Each endpoint of ENDPOINT_PLAN in a client run of its own, the agent's CPU time (utime + stime) read around
 * it: per request, over the warm-up and the timed requests. Also the 1-minute load average before and after,
 * and the reconcile runs that happened meanwhile (a periodic resync would disturb the times).
 */
async function measureEndpoints(ns, agent) {
  const runsBefore = await reconcileRuns(ns);
  const loadBefore = os.loadavg()[0];
  const startedS = Number(process.hrtime.bigint() - agent.started) / 1e9;
  const rows = [];
  let connections = 0;
  for (const { path: endpoint, requests } of ENDPOINT_PLAN) {
    const ticks = cpuTicks(agent);
    const { results, connections: opened } = await runEndpointClient(ns, [{ path: endpoint, warmup: ENDPOINT_WARMUP, requests }]);
    const cpuMs = ((cpuTicks(agent) - ticks) * 1000) / CLOCK_TICKS;
    connections = Math.max(connections, opened);
    const [result] = results;
    const statuses = new Map();
    for (const status of result.statuses) statuses.set(status, (statuses.get(status) ?? 0) + 1);
    rows.push({
      endpoint, requests, p50: median(result.ms), p95: percentile(result.ms, 95), max: Math.max(...result.ms),
      bytesMin: Math.min(...result.bytes), bytesMax: Math.max(...result.bytes),
      statuses: [...statuses].map(([status, count]) => (statuses.size === 1 ? String(status) : `${status} ×${count}`)).join(", "),
      cpuMsPerRequest: cpuMs / (ENDPOINT_WARMUP + requests),
    });
  }
  const endedS = Number(process.hrtime.bigint() - agent.started) / 1e9;
  const runsAfter = await reconcileRuns(ns);
  return { rows, connections, loadBefore, loadAfter: os.loadavg()[0], window: [startedS, endedS], runsDuring: runsBefore === undefined || runsAfter === undefined ? undefined : runsAfter - runsBefore };
}

/**
 * From `from` (agent start, or the node file's rename) until converged: the agent's next "Reconciled" log line
 * (default) or the kernel matching `expected` (--detect kernel); then the kernel is checked either way.
 * Returns the elapsed ms and the agent's own duration of that reconcile run.
 */
async function converge(agent, ns, { fromLine, from, expected, what }) {
  const line = waitForLine(agent, fromLine, (l) => l.msg === "Reconciled" || l.level === "error");
  line.catch(() => undefined);
  let elapsed;
  if (DETECT === "kernel") elapsed = await waitForKernel(ns, expected, from, agent);
  const hit = await line;
  if (hit.line.msg !== "Reconciled") throw new Error(`${what}: the agent logged an error: ${JSON.stringify(hit.line)}`);
  if (hit.line.errors?.length) throw new Error(`${what}: the reconcile run had errors: ${hit.line.errors.slice(0, 3).join("; ")}`);
  elapsed ??= Number(hit.at - from) / 1e6;
  const problems = difference(kernelObjects(ns), expected);
  if (problems.length) throw new Error(`${what}: the agent reported convergence but the kernel differs: ${problems.join("; ")}`);
  return { ms: elapsed, reconcileMs: hit.line.ms, phases: hit.line.phasesMs };
}

/**
 * Cold start, then churn, for one N. A phase that does not finish within --timeout, or an agent that dies, ends
 * that N's measurement: the result says so (and the memory at that moment), and the next N runs.
 */
async function measureAgent(n, lists, afterRound = () => undefined, { endpoints = false } = {}) {
  const ns = addNodeNetns(`agent-${n}`);
  const dir = path.join(tmp, `agent-${n}`);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, "net-conf.json"), JSON.stringify({ Network: "10.0.0.0/8", SubnetLen: 24, Backend: { Type: "vxlan", VNI: VNI } }));
  const nodeFile = path.join(dir, "nodes.json");
  writeNodeFile(nodeFile, lists.cold);
  const profileDir = CPU_PROF ? path.join(path.resolve(CPU_PROF), String(n)) : undefined;

  const agent = startAgent(ns, dir, { profileDir });
  const result = { profileDir };
  try {
    const cold = await converge(agent, ns, { fromLine: 0, from: agent.started, expected: expectedObjects(lists.cold), what: `N=${n} cold` });
    result.cold = cold.ms;
    result.coldReconcileMs = cold.reconcileMs;
    result.coldPhases = cold.phases;
    const starting = agent.lines.find((l) => l.line.msg === "Starting weft-agent");
    result.loadMs = starting ? Number(starting.at - agent.started) / 1e6 : NaN;
    result.afterCold = memory(agent.pid);
    await waitIdle(agent);
    if (endpoints) {
      try {
        result.endpoints = await measureEndpoints(ns, agent);
      } catch (error) {
        if (agent.exit !== undefined) throw agentDied(agent);
        result.endpoints = { error: error.message };
        process.stderr.write(`agent-scale: N=${n}: endpoints: ${error.message}\n`);
      }
      if (ONLY_ENDPOINTS) return result;
      await waitIdle(agent);
    }

    // Churn back and forth: the churned list, the cold one again, … — each a change of the same size.
    const rounds = [];
    for (let round = 0; round < ROUNDS; round++) {
      const list = round % 2 === 0 ? lists.churned : lists.cold;
      const fromLine = agent.lines.length;
      writeNodeFile(nodeFile, list);
      rounds.push(await converge(agent, ns, { fromLine, from: process.hrtime.bigint(), expected: expectedObjects(list), what: `N=${n} churn round ${round + 1}` }));
      await waitIdle(agent);
      afterRound(round);
    }
    result.churnRounds = rounds.map((r) => r.ms);
    result.churn = median(rounds.map((r) => r.ms));
    result.churnReconcileMs = median(rounds.map((r) => r.reconcileMs));
    result.churnPhases = Object.fromEntries(["desired", "plan", "apply"].map((phase) => [phase, median(rounds.map((r) => r.phases?.[phase] ?? NaN))]));
    result.afterChurn = memory(agent.pid);
    result.status = statusMs(ns, dir);
  } catch (error) {
    if (error instanceof TimedOut) {
      result.timedOut = true;
      result.atTimeout = memory(agent.pid);
    } else if (agent.exit !== undefined) {
      result.died = String(agent.exit);
      process.stderr.write(`agent-scale: N=${n}: ${error.message}\n`);
    } else {
      throw error;
    }
  } finally {
    await stopAgent(agent);
  }
  return result;
}

// ---------------------------------------------------------------------------------------------------------------
// The floor: iproute2 in batch mode, one process per tool.

const neighLine = (verb, node) => `neigh ${verb} ${vtepAddress(node)}${verb === "del" ? "" : ` lladdr ${node.vtepMac} nud permanent`} dev ${VTEP}`;
const fdbLine = (verb, node) => `fdb ${verb} ${node.vtepMac} dev ${VTEP} dst ${node.publicIp} self${verb === "del" ? "" : " permanent"}`;
const routeLine = (verb, node) => `route ${verb} ${node.podCidrs[0]}${verb === "del" ? "" : ` via ${vtepAddress(node)} dev ${VTEP} onlink`} proto 87`;

function timeBatches(ns, batches) {
  const files = batches.map(([tool, lines], i) => {
    const file = path.join(tmp, `${ns}-${i}-${tool}.batch`);
    fs.writeFileSync(file, `${lines.join("\n")}\n`);
    return [tool, file];
  });
  const started = process.hrtime.bigint();
  for (const [tool, file] of files) run(tool, ["-n", ns, "-batch", file]);
  return ms(started);
}

/** The cold batch now; churn rounds later, one after each of the agent's (same machine conditions for both). */
function measureBatch(n, lists) {
  const ns = addNodeNetns(`batch-${n}`);
  const cold = timeBatches(ns, [
    ["ip", [
      `link add ${VTEP} address ${LOCAL.vtepMac} mtu 1450 type vxlan id ${VNI} dstport 8472 local ${LOCAL.publicIp} dev ${UNDERLAY} nolearning`,
      `addr add 10.0.0.0/32 dev ${VTEP}`,
      `link set ${VTEP} up`,
      ...lists.cold.map((node) => neighLine("replace", node)),
      ...lists.cold.map((node) => routeLine("replace", node)),
    ]],
    ["bridge", lists.cold.map((node) => fdbLine("replace", node))],
  ]);
  const coldProblems = difference(kernelObjects(ns), expectedObjects(lists.cold));
  if (coldProblems.length) throw new Error(`ip -batch N=${n}: ${coldProblems.join("; ")}`);
  const rounds = [];
  const churnRound = (round) => {
    const [added, removed, list] = round % 2 === 0 ? [lists.added, lists.removed, lists.churned] : [lists.removed, lists.added, lists.cold];
    rounds.push(timeBatches(ns, [
      ["ip", [
        ...added.map((node) => neighLine("replace", node)),
        ...added.map((node) => routeLine("replace", node)),
        ...removed.map((node) => routeLine("del", node)),
        ...removed.map((node) => neighLine("del", node)),
      ]],
      ["bridge", [...added.map((node) => fdbLine("replace", node)), ...removed.map((node) => fdbLine("del", node))]],
    ]));
    const churnProblems = difference(kernelObjects(ns), expectedObjects(list));
    if (churnProblems.length) throw new Error(`ip -batch churn N=${n} round ${round + 1}: ${churnProblems.join("; ")}`);
  };
  return { cold, churnRound, churnRounds: rounds, get churn() { return median(rounds); } };
}

// ---------------------------------------------------------------------------------------------------------------
// --cpu-prof: where the agent's time went, by function (self time, and total time of the agent's own functions).

function summariseProfile(dir) {
  if (!dir || !fs.existsSync(dir)) return "(no profile written: the agent did not exit cleanly)";
  const file = fs.readdirSync(dir).filter((f) => f.endsWith(".cpuprofile")).map((f) => path.join(dir, f))[0];
  if (!file) return "(no profile written)";
  const profile = JSON.parse(fs.readFileSync(file, "utf8"));
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const label = (node) => {
    const f = node.callFrame;
    const where = f.url ? `${path.basename(f.url)}:${f.lineNumber + 1}` : "";
    return `${f.functionName || "(anonymous)"}${where ? ` ${where}` : ""}`;
  };
  const self = new Map();
  const total = new Map();
  let sum = 0;
  profile.samples.forEach((id, i) => {
    const delta = (profile.timeDeltas[i] ?? 0) / 1000;
    sum += delta;
    const node = byId.get(id);
    self.set(label(node), (self.get(label(node)) ?? 0) + delta);
    const seen = new Set();
    for (let at = id; at !== undefined; at = parent.get(at)) {
      const name = label(byId.get(at));
      if (seen.has(name)) continue;
      seen.add(name);
      total.set(name, (total.get(name) ?? 0) + delta);
    }
  });
  const top = (map, count, filter = () => true) => [...map].filter(([name]) => filter(name)).sort((a, b) => b[1] - a[1]).slice(0, count);
  const ownCode = (name) => /\.[cm]?js:\d+$/.test(name) && !/^\(anonymous\)/.test(name); // the bundle, not Node internals
  return [
    `profile ${file} (${sum.toFixed(0)} ms sampled)`,
    "  self time:",
    ...top(self, 12).map(([name, t]) => `    ${t.toFixed(0).padStart(7)} ms  ${name}`),
    "  total time, the agent's named functions:",
    ...top(total, 25, ownCode).map(([name, t]) => `    ${t.toFixed(0).padStart(7)} ms  ${name}`),
  ].join("\n");
}

// ---------------------------------------------------------------------------------------------------------------

function requireTools() {
  if (process.getuid?.() !== 0) throw new Error("needs root (network namespaces)");
  for (const tool of ["ip", "bridge", "nsenter"]) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) throw new Error(`${tool} is missing: apt-get install ${tool === "nsenter" ? "util-linux" : "iproute2"}`);
  }
  if (!fs.existsSync(AGENT)) throw new Error(`${AGENT} is missing: run npm run build first`);
}

async function cleanup() {
  for (const client of [...clients]) {
    try {
      process.kill(client.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  for (const agent of [...agents]) {
    try {
      process.kill(agent.pid, "SIGKILL");
    } catch {
      // already gone
    }
    await agent.exited;
  }
  netns.removeAll();
  if (process.env.WEFT_BENCH_KEEP === "1") process.stderr.write(`agent-scale: kept ${tmp} (agent logs)\n`);
  else fs.rmSync(tmp, { recursive: true, force: true });
  fs.rmSync(runDir, { recursive: true, force: true });
}

/** --endpoints: one table, rows by N then endpoint; below it, per N, what may have disturbed the times. */
function endpointLines(results) {
  const f1 = (x) => x.toFixed(1);
  const bytes = (row) => (row.bytesMin === row.bytesMax ? row.bytesMax.toLocaleString("en") : `${row.bytesMin.toLocaleString("en")}–${row.bytesMax.toLocaleString("en")}`);
  const rows = results.flatMap(({ n, agent }) => {
    const label = n.toLocaleString("en");
    if (agent.endpoints?.rows) return agent.endpoints.rows.map((row) => `| ${label} | ${row.endpoint} | ${row.requests} | ${row.p50.toFixed(2)} | ${row.p95.toFixed(2)} | ${row.max.toFixed(2)} | ${bytes(row)} | ${row.statuses} | ${row.cpuMsPerRequest.toFixed(2)} |`);
    const why = agent.endpoints?.error ?? (agent.died ? `agent died (${agent.died})` : agent.timedOut ? "the cold start timed out" : "not measured");
    return [`| ${label} | — | | | | | | ${why.replace(/\s+/g, " ").replaceAll("|", "/").slice(0, 200)} | |`];
  });
  return [
    `Agent debug endpoint — ${AGENT}; after the cold start, agent idle; sequential GETs over one keep-alive connection from a client (${process.execPath}, node ${process.version}) in the node's namespace, timed there from request to the body's last byte; ${ENDPOINT_WARMUP} warm-up requests each, not counted; p95 nearest rank; ${os.cpus().length} cores, kernel ${os.release()}, ${new Date().toISOString().slice(0, 10)}`,
    "",
    "| remote nodes | endpoint | requests | p50 ms | p95 ms | max ms | response bytes | HTTP status | agent CPU ms / request |",
    "|---:|---|---:|---:|---:|---:|---:|---|---:|",
    ...rows,
    "",
    ...results.filter(({ agent }) => agent.endpoints?.rows).map(({ n, agent }) => {
      const e = agent.endpoints;
      return `- ${n.toLocaleString("en")}: cold start ${agent.cold.toFixed(0)} ms, RSS after it ${agent.afterCold.rss.toFixed(0)} MB; measured ${f1(e.window[0])}–${f1(e.window[1])} s after the agent's start (resync every 60 s); reconcile runs meanwhile: ${e.runsDuring ?? "?"}; connections: ${e.connections} per client run; load average (1 min) ${e.loadBefore.toFixed(2)} → ${e.loadAfter.toFixed(2)}`;
    }),
  ];
}

async function main() {
  requireTools();
  if (ONLY_ENDPOINTS) {
    const results = [];
    for (const n of SIZES) {
      const agent = await measureAgent(n, nodeLists(n), undefined, { endpoints: true });
      results.push({ n, agent });
      netns.removeAll();
      process.stderr.write(`N=${n}: weft cold ${agent.cold?.toFixed(0)} ms${agent.timedOut ? " (timed out)" : ""}${agent.died ? ` (died: ${agent.died})` : ""}; endpoints ${agent.endpoints?.rows ? agent.endpoints.rows.map((r) => `${r.endpoint} p50 ${r.p50.toFixed(2)} ms`).join(", ") : (agent.endpoints?.error ?? "not measured")}\n`);
    }
    console.log(endpointLines(results).join("\n"));
    if (CPU_PROF) for (const { n, agent } of results) console.log(`\nN=${n}: ${summariseProfile(agent.profileDir)}`);
    return;
  }
  // The fixed cost: the agent with no remote node at all (runtime start, bundle load, source, files).
  const baseline = await measureAgent(0, { cold: [], churned: [remoteNode(0)], removed: [], added: [remoteNode(0)] });
  if (baseline.cold === undefined || baseline.churn === undefined) throw new Error(`the agent does not converge even with no remote node (${baseline.died ?? "timed out"})`);

  const results = [];
  for (const n of SIZES) {
    const lists = nodeLists(n);
    const batch = measureBatch(n, lists);
    const agent = await measureAgent(n, lists, batch.churnRound, { endpoints: ENDPOINTS });
    // Rounds the agent did not reach (a timeout) are still measured for ip -batch.
    for (let round = batch.churnRounds.length; round < ROUNDS; round++) batch.churnRound(round);
    results.push({ n, replaced: lists.added.length, batch, agent });
    netns.removeAll();
    process.stderr.write(`N=${n}: weft cold ${agent.cold?.toFixed(0)} ms, churn ${agent.churn?.toFixed(0)} ms${agent.timedOut ? " (timed out)" : ""}${agent.died ? ` (died: ${agent.died})` : ""}; ip -batch cold ${batch.cold.toFixed(0)} ms, churn ${batch.churn.toFixed(0)} ms\n`);
  }

  const f0 = (x) => x.toFixed(0);
  const ratio = (a, b) => `${(a / b).toFixed(2)}×`;
  // A phase that was not reached, timed out, or during which the agent died.
  const failed = (agent, phase) => {
    if (agent.died) return `agent died (${agent.died})`;
    if (phase === "churn" && agent.cold === undefined) return "not measured";
    return `> ${f0(TIMEOUT_MS)} (timed out)`;
  };
  const time = (agent, phase) => (agent[phase] === undefined ? failed(agent, phase) : f0(agent[phase]));
  const timeRatio = (agent, phase, floor) => {
    if (agent[phase] !== undefined) return ratio(agent[phase], floor);
    return agent.timedOut && (phase === "cold" || agent.cold !== undefined) ? `> ${ratio(TIMEOUT_MS, floor)}` : "";
  };
  const rss = (agent) => {
    const m = agent.afterChurn ?? agent.atTimeout ?? agent.afterCold;
    if (!m) return "";
    return `${f0(m.rss)} (${f0(m.hwm)})${agent.afterChurn ? "" : agent.atTimeout ? " at the timeout" : " after cold start"}`;
  };
  const detail = (value, digits = 0) => (value === undefined ? "" : value.toFixed(digits));
  // The run's duration, then its phases: desired state / plan (a full run's includes the kernel dump) / apply.
  const runCell = (ms, phases) => (ms === undefined ? "" : `${ms.toFixed(1)}${phases ? ` (${[phases.desired, phases.plan, phases.apply].map((x) => x.toFixed(1)).join(" / ")})` : ""}`);
  const lines = [
    `Agent scale — vxlan, file source, detection: ${DETECT === "log" ? "the agent's \"Reconciled\" log line, then the kernel checked" : "the kernel polled every 100 ms"}, churn ${Math.round(CHURN * 100)}% (median of ${ROUNDS} rounds); ${os.cpus().length} cores, kernel ${os.release()}, ${new Date().toISOString().slice(0, 10)}`,
    "",
    "| remote nodes (kernel objects) | weft cold ms | ip -batch cold ms | ratio | weft churn ms | ip -batch churn ms | ratio | weft RSS MB (peak) |",
    "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ...results.map(({ n, batch, agent }) =>
      `| ${n.toLocaleString("en")} (${(3 * n).toLocaleString("en")}) | ${time(agent, "cold")} | ${f0(batch.cold)} | ${timeRatio(agent, "cold", batch.cold)} | ${time(agent, "churn")} | ${f0(batch.churn)} | ${timeRatio(agent, "churn", batch.churn)} | ${rss(agent)} |`),
    "",
    "| remote nodes | process start → first log line ms | cold: the reconcile run ms (desired / plan / apply) | churn: before the run ms | churn: the reconcile run ms (desired / plan / apply) | RSS after cold start MB | RSS at the end: anonymous + file-backed MB | `weft-agent status --json` ms |",
    "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ...[{ n: 0, agent: baseline }, ...results].map(({ n, agent }) =>
      `| ${n.toLocaleString("en")} | ${detail(agent.loadMs)} | ${runCell(agent.coldReconcileMs, agent.coldPhases)} | ${agent.churn === undefined ? "" : detail(Math.max(0, agent.churn - agent.churnReconcileMs), 1)} | ${runCell(agent.churnReconcileMs, agent.churnPhases)} | ${agent.afterCold ? f0(agent.afterCold.rss) : ""} | ${agent.afterChurn ? `${f0(agent.afterChurn.anon)} + ${f0(agent.afterChurn.file)}` : ""} | ${agent.status ? f0(agent.status.ms) : ""} |`),
    "",
    "",
    "Churn rounds, ms, in the order run, each agent round followed by the same change through ip -batch (weft | ip -batch):",
    ...results.map(({ n, batch, agent }) => {
      const ratios = (agent.churnRounds ?? []).map((ms, i) => ms / batch.churnRounds[i]);
      return `- ${n.toLocaleString("en")}: ${(agent.churnRounds ?? []).map(f0).join(", ")} | ${batch.churnRounds.map(f0).join(", ")}${ratios.length ? ` — round by round: median ${ratio(median(ratios), 1)}, ${ratio(Math.min(...ratios), 1)}–${ratio(Math.max(...ratios), 1)}` : ""}`;
    }),
    "",
    `With 0 remote nodes: agent start → converged ${f0(baseline.cold)} ms; one node added or removed → converged ${f0(baseline.churn)} ms (median).`,
  ];
  console.log(lines.join("\n"));
  if (ENDPOINTS) console.log(["", "", ...endpointLines(results)].join("\n"));
  if (CPU_PROF) {
    for (const { n, agent } of [{ n: 0, agent: baseline }, ...results]) console.log(`\nN=${n}: ${summariseProfile(agent.profileDir)}`);
  }
}

await runBenchmark("agent-scale", main, cleanup);
