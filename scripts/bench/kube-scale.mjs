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
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { BenchNamespaces, ipIn, median, run, runBenchmark } from "./lib.mjs";

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

/** Runs a Node script inside the namespace (the API server listens on its loopback) and returns its stdout. */
function nodeIn(script, input) {
  const result = spawnSync("nsenter", [`--net=/run/netns/${ns}`, process.execPath, "-e", script], { input, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  if (result.status !== 0) throw new Error(`script in ${ns} failed: ${result.stderr.slice(-2000)}`);
  return result.stdout;
}

// Sends a JSON list of {method, path, body, contentType} with up to 32 in flight; prints how many failed.
const REQUESTS = `
const https = require("node:https");
const { url, token, ca, requests } = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
const agent = new https.Agent({ keepAlive: true, maxSockets: 32, ca });
let next = 0, failed = [];
const one = (r) => new Promise((resolve) => {
  const body = r.body === undefined ? undefined : JSON.stringify(r.body);
  const req = https.request(url + r.path, { method: r.method, agent, headers: { authorization: "Bearer " + token, "content-type": r.contentType || "application/json", ...(body ? { "content-length": Buffer.byteLength(body) } : {}) } }, (res) => {
    let text = ""; res.on("data", (d) => (text += d)); res.on("end", () => { if (res.statusCode >= 300) failed.push(r.method + " " + r.path + " " + res.statusCode + " " + text.slice(0, 200)); resolve(); });
  });
  req.on("error", (e) => { failed.push(String(e)); resolve(); });
  if (body) req.write(body);
  req.end();
});
(async () => {
  await Promise.all(Array.from({ length: 32 }, async () => { while (next < requests.length) await one(requests[next++]); }));
  process.stdout.write(JSON.stringify(failed.slice(0, 5)));
  process.exit(failed.length ? 1 : 0);
})();
`;

function sendRequests(api, requests) {
  const failed = JSON.parse(nodeIn(REQUESTS, JSON.stringify({ url: api.url, token: api.token, ca: api.ca, requests })) || "[]");
  if (failed.length) throw new Error(`API requests failed: ${failed.join("; ")}`);
}

async function startApiServer() {
  const dir = path.join(tmp, "kube");
  fs.mkdirSync(dir);
  const ssl = (...args) => run("openssl", args.map((a) => a.replaceAll("$D", dir)));
  ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "$D/ca.key", "-out", "$D/ca.crt", "-days", "1", "-subj", "/CN=bench-ca");
  ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "$D/server.key", "-out", "$D/server.csr", "-subj", "/CN=kube-apiserver");
  fs.writeFileSync(path.join(dir, "san.ext"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
  ssl("x509", "-req", "-in", "$D/server.csr", "-CA", "$D/ca.crt", "-CAkey", "$D/ca.key", "-CAcreateserial", "-out", "$D/server.crt", "-days", "1", "-extfile", "$D/san.ext");
  ssl("genrsa", "-out", "$D/sa.key", "2048");
  ssl("rsa", "-in", "$D/sa.key", "-pubout", "-out", "$D/sa.pub");
  const token = randomBytes(16).toString("hex");
  fs.writeFileSync(path.join(dir, "tokens.csv"), `${token},admin,admin,system:masters\n`);
  startIn("/usr/bin/etcd", [
    "--data-dir", path.join(dir, "etcd"), "--listen-client-urls", "http://127.0.0.1:2379", "--advertise-client-urls", "http://127.0.0.1:2379",
    "--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
    "--initial-cluster", "default=http://127.0.0.1:2380", "--quota-backend-bytes", String(4 * 1024 ** 3),
  ], path.join(dir, "etcd.log"));
  startIn(path.join(KUBE_BIN, "kube-apiserver"), [
    "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port=6443", "--etcd-servers=http://127.0.0.1:2379",
    "--service-account-issuer=https://kubernetes.default.svc", `--service-account-key-file=${dir}/sa.pub`, `--service-account-signing-key-file=${dir}/sa.key`,
    "--authorization-mode=RBAC", `--token-auth-file=${dir}/tokens.csv`, `--tls-cert-file=${dir}/server.crt`, `--tls-private-key-file=${dir}/server.key`,
    "--service-cluster-ip-range=10.96.0.0/16", `--cert-dir=${dir}/certs`, "--endpoint-reconciler-type=none", "--profiling=false",
  ], path.join(dir, "kube-apiserver.log"));
  const api = { url: "https://127.0.0.1:6443", token, ca: fs.readFileSync(path.join(dir, "ca.crt"), "utf8") };
  const deadline = Date.now() + 90_000;
  for (;;) {
    try {
      sendRequests(api, [{ method: "GET", path: "/readyz" }]);
      break;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`kube-apiserver not ready: ${error.message}\n${fs.readFileSync(path.join(dir, "kube-apiserver.log"), "utf8").slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  const kubeconfig = path.join(dir, "kubeconfig");
  fs.writeFileSync(kubeconfig, JSON.stringify({
    apiVersion: "v1", kind: "Config", "current-context": "b",
    clusters: [{ name: "b", cluster: { server: api.url, "certificate-authority-data": Buffer.from(api.ca).toString("base64") } }],
    users: [{ name: "b", user: { token } }], contexts: [{ name: "b", context: { cluster: "b", user: "b" } }],
  }));
  return { ...api, kubeconfig };
}

/** Creates (or, past `have`, adds) Node objects through the API: the object, then its status. */
function createNodes(api, nodes) {
  sendRequests(api, nodes.map((n) => ({
    method: "POST", path: "/api/v1/nodes", body: {
      apiVersion: "v1", kind: "Node",
      metadata: { name: n.name, annotations: { "weft.dev/vtep-mac": n.vtepMac, "weft.dev/public-ip": n.ip, "weft.dev/backend-type": "vxlan" } },
      spec: { podCIDR: n.podCidr, podCIDRs: [n.podCidr] },
    },
  })));
  sendRequests(api, nodes.map((n) => ({
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
  const api = await startApiServer();
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
