// The two halves of the eBPF datapath's kernel layer against the real kernel: libbpf (the agent loads and pins)
// and raw bpf(2) (the plugin opens pins, writes map entries, attaches with tcx). The fixture programs are
// compiled here with clang; everything is pinned in a bpffs mounted on a temp dir of this run (never the host's
// /sys/fs/bpf) and attached to a veth between two throwaway namespaces. afterAll removes all of it, and
// scripts/cleanup-test-state.sh unmounts and removes what a crashed run left.
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, unlinkSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KernelError } from "../../native/errors";
import { withNetns } from "../../native/netns";
import { ensureBpffs } from "../../native/bpf/bpffs";
import { LibbpfError, BpfObject, setLibbpfLogger } from "../../native/bpf/libbpf";
import {
  BPF_ATTACH, BPF_LINK_TYPE, BPF_MAP_TYPE, BPF_PROG_TYPE, closeFd, isBpffs, linkCreateTcx, linkDetach, linkGetFdById,
  linkUpdate, mapDelete, mapKeys, mapLookup, mapNextKey, mapUpdate, objGet, objInfo, objPin, possibleCpus,
  progGetFdById, progQueryTcx,
} from "../../native/bpf/syscall";
import { createTestNetns, RUN_PREFIX, run, type TestNetns } from "../support/netns";

const FIXTURES = fileURLToPath(new URL("../fixtures/bpf/", import.meta.url));
const MULTIARCH: Partial<Record<string, string>> = { x64: "x86_64-linux-gnu", arm64: "aarch64-linux-gnu" };
const PING = existsSync("/bin/busybox") ? ["/bin/busybox", "ping"] : ["ping"];
const BPF_F_NO_PREALLOC = 1;

let dir: string;
let pinRoot: string;
let mounted = false;
let testProg: Buffer;
let badProg: Buffer;
let host: TestNetns; // holds veth-a, where the programs are attached
let peer: TestNetns; // holds veth-b, where the pings come from
let ifindex: number;
let object: BpfObject | undefined;
const openFds = new Set<number>();

/** An fd closed in afterAll if the test does not close it itself. */
function track(fd: number): number {
  openFds.add(fd);
  return fd;
}

function release(fd: number): void {
  openFds.delete(fd);
  closeFd(fd);
}

function compile(name: string): Buffer {
  const out = join(dir, `${name}.o`);
  const include = MULTIARCH[process.arch] ? [`-I/usr/include/${MULTIARCH[process.arch]}`] : [];
  run(["clang", "-O2", "-g", "-target", "bpf", ...include, "-c", join(FIXTURES, `${name}.c`), "-o", out]);
  return readFileSync(out);
}

const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };
const u64 = (n: number) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(n)); return b; };
const lpmKey = (prefixLength: number, address: string) => Buffer.concat([u32(prefixLength), Buffer.from(address.split(".").map(Number))]);

function errorOf(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error("expected an error");
}

function packets(mapFd: number, slot: number): number {
  return Number(mapLookup(mapFd, u32(slot), 8)!.readBigUInt64LE());
}

function ping(count: number): void {
  peer.exec([...PING, "-c", String(count), "-i", "0.1", "-W", "1", "10.99.0.1"]);
}

function tcx(direction: "ingress" | "egress") {
  return withNetns(host.path, () => progQueryTcx(ifindex, direction));
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), `${RUN_PREFIX}bpf-`));
  pinRoot = join(dir, "bpffs");
  ensureBpffs(pinRoot);
  mounted = true;
  testProg = compile("test-prog");
  badProg = compile("bad-prog");
  host = createTestNetns("bpf-host");
  peer = createTestNetns("bpf-peer");
  host.exec(["ip", "link", "add", "veth-a", "type", "veth", "peer", "name", "veth-b", "netns", peer.name]);
  host.exec(["ip", "addr", "add", "10.99.0.1/24", "dev", "veth-a"]);
  host.exec(["ip", "link", "set", "veth-a", "up"]);
  peer.exec(["ip", "addr", "add", "10.99.0.2/24", "dev", "veth-b"]);
  peer.exec(["ip", "link", "set", "veth-b", "up"]);
  ifindex = (JSON.parse(host.exec(["ip", "-j", "link", "show", "veth-a"])) as { ifindex: number }[])[0]!.ifindex;
});

afterAll(() => {
  setLibbpfLogger(undefined);
  for (const fd of openFds) {
    try {
      closeFd(fd);
    } catch {
      // already closed
    }
  }
  object?.close();
  host?.remove();
  peer?.remove();
  if (mounted) run(["umount", pinRoot], { allowFailure: true });
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("bpffs", () => {
  it("mounted a bpffs on the temp dir, and tells bpffs from other filesystems", () => {
    expect(isBpffs(pinRoot)).toBe(true);
    expect(isBpffs(dir)).toBe(false);
    expect(isBpffs(join(dir, "missing"))).toBe(false);
    mkdirSync(join(pinRoot, "sub"));
    expect(isBpffs(join(pinRoot, "sub"))).toBe(true);
    ensureBpffs(join(pinRoot, "sub", "deeper")); // inside a bpffs: a directory, no new mount
    expect(run(["findmnt", "-rn", "-o", "TARGET"]).split("\n").filter((target) => target.startsWith(pinRoot))).toEqual([pinRoot]);
  });

  it("counts the possible CPUs (the size of a per-CPU map's values)", () => {
    expect(possibleCpus()).toBeGreaterThanOrEqual(cpus().length);
  });
});

describe("libbpf loader", () => {
  it("opens, loads and pins: LIBBPF_PIN_BY_NAME maps under the pin root, the rest where asked", () => {
    const messages: string[] = [];
    setLibbpfLogger((level, message) => messages.push(`${level} ${message}`), { debug: true });
    object = BpfObject.open(testProg, { name: "weft-test", pinRoot });
    expect(object.programNames()).toEqual(["count_first", "count_second"]);
    expect(object.mapNames()).toEqual(expect.arrayContaining(["test_packets", "test_hash", "test_lpm"]));
    expect(object.mapPinPath("test_packets")).toBe(join(pinRoot, "test_packets"));
    expect(object.mapPinPath("test_hash")).toBeUndefined();
    object.load();
    setLibbpfLogger(undefined);
    expect(messages.some((m) => m.startsWith("debug libbpf: loading object 'weft-test' from buffer"))).toBe(true);

    expect(existsSync(join(pinRoot, "test_packets"))).toBe(true);
    object.pinMap("test_hash", join(pinRoot, "test_hash"));
    object.pinMap("test_lpm", join(pinRoot, "test_lpm"));
    object.pinProgram("count_first", join(pinRoot, "progs", "count_first"));
    object.pinProgram("count_second", join(pinRoot, "progs", "count_second"));
    for (const pin of ["test_hash", "test_lpm", "progs/count_first", "progs/count_second"]) {
      expect(existsSync(join(pinRoot, pin))).toBe(true);
    }
    expect(object.programFd("count_first")).toBeGreaterThan(0);
    expect(() => object!.programFd("nope")).toThrow("bpf_object__find_program_by_name(weft-test, nope): ENOENT");
    expect(() => object!.pinProgram("count_first", join(pinRoot, "progs", "count_first"))).toThrow(/EEXIST/);
    // libbpf's own message comes with the errno.
    const outside = join(dir, "progs", "count_first");
    expect(() => object!.pinProgram("count_first", outside)).toThrow(
      `bpf_program__pin(weft-test/count_first, ${outside}): EINVAL (Invalid argument)\nlibbpf: specified path ${outside} is not on BPF FS`,
    );
  });

  it("a second object reuses the pinned map instead of creating its own", () => {
    const second = BpfObject.open(testProg, { name: "weft-test-2", pinRoot });
    try {
      second.load();
      expect(objInfo(second.mapFd("test_packets")).id).toBe(objInfo(object!.mapFd("test_packets")).id);
      expect(objInfo(second.mapFd("test_hash")).id).not.toBe(objInfo(object!.mapFd("test_hash")).id);
    } finally {
      second.close();
    }
  });

  it("a program the verifier refuses fails with the verifier's reason", () => {
    const broken = BpfObject.open(badProg, { name: "weft-bad", pinRoot });
    let error: unknown;
    try {
      error = errorOf(() => broken.load());
    } finally {
      broken.close();
    }
    expect(error).toBeInstanceOf(LibbpfError);
    expect(error).toBeInstanceOf(KernelError);
    const e = error as LibbpfError;
    expect(e.code).toBe("EACCES");
    expect(e.message).toMatch(/^bpf_object__load\(weft-bad\): EACCES \(Permission denied\)\n/);
    expect(e.message).toContain("invalid access to packet");
    expect(e.message).toContain("prog 'read_unchecked': BPF program load failed");
    expect(e.log).toContain("-- BEGIN PROG LOAD LOG --");
  });

  it("bytes that are not an object fail at open with libbpf's reason", () => {
    const error = errorOf(() => BpfObject.open(Buffer.from("not an ELF file"), { name: "weft-garbage" }));
    expect(error).toBeInstanceOf(LibbpfError);
    expect((error as Error).message).toContain("bpf_object__open_mem(weft-garbage)");
    expect((error as Error).message).toContain("is not a proper ELF object");
  });
});

describe("raw bpf(2) on the pins", () => {
  it("recognises pinned programs and maps", () => {
    const prog = track(objGet(join(pinRoot, "progs", "count_first")));
    const info = objInfo(prog);
    expect(info).toMatchObject({ kind: "prog", type: BPF_PROG_TYPE.SCHED_CLS, name: "count_first" });
    expect(info.kind === "prog" && info.tag).toMatch(/^[0-9a-f]{16}$/);
    expect(info.id).toBe(objInfo(object!.programFd("count_first")).id);

    const packetsMap = track(objGet(join(pinRoot, "test_packets"), { readOnly: true }));
    expect(objInfo(packetsMap)).toMatchObject({
      kind: "map", type: BPF_MAP_TYPE.ARRAY, keySize: 4, valueSize: 8, maxEntries: 2, name: "test_packets",
    });
    const lpm = track(objGet(join(pinRoot, "test_lpm")));
    expect(objInfo(lpm)).toMatchObject({ kind: "map", type: BPF_MAP_TYPE.LPM_TRIE, keySize: 8, valueSize: 4, flags: BPF_F_NO_PREALLOC });
    // Read-only: lookups work, writes are refused.
    expect(mapLookup(packetsMap, u32(0), 8)).toEqual(u64(0));
    expect(errorOf(() => mapUpdate(packetsMap, u32(0), u64(1)))).toMatchObject({ code: "EPERM" });
    release(lpm);
    release(packetsMap);
    release(prog);

    const fd = openSync(dir, "r");
    try {
      expect(() => objInfo(fd)).toThrow(`bpf(BPF_OBJ_GET_INFO_BY_FD fd ${fd}): EINVAL`);
    } finally {
      closeSync(fd);
    }
  });

  it("a missing pin is ENOENT, naming the path", () => {
    const path = join(pinRoot, "progs", "missing");
    const error = errorOf(() => objGet(path));
    expect(error).toBeInstanceOf(KernelError);
    expect(error).toMatchObject({ code: "ENOENT", message: `bpf(BPF_OBJ_GET ${path}): ENOENT` });
  });

  it("updates, looks up, deletes and walks a hash map", () => {
    const hash = track(objGet(join(pinRoot, "test_hash")));
    for (const n of [1, 2, 3, 4, 5]) mapUpdate(hash, u32(n), u64(n * 100), "noexist");
    expect(errorOf(() => mapUpdate(hash, u32(1), u64(0), "noexist"))).toMatchObject({ code: "EEXIST" });
    expect(errorOf(() => mapUpdate(hash, u32(9), u64(0), "exist"))).toMatchObject({ code: "ENOENT" });
    mapUpdate(hash, u32(1), u64(111), "exist");
    mapUpdate(hash, u32(2), u64(222));
    expect(mapLookup(hash, u32(1), 8)).toEqual(u64(111));
    expect(mapLookup(hash, u32(2), 8)).toEqual(u64(222));
    expect(mapLookup(hash, u32(9), 8)).toBeUndefined();
    expect(mapDelete(hash, u32(3))).toBe(true);
    expect(mapDelete(hash, u32(3))).toBe(false);
    expect([...mapKeys(hash, 4)].map((key) => key.readUInt32LE()).sort()).toEqual([1, 2, 4, 5]);
    for (const key of [...mapKeys(hash, 4)]) mapDelete(hash, key);
    expect(mapNextKey(hash, undefined, 4)).toBeUndefined();
    // The libbpf side sees the same map.
    mapUpdate(hash, u32(7), u64(7));
    expect(objInfo(hash).id).toBe(objInfo(object!.mapFd("test_hash")).id);
    release(hash);
  });

  it("finds the longest prefix in an LPM trie", () => {
    const lpm = track(objGet(join(pinRoot, "test_lpm")));
    mapUpdate(lpm, lpmKey(8, "10.0.0.0"), u32(1));
    mapUpdate(lpm, lpmKey(16, "10.1.0.0"), u32(2));
    expect(mapLookup(lpm, lpmKey(32, "10.1.2.3"), 4)).toEqual(u32(2));
    expect(mapLookup(lpm, lpmKey(32, "10.2.0.1"), 4)).toEqual(u32(1));
    expect(mapLookup(lpm, lpmKey(32, "11.0.0.1"), 4)).toBeUndefined();
    expect([...mapKeys(lpm, 8)]).toHaveLength(2);
    expect(mapDelete(lpm, lpmKey(16, "10.1.0.0"))).toBe(true);
    expect(mapLookup(lpm, lpmKey(32, "10.1.2.3"), 4)).toEqual(u32(1));
    release(lpm);
  });
});

describe("tcx", () => {
  it("attaches with a link, counts packets, swaps the program in place, and is gone once unpinned and closed", () => {
    const first = track(objGet(join(pinRoot, "progs", "count_first")));
    const second = track(objGet(join(pinRoot, "progs", "count_second")));
    const counts = track(objGet(join(pinRoot, "test_packets")));
    const firstId = objInfo(first).id;
    const secondId = objInfo(second).id;
    expect(tcx("ingress")).toMatchObject({ progIds: [], linkIds: [] });

    const link = track(withNetns(host.path, () => linkCreateTcx(first, ifindex, "ingress")));
    const linkPin = join(pinRoot, "link-veth-a-ingress");
    objPin(link, linkPin);
    release(link); // the pin holds the attachment now
    const attached = tcx("ingress");
    expect(attached.progIds).toEqual([firstId]);
    expect(attached.linkIds).toHaveLength(1);
    expect(attached.revision).toBeGreaterThan(0);
    expect(tcx("egress").progIds).toEqual([]);

    const pinned = track(objGet(linkPin));
    expect(objInfo(pinned)).toEqual({
      kind: "link", id: attached.linkIds[0], type: BPF_LINK_TYPE.TCX, progId: firstId, ifindex, attachType: BPF_ATTACH.TCX_INGRESS,
    });
    // What the agent's reconcile does with a query's ids.
    const byId = track(progGetFdById(firstId));
    expect(objInfo(byId).id).toBe(firstId);
    release(byId);
    const linkById = track(linkGetFdById(attached.linkIds[0]!));
    expect(objInfo(linkById).id).toBe(attached.linkIds[0]);
    release(linkById);

    const before = packets(counts, 0);
    ping(3);
    expect(packets(counts, 0)).toBeGreaterThanOrEqual(before + 3);

    expect(errorOf(() => linkUpdate(pinned, second, { expectedProgFd: second }))).toMatchObject({ code: "EPERM" });
    linkUpdate(pinned, second, { expectedProgFd: first });
    expect(tcx("ingress")).toMatchObject({ progIds: [secondId], linkIds: attached.linkIds });
    const firstCount = packets(counts, 0);
    const secondBefore = packets(counts, 1);
    ping(2);
    expect(packets(counts, 0)).toBe(firstCount);
    expect(packets(counts, 1)).toBeGreaterThanOrEqual(secondBefore + 2);

    unlinkSync(linkPin);
    release(pinned);
    expect(tcx("ingress")).toMatchObject({ progIds: [], linkIds: [] });
    const quiet = packets(counts, 1);
    ping(1);
    expect(packets(counts, 1)).toBe(quiet);
    release(counts);
    release(second);
    release(first);
  });

  it("linkDetach ends an attachment at once, leaving a defunct link", () => {
    const prog = track(objGet(join(pinRoot, "progs", "count_first")));
    const link = track(withNetns(host.path, () => linkCreateTcx(prog, ifindex, "egress")));
    const { revision } = tcx("egress");
    expect(tcx("egress").progIds).toEqual([objInfo(prog).id]);
    // A stale revision is refused: another attach happened since the query.
    const stale = errorOf(() => withNetns(host.path, () => linkCreateTcx(prog, ifindex, "egress", { expectedRevision: revision - 1 })));
    expect(stale).toBeInstanceOf(KernelError);
    expect((stale as KernelError).errno).toBe(116); // ESTALE
    linkDetach(link);
    expect(tcx("egress").progIds).toEqual([]);
    expect(objInfo(link)).toMatchObject({ kind: "link", ifindex: 0 });
    release(link);
    release(prog);
  });

  it("refuses the same program twice on one hook, and lists more attachments than its first guess has room for", () => {
    const prog = track(objGet(join(pinRoot, "progs", "count_first")));
    const link = track(withNetns(host.path, () => linkCreateTcx(prog, ifindex, "egress")));
    expect(errorOf(() => withNetns(host.path, () => linkCreateTcx(prog, ifindex, "egress")))).toMatchObject({ code: "EEXIST" });
    // 9 more loads of the object: 18 more programs, 19 attachments in all.
    const objects = Array.from({ length: 9 }, (_, i) => BpfObject.open(testProg, { name: `weft-test-${i}`, pinRoot }));
    const links = [link];
    try {
      for (const o of objects) {
        o.load();
        for (const name of ["count_first", "count_second"]) {
          links.push(track(withNetns(host.path, () => linkCreateTcx(o.programFd(name), ifindex, "egress"))));
        }
      }
    } finally {
      for (const o of objects) o.close(); // the links hold the programs
    }
    const { progIds, linkIds } = tcx("egress");
    expect(progIds).toHaveLength(19);
    expect(linkIds).toEqual(links.map((fd) => objInfo(fd).id));
    expect(progIds).toEqual(links.map((fd) => (objInfo(fd) as { progId: number }).progId));
    for (const fd of links) release(fd);
    expect(tcx("egress").progIds).toEqual([]);
    release(prog);
  });

  it("attaching to a device of another namespace fails with ENODEV", () => {
    const prog = track(objGet(join(pinRoot, "progs", "count_first")));
    const error = errorOf(() => linkCreateTcx(prog, 1_000_000, "ingress"));
    expect(error).toMatchObject({ code: "ENODEV", message: "bpf(BPF_LINK_CREATE tcx ingress ifindex 1000000): ENODEV" });
    release(prog);
  });
});
