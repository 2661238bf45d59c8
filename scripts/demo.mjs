#!/usr/bin/env node
// The demo, on this one machine (run it through scripts/demo.sh, which installs and builds first):
//
//   weft-demo-external 198.51.100.10 ── ext0 ┐
//                                            weft-demo-underlay: bridge br0 192.168.90.1/24, routes between the
//   weft-demo-node-1 eth0 192.168.90.11 ─────┤ two (the "router"); the external host has no route to the pods
//   weft-demo-node-2 eth0 192.168.90.12 ─────┤
//   weft-demo-node-3 eth0 192.168.90.13 ─────┘ each node: weft-agent (file source, vxlan), cni0, 2 pods
//
// Every node, pod and host is a network namespace named weft-demo-*: the machine's own (root) namespace is never
// touched. Each node runs the real dist/weft-agent (log and PID in /run/weft-demo/<node>/), its pods are made by
// the real dist/weft from the conflist that agent wrote. Then: TCP from every pod to every other pod, from every
// pod to the external host (which answers with the source address it sees: the node's, masqueraded by weft),
// the overlay probes of each agent, and where to look. The demo stays up; `down` removes it.
//
//   node scripts/demo.mjs [up] [--json]   exit 1 when a pod↔pod connection or a SNAT check fails
//   node scripts/demo.mjs down
import { execFile, execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const WEFT = path.join(root, "dist/weft");
const AGENT = path.join(root, "dist/weft-agent");
const PREFIX = "weft-demo-";
const UNDERLAY = `${PREFIX}underlay`;
const EXTERNAL = `${PREFIX}external`;
const STATE_DIR = "/run/weft-demo";
const CACHE_DIR = path.join(STATE_DIR, "cache");
const UNDERLAY_NET = "192.168.90";
const EXTERNAL_IP = "198.51.100.10";
const PORT = 8080;
const DEBUG_ADDR = "127.0.0.1:9476";
const POD_NETWORK = "10.244.0.0/16";
/** Marks the demo's server processes, so that `down` ends only them (checked against /proc/<pid>/cmdline). */
const SERVER_MARK = "weft-demo-server";

const NODES = [1, 2, 3].map((index) => ({
  index,
  name: `node-${index}`,
  netns: `${PREFIX}node-${index}`,
  ip: `${UNDERLAY_NET}.${10 + index}`,
  podCidr: `10.244.${index}.0/24`,
  dir: path.join(STATE_DIR, `node-${index}`),
}));
const PODS = NODES.flatMap((node) => ["a", "b"].map((letter) => ({ name: `pod-${node.index}${letter}`, node, netns: `${PREFIX}pod-${node.index}${letter}`, ip: "" })));

const json = process.argv.includes("--json");
/** The human report: stdout, or stderr when stdout carries the JSON document. */
const say = (line = "") => (json ? process.stderr : process.stdout).write(`${line}\n`);

// ---- kernel and process helpers (argv only, never a shell) ----

function run(argv, { input, allowFailure = false } = {}) {
  try {
    return execFileSync(argv[0], argv.slice(1), { input, encoding: "utf8", stdio: ["pipe", "pipe", "pipe"] });
  } catch (error) {
    if (allowFailure) return "";
    throw new Error(`${argv.join(" ")} failed: ${error.stderr?.trim() || error.message}`, { cause: error });
  }
}

const nsenter = (netns) => ["nsenter", `--net=/run/netns/${netns}`];
const ipIn = (netns, ...args) => run(["ip", "-n", netns, ...args]);
/** Writes a sysctl of the namespace through /proc/sys, which shows the writer's namespace (no procps needed). */
const sysctlIn = (netns, key, value) => run([...nsenter(netns), "tee", `/proc/sys/${key.replaceAll(".", "/")}`], { input: `${value}\n` });

function demoNamespaces() {
  return run(["ip", "netns", "list"], { allowFailure: true })
    .split("\n")
    .map((line) => line.split(" ")[0])
    .filter((name) => name?.startsWith(PREFIX));
}

function addNetns(name) {
  run(["ip", "netns", "add", name]);
  ipIn(name, "link", "set", "lo", "up");
}

/** Alive, and not a zombie waiting for a parent that is gone. */
function processAlive(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

function cmdline(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
  } catch {
    return "";
  }
}

/** Starts argv detached (it outlives the demo), output to `logFile`; records its PID in `pidFile`. */
function startDetached(argv, { logFile, pidFile, env = {}, stdout = "log" }) {
  const log = fs.openSync(logFile, "a");
  const child = spawn(argv[0], argv.slice(1), {
    detached: true,
    stdio: ["ignore", stdout === "pipe" ? "pipe" : log, log],
    env: { PATH: process.env.PATH, WEFT_CACHE_DIR: CACHE_DIR, ...env },
  });
  fs.closeSync(log);
  fs.writeFileSync(pidFile, `${child.pid}\n`);
  child.unref();
  return child;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- down ----

function pidFiles(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) return pidFiles(file);
    return entry.name.endsWith(".pid") ? [file] : [];
  });
}

async function down({ quiet = false } = {}) {
  // 1. The processes the demo recorded, each checked to still be ours (a PID can be reused), SIGTERM first.
  const stopping = [];
  for (const file of pidFiles(STATE_DIR)) {
    const pid = Number(fs.readFileSync(file, "utf8").trim());
    const mark = path.basename(file) === "agent.pid" ? "weft-agent" : SERVER_MARK;
    if (!Number.isInteger(pid) || pid <= 1 || !processAlive(pid) || !cmdline(pid).includes(mark)) continue;
    process.kill(pid, "SIGTERM");
    stopping.push(pid);
  }
  for (let waited = 0; stopping.some(processAlive) && waited < 5_000; waited += 100) await sleep(100);
  for (const pid of stopping.filter(processAlive)) process.kill(pid, "SIGKILL");
  // 2. Anything else still inside a demo namespace was started in it by the demo (e.g. a run killed before it
  //    recorded a PID): end it, by PID, so that the namespaces really go away.
  const namespaces = demoNamespaces();
  let strays = 0;
  for (const netns of namespaces) {
    for (const pid of run(["ip", "netns", "pids", netns], { allowFailure: true }).split(/\s+/).filter(Boolean).map(Number)) {
      if (processAlive(pid)) {
        process.kill(pid, "SIGKILL");
        strays++;
      }
    }
  }
  // 3. The namespaces: with them go every link, route, neighbour, FDB entry and nftables table weft made in
  //    them (what `weft-agent uninstall` removes on a real node). Then the files.
  for (const netns of namespaces) run(["ip", "netns", "del", netns], { allowFailure: true });
  // The demo's own bpffs (the eBPF datapath's pins): unmounting it drops every pin of the demo's agents.
  const bpf = path.join(STATE_DIR, "bpf");
  if (fs.existsSync(bpf)) run(["umount", bpf], { allowFailure: true });
  const hadState = fs.existsSync(STATE_DIR);
  fs.rmSync(STATE_DIR, { recursive: true, force: true });
  const left = demoNamespaces();
  if (left.length > 0) throw new Error(`Cannot remove the demo: namespaces ${left.join(", ")} remain`);
  if (!quiet) {
    say(namespaces.length === 0 && !hadState && stopping.length === 0
      ? "demo: nothing to remove"
      : `demo: removed: ${stopping.length + strays} processes stopped, ${namespaces.length} namespaces deleted, ${STATE_DIR} removed`);
  }
}

// ---- up ----

function buildTopology() {
  for (const name of [UNDERLAY, EXTERNAL, ...NODES.map((n) => n.netns)]) addNetns(name);
  sysctlIn(UNDERLAY, "net.ipv4.ip_forward", 1);
  ipIn(UNDERLAY, "link", "add", "br0", "type", "bridge");
  ipIn(UNDERLAY, "addr", "add", `${UNDERLAY_NET}.1/24`, "dev", "br0");
  ipIn(UNDERLAY, "link", "set", "br0", "up");
  ipIn(UNDERLAY, "link", "add", "ext0", "type", "veth", "peer", "name", "eth0", "netns", EXTERNAL);
  ipIn(UNDERLAY, "addr", "add", "198.51.100.1/24", "dev", "ext0");
  ipIn(UNDERLAY, "link", "set", "ext0", "up");
  ipIn(EXTERNAL, "addr", "add", `${EXTERNAL_IP}/24`, "dev", "eth0");
  ipIn(EXTERNAL, "link", "set", "eth0", "up");
  ipIn(EXTERNAL, "route", "add", `${UNDERLAY_NET}.0/24`, "via", "198.51.100.1");
  for (const node of NODES) {
    const port = `port${node.index}`;
    ipIn(UNDERLAY, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", node.netns);
    ipIn(UNDERLAY, "link", "set", port, "master", "br0", "up");
    sysctlIn(node.netns, "net.ipv4.ip_forward", 1);
    ipIn(node.netns, "addr", "add", `${node.ip}/24`, "dev", "eth0");
    ipIn(node.netns, "link", "set", "eth0", "up");
    ipIn(node.netns, "route", "add", "default", "via", `${UNDERLAY_NET}.1`);
  }
}

function writeConfig() {
  const netConf = path.join(STATE_DIR, "net-conf.json");
  fs.writeFileSync(netConf, `${JSON.stringify({ Network: POD_NETWORK, SubnetLen: 24, Backend: { Type: "vxlan" } }, null, 2)}\n`);
  // No vtepMac: each entry gets one derived from its name, by every agent alike (its own included).
  const nodeFile = path.join(STATE_DIR, "nodes.json");
  fs.writeFileSync(nodeFile, `${JSON.stringify({ nodes: NODES.map((n) => ({ name: n.name, podCidrs: [n.podCidr], publicIp: n.ip })) }, null, 2)}\n`);
  return { netConf, nodeFile };
}

function startAgent(node, { netConf, nodeFile }) {
  fs.mkdirSync(node.dir, { recursive: true });
  const argv = [
    ...nsenter(node.netns), AGENT, "run",
    "--node-name", node.name,
    "--source", "file", "--node-file", nodeFile,
    "--net-conf", netConf,
    "--cni-conf-dir", path.join(node.dir, "net.d"),
    "--subnet-file", path.join(node.dir, "subnet.env"),
    "--state-dir", path.join(node.dir, "state"),
    "--ipam-data-dir", path.join(node.dir, "ipam"),
    "--debug-addr", DEBUG_ADDR,
    "--probe-interval", "1s",
    // --datapath auto (the default): eBPF where this machine allows it. Each node pins under its own
    // directory of the demo's bpffs, as if each had its own /sys/fs/bpf.
    "--bpf-dir", path.join(STATE_DIR, "bpf", node.name),
  ];
  // nsenter and the launcher exec: the recorded PID is the agent's own.
  const child = startDetached(argv, { logFile: path.join(node.dir, "agent.log"), pidFile: path.join(node.dir, "agent.pid") });
  node.agentPid = child.pid;
  node.started = performance.now();
}

async function agentState(node) {
  const { stdout } = await execFileAsync("nsenter", [`--net=/run/netns/${node.netns}`, AGENT, "status", "--json", "--debug-addr", DEBUG_ADDR], { encoding: "utf8", timeout: 10_000 })
    .catch((error) => (error.code === 1 ? { stdout: error.stdout } : Promise.reject(error))); // 1: answers, not ready
  return JSON.parse(stdout);
}

function agentLogTail(node) {
  try {
    return fs.readFileSync(path.join(node.dir, "agent.log"), "utf8").split("\n").slice(-15).join("\n");
  } catch {
    return "(no log)";
  }
}

/** Polls `weft-agent status --json` until `check` holds; throws with the agent's log after `timeoutMs`. */
async function waitFor(node, check, what, timeoutMs) {
  const deadline = performance.now() + timeoutMs;
  let last = "";
  for (;;) {
    if (!processAlive(node.agentPid)) throw new Error(`${node.name}: weft-agent exited; end of ${node.dir}/agent.log:\n${agentLogTail(node)}`);
    try {
      const state = await agentState(node);
      if (check(state)) return state;
      last = JSON.stringify(state.readiness);
    } catch (error) {
      last = error.message;
    }
    if (performance.now() > deadline) throw new Error(`${node.name}: ${what} not reached in ${timeoutMs / 1000} s (last: ${last}); end of ${node.dir}/agent.log:\n${agentLogTail(node)}`);
    await sleep(200);
  }
}

/** The weft plugin's config: the first plugin of the conflist the node's agent wrote, as a runtime passes it. */
function pluginConf(node) {
  const conflist = JSON.parse(fs.readFileSync(path.join(node.dir, "net.d", "10-weft.conflist"), "utf8"));
  return { cniVersion: conflist.cniVersion, name: conflist.name, ...conflist.plugins[0] };
}

function addPod(pod) {
  addNetns(pod.netns);
  const started = performance.now();
  let stdout;
  try {
    stdout = execFileSync("nsenter", [`--net=/run/netns/${pod.node.netns}`, WEFT], {
      input: JSON.stringify(pluginConf(pod.node)),
      encoding: "utf8",
      stdio: ["pipe", "pipe", "pipe"],
      env: {
        PATH: process.env.PATH, WEFT_CACHE_DIR: CACHE_DIR,
        CNI_COMMAND: "ADD", CNI_CONTAINERID: pod.netns, CNI_NETNS: `/run/netns/${pod.netns}`, CNI_IFNAME: "eth0",
      },
    });
  } catch (error) {
    throw new Error(`weft ADD ${pod.name} on ${pod.node.name} failed: ${error.stdout}${error.stderr}`, { cause: error });
  }
  const result = JSON.parse(stdout);
  pod.ip = result.ips[0].address.split("/")[0];
  pod.addMs = performance.now() - started;
  pod.hostVeth = result.interfaces.find((i) => !i.sandbox && i.name.startsWith("veth"))?.name ?? "?";
}

// One server for both checks: it answers each connection with the client's address as it sees it.
const SERVER = `
const server = require("node:net").createServer((s) => s.end(s.remoteAddress.replace(/^::ffff:/, "")));
server.listen(Number(process.argv[2]), "0.0.0.0", () => process.stdout.write("listening\\n"));`;

// Connects to each target in turn; prints [{host, ok, ms, seenAs, error}] as JSON.
const CLIENT = `
const net = require("node:net");
const one = (host, port) => new Promise((resolve) => {
  const started = performance.now();
  const socket = net.connect({ host, port, timeout: 2000 });
  let seenAs = "";
  socket.setEncoding("utf8");
  socket.on("data", (d) => (seenAs += d));
  socket.on("end", () => resolve({ host, ok: true, ms: performance.now() - started, seenAs }));
  socket.on("timeout", () => { socket.destroy(); resolve({ host, ok: false, error: "timeout (2 s)" }); });
  socket.on("error", (e) => resolve({ host, ok: false, error: e.code || e.message }));
});
(async () => {
  const results = [];
  for (const host of JSON.parse(process.argv[1])) results.push(await one(host, ${PORT}));
  process.stdout.write(JSON.stringify(results));
})();`;

async function startServer(netns, name) {
  const child = startDetached([...nsenter(netns), process.execPath, "-e", SERVER, SERVER_MARK, String(PORT)], {
    logFile: path.join(STATE_DIR, "servers", `${name}.log`),
    pidFile: path.join(STATE_DIR, "servers", `${name}.pid`),
    stdout: "pipe",
  });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`The server in ${netns} did not start`)), 10_000);
    child.stdout.on("data", () => {
      clearTimeout(timer);
      resolve();
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`The server in ${netns} exited (${code}); see ${STATE_DIR}/servers/${name}.log`));
    });
  });
  child.removeAllListeners("exit");
  child.stdout.destroy();
}

function connectFrom(pod, hosts) {
  const [command, ...args] = [...nsenter(pod.netns), process.execPath, "-e", CLIENT, JSON.stringify(hosts)];
  const result = execFileSync(command, args, { encoding: "utf8", timeout: 30_000 });
  return JSON.parse(result);
}

const ms = (value) => (value < 10 ? value.toFixed(1) : value.toFixed(0));
const pad = (text, width) => text + " ".repeat(Math.max(0, width - [...text].length));

async function up() {
  for (const file of [WEFT, AGENT]) {
    if (!fs.existsSync(file)) throw new Error(`${file} does not exist: run npm run build (bash scripts/demo.sh does)`);
  }
  const started = performance.now();
  if (demoNamespaces().length > 0 || fs.existsSync(STATE_DIR)) {
    say("demo: removing the previous demo first");
    await down({ quiet: true });
  }
  fs.mkdirSync(path.join(STATE_DIR, "servers"), { recursive: true });
  // A bpffs of the demo's own for the agents' pins (never the machine's /sys/fs/bpf); `down` unmounts it.
  fs.mkdirSync(path.join(STATE_DIR, "bpf"), { recursive: true });
  run(["mount", "-t", "bpf", "bpf", path.join(STATE_DIR, "bpf")], { allowFailure: true });
  const files = writeConfig();
  buildTopology();
  for (const node of NODES) startAgent(node, files);
  say(`weft demo: 3 nodes on one underlay, weft-agent on each (file source ${files.nodeFile}, vxlan VNI 1 port 8472),`);
  say(`2 pods per node made by dist/weft; everything in network namespaces weft-demo-* (the root namespace is untouched)`);
  say();

  // Ready: overlay, masquerade and CNI config in place, both peers programmed.
  const states = await Promise.all(NODES.map((node) => waitFor(node, (s) => s.readiness.ready && s.peers.filter((p) => p.status === "programmed").length === NODES.length - 1, "ready with 2 peers programmed", 30_000)));
  NODES.forEach((node, i) => (node.readyMs = performance.now() - node.started, node.vtep = states[i].node.vtep, node.datapath = states[i].datapath));

  for (const pod of PODS) addPod(pod);
  await Promise.all([startServer(EXTERNAL, "external"), ...PODS.map((pod) => startServer(pod.netns, pod.name))]);

  for (const node of NODES) {
    const pods = PODS.filter((p) => p.node === node);
    say(`${node.name}  ${pad(node.ip, 14)} weft-agent pid ${node.agentPid}, ready ${(node.readyMs / 1000).toFixed(1)} s after start; vtep ${node.vtep?.name ?? "?"} ${node.vtep?.mac ?? ""}`);
    say(`        datapath ${node.datapath?.mode ?? "?"} (${node.datapath?.reason ?? "?"})`);
    say(`        pods ${node.podCidr}: ${pods.map((p) => `${p.name} ${p.ip} (ADD ${ms(p.addMs)} ms, host ${p.hostVeth})`).join(", ")}`);
  }
  say(`external host ${EXTERNAL_IP} (netns ${EXTERNAL}): reached through the underlay router, no route to ${POD_NETWORK}`);

  // Every pod connects to every other pod, then to the external host: one client process per pod.
  const matrix = [];
  const snat = [];
  for (const from of PODS) {
    const targets = PODS.filter((p) => p !== from);
    const results = connectFrom(from, [...targets.map((p) => p.ip), EXTERNAL_IP]);
    targets.forEach((to, i) => {
      const r = results[i];
      matrix.push({ from: from.name, to: to.name, fromIp: from.ip, toIp: to.ip, ...r, ok: r.ok && r.seenAs === from.ip, ...(r.ok && r.seenAs !== from.ip ? { error: `server saw ${r.seenAs}` } : {}) });
    });
    const r = results[targets.length];
    snat.push({ pod: from.name, node: from.node.name, podIp: from.ip, nodeIp: from.node.ip, ...r, ok: r.ok && r.seenAs === from.node.ip });
  }

  say();
  say(`TCP from each pod (row) to each pod (column), port ${PORT}: connect + answer, in ms; ✓ = answered and the server`);
  say(`saw the client's own pod address (no NAT inside the cluster), ✗ = failed`);
  const width = 10;
  say(`${pad("", 20)}${PODS.map((p) => pad(p.name, width)).join("")}`.trimEnd());
  for (const from of PODS) {
    const cells = PODS.map((to) => {
      if (to === from) return pad("·", width);
      const cell = matrix.find((c) => c.from === from.name && c.to === to.name);
      return pad(cell.ok ? `✓ ${ms(cell.ms)}` : "✗", width);
    });
    say(`${pad(`${from.name}  ${from.ip}`, 20)}${cells.join("")}`.trimEnd());
  }
  for (const cell of matrix.filter((c) => !c.ok)) say(`  ✗ ${cell.from} → ${cell.to} (${cell.toIp}): ${cell.error}`);

  say();
  say(`SNAT: each pod → external host ${EXTERNAL_IP}:${PORT}, which answers with the source address it sees`);
  for (const s of snat) {
    const seen = s.seenAs ? `seen as ${s.seenAs}` : `failed: ${s.error}`;
    const verdict = s.ok ? `= ${s.node}'s IP  ✓ ${ms(s.ms)} ms` : `✗ expected ${s.node}'s IP ${s.nodeIp}`;
    say(`  ${s.pod} ${pad(s.podIp, 11)} → ${pad(seen, 24)} ${verdict}`);
  }

  // The agents' own view: ICMP probes to each peer's VTEP address (1 s apart), as `weft-agent status` shows them.
  const probeStates = await Promise.all(NODES.map((node) =>
    waitFor(node, (s) => s.peers.every((p) => (p.probes[0]?.received ?? 0) > 0), "a probe reply from every peer", 5_000).catch(() => agentState(node))));
  const probes = NODES.flatMap((node, i) => probeStates[i].peers.map((peer) => {
    const probe = peer.probes[0];
    return { node: node.name, peer: peer.name, address: probe?.address, rttMs: probe?.rttMs, sent: probe?.sent ?? 0, received: probe?.received ?? 0, loss: probe?.loss, ok: (probe?.received ?? 0) > 0 };
  }));
  say();
  say("Overlay probes, as weft-agent status shows them: ICMP echo every second from each node (row) to each peer's");
  say("VTEP address through weft.1: last RTT (replies/probes; the first go out while the peers are still starting)");
  const probeWidth = 18;
  say(`${pad("", 8)}${NODES.map((n) => pad(n.name, probeWidth)).join("")}`.trimEnd());
  for (const node of NODES) {
    const cells = NODES.map((peer) => {
      if (peer === node) return pad("·", probeWidth);
      const p = probes.find((x) => x.node === node.name && x.peer === peer.name);
      return pad(p?.rttMs === undefined ? `no reply (${p?.received ?? 0}/${p?.sent ?? 0})` : `${p.rttMs.toFixed(2)} ms (${p.received}/${p.sent})`, probeWidth);
    });
    say(`${pad(node.name, 8)}${cells.join("")}`.trimEnd());
  }

  const hasCurl = (process.env.PATH ?? "").split(":").some((dir) => dir !== "" && fs.existsSync(path.join(dir, "curl")));
  const fetchMetrics = hasCurl
    ? "curl -s 127.0.0.1:9476/metrics"
    : `node_modules/.bin/node -e "fetch('http://127.0.0.1:9476/metrics').then(r=>r.text()).then(t=>process.stdout.write(t))"`;
  const n1 = `nsenter --net=/run/netns/${NODES[0].netns}`;
  const where = [
    ["node-1's agent as an operator sees it: peers, kernel objects, overlay probes, last plan", `${n1} dist/weft-agent status`],
    ["its debug endpoint: Prometheus metrics (also /healthz, /readyz, /debug/state)", `${n1} ${fetchMetrics}`],
    ["weft's routes (protocol 87), the VXLAN FDB (peer VTEP MAC → node IP), the masquerade rules", `${n1} ip route show proto 87`],
    [undefined, `${n1} bridge fdb show dev weft.1`],
    [undefined, `${n1} nft list table inet weft`],
    ["the agent's log (JSON lines)", `less ${NODES[0].dir}/agent.log`],
    ["stop the agents and remove the namespaces and " + STATE_DIR, "bash scripts/demo.sh down"],
  ];
  say();
  say(`Where to look (from ${root}; node-2 and node-3 alike):`);
  for (const [comment, command] of where) {
    if (comment) say(`  # ${comment}`);
    say(`  ${command}`);
  }

  const matrixOk = matrix.filter((c) => c.ok).length;
  const snatOk = snat.filter((s) => s.ok).length;
  const probesOk = probes.filter((p) => p.ok).length;
  const summary = `demo: matrix ${matrixOk}/${matrix.length} ok, snat ${snatOk}/${snat.length} ok, probes ${probesOk}/${probes.length} answered (${((performance.now() - started) / 1000).toFixed(1)} s)`;
  say();
  say(summary);
  if (json) {
    const doc = {
      ok: matrixOk === matrix.length && snatOk === snat.length,
      summary: { matrix: { ok: matrixOk, total: matrix.length }, snat: { ok: snatOk, total: snat.length }, probes: { ok: probesOk, total: probes.length } },
      nodes: NODES.map((n) => ({ name: n.name, netns: n.netns, ip: n.ip, podCidr: n.podCidr, agentPid: n.agentPid, datapath: n.datapath?.mode, log: path.join(n.dir, "agent.log") })),
      pods: PODS.map((p) => ({ name: p.name, node: p.node.name, netns: p.netns, ip: p.ip })),
      matrix, snat, probes,
    };
    process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
  }
  if (matrixOk !== matrix.length || snatOk !== snat.length) process.exitCode = 1;
}

try {
  if (process.argv.includes("down")) await down();
  else await up();
} catch (error) {
  process.stderr.write(`demo: ${error.message}\n`);
  if (!process.argv.includes("down")) process.stderr.write("demo: what was created stays for inspection; bash scripts/demo.sh down removes it\n");
  process.exitCode = 1;
}
