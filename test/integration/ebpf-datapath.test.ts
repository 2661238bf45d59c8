// The agent's eBPF loader (agent/datapath/ebpf.ts) on the real kernel, with the objects `npm run build` made
// (dist/agent/bpf): their map layouts are the ones native/bpf/maps.ts writes (read from the objects' BTF with
// bpftool), they load and pin under a bpffs of this run (mounted on a temp dir, unmounted in afterAll, never the
// host's /sys/fs/bpf), a pin of weft's name holding another program's object is refused and left alone, maps of
// another layout (an older agent's) are replaced, loading twice replaces the programs in place, and the cleanup
// for kernel mode removes every pin.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { removeEbpfState } from "../../agent/datapath/cleanup";
import { EbpfDatapath } from "../../agent/datapath/ebpf";
import { BpfPinConflictError } from "../../agent/errors";
import { log } from "../../agent/log";
import { BpfObject } from "../../native/bpf/libbpf";
import { MAPS_VERSION, PINS, SIZES } from "../../native/bpf/maps";
import { closeFd, mapLookup, objGet, objInfo } from "../../native/bpf/syscall";
import { NetlinkSocket } from "../../native/netlink";
import { createTestNetns, RUN_PREFIX, run } from "../support/netns";

const OBJECTS = path.resolve(import.meta.dirname, "../../dist/agent/bpf");
let dir: string;
let mounted = false;

function pinRoot(name: string): string {
  const root = path.join(dir, "bpf", name);
  mkdirSync(root, { recursive: true });
  return root;
}

function datapath(bpfDir: string): EbpfDatapath {
  return new EbpfDatapath({ bpfDir, endpointsDir: path.join(dir, `${path.basename(bpfDir)}-endpoints`), objectsDir: OBJECTS, vni: 1, clusterCidrs: ["10.244.0.0/16"], logger: log.with({ test: "ebpf-datapath" }) });
}

function infoOf(pin: string) {
  const fd = objGet(pin);
  try {
    return objInfo(fd);
  } finally {
    closeFd(fd);
  }
}

/** A map of another program (or of an older layout), created and pinned by libbpf from a tiny object built here. */
function pinForeignMap(pin: string, source: string): void {
  const file = path.join(dir, `foreign-${path.basename(pin)}.c`);
  writeFileSync(file, source);
  run(["clang", "-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu", "-c", file, "-o", `${file}.o`]);
  const object = BpfObject.open(readFileSync(`${file}.o`), { name: "foreign" });
  try {
    object.load();
    object.pinMap(object.mapNames()[0]!, pin);
  } finally {
    object.close();
  }
}

beforeAll(() => {
  expect(existsSync(path.join(OBJECTS, "from_pod.o")), "npm run build first").toBe(true);
  dir = mkdtempSync(path.join(tmpdir(), `${RUN_PREFIX}ebpf-`));
  mkdirSync(path.join(dir, "bpf"));
  run(["mount", "-t", "bpf", "bpf", path.join(dir, "bpf")]);
  mounted = true;
});

afterAll(() => {
  if (mounted) spawnSync("umount", [path.join(dir, "bpf")]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("eBPF datapath objects", () => {
  it("declare the map layouts native/bpf/maps.ts writes (BTF of the built objects)", () => {
    for (const object of ["from_pod.o", "vtep.o"]) {
      const btf = run(["bpftool", "btf", "dump", "file", path.join(OBJECTS, object), "format", "raw"]);
      const size = (name: string) => Number(new RegExp(`STRUCT '${name}' size=(\\d+)`).exec(btf)?.[1]);
      expect(size("weft_addr"), object).toBe(SIZES.addr);
      expect(size("weft_endpoint"), object).toBe(SIZES.endpoint);
      expect(size("weft_lpm_key"), object).toBe(SIZES.lpmKey);
      expect(size("weft_node"), object).toBe(SIZES.node);
      expect(size("weft_config"), object).toBe(SIZES.config);
    }
    for (const object of ["from_pod.o", "to_pod.o", "vtep.o"]) {
      const btf = run(["bpftool", "btf", "dump", "file", path.join(OBJECTS, object), "format", "raw"]);
      const size = (name: string) => Number(new RegExp(`STRUCT '${name}' size=(\\d+)`).exec(btf)?.[1]);
      expect(size("weft_policy_endpoint"), object).toBe(SIZES.policyEndpoint);
      expect(size("weft_policy_key"), object).toBe(SIZES.policyKey);
      expect(size("weft_policy_ports"), object).toBe(SIZES.policyPorts);
      expect(size("weft_ct_key"), object).toBe(SIZES.ctKey);
      expect(size("weft_ct_entry"), object).toBe(SIZES.ctEntry);
      expect(size("weft_stats_key"), object).toBe(SIZES.statsKey);
      expect(size("weft_stats"), object).toBe(SIZES.stats);
    }
  });
});

describe("EbpfDatapath.load", () => {
  it("loads the objects, pins programs and shared maps, and loading again replaces the programs in place", () => {
    const root = pinRoot("fresh");
    const first = datapath(root);
    first.load();
    const pins = readdirSync(root).sort();
    const maps = [PINS.endpoints, PINS.nodes, PINS.config, PINS.counters, PINS.policyEndpoints, PINS.policy, PINS.policyConnections, PINS.policyHost, PINS.policyStats, PINS.cluster];
    expect(pins).toEqual([PINS.fromPod, PINS.fromTunnel, PINS.toTunnel, PINS.toPod, ...maps].sort());
    for (const map of maps) expect(infoOf(path.join(root, map))).toMatchObject({ kind: "map" });
    const programBefore = infoOf(path.join(root, PINS.fromPod)).id;
    const mapBefore = infoOf(path.join(root, PINS.endpoints)).id;
    datapath(root).load();
    // New programs (an upgrade swaps them under the same pin); the maps are kept, with their entries.
    expect(infoOf(path.join(root, PINS.fromPod)).id).not.toBe(programBefore);
    expect(infoOf(path.join(root, PINS.endpoints)).id).toBe(mapBefore);
    expect(readdirSync(root).sort()).toEqual(pins);
  });

  it("refuses a pin of weft's name that holds another program's map, and leaves it", () => {
    const root = pinRoot("conflict");
    pinForeignMap(path.join(root, PINS.nodes), `
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u64); } other_table SEC(".maps");
char LICENSE[] SEC("license") = "GPL";
`);
    const before = infoOf(path.join(root, PINS.nodes));
    const error = (() => {
      try {
        datapath(root).load();
      } catch (e) {
        return e;
      }
      throw new Error("expected a refusal");
    })();
    expect(error).toBeInstanceOf(BpfPinConflictError);
    expect((error as Error).message).toBe(`Cannot load the eBPF datapath: ${path.join(root, PINS.nodes)} holds map "other_table", not weft's weft_nodes; remove it if it is not in use`);
    expect(infoOf(path.join(root, PINS.nodes)).id).toBe(before.id);
    expect(existsSync(path.join(root, PINS.fromPod))).toBe(false);
  });

  it("replaces a map of another layout (an older agent's) with the current one", () => {
    const root = pinRoot("old-layout");
    pinForeignMap(path.join(root, PINS.endpoints), `
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 16); __type(key, __u32); __type(value, __u32); } weft_endpoints SEC(".maps");
char LICENSE[] SEC("license") = "GPL";
`);
    expect(infoOf(path.join(root, PINS.endpoints))).toMatchObject({ keySize: 4, valueSize: 4 });
    datapath(root).load();
    expect(infoOf(path.join(root, PINS.endpoints))).toMatchObject({ kind: "map", keySize: SIZES.addr, valueSize: SIZES.endpoint });
  });

  it("is removed whole by the kernel mode's cleanup", () => {
    const root = pinRoot("cleanup");
    datapath(root).load();
    const fd = objGet(path.join(root, PINS.config));
    try {
      expect(mapLookup(fd, Buffer.alloc(4), SIZES.config)?.readUInt32LE(20)).toBe(0); // nothing written before a sync
    } finally {
      closeFd(fd);
    }
    expect(MAPS_VERSION).toBe(1);
    // Its devices (none with weft's filters) in a namespace of this run's: the machine's own are never looked at.
    const ns = createTestNetns("cleanup");
    const sock = NetlinkSocket.openIn(ns.path);
    try {
      const removed = removeEbpfState({ bpfDir: root, endpointsDir: path.join(dir, "cleanup-endpoints"), sock });
      expect(removed).toHaveLength(14);
    } finally {
      sock.close();
      ns.remove();
    }
    expect(readdirSync(root)).toEqual([]);
  });
});
