#!/usr/bin/env node
// Agent scale with the real Kubernetes API server: the real dist/weft-agent on the kube source converging N remote
// Node objects from a cold start, and its memory (the informer keeps whole Node objects), beside the same agent on
// the file source with the same N nodes, on the same machine, in the same run.
//
//   node_modules/.bin/node scripts/bench/kube-scale.mjs [--nodes 1000,5000] [--rounds 3]
//
// Needs root, iproute2, nsenter, openssl, etcd (etcd-server), and kube-apiserver v1.20.2 from scripts/kube/build.sh
// (/var/cache/weft-kube/v1.20.2/bin). Everything runs in one throwaway namespace `wft-bench-<id>-kube` (loopback and
// a veth pair as the underlay): etcd and kube-apiserver on its 127.0.0.1, the agent beside them, so that nothing
// listens outside it. Node i gets spec.podCIDR 10.<1 + i/256>.<i%256>.0/24, InternalIP on the underlay and weft's
// annotations (VTEP MAC, public IP, backend type), as if its own agent had published them; they are created through
// the API before the agent starts. Convergence: the agent's "Reconciled" log line of its first run with every node,
// then the kernel checked (every route of proto 87 there). RSS: the agent's VmRSS once converged and idle 2 s.
// Processes are ended by PID, the namespace and temp dirs removed, also on failure and Ctrl-C.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { BenchNamespaces, ipIn, median, runBenchmark } from "./lib.mjs";
import { startApiServer } from "./kube-api.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const AGENT = path.join(root, "dist/weft-agent");
const KUBE_BIN = path.join(process.env.WEFT_KUBE_CACHE ?? "/var/cache/weft-kube", "v1.20.2", "bin");
const argv = process.argv.slice(2);
const option = (name, fallback) => {
  const i = argv.indexOf(`--${name}`);
  return i < 0 ? fallback : argv[i + 1];
};
if (argv.includes("--help")) {
  process.stdout.write("Usage: node_modules/.bin/node scripts/bench/kube-scale.mjs [--nodes 1000,5000] [--rounds 3]\n");
  process.exit(0);
}
const COUNTS = option("nodes", "1000,5000").split(",").map(Number);
const ROUNDS = Number(option("rounds", "3"));
const TIMEOUT_MS = 180_000;
const LOCAL = { name: "local", ip: "192.168.0.1", podCidr: "10.0.0.0/24" };

const netns = new BenchNamespaces();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), netns.prefix));
const processes = new Set();
let ns;

const hex = (n) => n.toString(16).padStart(2, "0");
function remoteNode(i) {
  return {
    name: `node-${i}`,
    podCidr: `10.${1 + (i >> 8)}.${i & 255}.0/24`,
    ip: `192.168.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`,
    vtepMac: `02:57:46:${hex((i >> 16) & 255)}:${hex((i >> 8) & 255)}:${hex(i & 255)}`,
  };
}

/** Starts `command` inside the namespace (nsenter execs it: the PID is the command's); output to `log`. */
function startIn(command, args, log, env = {}) {
  const out = fs.openSync(log, "a");
  const child = spawn("nsenter", [`--net=/run/netns/${ns}`, command, ...args], { stdio: ["ignore", out, out], env: { PATH: process.env.PATH, ...env } });
  fs.closeSync(out);
  const entry = { child, exited: new Promise((resolve) => child.on("exit", resolve)) };
  processes.add(entry);
  return entry;
}

async function stop(entry) {
  if (entry.child.exitCode === null && entry.child.signalCode === null) entry.child.kill("SIGTERM");
  const ended = await Promise.race([entry.exited.then(() => true), new Promise((r) => setTimeout(() => r(false), 10_000))]);
  if (!ended) {
    entry.child.kill("SIGKILL");
    await entry.exited;
  }
  processes.delete(entry);
}

/** Creates (or, past `have`, adds) Node objects through the API: the object, then its status. */
function createNodes(api, nodes) {
  api.send(nodes.map((n) => ({
    method: "POST", path: "/api/v1/nodes", body: {
      apiVersion: "v1", kind: "Node",
      metadata: { name: n.name, annotations: { "weft.dev/vtep-mac": n.vtepMac, "weft.dev/public-ip": n.ip, "weft.dev/backend-type": "vxlan" } },
      spec: { podCIDR: n.podCidr, podCIDRs: [n.podCidr] },
    },
  })));
  api.send(nodes.map((n) => ({
    method: "PATCH", path: `/api/v1/nodes/${n.name}/status`, contentType: "application/merge-patch+json",
    body: { status: { addresses: [{ type: "InternalIP", address: n.ip }], conditions: [{ type: "Ready", status: "True", reason: "KubeletReady", message: "bench" }] } },
  })));
}

/** One cold start of the agent on `source`: ms until it converged on `count` remote nodes, and its RSS after. */
async function coldStart(source, count, api) {
  const dir = fs.mkdtempSync(path.join(tmp, `${source}-${count}-`));
  const netConf = path.join(dir, "net-conf.json");
  fs.writeFileSync(netConf, JSON.stringify({ Network: "10.0.0.0/8", SubnetLen: 24, Backend: { Type: "vxlan" } }));
  const sourceArgs = source === "kube"
    ? ["--source", "kube", "--kubeconfig", api.kubeconfig, "--public-ip", LOCAL.ip]
    : ["--source", "file", "--node-file", path.join(tmp, `nodes-${count}.json`)];
  // The VTEP of an earlier round goes, so that every start is cold.
  spawnSync("ip", ["-n", ns, "link", "del", "weft.1"], { stdio: "ignore" });
  const logFile = path.join(dir, "agent.log");
  const spawnedAt = Date.now();
  const agent = startIn(AGENT, [
    "--node-name", LOCAL.name, ...sourceArgs, "--net-conf", netConf, "--cni-conf-dir", path.join(dir, "net.d"), "--subnet-file", path.join(dir, "subnet.env"),
    "--state-dir", path.join(dir, "state"), "--ipam-data-dir", path.join(dir, "ipam"), "--debug-addr", "", "--resync-interval", "600s",
    "--probe-interval", "0", "--ip-masq=false", "--datapath", "kernel", "--log-level", "info", "--bpf-dir", path.join(dir, "bpf"),
  ], logFile, { WEFT_CACHE_DIR: path.join(dir, "cache") });
  const deadline = Date.now() + TIMEOUT_MS;
  let convergedMs;
  // The first "Reconciled" line whose run planned every node's route, neighbour and FDB entry; its own time stamp.
  while (convergedMs === undefined) {
    if (agent.child.exitCode !== null) throw new Error(`the agent exited: ${fs.readFileSync(logFile, "utf8").slice(-2000)}`);
    if (Date.now() > deadline) throw new Error(`no convergence in ${TIMEOUT_MS} ms: ${fs.readFileSync(logFile, "utf8").slice(-1000)}`);
    for (const text of fs.readFileSync(logFile, "utf8").split("\n")) {
      if (!text.includes('"Reconciled"')) continue;
      const line = JSON.parse(text);
      if (line.planned >= 3 * count) {
        convergedMs = Date.parse(line.time) - spawnedAt;
        break;
      }
    }
    if (convergedMs === undefined) await new Promise((r) => setTimeout(r, 50));
  }
  const routes = JSON.parse(ipIn(ns, "-j", "route", "show", "proto", "87") || "[]").length;
  if (routes !== count) throw new Error(`${source} source: ${routes} routes in the kernel, expected ${count}`);
  await new Promise((r) => setTimeout(r, 2_000));
  const rss = Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${agent.child.pid}/status`, "utf8"))[1]) / 1024;
  await stop(agent);
  return { ms: convergedMs, rss };
}

async function main() {
  for (const file of [path.join(KUBE_BIN, "kube-apiserver"), "/usr/bin/etcd", AGENT]) {
    if (!fs.existsSync(file)) throw new Error(`${file} missing (scripts/kube/build.sh; apt-get install etcd-server; npm run build)`);
  }
  ns = netns.add("kube");
  ipIn(ns, "link", "add", "u0", "type", "veth", "peer", "name", "u1");
  ipIn(ns, "addr", "add", `${LOCAL.ip}/16`, "dev", "u0");
  ipIn(ns, "link", "set", "u0", "up");
  ipIn(ns, "link", "set", "u1", "up");
  const api = await startApiServer({ ns, dir: path.join(tmp, "kube"), kubeBin: KUBE_BIN, startIn });
  createNodes(api, [{ name: LOCAL.name, podCidr: LOCAL.podCidr, ip: LOCAL.ip, vtepMac: "02:57:46:ff:ff:ff" }]);
  let have = 0;
  const rows = [];
  for (const count of COUNTS) {
    const nodes = Array.from({ length: count }, (_, i) => remoteNode(i));
    const createdAt = Date.now();
    createNodes(api, nodes.slice(have));
    const createMs = Date.now() - createdAt;
    have = count;
    fs.writeFileSync(path.join(tmp, `nodes-${count}.json`), JSON.stringify({
      nodes: [{ name: LOCAL.name, podCidrs: [LOCAL.podCidr], publicIp: LOCAL.ip }, ...nodes.map((n) => ({ name: n.name, podCidrs: [n.podCidr], publicIp: n.ip, vtepMac: n.vtepMac }))],
    }));
    const results = { kube: [], file: [] };
    for (let round = 0; round < ROUNDS; round++) {
      for (const source of ["kube", "file"]) {
        const result = await coldStart(source, count, api);
        results[source].push(result);
        process.stderr.write(`round ${round + 1}/${ROUNDS} ${count} nodes, ${source} source: converged in ${result.ms.toFixed(0)} ms, RSS ${result.rss.toFixed(1)} MB\n`);
      }
    }
    const m = (source, key) => median(results[source].map((r) => r[key]));
    const range = (source, key, digits) => `${Math.min(...results[source].map((r) => r[key])).toFixed(digits)}–${Math.max(...results[source].map((r) => r[key])).toFixed(digits)}`;
    rows.push(`| ${count} | ${m("kube", "ms").toFixed(0)} (${range("kube", "ms", 0)}) | ${m("file", "ms").toFixed(0)} (${range("file", "ms", 0)}) | ${(m("kube", "ms") / m("file", "ms")).toFixed(2)}× | ${m("kube", "rss").toFixed(1)} (${range("kube", "rss", 1)}) | ${m("file", "rss").toFixed(1)} (${range("file", "rss", 1)}) | ${(createMs / 1000).toFixed(1)} s |`);
  }
  const load = os.loadavg()[0].toFixed(2);
  process.stdout.write([
    `Agent scale with the real kube-apiserver v1.20.2 (etcd 3.4, both on the node's loopback) — kube source vs file source, cold start to the first run with every node programmed (vxlan, kernel datapath), median of ${ROUNDS} (range); RSS once converged and 2 s idle; ${os.cpus().length} cores, kernel ${os.release()}, load ${load}; ${new Date().toISOString().slice(0, 10)}`,
    "",
    "| remote nodes | kube source: converged ms | file source: converged ms | kube / file | kube source: RSS MB | file source: RSS MB | Node objects created through the API in |",
    "|---:|---:|---:|---:|---:|---:|---:|",
    ...rows,
    "",
  ].join("\n"));
}

await runBenchmark("kube-scale", main, async () => {
  for (const entry of [...processes].reverse()) await stop(entry);
  netns.removeAll();
  fs.rmSync(tmp, { recursive: true, force: true });
});
