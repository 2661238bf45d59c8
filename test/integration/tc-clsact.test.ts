// tc over rtnetlink (native/netlink/tc.ts) and the two attachers (native/bpf/attach.ts) on the real kernel: a clsact
// qdisc and bpf filters in direct-action mode on a veth between two throwaway namespaces, running programs compiled
// here (test/fixtures/bpf/tc-prog.c) and pinned in a bpffs on a temp dir of this run. weft's filters are found,
// replaced and removed by their priority, handle and program name; someone else's filters, at another priority or
// at weft's own, and the qdisc they need, are left alone. afterAll removes it all.
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTcAttacher, removeWeftFilters, WEFT_FILTER } from "../../native/bpf/attach";
import { ensureBpffs } from "../../native/bpf/bpffs";
import { BpfObject } from "../../native/bpf/libbpf";
import { closeFd, mapLookup, objGet, objInfo } from "../../native/bpf/syscall";
import { addClsact, deleteClsactIfEmpty, deleteFilter, listFilters, NetlinkSocket, replaceBpfFilter } from "../../native/netlink";
import { PROTOCOL_ALL } from "../../native/netlink/tc";
import { withNetns } from "../../native/netns";
import { createTestNetns, RUN_PREFIX, run, type TestNetns } from "../support/netns";

const FIXTURES = fileURLToPath(new URL("../fixtures/bpf/", import.meta.url));
const MULTIARCH: Partial<Record<string, string>> = { x64: "x86_64-linux-gnu", arm64: "aarch64-linux-gnu" };
const PING = existsSync("/bin/busybox") ? ["/bin/busybox", "ping"] : ["ping"];

let dir: string;
let pinRoot: string;
let mounted = false;
let object: BpfObject | undefined;
let host: TestNetns; // holds veth-a, where the programs are attached
let peer: TestNetns; // holds veth-b, where the pings come from
let sock: NetlinkSocket | undefined;
let ifindex: number;
const ids: Record<string, number> = {};

const program = (name: string) => join(pinRoot, "progs", name);

function packets(slot: number): number {
  const key = Buffer.alloc(4);
  key.writeUInt32LE(slot);
  return Number(mapLookup(object!.mapFd("tc_packets"), key, 8)!.readBigUInt64LE());
}

function ping(count: number): void {
  peer.exec([...PING, "-c", String(count), "-i", "0.1", "-W", "1", "10.98.0.1"]);
}

/** The qdiscs of veth-a as tc shows them. */
function qdiscs(): string[] {
  return (JSON.parse(host.exec(["tc", "-j", "qdisc", "show", "dev", "veth-a"])) as { kind: string }[]).map((q) => q.kind);
}

/** A filter at (priority, handle) running `name`, as someone else would add it. */
function foreignFilter(hook: "ingress" | "egress", priority: number, handle: number, name: string): void {
  const fd = objGet(program(name));
  try {
    replaceBpfFilter(sock!, { index: ifindex, hook, priority, handle, programFd: fd, name });
  } finally {
    closeFd(fd);
  }
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), `${RUN_PREFIX}tc-`));
  pinRoot = join(dir, "bpffs");
  ensureBpffs(pinRoot);
  mounted = true;
  const out = join(dir, "tc-prog.o");
  const include = MULTIARCH[process.arch] ? [`-I/usr/include/${MULTIARCH[process.arch]}`] : [];
  run(["clang", "-O2", "-g", "-target", "bpf", ...include, "-c", join(FIXTURES, "tc-prog.c"), "-o", out]);
  object = BpfObject.open(readFileSync(out), { name: "weft-tc-test", pinRoot });
  object.load();
  for (const name of ["weft_first", "weft_second", "other_filter"]) {
    object.pinProgram(name, program(name));
    ids[name] = objInfo(object.programFd(name)).id;
  }
  host = createTestNetns("tc-host");
  peer = createTestNetns("tc-peer");
  host.exec(["ip", "link", "add", "veth-a", "type", "veth", "peer", "name", "veth-b", "netns", peer.name]);
  host.exec(["ip", "addr", "add", "10.98.0.1/24", "dev", "veth-a"]);
  host.exec(["ip", "link", "set", "veth-a", "up"]);
  peer.exec(["ip", "addr", "add", "10.98.0.2/24", "dev", "veth-b"]);
  peer.exec(["ip", "link", "set", "veth-b", "up"]);
  ifindex = (JSON.parse(host.exec(["ip", "-j", "link", "show", "veth-a"])) as { ifindex: number }[])[0]!.ifindex;
  sock = NetlinkSocket.openIn(host.path);
});

afterAll(() => {
  sock?.close();
  object?.close();
  host?.remove();
  peer?.remove();
  if (mounted) run(["umount", pinRoot], { allowFailure: true });
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("tc over rtnetlink", () => {
  it("adds clsact once, attaches a bpf filter in direct-action mode, lists it, replaces its program in place, deletes it and the emptied qdisc", () => {
    const s = sock!;
    expect(listFilters(s, ifindex, "ingress")).toEqual([]); // no clsact yet: nothing, no error
    expect(addClsact(s, ifindex)).toBe(true);
    expect(addClsact(s, ifindex)).toBe(false);
    expect(qdiscs()).toContain("clsact");

    const spec = { index: ifindex, hook: "ingress" as const, priority: 0x5746, handle: 0x77656674, name: "weft_first" };
    const first = objGet(program("weft_first"));
    try {
      replaceBpfFilter(s, { ...spec, programFd: first });
    } finally {
      closeFd(first);
    }
    const filter = { index: ifindex, hook: "ingress", priority: 0x5746, protocol: PROTOCOL_ALL, handle: 0x77656674, kind: "bpf", name: "weft_first", directAction: true };
    expect(listFilters(s, ifindex, "ingress")).toEqual([{ ...filter, programId: ids.weft_first }]);
    expect(listFilters(s, ifindex, "egress")).toEqual([]);
    // tc itself reads it as one would write it by hand.
    const shown = host.exec(["tc", "filter", "show", "dev", "veth-a", "ingress"]);
    expect(shown).toMatch(/pref 22342 bpf chain 0 handle 0x77656674 weft_first direct-action/);
    const before = packets(0);
    ping(3);
    expect(packets(0)).toBeGreaterThanOrEqual(before + 3);

    // The same priority and handle: the program is swapped, the filter stays the only one.
    const second = objGet(program("weft_second"));
    try {
      replaceBpfFilter(s, { ...spec, name: "weft_second", programFd: second });
    } finally {
      closeFd(second);
    }
    expect(listFilters(s, ifindex, "ingress")).toEqual([{ ...filter, name: "weft_second", programId: ids.weft_second }]);
    const [firstCount, secondCount] = [packets(0), packets(1)];
    ping(2);
    expect(packets(0)).toBe(firstCount);
    expect(packets(1)).toBeGreaterThanOrEqual(secondCount + 2);

    // The qdisc stays while it holds a filter.
    expect(deleteClsactIfEmpty(s, ifindex)).toBe(false);
    expect(deleteFilter(s, listFilters(s, ifindex, "ingress")[0]!)).toBe(true);
    expect(deleteFilter(s, { ...filter, hook: "ingress" })).toBe(false);
    expect(listFilters(s, ifindex, "ingress")).toEqual([]);
    expect(deleteClsactIfEmpty(s, ifindex)).toBe(true);
    expect(qdiscs()).not.toContain("clsact");
    expect(deleteClsactIfEmpty(s, ifindex)).toBe(false);
  });
});

describe("the clsact attacher", () => {
  it("attaches, finds and swaps weft's filters beside someone else's, and removes only weft's", () => {
    const s = sock!;
    const attacher = createTcAttacher("clsact", { bpfDir: pinRoot, sock: s });
    const ingress = { device: "veth-a", ifindex, direction: "ingress" as const };
    const egress = { ...ingress, direction: "egress" as const };
    // Someone else's filter first in line (it lets the packets go on to the next filter).
    addClsact(s, ifindex);
    foreignFilter("ingress", 1, 1, "other_filter");
    expect(attacher.attachedProgram(ingress)).toBeUndefined();

    attacher.attach(ingress, program("weft_first"));
    attacher.attach(egress, program("weft_second"));
    expect(attacher.attachedProgram(ingress)).toBe(ids.weft_first);
    expect(attacher.attachedProgram(egress)).toBe(ids.weft_second);
    expect(listFilters(s, ifindex, "ingress").map((f) => [f.priority, f.name])).toEqual([[1, "other_filter"], [WEFT_FILTER.priority, "weft_first"]]);
    const before = [packets(0), packets(1), packets(2)];
    ping(3);
    expect(packets(2)).toBeGreaterThanOrEqual(before[2]! + 3); // the other filter, then …
    expect(packets(0)).toBeGreaterThanOrEqual(before[0]! + 3); // … weft's on ingress,
    expect(packets(1)).toBeGreaterThanOrEqual(before[1]! + 3); // and on egress (the replies).

    attacher.attach(ingress, program("weft_second"));
    expect(attacher.attachedProgram(ingress)).toBe(ids.weft_second);
    expect(listFilters(s, ifindex, "ingress")).toHaveLength(2);

    expect(attacher.detach(ingress)).toBe(true);
    expect(attacher.detach(ingress)).toBe(false);
    expect(listFilters(s, ifindex, "ingress").map((f) => f.name)).toEqual(["other_filter"]);

    // A filter that is not weft's at weft's own priority and handle: not taken for weft's, not replaced.
    foreignFilter("ingress", WEFT_FILTER.priority, WEFT_FILTER.handle, "other_filter");
    expect(attacher.attachedProgram(ingress)).toBeUndefined();
    expect(() => attacher.attach(ingress, program("weft_first"))).toThrow(/a bpf filter that is not weft's \(other_filter\) holds weft's priority/);
    expect(attacher.detach(ingress)).toBe(false);

    // The sweep (mode switch, uninstall) removes weft's egress filter only; the qdisc keeps the others' filters.
    expect(removeWeftFilters(s)).toEqual(["veth-a egress"]);
    expect(listFilters(s, ifindex, "egress")).toEqual([]);
    expect(listFilters(s, ifindex, "ingress").map((f) => [f.priority, f.name])).toEqual([[1, "other_filter"], [WEFT_FILTER.priority, "other_filter"]]);
    expect(qdiscs()).toContain("clsact");
    expect(removeWeftFilters(s)).toEqual([]);

    for (const filter of listFilters(s, ifindex, "ingress")) deleteFilter(s, filter);
    expect(deleteClsactIfEmpty(s, ifindex)).toBe(true);
  });

  it("removes the clsact qdisc with weft's last filter when nothing else is on it", () => {
    const attacher = createTcAttacher("clsact", { bpfDir: pinRoot, sock: sock! });
    const ingress = { device: "veth-a", ifindex, direction: "ingress" as const };
    attacher.attach(ingress, program("weft_first"));
    attacher.attach({ ...ingress, direction: "egress" }, program("weft_first"));
    expect(qdiscs()).toContain("clsact");
    expect(removeWeftFilters(sock!, (device, direction) => device === "veth-a" && direction === "ingress")).toEqual(["veth-a ingress"]);
    expect(qdiscs()).toContain("clsact");
    expect(attacher.detach({ ...ingress, direction: "egress" })).toBe(true);
    expect(qdiscs()).not.toContain("clsact");
  });
});

describe("the tcx attacher", () => {
  it("pins a link, swaps its program in place, and unpins it", () => {
    const attacher = createTcAttacher("tcx", { bpfDir: pinRoot });
    const target = { device: "veth-a", ifindex, direction: "ingress" as const };
    expect(attacher.attachedProgram(target)).toBeUndefined();
    withNetns(host.path, () => attacher.attach(target, program("weft_first")));
    expect(existsSync(join(pinRoot, "links", "veth-a-ingress"))).toBe(true);
    expect(attacher.attachedProgram(target)).toBe(ids.weft_first);
    const link = objGet(join(pinRoot, "links", "veth-a-ingress"));
    const linkId = objInfo(link).id;
    closeFd(link);
    withNetns(host.path, () => attacher.attach(target, program("weft_second")));
    expect(attacher.attachedProgram(target)).toBe(ids.weft_second);
    const same = objGet(join(pinRoot, "links", "veth-a-ingress"));
    expect(objInfo(same).id).toBe(linkId);
    closeFd(same);
    // Another device's index (the device was recreated): the pinned link is not taken for an attachment there.
    expect(attacher.attachedProgram({ ...target, ifindex: ifindex + 1000 })).toBeUndefined();
    expect(attacher.detach(target)).toBe(true);
    expect(attacher.detach(target)).toBe(false);
    expect(qdiscs()).not.toContain("clsact");
  });
});
