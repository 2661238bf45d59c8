// weft's DiskStore and the reference host-local plugin (/usr/lib/cni/host-local) sharing one data directory:
// a node can move between flannel's IPAM and weft's without losing or duplicating an allocation. host-local never
// touches the kernel, so no namespace is needed: CNI_NETNS only has to be set.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { allocate } from "../../cni/ipam/allocate";
import { parseIpamConfig } from "../../cni/ipam/config";
import { DiskStore } from "../../cni/ipam/disk-store";
import { release } from "../../cni/ipam/release";
import { listReservations } from "../../cni/ipam/reservations";
import { type PluginResult, runPlugin, runPluginAsync } from "../support/cni-exec";
import { RUN_PREFIX } from "../support/netns";

const HOST_LOCAL = "/usr/lib/cni/host-local";
const NETWORK = `${RUN_PREFIX}ipam`;

const dataRoot = fs.mkdtempSync(path.join(os.tmpdir(), `${RUN_PREFIX}ipam-interop-`));
afterAll(() => fs.rmSync(dataRoot, { recursive: true, force: true }));

let dataDir: string;
let store: DiskStore;
let counter = 0;
beforeEach(() => {
  dataDir = fs.mkdtempSync(path.join(dataRoot, "case-"));
  store = new DiskStore(NETWORK, { dataDir });
});

function ipamConfig(ranges: object[][]) {
  return { type: "host-local", ranges, dataDir };
}

function hostLocal(command: "ADD" | "DEL" | "CHECK", id: string, ranges: object[][], ifname = "eth0"): PluginResult {
  return runPlugin(HOST_LOCAL, {
    command,
    containerId: id,
    netns: "/proc/self/ns/net",
    ifname,
    path: path.dirname(HOST_LOCAL),
    stdin: { cniVersion: "1.0.0", name: NETWORK, ipam: ipamConfig(ranges) },
  });
}

/** host-local's addresses for an ADD that must succeed. */
function hostLocalAdd(id: string, ranges: object[][]): string[] {
  const result = hostLocal("ADD", id, ranges);
  expect(result.code, result.stdout + result.stderr).toBe(0);
  return (result.json.ips as { address: string }[]).map((ip) => ip.address);
}

function weftAdd(id: string, ranges: object[][]): string[] {
  const { rangeSets } = parseIpamConfig(ipamConfig(ranges));
  return allocate(store, { id, ifname: "eth0", network: NETWORK, rangeSets }).map((a) => a.address);
}

const files = () => fs.readdirSync(path.join(dataDir, NETWORK)).sort();

describe.skipIf(!fs.existsSync(HOST_LOCAL))("IPAM interop with the reference host-local", () => {
  const dualStack = [[{ subnet: "10.99.0.0/27" }], [{ subnet: "fd00:99::/64" }]];

  it("continues host-local's round-robin and vice versa, never handing out an address twice", () => {
    const sequence: string[][] = [];
    for (let i = 0; i < 6; i++) {
      const id = `c${++counter}`;
      sequence.push(i % 2 === 0 ? hostLocalAdd(`hl-${id}`, dualStack) : weftAdd(`weft-${id}`, dualStack));
    }
    // One shared last_reserved_ip.<n> per range set: the two allocators interleave into one sequence.
    expect(sequence.map((pair) => pair[0])).toEqual(["10.99.0.2/27", "10.99.0.3/27", "10.99.0.4/27", "10.99.0.5/27", "10.99.0.6/27", "10.99.0.7/27"]);
    expect(sequence.map((pair) => pair[1])).toEqual(["fd00:99::2/64", "fd00:99::3/64", "fd00:99::4/64", "fd00:99::5/64", "fd00:99::6/64", "fd00:99::7/64"]);
    expect(new Set(sequence.flat()).size).toBe(12);
    expect(files()).toContain("fd00:99::7");
  });

  it("reads host-local's files: weft lists and releases what host-local reserved", () => {
    const [v4, v6] = hostLocalAdd("hl-owner", dualStack);
    expect(listReservations(store).sort((a, b) => a.ip.localeCompare(b.ip))).toEqual([
      { ip: v4?.split("/")[0], id: "hl-owner", ifname: "eth0" },
      { ip: v6?.split("/")[0], id: "hl-owner", ifname: "eth0" },
    ]);
    expect(release(store, { id: "hl-owner", ifname: "eth0" }).sort()).toEqual(["10.99.0.2", "fd00:99::2"]);
    expect(files()).toEqual(["last_reserved_ip.0", "last_reserved_ip.1", "lock"]);
  });

  it("writes files host-local reads: its CHECK finds, its duplicate check sees, and its DEL releases weft's reservations", () => {
    weftAdd("weft-owner", dualStack);
    expect(hostLocal("CHECK", "weft-owner", dualStack).code).toBe(0);
    const duplicate = hostLocal("ADD", "weft-owner", dualStack);
    expect(duplicate.code).toBe(1);
    expect(duplicate.json.msg).toMatch(/10\.99\.0\.2 has been allocated to weft-owner/);
    expect(hostLocal("DEL", "weft-owner", dualStack).code).toBe(0);
    expect(files()).toEqual(["last_reserved_ip.0", "last_reserved_ip.1", "lock"]);
  });

  it("both sides see the range exhausted when the other filled it", () => {
    const small = [[{ subnet: "10.98.0.0/29" }]]; // .2 … .6
    const mine = ["a", "b", "c"].map((id) => weftAdd(`weft-${id}`, small));
    const theirs = ["d", "e"].map((id) => hostLocalAdd(`hl-${id}`, small));
    expect([...mine, ...theirs].flat().sort()).toEqual(["10.98.0.2/29", "10.98.0.3/29", "10.98.0.4/29", "10.98.0.5/29", "10.98.0.6/29"]);
    const full = hostLocal("ADD", "hl-f", small);
    expect(full.code).toBe(1);
    expect(full.json.msg).toMatch(/no IP addresses available/);
    expect(() => weftAdd("weft-g", small)).toThrow(`Cannot allocate IP: range 10.98.0.0/29 exhausted in network "${NETWORK}"`);
    // a host-local DEL frees an address that weft then reuses
    expect(hostLocal("DEL", "weft-b", small).code).toBe(0);
    expect(weftAdd("weft-g", small)).toEqual(["10.98.0.3/29"]);
  });

  it("serialises with host-local on the lock file: concurrent ADDs from both get distinct addresses", async () => {
    const ranges = [[{ subnet: "10.97.0.0/26" }]];
    const theirs = Array.from({ length: 12 }, (_, i) =>
      runPluginAsync(HOST_LOCAL, {
        command: "ADD",
        containerId: `hl-par-${i}`,
        netns: "/proc/self/ns/net",
        ifname: "eth0",
        path: path.dirname(HOST_LOCAL),
        stdin: { cniVersion: "1.0.0", name: NETWORK, ipam: ipamConfig(ranges) },
      }),
    );
    // While the plugins run, allocate in this process, yielding between calls so that the plugins get their
    // stdin and run meanwhile; each allocation takes the same flock as they do.
    const mine: string[] = [];
    for (let i = 0; i < 12; i++) {
      mine.push(weftAdd(`weft-par-${i}`, ranges)[0] as string);
      await new Promise((resolve) => setTimeout(resolve, 3));
    }
    const results = await Promise.all(theirs);
    for (const result of results) expect(result.code, result.stdout).toBe(0);
    const all = [...mine, ...results.map((result) => result.json.ips[0].address as string)];
    expect(new Set(all).size).toBe(24);
    expect(listReservations(store)).toHaveLength(24);
  });

  it("makes host-local wait while weft holds the lock", () => {
    const blocked = store.withLock(() =>
      runPlugin(HOST_LOCAL, {
        command: "ADD",
        containerId: "hl-waits",
        netns: "/proc/self/ns/net",
        ifname: "eth0",
        path: path.dirname(HOST_LOCAL),
        stdin: { cniVersion: "1.0.0", name: NETWORK, ipam: ipamConfig(dualStack) },
        timeoutMs: 1_000,
      }),
    );
    expect(blocked.code).toBeNull(); // killed by the timeout while waiting for the flock
    expect(listReservations(store)).toEqual([]);
    expect(hostLocalAdd("hl-waits", dualStack)).toHaveLength(2);
  });

  it("releases old-format reservations (container id only) the way host-local does", () => {
    const dir = path.join(dataDir, NETWORK);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, "10.99.0.9"), "legacy-1");
    fs.writeFileSync(path.join(dir, "10.99.0.10"), "legacy-2");
    expect(release(store, { id: "legacy-1", ifname: "eth0" })).toEqual(["10.99.0.9"]);
    expect(hostLocal("DEL", "legacy-2", dualStack).code).toBe(0);
    expect(listReservations(store)).toEqual([]);
  });
});
