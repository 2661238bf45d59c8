#!/usr/bin/env node
// Compiles the eBPF datapath: each native/bpf/*.c (one file per attach point) into an object the agent loads
// with libbpf: clang -O2 -g -target bpf (-g: the BTF that libbpf needs for the maps, CO-RE and kfuncs). Debian 12:
// clang and libbpf-dev (bpf_helpers.h); the asm/ headers are in the multiarch include directory. Called by
// scripts/build-agent.mjs, which puts the objects beside the agent's bundle; no compiler runs on a node.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const sourceDir = path.join(root, "native/bpf");

/** Compiles every program file into `outDir`; returns the objects' paths. Throws with clang's output on failure. */
export function buildBpf(outDir) {
  const clang = process.env.CLANG ?? "clang";
  const probe = spawnSync(clang, ["--version"], { encoding: "utf8" });
  if (probe.error || probe.status !== 0) {
    throw new Error(`Cannot build the eBPF datapath: ${clang} not found (Debian: apt-get install clang libbpf-dev)`);
  }
  if (!fs.existsSync("/usr/include/bpf/bpf_helpers.h")) {
    throw new Error("Cannot build the eBPF datapath: /usr/include/bpf/bpf_helpers.h not found (Debian: apt-get install libbpf-dev)");
  }
  const multiarch = `/usr/include/${process.arch === "arm64" ? "aarch64" : "x86_64"}-linux-gnu`;
  fs.mkdirSync(outDir, { recursive: true });
  const objects = [];
  for (const file of fs.readdirSync(sourceDir).filter((name) => name.endsWith(".c")).sort()) {
    const object = path.join(outDir, file.replace(/\.c$/, ".o"));
    const args = ["-O2", "-g", "-target", "bpf", `-I${multiarch}`, "-Wall", "-Werror", "-c", path.join(sourceDir, file), "-o", object];
    const result = spawnSync(clang, args, { encoding: "utf8" });
    if (result.status !== 0) throw new Error(`Cannot build ${path.relative(root, path.join(sourceDir, file))}:\n${result.stderr || result.error?.message}`);
    objects.push(object);
  }
  return objects;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = process.argv[2] ?? path.join(root, "dist/agent/bpf");
  const started = Date.now();
  const objects = buildBpf(out);
  console.log(`built ${objects.map((o) => path.relative(root, o)).join(", ")} in ${Date.now() - started} ms`);
}
