// The host-local compatible IPAM: config validation, the allocator against the in-memory fake and against the
// on-disk store in a temp dir (no root needed: flock works on any file).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { formatAddress, parseAddress } from "../../native/addresses";
import { allocate, candidates, type AllocateRequest } from "../../cni/ipam/allocate";
import { parseIpamConfig, type RangeSet } from "../../cni/ipam/config";
import { DiskStore } from "../../cni/ipam/disk-store";
import { IpamError } from "../../cni/ipam/errors";
import { MemoryStore } from "../../cni/ipam/memory-store";
import { release, releaseIP } from "../../cni/ipam/release";
import { listReservations } from "../../cni/ipam/reservations";
import type { Store } from "../../cni/ipam/store";
import { measureUsage } from "../../cni/ipam/usage";

const NETWORK = "weftnet";
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "weft-ipam-unit-"));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

function rangeSets(...sets: object[][]): RangeSet[] {
  return parseIpamConfig({ type: "host-local", ranges: sets }).rangeSets;
}

function ipamError(fn: () => unknown): IpamError {
  try {
    fn();
  } catch (error) {
    if (error instanceof IpamError) return error;
    throw error;
  }
  throw new Error("expected an IpamError");
}

let diskCounter = 0;
const stores: [string, () => Store][] = [
  ["MemoryStore", () => new MemoryStore()],
  ["DiskStore", () => new DiskStore(NETWORK, { dataDir: path.join(tmpRoot, `store-${++diskCounter}`) })],
];

describe.each(stores)("allocator with %s", (_name, makeStore) => {
  let store: Store;
  beforeEach(() => {
    store = makeStore();
  });

  const v4 = rangeSets([{ subnet: "10.0.0.0/29" }]); // .1 gateway, .2-.6 allocatable, .7 broadcast
  const add = (id: string, sets: readonly RangeSet[] = v4, more: Partial<AllocateRequest> = {}) =>
    allocate(store, { id, ifname: "eth0", network: NETWORK, rangeSets: sets, ...more });
  const addresses = (id: string, sets?: readonly RangeSet[]) => add(id, sets).map((a) => a.address);

  it("hands out addresses round-robin after the last reserved one, skipping the gateway", () => {
    expect(add("c1")).toEqual([{ address: "10.0.0.2/29", gateway: "10.0.0.1", rangeSetIndex: 0 }]);
    expect(addresses("c2")).toEqual(["10.0.0.3/29"]);
    release(store, { id: "c1", ifname: "eth0" });
    // .2 is free again, but allocation continues after .3
    expect(addresses("c3")).toEqual(["10.0.0.4/29"]);
  });

  it("wraps to the start of the range set and never hands out the broadcast address", () => {
    for (const id of ["a", "b", "c", "d", "e"]) add(id); // .2 … .6
    release(store, { id: "b", ifname: "eth0" }); // .3
    expect(addresses("f")).toEqual(["10.0.0.3/29"]);
  });

  it("skips a gateway set in the middle of the range", () => {
    const sets = rangeSets([{ subnet: "10.0.0.0/29", gateway: "10.0.0.4" }]);
    const got = ["a", "b", "c", "d", "e"].map((id) => addresses(id, sets)[0]);
    expect(got).toEqual(["10.0.0.1/29", "10.0.0.2/29", "10.0.0.3/29", "10.0.0.5/29", "10.0.0.6/29"]);
  });

  it("walks from one range of a set to the next, and wraps from the last to the first", () => {
    const sets = rangeSets([{ subnet: "10.0.0.0/30" }, { subnet: "10.0.1.0/29", rangeStart: "10.0.1.5" }]);
    expect(["a", "b", "c"].map((id) => addresses(id, sets)[0])).toEqual(["10.0.0.2/30", "10.0.1.5/29", "10.0.1.6/29"]);
    release(store, { id: "a", ifname: "eth0" });
    expect(addresses("d", sets)).toEqual(["10.0.0.2/30"]);
  });

  it("reports exhaustion naming the range and the network", () => {
    for (const id of ["a", "b", "c", "d", "e"]) add(id);
    const error = ipamError(() => add("f"));
    expect(error.code).toBe("RANGE_EXHAUSTED");
    expect(error.message).toBe('Cannot allocate IP: range 10.0.0.0/29 exhausted in network "weftnet"');
    const custom = rangeSets([{ subnet: "10.0.1.0/24", rangeStart: "10.0.1.10", rangeEnd: "10.0.1.10" }]);
    add("g", custom);
    expect(ipamError(() => add("h", custom)).message).toBe(
      'Cannot allocate IP: range 10.0.1.0/24 (10.0.1.10-10.0.1.10) exhausted in network "weftnet"',
    );
  });

  it("returns the same address to a repeated ADD of the same container and interface", () => {
    const first = add("c1");
    expect(add("c1")).toEqual(first);
    expect(listReservations(store)).toHaveLength(1);
    // another interface of the same container is another owner
    expect(add("c1", v4, { ifname: "net1" })[0]?.address).toBe("10.0.0.3/29");
  });

  it("ignores whitespace around the container id, like host-local", () => {
    const first = add(" c1\n");
    expect(add("c1")).toEqual(first);
    expect(release(store, { id: "c1 ", ifname: "eth0" })).toEqual(["10.0.0.2"]);
  });

  it("releases every address of a container interface, and succeeds when there is none", () => {
    const sets = rangeSets([{ subnet: "10.0.0.0/29" }], [{ subnet: "fd00::/120" }]);
    add("c1", sets);
    add("c1", sets, { ifname: "net1" });
    expect(release(store, { id: "c1", ifname: "eth0" }).sort()).toEqual(["10.0.0.2", "fd00::2"]);
    expect(release(store, { id: "c1", ifname: "eth0" })).toEqual([]);
    expect(release(store, { id: "nobody", ifname: "eth0" })).toEqual([]);
    expect(listReservations(store).map((r) => r.ip).sort()).toEqual(["10.0.0.3", "fd00::3"]);
  });

  it("allocates one address per family for a dual-stack network", () => {
    const sets = rangeSets([{ subnet: "10.0.0.0/29" }], [{ subnet: "fd00:0:0:1::/64" }]);
    expect(add("c1", sets)).toEqual([
      { address: "10.0.0.2/29", gateway: "10.0.0.1", rangeSetIndex: 0 },
      { address: "fd00:0:0:1::2/64", gateway: "fd00:0:0:1::1", rangeSetIndex: 1 },
    ]);
    expect(add("c2", sets).map((a) => a.address)).toEqual(["10.0.0.3/29", "fd00:0:0:1::3/64"]);
    expect(store.withLock(() => [store.lastReservedIP(0), store.lastReservedIP(1)])).toEqual(["10.0.0.3", "fd00:0:0:1::3"]);
  });

  it("releases the first family's address when the second family is exhausted", () => {
    const sets = rangeSets([{ subnet: "10.0.0.0/29" }], [{ subnet: "fd00::/126" }]); // v6: ::2 and ::3 only
    add("a", sets);
    add("b", sets);
    const error = ipamError(() => add("c", sets));
    expect(error.code).toBe("RANGE_EXHAUSTED");
    expect(error.message).toBe('Cannot allocate IP: range fd00::/126 exhausted in network "weftnet"');
    expect(listReservations(store).filter((r) => r.id === "c")).toEqual([]);
    expect(listReservations(store)).toHaveLength(4);
  });

  it("does not release, on failure, an address the owner already held before the call", () => {
    const v6Only = rangeSets([{ subnet: "fd00::/126" }]);
    add("x", v6Only);
    add("y", v6Only);
    const sets = rangeSets([{ subnet: "10.0.0.0/29" }], [{ subnet: "fd00::/126" }]);
    add("c", v4); // c already holds 10.0.0.2
    expect(ipamError(() => add("c", sets)).code).toBe("RANGE_EXHAUSTED");
    expect(listReservations(store).filter((r) => r.id === "c").map((r) => r.ip)).toEqual(["10.0.0.2"]);
  });

  it("reserves a requested address, and refuses one that is taken, the gateway, or outside every range", () => {
    expect(add("c1", v4, { requestedIPs: ["10.0.0.5"] })[0]?.address).toBe("10.0.0.5/29");
    expect(store.withLock(() => store.lastReservedIP(0))).toBe("10.0.0.5");
    const taken = ipamError(() => add("c2", v4, { requestedIPs: ["10.0.0.5"] }));
    expect([taken.code, taken.message]).toEqual([
      "ADDRESS_UNAVAILABLE",
      'Cannot allocate IP 10.0.0.5: already reserved in network "weftnet"',
    ]);
    expect(ipamError(() => add("c2", v4, { requestedIPs: ["10.0.0.1"] })).message).toMatch(/gateway/);
    expect(ipamError(() => add("c2", v4, { requestedIPs: ["10.0.1.5"] })).message).toBe(
      'Cannot allocate IP 10.0.1.5: not in any range of network "weftnet"',
    );
    expect(ipamError(() => add("c2", v4, { requestedIPs: ["bogus"] })).code).toBe("ADDRESS_UNAVAILABLE");
    expect(ipamError(() => add("c2", v4, { requestedIPs: ["10.0.0.3", "10.0.0.4"] })).message).toMatch(/10\.0\.0\.3 is requested from the same range set/);
  });

  it("takes an address asked for twice (as CNI_ARGS and runtimeConfig may) once", () => {
    const sets = rangeSets([{ subnet: "10.0.0.0/29" }], [{ subnet: "fd00::/120" }]);
    expect(add("c1", sets, { requestedIPs: ["10.0.0.6", "fd00::9", "10.0.0.6", "fd00:0::9"] }).map((a) => a.address)).toEqual(["10.0.0.6/29", "fd00::9/120"]);
  });

  it("starts from the beginning when the last reserved address is no longer in the range set", () => {
    add("c1", rangeSets([{ subnet: "10.9.0.0/24" }]));
    expect(addresses("c2")).toEqual(["10.0.0.2/29"]);
  });

  it("releases a single address only when the owner still matches", () => {
    add("c1");
    expect(releaseIP(store, "10.0.0.2", { owner: { id: "c2", ifname: "eth0" } })).toBe(false);
    expect(releaseIP(store, "10.0.0.2", { owner: { id: "c1", ifname: "eth0" } })).toBe(true);
    expect(releaseIP(store, "10.0.0.2")).toBe(false);
    expect(releaseIP(store, "../lock")).toBe(false);
  });

  it("measures capacity and use per range set without walking the addresses", () => {
    const sets = rangeSets([{ subnet: "10.0.0.0/29" }], [{ subnet: "fd00::/64" }]);
    for (const id of ["a", "b", "c", "d"]) add(id, sets);
    expect(measureUsage(store, sets)).toEqual([
      { rangeSetIndex: 0, range: "10.0.0.0/29", capacity: 5n, used: 4n, exhausted: false },
      { rangeSetIndex: 1, range: "fd00::/64", capacity: 2n ** 64n - 2n, used: 4n, exhausted: false },
    ]);
    add("e", v4);
    expect(measureUsage(store, sets)[0]?.exhausted).toBe(true);
  });
});

describe("DiskStore on-disk format", () => {
  let dataDir: string;
  let store: DiskStore;
  const dir = () => path.join(dataDir, NETWORK);
  const read = (name: string) => fs.readFileSync(path.join(dir(), name), "utf8");
  beforeEach(() => {
    dataDir = fs.mkdtempSync(path.join(tmpRoot, "format-"));
    store = new DiskStore(NETWORK, { dataDir });
  });

  it("writes host-local's files: <ip> = id CRLF ifname, last_reserved_ip.<set> without newline, and lock", () => {
    const sets = rangeSets([{ subnet: "10.0.0.0/24" }], [{ subnet: "2001:db8:0:0:1::/80" }]);
    allocate(store, { id: "c1", ifname: "eth0", network: NETWORK, rangeSets: sets });
    expect(fs.readdirSync(dir()).sort()).toEqual([
      "10.0.0.2",
      "2001:db8::1:0:0:2",
      "last_reserved_ip.0",
      "last_reserved_ip.1",
      "lock",
    ]);
    expect(read("10.0.0.2")).toBe("c1\r\neth0");
    expect(read("2001:db8::1:0:0:2")).toBe("c1\r\neth0");
    expect(read("last_reserved_ip.0")).toBe("10.0.0.2");
    expect(read("last_reserved_ip.1")).toBe("2001:db8::1:0:0:2");
  });

  it("rewrites last_reserved_ip.<set> to exactly the new address, also when it is shorter than the old one", () => {
    fs.mkdirSync(dir(), { recursive: true, mode: 0o755 });
    fs.writeFileSync(path.join(dir(), "last_reserved_ip.0"), "10.0.0.100");
    const sets = rangeSets([{ subnet: "10.0.0.0/24", rangeStart: "10.0.0.2", rangeEnd: "10.0.0.101" }]);
    allocate(store, { id: "c1", ifname: "eth0", network: NETWORK, rangeSets: sets });
    expect(read("last_reserved_ip.0")).toBe("10.0.0.101");
    allocate(store, { id: "c2", ifname: "eth0", network: NETWORK, rangeSets: sets });
    expect(read("last_reserved_ip.0")).toBe("10.0.0.2");
    expect(fs.statSync(path.join(dir(), "last_reserved_ip.0")).size).toBe("10.0.0.2".length);
  });

  it("releases files of old host-local versions (container id only) when no file has the ifname", () => {
    fs.mkdirSync(dir(), { recursive: true });
    fs.writeFileSync(path.join(dir(), "10.0.0.7"), "old-c\n");
    fs.writeFileSync(path.join(dir(), "10.0.0.8"), "other");
    expect(listReservations(store).find((r) => r.ip === "10.0.0.7")).toEqual({ ip: "10.0.0.7", id: "old-c" });
    expect(release(store, { id: "old-c", ifname: "eth0" })).toEqual(["10.0.0.7"]);
    expect(fs.existsSync(path.join(dir(), "10.0.0.8"))).toBe(true);
  });

  it("releases only the ifname-tagged file when the id also has an old-format file (host-local's rule)", () => {
    fs.mkdirSync(dir(), { recursive: true });
    fs.writeFileSync(path.join(dir(), "10.0.0.7"), "c1");
    fs.writeFileSync(path.join(dir(), "10.0.0.8"), "c1\r\neth0");
    expect(release(store, { id: "c1", ifname: "eth0" })).toEqual(["10.0.0.8"]);
    expect(release(store, { id: "c1", ifname: "eth0" })).toEqual(["10.0.0.7"]);
  });

  it("treats a file that already exists as taken, whatever its content, and ignores files that are not addresses", () => {
    fs.mkdirSync(dir(), { recursive: true });
    fs.writeFileSync(path.join(dir(), "10.0.0.2"), "");
    fs.writeFileSync(path.join(dir(), "last_reserved_ip.7"), "10.0.0.100");
    fs.writeFileSync(path.join(dir(), "notes.txt"), "c1\r\neth0");
    const [got] = allocate(store, { id: "c1", ifname: "eth0", network: NETWORK, rangeSets: rangeSets([{ subnet: "10.0.0.0/24" }]) });
    expect(got?.address).toBe("10.0.0.3/24");
    expect(listReservations(store).map((r) => r.ip).sort()).toEqual(["10.0.0.2", "10.0.0.3"]);
  });

  it("refuses a network name that would escape the data dir", () => {
    for (const name of ["", "..", "a/b"]) {
      expect(ipamError(() => new DiskStore(name, { dataDir })).code).toBe("INVALID_CONFIG");
    }
  });

  it("holds the flock only inside withLock, re-entrantly", () => {
    expect(store.locked).toBe(false);
    store.withLock(() => {
      store.withLock(() => expect(store.locked).toBe(true));
      expect(store.locked).toBe(true);
    });
    expect(store.locked).toBe(false);
  });

  it("allocates quickly on a /24 with 200 addresses in use (tries files in order, reads the directory once)", () => {
    const sets = rangeSets([{ subnet: "10.0.0.0/24" }]);
    for (let i = 0; i < 200; i++) allocate(store, { id: `c${i}`, ifname: "eth0", network: NETWORK, rangeSets: sets });
    // Worst case for the walk: round-robin restarts right after the 200 used addresses' first one.
    fs.writeFileSync(path.join(dir(), "last_reserved_ip.0"), "10.0.0.2");
    const started = performance.now();
    const [got] = allocate(store, { id: "new", ifname: "eth0", network: NETWORK, rangeSets: sets });
    const elapsed = performance.now() - started;
    expect(got?.address).toBe("10.0.0.202/24");
    expect(elapsed).toBeLessThan(100);
  });
});

describe("candidates", () => {
  it("visits every allocatable address once, starting after the last reserved one", () => {
    const [set] = rangeSets([{ subnet: "10.0.0.0/29" }, { subnet: "10.0.1.0/30" }]);
    const walk = (last?: string) => [...candidates(set!, last ? parseAddress(last) : undefined)].map((c) => formatAddress(c.address));
    expect(walk()).toEqual(["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.1.2"]);
    expect(walk("10.0.0.5")).toEqual(["10.0.0.6", "10.0.1.2", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]);
    expect(walk("10.0.1.2")).toEqual(["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.1.2"]);
    // the gateway as last reserved (written by someone else): starts after it
    expect(walk("10.0.0.1")[0]).toBe("10.0.0.2");
  });

  it("skips network and broadcast addresses when rangeStart and rangeEnd include them", () => {
    const [set] = rangeSets([{ subnet: "10.0.0.0/30", rangeStart: "10.0.0.0", rangeEnd: "10.0.0.3", gateway: "10.0.0.2" }]);
    expect([...candidates(set!, undefined)].map((c) => formatAddress(c.address))).toEqual(["10.0.0.1"]);
  });
});

describe("address formatting", () => {
  it.each([
    ["fd00:0:0:1:0:0:0:5", "fd00:0:0:1::5"],
    ["2001:DB8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["1:0:0:2:0:0:0:3", "1:0:0:2::3"],
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
    ["fd00:0000:0000:0000:0000:0000:0000:0000", "fd00::"],
    ["10.1.2.3", "10.1.2.3"],
  ])("prints %s as Go's net.IP.String() does: %s", (input, expected) => {
    expect(formatAddress(parseAddress(input)!)).toBe(expected);
  });

  it.each(["1.2.3.04", "1.2.3", "::ffff:1.2.3.4", "fe80::1%eth0", "10.0.0.1 ", ""])("rejects %j", (input) => {
    expect(parseAddress(input)).toBeUndefined();
  });
});

describe("parseIpamConfig", () => {
  it("fills in host-local's defaults", () => {
    const config = parseIpamConfig({ type: "host-local", ranges: [[{ subnet: "10.1.2.0/24" }], [{ subnet: "fd00::/64" }]] });
    const [[v4], [v6]] = config.rangeSets as [[RangeSet[number]], [RangeSet[number]]];
    expect([v4, v6].map((r) => [formatAddress(r.start), formatAddress(r.end), formatAddress(r.gateway)])).toEqual([
      ["10.1.2.1", "10.1.2.254", "10.1.2.1"],
      ["fd00::1", "fd00::ffff:ffff:ffff:ffff", "fd00::1"],
    ]);
    expect(config.dataDir).toBe("/var/lib/cni/networks");
    expect(config.routes).toEqual([]);
  });

  it("accepts host-local's old single-range form as range set 0", () => {
    const config = parseIpamConfig({ subnet: "10.1.0.0/24", ranges: [[{ subnet: "10.2.0.0/24" }]], routes: [{ dst: "0.0.0.0/0" }] });
    expect(config.rangeSets.map((set) => set.map((r) => r.subnet.toCidrString()))).toEqual([["10.1.0.0/24"], ["10.2.0.0/24"]]);
    expect(config.routes).toEqual([{ dst: "0.0.0.0/0" }]);
  });

  it.each<[string, unknown, string, string]>([
    ["host bits", { ranges: [[{ subnet: "10.1.2.5/24" }]] }, "INVALID_RANGE", 'ipam.ranges[0][0].subnet: "10.1.2.5/24" is not a network address (did you mean 10.1.2.0/24?)'],
    ["not a CIDR", { ranges: [[{ subnet: "10.1.2.0" }]] }, "INVALID_RANGE", 'ipam.ranges[0][0].subnet: "10.1.2.0" is not a CIDR'],
    ["missing subnet", { ranges: [[{ gateway: "10.0.0.1" }]] }, "INVALID_RANGE", "ipam.ranges[0][0].subnet: is required"],
    ["subnet not a string", { ranges: [[{ subnet: 10 }]] }, "INVALID_RANGE", "ipam.ranges[0][0].subnet: must be a string, got 10"],
    ["/31", { ranges: [[{ subnet: "10.0.0.0/31" }]] }, "INVALID_RANGE", 'ipam.ranges[0][0].subnet: "10.0.0.0/31" is too small to allocate from (at most /30)'],
    ["/32", { ranges: [[{ subnet: "10.0.0.0/32" }]] }, "INVALID_RANGE", 'ipam.ranges[0][0].subnet: "10.0.0.0/32" is too small to allocate from (at most /30)'],
    ["/127", { ranges: [[{ subnet: "fd00::/127" }]] }, "INVALID_RANGE", 'ipam.ranges[0][0].subnet: "fd00::/127" is too small to allocate from (at most /126)'],
    ["/128", { ranges: [[{ subnet: "fd00::/128" }]] }, "INVALID_RANGE", 'ipam.ranges[0][0].subnet: "fd00::/128" is too small to allocate from (at most /126)'],
    ["mixed families", { ranges: [[{ subnet: "10.0.0.0/24" }, { subnet: "fd00::/64" }]] }, "INVALID_RANGE", "ipam.ranges[0][1].subnet: IPv6 in a range set of IPv4 (one family per range set)"],
    ["overlapping sets", { ranges: [[{ subnet: "10.1.0.0/16" }], [{ subnet: "10.1.2.0/24" }]] }, "INVALID_RANGE", "ipam.ranges[1][0]: 10.1.2.0/24 overlaps ipam.ranges[0][0] (10.1.0.0/16)"],
    ["overlapping ranges in a set", { ranges: [[{ subnet: "10.1.2.0/24", rangeEnd: "10.1.2.100" }, { subnet: "10.1.2.0/24", rangeStart: "10.1.2.100" }]] }, "INVALID_RANGE", "ipam.ranges[0][1]: 10.1.2.0/24 (10.1.2.100-10.1.2.254) overlaps ipam.ranges[0][0] (10.1.2.0/24 (10.1.2.1-10.1.2.100))"],
    ["gateway outside", { ranges: [[{ subnet: "10.1.2.0/24", gateway: "10.1.3.1" }]] }, "INVALID_RANGE", 'ipam.ranges[0][0].gateway: "10.1.3.1" is not in subnet 10.1.2.0/24'],
    ["gateway of the other family", { ranges: [[{ subnet: "10.1.2.0/24", gateway: "fd00::1" }]] }, "INVALID_RANGE", 'ipam.ranges[0][0].gateway: "fd00::1" is not in subnet 10.1.2.0/24'],
    ["bad rangeStart", { ranges: [[{ subnet: "10.1.2.0/24", rangeStart: "10.1.2" }]] }, "INVALID_RANGE", 'ipam.ranges[0][0].rangeStart: "10.1.2" is not an IP address'],
    ["rangeEnd outside", { ranges: [[{ subnet: "10.1.2.0/24", rangeEnd: "10.1.3.9" }]] }, "INVALID_RANGE", 'ipam.ranges[0][0].rangeEnd: "10.1.3.9" is not in subnet 10.1.2.0/24'],
    ["start after end", { ranges: [[{ subnet: "10.1.2.0/24", rangeStart: "10.1.2.50", rangeEnd: "10.1.2.40" }]] }, "INVALID_RANGE", "ipam.ranges[0][0].rangeStart: 10.1.2.50 is after rangeEnd 10.1.2.40"],
    ["empty set", { ranges: [[]] }, "INVALID_RANGE", "ipam.ranges[0]: must contain at least one range"],
    ["no ranges", { type: "host-local" }, "INVALID_RANGE", "ipam.ranges: is required (at least one range set)"],
    ["ranges not a list", { ranges: { subnet: "10.0.0.0/24" } }, "INVALID_RANGE", "ipam.ranges: must be a list of range sets"],
    ["range not an object", { ranges: [["10.0.0.0/24"]] }, "INVALID_RANGE", "ipam.ranges[0][0]: must be an object with a subnet"],
    ["IPv4-mapped subnet", { ranges: [[{ subnet: "::ffff:10.0.0.0/120" }]] }, "INVALID_RANGE", 'ipam.ranges[0][0].subnet: "::ffff:10.0.0.0/120" is not a CIDR'],
    ["route without dst", { ranges: [[{ subnet: "10.0.0.0/24" }]], routes: [{ gw: "10.0.0.1" }] }, "INVALID_CONFIG", "ipam.routes[0].dst: is required"],
    ["route gw of another family", { ranges: [[{ subnet: "10.0.0.0/24" }]], routes: [{ dst: "0.0.0.0/0", gw: "fd00::1" }] }, "INVALID_CONFIG", "ipam.routes[0].gw: fd00::1 is not of the same family as dst 0.0.0.0/0"],
    ["dataDir not a string", { ranges: [[{ subnet: "10.0.0.0/24" }]], dataDir: 5 }, "INVALID_CONFIG", "ipam.dataDir: must be a string, got 5"],
    ["not an object", "host-local", "INVALID_CONFIG", "ipam: must be an object"],
  ])("rejects %s", (_case, input, code, message) => {
    const error = ipamError(() => parseIpamConfig(input));
    expect([error.code, error.message]).toEqual([code, message]);
  });

  it("accepts adjacent ranges and the same subnet split into disjoint ranges", () => {
    expect(() =>
      parseIpamConfig({
        ranges: [
          [{ subnet: "10.1.2.0/24", rangeEnd: "10.1.2.99" }, { subnet: "10.1.2.0/24", rangeStart: "10.1.2.100" }],
          [{ subnet: "10.1.3.0/24" }],
        ],
      }),
    ).not.toThrow();
  });
});
