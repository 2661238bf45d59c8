#!/usr/bin/env node
// The demo, on this one machine: a simulated node (a network namespace standing in for the node's root
// namespace, so the machine's own network is never touched) and three pods networked by the real dist/weft.
// Shows a pod×pod reachability matrix with real TCP, then leaves everything up to look at; `down` removes it.
import { execFileSync, spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const WEFT = path.join(root, "dist/weft");
const PREFIX = "weft-demo-";
const NODE = `${PREFIX}node`;
const PODS = ["pod-a", "pod-b", "pod-c"];
const STATE_DIR = "/run/weft-demo";
const PORT = 7070;
const conf = {
  cniVersion: "1.1.0",
  name: "weft-demo",
  type: "weft",
  bridge: "cni0",
  isDefaultGateway: true,
  ipam: { ranges: [[{ subnet: "10.244.1.0/24" }]], dataDir: path.join(STATE_DIR, "ipam") },
};

const ip = (...args) => execFileSync("ip", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
const netnsExists = (name) => fs.existsSync(`/run/netns/${name}`);

function cni(command, pod) {
  const result = spawnSync("nsenter", [`--net=/run/netns/${NODE}`, WEFT], {
    env: { PATH: process.env.PATH, CNI_COMMAND: command, CNI_CONTAINERID: `${PREFIX}${pod}`, CNI_NETNS: `/run/netns/${PREFIX}${pod}`, CNI_IFNAME: "eth0" },
    input: JSON.stringify(conf),
    encoding: "utf8",
  });
  if (result.status !== 0) throw new Error(`weft ${command} ${pod}: ${result.stdout}${result.stderr}`);
  return result.stdout ? JSON.parse(result.stdout) : undefined;
}

function down() {
  for (const pod of PODS) {
    if (netnsExists(`${PREFIX}${pod}`) && netnsExists(NODE)) {
      try {
        cni("DEL", pod);
      } catch (error) {
        console.error(String(error));
      }
    }
  }
  for (const pidFile of fs.existsSync(STATE_DIR) ? fs.readdirSync(STATE_DIR).filter((f) => f.endsWith(".pid")) : []) {
    const pid = Number(fs.readFileSync(path.join(STATE_DIR, pidFile), "utf8"));
    try {
      process.kill(pid, "SIGTERM"); // our own echo servers, by the PID we recorded
    } catch {
      // already gone
    }
  }
  for (const name of [...PODS.map((pod) => `${PREFIX}${pod}`), NODE]) {
    if (netnsExists(name)) ip("netns", "del", name);
  }
  fs.rmSync(STATE_DIR, { recursive: true, force: true });
  console.log("demo: removed");
}

const ECHO_SERVER = `require("node:net").createServer((s) => s.pipe(s)).listen(${PORT}, "0.0.0.0", () => process.stdout.write("up\\n"));`;
const ECHO_CLIENT = `
const s = require("node:net").connect({ host: process.argv[1], port: ${PORT}, timeout: 2000 });
s.on("connect", () => s.write("ping")); s.on("data", () => { process.stdout.write(s.localAddress); process.exit(0); });
s.on("timeout", () => process.exit(2)); s.on("error", () => process.exit(1));`;

async function startEchoServer(pod) {
  const child = spawn("ip", ["netns", "exec", `${PREFIX}${pod}`, process.execPath, "-e", ECHO_SERVER], { stdio: ["ignore", "pipe", "ignore"], detached: true });
  await new Promise((resolve, reject) => {
    child.stdout.once("data", resolve);
    child.once("exit", () => reject(new Error(`echo server in ${pod} exited`)));
  });
  child.unref();
  child.stdout.destroy();
  fs.writeFileSync(path.join(STATE_DIR, `${pod}.pid`), String(child.pid));
}

async function up() {
  if (netnsExists(NODE)) down();
  fs.mkdirSync(STATE_DIR, { recursive: true });
  ip("netns", "add", NODE);
  ip("netns", "exec", NODE, "ip", "link", "set", "lo", "up");
  const addresses = {};
  for (const pod of PODS) {
    ip("netns", "add", `${PREFIX}${pod}`);
    ip("netns", "exec", `${PREFIX}${pod}`, "ip", "link", "set", "lo", "up");
    const started = performance.now();
    const result = cni("ADD", pod);
    addresses[pod] = result.ips[0].address.split("/")[0];
    console.log(`weft ADD ${pod}: ${result.ips[0].address} via ${result.ips[0].gateway}, host side ${result.interfaces[1].name} (${(performance.now() - started).toFixed(0)} ms)`);
  }
  for (const pod of PODS) await startEchoServer(pod);

  console.log(`\nTCP reachability (port ${PORT}), row = client, column = server:`);
  console.log(`${"".padEnd(8)}${PODS.map((p) => p.padEnd(8)).join("")}`);
  let failures = 0;
  for (const from of PODS) {
    const cells = PODS.map((to) => {
      const client = spawnSync("ip", ["netns", "exec", `${PREFIX}${from}`, process.execPath, "-e", ECHO_CLIENT, addresses[to]], { encoding: "utf8", timeout: 5000 });
      const ok = client.status === 0 && client.stdout === addresses[from];
      if (!ok) failures++;
      return (ok ? "ok" : "FAIL").padEnd(8);
    });
    console.log(`${from.padEnd(8)}${cells.join("")}`);
  }
  console.log(`\nWhere to look:
  ip netns exec ${NODE} ip -d link show cni0        the bridge (gateway 10.244.1.1)
  ip netns exec ${NODE} bridge link                 the host veths (alias weft:<container>/<ifname>)
  ip netns exec ${PREFIX}pod-a ip route            a pod's routes
  ls ${conf.ipam.dataDir}/weft-demo                   the IPAM reservations (host-local's format)
Remove everything: bash scripts/demo.sh down`);
  if (failures > 0) {
    console.error(`demo: ${failures} of ${PODS.length ** 2} connections failed`);
    process.exitCode = 1;
  }
}

if (process.argv[2] === "down") down();
else await up();
