#!/usr/bin/env node
// CNI latency: weft (dist/weft) beside the reference bridge + host-local plugins, on this machine, in one run.
//
//   npm run bench:cni [-- --pods 60 --concurrent 32 --rounds 5]
//
// Everything happens in throwaway namespaces: a "node" netns that holds the bridges, and one netns per pod.
// Both plugins are started the same way (nsenter into the node netns, then exec), so the harness's own cost,
// shown as its own row, is the same on both sides. Each round measures weft's bare start-up, then weft, then
// the reference, so that both sides of a ratio see the same machine; a cell is the median over the rounds, and
// the ratio column gives the median of the rounds' ratios with their range. Prints a markdown table for
// docs/benchmarks.md.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { BenchNamespaces, median, runBenchmark } from "./lib.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const WEFT = path.join(root, "dist/weft");
const REFERENCE_DIR = "/usr/lib/cni";
const argv = process.argv.slice(2);
const option = (name, fallback) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : fallback;
};
const PODS = option("pods", 60);
const CONCURRENT = option("concurrent", 32);
const STARTUP_RUNS = option("startup-runs", 50);
const ROUNDS = option("rounds", 5);

const namespaces = new BenchNamespaces();
const { prefix } = namespaces;
const nodeNetns = `${prefix}node`;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), prefix));

/** A new namespace `<prefix><label>`; its path. */
const addNetns = (label) => `/run/netns/${namespaces.add(label)}`;
function cleanup() {
  namespaces.removeAll();
  fs.rmSync(tmp, { recursive: true, force: true });
}

const plugins = {
  weft: {
    binary: WEFT,
    config: {
      cniVersion: "1.1.0",
      name: `${prefix}weft`,
      type: "weft",
      bridge: "wfbweft0",
      isGateway: true,
      ipam: { ranges: [[{ subnet: "10.99.0.0/16" }]], dataDir: path.join(tmp, "weft-ipam") },
    },
  },
  reference: {
    binary: path.join(REFERENCE_DIR, "bridge"),
    config: {
      cniVersion: "1.0.0",
      name: `${prefix}ref`,
      type: "bridge",
      bridge: "wfbref0",
      isGateway: true,
      ipMasq: false,
      hairpinMode: true,
      ipam: { type: "host-local", ranges: [[{ subnet: "10.98.0.0/16" }]], dataDir: path.join(tmp, "ref-ipam") },
    },
  },
};

function envFor(command, pod) {
  return {
    PATH: process.env.PATH,
    CNI_COMMAND: command,
    CNI_CONTAINERID: pod.id,
    CNI_NETNS: pod.netns,
    CNI_IFNAME: "eth0",
    CNI_PATH: REFERENCE_DIR,
    WEFT_CACHE_DIR: path.join(tmp, "cache"),
  };
}

// nsenter puts the plugin in the node netns, as the runtime's own netns would be.
const nsenterArgs = (binary) => [`--net=/run/netns/${nodeNetns}`, binary];

function runOnce(plugin, command, pod) {
  const started = process.hrtime.bigint();
  const child = spawnSync("nsenter", nsenterArgs(plugin.binary), {
    env: envFor(command, pod),
    input: JSON.stringify(plugin.config),
    encoding: "utf8",
  });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (child.status !== 0) throw new Error(`${command} ${pod.id} failed: ${child.stdout}${child.stderr}`);
  return ms;
}

function runAsync(plugin, command, pod) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn("nsenter", nsenterArgs(plugin.binary), { env: envFor(command, pod) });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.on("error", reject);
    child.on("close", (code) => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (code === 0) resolve(ms);
      else reject(new Error(`${command} ${pod.id} failed: ${out}`));
    });
    child.stdin.end(JSON.stringify(plugin.config));
  });
}

function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function timeCommand(argv0, args, runs) {
  const samples = [];
  for (let i = 0; i < runs; i++) {
    const started = process.hrtime.bigint();
    const child = spawnSync(argv0, args, { env: { PATH: process.env.PATH, WEFT_CACHE_DIR: path.join(tmp, "cache") } });
    if (child.status !== 0) throw new Error(`${argv0} ${args.join(" ")} failed`);
    samples.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  return samples;
}

/** One round of `name`: sequential ADDs then DELs, then concurrent ones; with `warmUp`, a first ADD/DEL before. */
async function measure(name, pods, warmUp) {
  const plugin = plugins[name];
  const sequential = pods.slice(0, PODS);
  const concurrent = pods.slice(PODS, PODS + CONCURRENT);
  // Warm-up, reported apart: bridge creation, and for weft the first-run extraction of its FFI addon and the
  // code cache its first ADD and DEL write (cni/executable.ts), are once-per-node costs, not per-pod ones.
  let firstAdd;
  if (warmUp) {
    firstAdd = runOnce(plugin, "ADD", sequential[0]);
    runOnce(plugin, "DEL", sequential[0]);
  }
  const add = sequential.map((pod) => runOnce(plugin, "ADD", pod));
  const del = sequential.map((pod) => runOnce(plugin, "DEL", pod));
  let started = process.hrtime.bigint();
  const addConcurrent = await Promise.all(concurrent.map((pod) => runAsync(plugin, "ADD", pod)));
  const addWall = Number(process.hrtime.bigint() - started) / 1e6;
  started = process.hrtime.bigint();
  const delConcurrent = await Promise.all(concurrent.map((pod) => runAsync(plugin, "DEL", pod)));
  const delWall = Number(process.hrtime.bigint() - started) / 1e6;
  return { firstAdd, add, del, addConcurrent, delConcurrent, addWall, delWall };
}

const fmt = (ms) => `${ms.toFixed(1)} ms`;
const fmtRatio = (ratios) =>
  ratios.length === 1 ? `${ratios[0].toFixed(2)}×` : `${median(ratios).toFixed(2)}× (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)})`;

async function main() {
  if (!fs.existsSync(WEFT)) throw new Error(`${WEFT} is missing: run npm run build first`);
  for (const binary of ["bridge", "host-local"]) {
    if (!fs.existsSync(path.join(REFERENCE_DIR, binary))) throw new Error(`reference plugin ${binary} missing: apt-get install containernetworking-plugins`);
  }
  addNetns("node");
  const pods = Array.from({ length: PODS + CONCURRENT }, (_, i) => ({ id: `${prefix}pod${i}`, netns: addNetns(`p${i}`) }));

  const harness = timeCommand("nsenter", [`--net=/run/netns/${nodeNetns}`, "/bin/true"], STARTUP_RUNS);
  timeCommand(WEFT, ["--version"], 3); // first run extracts the FFI addon
  const rounds = [];
  for (let round = 0; round < ROUNDS; round++) {
    const startup = percentile(timeCommand(WEFT, ["--version"], STARTUP_RUNS), 50);
    const weft = await measure("weft", pods, round === 0);
    const reference = await measure("reference", pods, round === 0);
    rounds.push({ startup, weft, reference });
    process.stderr.write(`round ${round + 1}/${ROUNDS}: ADD p50 ${fmt(percentile(weft.add, 50))} vs ${fmt(percentile(reference.add, 50))}\n`);
  }

  /** A row: the measure per round for each side; cells are medians over rounds, the ratio per round. */
  const row = (label, of) => {
    const ours = rounds.map((r) => of(r.weft));
    const theirs = rounds.map((r) => of(r.reference));
    return `| ${label} | ${fmt(median(ours))} | ${fmt(median(theirs))} | ${fmtRatio(ours.map((v, i) => v / theirs[i]))} |`;
  };
  const ownWork = rounds.map((r) => percentile(r.weft.add, 50) - r.startup);
  const referenceAdd = rounds.map((r) => percentile(r.reference.add, 50));
  const first = rounds[0];
  const lines = [
    `CNI latency — ${PODS} pods sequential, ${CONCURRENT} concurrent, ${ROUNDS} round${ROUNDS === 1 ? "" : "s"}; ${os.cpus().length} cores, kernel ${os.release()}, ${new Date().toISOString().slice(0, 10)}`,
    "",
    `| measure | weft | reference bridge + host-local | weft / reference${ROUNDS > 1 ? " (median of rounds, range)" : ""} |`,
    "|---|---:|---:|---:|",
    row("ADD p50, sequential", (m) => percentile(m.add, 50)),
    row("ADD p95, sequential", (m) => percentile(m.add, 95)),
    row("DEL p50, sequential", (m) => percentile(m.del, 50)),
    row("DEL p95, sequential", (m) => percentile(m.del, 95)),
    row(`ADD p50, ${CONCURRENT} at once`, (m) => percentile(m.addConcurrent, 50)),
    row(`ADD p95, ${CONCURRENT} at once`, (m) => percentile(m.addConcurrent, 95)),
    row(`ADD wall, ${CONCURRENT} at once`, (m) => m.addWall),
    row(`DEL p50, ${CONCURRENT} at once`, (m) => percentile(m.delConcurrent, 50)),
    row(`DEL p95, ${CONCURRENT} at once`, (m) => percentile(m.delConcurrent, 95)),
    row(`DEL wall, ${CONCURRENT} at once`, (m) => m.delWall),
    `| first ADD (warm-up, first round only: creates the bridge; weft also writes its code cache) | ${fmt(first.weft.firstAdd)} | ${fmt(first.reference.firstAdd)} | ${fmtRatio([first.weft.firstAdd / first.reference.firstAdd])} |`,
    `| bare start-up \`weft --version\` p50 | ${fmt(median(rounds.map((r) => r.startup)))} | | |`,
    `| weft's own work per ADD (ADD p50 − start-up p50) | ${fmt(median(ownWork))} | ${fmt(median(referenceAdd))} (whole ADD) | ${fmtRatio(ownWork.map((v, i) => v / referenceAdd[i]))} |`,
    `| harness floor (nsenter + /bin/true) p50, in every row | ${fmt(percentile(harness, 50))} | ${fmt(percentile(harness, 50))} | |`,
  ];
  console.log(lines.join("\n"));
}

await runBenchmark("cni-latency", main, cleanup);
