// The rtnetlink client against the real kernel. Everything happens in throwaway namespaces: the socket is opened
// inside one (withNetns) and keeps acting there; `ip -j`, `bridge -j` and `sysctl` run in the same namespace
// check what the kernel really holds.
import fs from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KernelError } from "../../native/errors";
import {
  addAddress, addRoute, createBridge, createExternalVxlan, createVeth, createVxlan, deleteAddress, deleteFdb, deleteLink, deleteNeighbour,
  deleteRoute, getLink, getLinkByIndex, listAddresses, listFdb, listLinks, listNeighbours, listRoutes, NetlinkError,
  NetlinkInputError, NetlinkSocket, NTF_SELF, NUD_PERMANENT, replaceFdb, replaceNeighbour, replaceRoute,
  RT_SCOPE_LINK, RT_SCOPE_UNIVERSE, setBridgePortHairpin, setLink, type Link,
} from "../../native/netlink";
import { openNetns, withNetns } from "../../native/netns";
import { readSysctl, writeSysctl } from "../../native/sysctl";
import { createTestNetns, type TestNetns } from "../support/netns";

const PROTO = 250;

let ns: TestNetns;
let peerNs: TestNetns;
let sock: NetlinkSocket;

beforeAll(() => {
  ns = createTestNetns("netlink");
  peerNs = createTestNetns("netlink-peer");
  sock = withNetns(ns.path, () => NetlinkSocket.open());
});

afterAll(() => {
  sock?.close();
  ns?.remove();
  peerNs?.remove();
});

// The parts of iproute2's JSON output the tests compare with.
interface IpLink {
  ifindex: number;
  ifname: string;
  mtu: number;
  address: string;
  flags: string[];
  master?: string;
  ifalias?: string;
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
}
interface IpAddressInfo {
  local: string;
  prefixlen: number;
  broadcast?: string;
  nodad?: boolean;
  tentative?: boolean;
}
interface IpRoute {
  dst: string;
  gateway?: string;
  dev: string;
  scope?: string;
  flags: string[];
}
interface IpNeighbour {
  dst: string;
  lladdr?: string;
  state: string[];
}
interface BridgeFdb {
  mac: string;
  dst?: string;
  state: string;
}

function ipJson<T>(target: TestNetns, argv: string[]): T[] {
  return JSON.parse(target.exec(["ip", "-j", ...argv]) || "[]") as T[];
}

function bridgeJson<T>(target: TestNetns, argv: string[]): T[] {
  return JSON.parse(target.exec(["bridge", "-j", ...argv]) || "[]") as T[];
}

function mustGet(name: string, socket = sock): Link {
  const link = getLink(socket, name);
  if (!link) throw new Error(`link ${name} not found`);
  return link;
}

function thrown(fn: () => unknown): NetlinkError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(NetlinkError);
    expect(error).toBeInstanceOf(KernelError);
    return error as NetlinkError;
  }
  throw new Error("expected an error");
}

/** A veth pair with both ends up: a link with carrier for addresses and routes. */
function upVeth(name: string): Link {
  createVeth(sock, { name, peerName: `${name}p` });
  setLink(sock, mustGet(`${name}p`).index, { up: true });
  const link = mustGet(name);
  setLink(sock, link.index, { up: true });
  return link;
}

describe("links", () => {
  it("creates a bridge with the given MTU and MAC, as ip reports it", () => {
    createBridge(sock, { name: "br0", mtu: 1400, mac: "02:AA:bb:cc:dd:01" });
    const link = mustGet("br0");
    expect(link).toMatchObject({ name: "br0", kind: "bridge", mtu: 1400, mac: "02:aa:bb:cc:dd:01", up: false });
    const [shown] = ipJson<IpLink>(ns, ["-d", "link", "show", "br0"]);
    expect(shown).toMatchObject({ ifindex: link.index, mtu: 1400, address: link.mac, linkinfo: { info_kind: "bridge" } });
    expect(getLinkByIndex(sock, link.index)).toEqual(link);
  });

  it("creates a veth in one request with its peer placed in another namespace by fd", () => {
    const peerFd = openNetns(peerNs.path);
    try {
      createVeth(sock, { name: "eth0", peerName: "veth0123abcd", peerNetnsFd: peerFd, mtu: 1450, mac: "02:00:00:00:00:e0" });
    } finally {
      fs.closeSync(peerFd);
    }
    const pod = mustGet("eth0");
    expect(pod).toMatchObject({ kind: "veth", mtu: 1450, mac: "02:00:00:00:00:e0" });
    expect(pod.linkNetnsId).toBeTypeOf("number");
    expect(getLink(sock, "veth0123abcd")).toBeUndefined();

    const host = NetlinkSocket.openIn(peerNs.path);
    try {
      const peer = mustGet("veth0123abcd", host);
      expect(peer).toMatchObject({ kind: "veth", mtu: 1450, parentIndex: pod.index });
      expect(pod.parentIndex).toBe(peer.index);
      const [shown] = ipJson<IpLink>(peerNs, ["link", "show", "veth0123abcd"]);
      expect(shown).toMatchObject({ ifindex: peer.index, mtu: 1450, address: peer.mac });
    } finally {
      host.close();
    }
  });

  it("renames, changes MTU and MAC, sets up, enslaves and releases a link", () => {
    createVeth(sock, { name: "va0", peerName: "vb0" });
    const va = mustGet("va0");
    setLink(sock, va.index, { name: "vport0", alias: "pod abc/eth0" });
    const bridge = mustGet("br0");
    setLink(sock, va.index, { up: true, mtu: 1400, mac: "02:00:00:00:0a:01", masterIndex: bridge.index });
    const changed = mustGet("vport0");
    expect(changed).toMatchObject({
      index: va.index, name: "vport0", up: true, mtu: 1400, mac: "02:00:00:00:0a:01", masterIndex: bridge.index, alias: "pod abc/eth0",
    });
    const [shown] = ipJson<IpLink>(ns, ["link", "show", "vport0"]);
    expect(shown).toMatchObject({ master: "br0", mtu: 1400, ifalias: "pod abc/eth0" });
    expect(shown?.flags).toContain("UP");

    setLink(sock, va.index, { masterIndex: 0, up: false, alias: "" });
    const released = mustGet("vport0");
    expect(released.masterIndex).toBeUndefined();
    expect(released.alias).toBeUndefined();
    expect(released.up).toBe(false);
  });

  it("turns hairpin mode of a bridge port on and off", () => {
    const port = mustGet("vport0");
    setLink(sock, port.index, { masterIndex: mustGet("br0").index });
    setBridgePortHairpin(sock, port.index, true);
    expect(mustGet("vport0").hairpin).toBe(true);
    expect(bridgeJson<{ hairpin?: boolean }>(ns, ["-d", "link", "show", "dev", "vport0"])[0]).toMatchObject({ hairpin: true });
    setBridgePortHairpin(sock, port.index, false);
    expect(mustGet("vport0").hairpin).toBe(false);
    expect(bridgeJson<{ hairpin?: boolean }>(ns, ["-d", "link", "show", "dev", "vport0"])[0]).toMatchObject({ hairpin: false });
  });

  it("creates VXLAN devices with flannel's parameters over IPv4 and IPv6", () => {
    const underlay = upVeth("under0");
    addAddress(sock, underlay.index, "192.0.2.10/24");
    addAddress(sock, underlay.index, "2001:db8::10/64", { noDad: true });
    createVxlan(sock, { name: "weft.1", vni: 1, port: 8472, local: "192.0.2.10", underlayIndex: underlay.index, mtu: 1450, mac: "02:00:00:00:01:01" });
    const vx = mustGet("weft.1");
    expect(vx).toMatchObject({
      kind: "vxlan", mtu: 1450, mac: "02:00:00:00:01:01",
      vxlan: { vni: 1, port: 8472, local: "192.0.2.10", learning: false, underlayIndex: underlay.index },
    });
    const [shown] = ipJson<IpLink>(ns, ["-d", "link", "show", "weft.1"]);
    expect(shown?.linkinfo?.info_data).toMatchObject({ id: 1, port: 8472, local: "192.0.2.10", learning: false, link: "under0" });

    createVxlan(sock, { name: "weft6.1", vni: 2, port: 4789, local: "2001:db8::10", learning: true });
    expect(mustGet("weft6.1").vxlan).toEqual({ vni: 2, port: 4789, local: "2001:db8::10", learning: true, external: false });
  });

  it("creates a collect-metadata VXLAN device, as `ip link add … type vxlan external` does", () => {
    createExternalVxlan(sock, { name: "weft.7", port: 8472, mtu: 1450, mac: "02:00:00:00:01:07" });
    expect(mustGet("weft.7")).toMatchObject({ kind: "vxlan", mtu: 1450, mac: "02:00:00:00:01:07", vxlan: { vni: 0, port: 8472, learning: false, external: true } });
    const [shown] = ipJson<IpLink>(ns, ["-d", "link", "show", "weft.7"]);
    expect(shown?.linkinfo?.info_data).toMatchObject({ external: true, port: 8472 });
  });

  it("moves a link to another namespace", () => {
    createVeth(sock, { name: "mover0", peerName: "mover0p" });
    const fd = openNetns(peerNs.path);
    try {
      setLink(sock, mustGet("mover0").index, { netnsFd: fd });
    } finally {
      fs.closeSync(fd);
    }
    expect(getLink(sock, "mover0")).toBeUndefined();
    expect(ipJson<IpLink>(peerNs, ["link", "show", "mover0"])).toHaveLength(1);
  });

  it("lists the same links as ip", () => {
    const ours = listLinks(sock).map((l) => [l.index, l.name, l.mtu, l.mac]);
    const theirs = ipJson<IpLink>(ns, ["link", "show"]).map((l) => [l.ifindex, l.ifname, l.mtu, l.address]);
    expect(ours).toEqual(theirs);
    const lo = listLinks(sock).find((l) => l.name === "lo");
    expect(lo).toMatchObject({ index: 1, up: true, mac: "00:00:00:00:00:00", operState: "UNKNOWN" });
    expect(lo?.kind).toBeUndefined();
  });

  it("deletes links by name and by index; a veth goes with its peer", () => {
    createVeth(sock, { name: "del0", peerName: "del0p" });
    deleteLink(sock, "del0");
    expect(getLink(sock, "del0p")).toBeUndefined();
    createBridge(sock, { name: "del1" });
    deleteLink(sock, mustGet("del1").index);
    expect(getLink(sock, "del1")).toBeUndefined();
  });

  it("fails with EEXIST or ENODEV naming the request and the object, and keeps working afterwards", () => {
    const exists = thrown(() => createBridge(sock, { name: "br0" }));
    expect(exists.code).toBe("EEXIST");
    expect(exists.message).toMatch(/^RTM_NEWLINK br0: EEXIST/);
    const missing = thrown(() => deleteLink(sock, "nothere0"));
    expect(missing.code).toBe("ENODEV");
    expect(missing.message).toMatch(/^RTM_DELLINK nothere0: ENODEV/);
    expect(thrown(() => setLink(sock, 99999, { up: true })).code).toBe("ENODEV");
    expect(getLink(sock, "nothere0")).toBeUndefined();
    expect(getLinkByIndex(sock, 99999)).toBeUndefined();
    expect(mustGet("br0").name).toBe("br0");
  });

  it("appends the kernel's extended-ack message", () => {
    const error = thrown(() => setLink(sock, mustGet("eth0").index, { mtu: 70000 }));
    expect(error.code).toBe("EINVAL");
    expect(error.kernelMessage).toMatch(/mtu/i);
    expect(error.message).toBe(`RTM_NEWLINK ifindex ${mustGet("eth0").index}: EINVAL: ${error.kernelMessage}`);
  });

  it("rejects malformed input before sending anything", () => {
    expect(() => createBridge(sock, { name: "bad0", mac: "02:00:00:00:00" })).toThrow(NetlinkInputError);
    expect(() => createVxlan(sock, { name: "bad0", vni: 9, port: 1, local: "192.0.2.300" })).toThrow(NetlinkInputError);
    expect(getLink(sock, "bad0")).toBeUndefined();
  });
});

describe("addresses", () => {
  let link: Link;
  beforeAll(() => {
    link = upVeth("addr0");
  });

  it("adds IPv4 with its broadcast address and IPv6 without DAD, as ip reports them", () => {
    addAddress(sock, link.index, "10.1.2.3/24");
    addAddress(sock, link.index, "10.9.0.1/32");
    addAddress(sock, link.index, "fd00:1:0:0::5/64", { noDad: true });
    const ours = listAddresses(sock, { index: link.index }).filter((a) => a.scope === RT_SCOPE_UNIVERSE);
    expect(ours.map(({ cidr, family, prefixLength, index }) => ({ cidr, family, prefixLength, index }))).toEqual([
      { cidr: "10.1.2.3/24", family: 4, prefixLength: 24, index: link.index },
      { cidr: "10.9.0.1/32", family: 4, prefixLength: 32, index: link.index },
      { cidr: "fd00:1::5/64", family: 6, prefixLength: 64, index: link.index },
    ]);
    const info = ipJson<{ addr_info: IpAddressInfo[] }>(ns, ["addr", "show", "dev", "addr0"])[0]!.addr_info;
    expect(info.find((a) => a.local === "10.1.2.3")).toMatchObject({ prefixlen: 24, broadcast: "10.1.2.255" });
    expect(info.find((a) => a.local === "10.9.0.1")?.broadcast).toBeUndefined();
    expect(info.find((a) => a.local === "fd00:1::5")).toMatchObject({ prefixlen: 64, nodad: true });
    expect(info.find((a) => a.local === "fd00:1::5")?.tentative).toBeUndefined();
  });

  it("filters by family and fails with EEXIST unless replacing", () => {
    expect(listAddresses(sock, { index: link.index, family: 6 }).every((a) => a.family === 6)).toBe(true);
    expect(listAddresses(sock, { family: 4 }).map((a) => a.cidr)).toContain("127.0.0.1/8");
    expect(thrown(() => addAddress(sock, link.index, "10.1.2.3/24")).code).toBe("EEXIST");
    addAddress(sock, link.index, "10.1.2.3/24", { replace: true });
  });

  it("deletes addresses; deleting a missing one fails with EADDRNOTAVAIL", () => {
    deleteAddress(sock, link.index, "10.1.2.3/24");
    deleteAddress(sock, link.index, "fd00:1::5/64");
    const left = listAddresses(sock, { index: link.index }).map((a) => a.cidr);
    expect(left).not.toContain("10.1.2.3/24");
    expect(left).not.toContain("fd00:1::5/64");
    const error = thrown(() => deleteAddress(sock, link.index, "10.1.2.3/24"));
    expect(error.code).toBe("EADDRNOTAVAIL");
    expect(error.message).toMatch(`RTM_DELADDR 10.1.2.3/24 ifindex ${link.index}`);
  });
});

describe("routes", () => {
  let link: Link;
  let vxlan: Link;
  beforeAll(() => {
    link = upVeth("rt0");
    addAddress(sock, link.index, "10.10.0.1/24");
    addAddress(sock, link.index, "fd10::1/64", { noDad: true });
    vxlan = mustGet("weft.1");
    setLink(sock, vxlan.index, { up: true });
    addAddress(sock, vxlan.index, "10.244.0.0/32");
  });

  it("adds routes with weft's protocol and ip's defaults for scope", () => {
    addRoute(sock, { dst: "10.20.0.0/16", gateway: "10.10.0.254", protocol: PROTO });
    addRoute(sock, { dst: "10.21.0.0/16", index: link.index, protocol: PROTO, src: "10.10.0.1", mtu: 1400, metric: 10 });
    addRoute(sock, { dst: "fd20::/64", gateway: "fd10::fe", protocol: PROTO });
    const ours = listRoutes(sock, { protocol: PROTO });
    expect(ours).toEqual([
      { dst: "10.20.0.0/16", family: 4, gateway: "10.10.0.254", index: link.index, protocol: PROTO, scope: RT_SCOPE_UNIVERSE, table: 254, type: 1 },
      {
        dst: "10.21.0.0/16", family: 4, index: link.index, protocol: PROTO, scope: RT_SCOPE_LINK, table: 254, type: 1,
        src: "10.10.0.1", mtu: 1400, metric: 10,
      },
      { dst: "fd20::/64", family: 6, gateway: "fd10::fe", index: link.index, protocol: PROTO, scope: 0, table: 254, type: 1, metric: 1024 },
    ]);
    const shown = ipJson<IpRoute>(ns, ["route", "show", "proto", String(PROTO)]);
    expect(shown.map((r) => [r.dst, r.gateway, r.dev, r.scope])).toEqual([
      ["10.20.0.0/16", "10.10.0.254", "rt0", undefined],
      ["10.21.0.0/16", undefined, "rt0", "link"],
    ]);
    expect(ipJson<IpRoute>(ns, ["-6", "route", "show", "proto", String(PROTO)])[0]).toMatchObject({ dst: "fd20::/64", gateway: "fd10::fe" });
  });

  it("adds an onlink route via a /32 VTEP address (flannel's VXLAN route)", () => {
    replaceRoute(sock, { dst: "10.244.1.0/24", gateway: "10.244.1.0", index: vxlan.index, onlink: true, protocol: PROTO });
    expect(listRoutes(sock, { protocol: PROTO, index: vxlan.index })).toEqual([
      { dst: "10.244.1.0/24", family: 4, gateway: "10.244.1.0", index: vxlan.index, onlink: true, protocol: PROTO, scope: 0, table: 254, type: 1 },
    ]);
    const shown = ipJson<IpRoute>(ns, ["route", "show", "10.244.1.0/24"]);
    expect(shown[0]).toMatchObject({ gateway: "10.244.1.0", dev: "weft.1", flags: ["onlink"] });
  });

  it("replaces a route in place and refuses a duplicate add with EEXIST", () => {
    replaceRoute(sock, { dst: "10.20.0.0/16", gateway: "10.10.0.253", protocol: PROTO });
    const matching = listRoutes(sock, { protocol: PROTO }).filter((r) => r.dst === "10.20.0.0/16");
    expect(matching).toHaveLength(1);
    expect(matching[0]!.gateway).toBe("10.10.0.253");
    const error = thrown(() => addRoute(sock, { dst: "10.20.0.0/16", gateway: "10.10.0.254", protocol: PROTO }));
    expect(error.code).toBe("EEXIST");
    expect(error.message).toMatch(/^RTM_NEWROUTE 10.20.0.0\/16: EEXIST/);
  });

  it("handles default routes in other tables", () => {
    addRoute(sock, { dst: "default", family: 4, gateway: "10.10.0.254", table: 100, protocol: PROTO });
    addRoute(sock, { dst: "default", gateway: "fd10::fe", table: 1000, protocol: PROTO });
    expect(listRoutes(sock, { table: 100 })).toEqual([
      { dst: "default", family: 4, gateway: "10.10.0.254", index: link.index, protocol: PROTO, scope: 0, table: 100, type: 1 },
    ]);
    expect(listRoutes(sock, { table: 1000, family: 6 })).toMatchObject([{ dst: "default", gateway: "fd10::fe", table: 1000 }]);
    expect(listRoutes(sock, { protocol: PROTO }).some((r) => r.dst === "default")).toBe(false);
    expect(listRoutes(sock, { table: 0, protocol: PROTO }).filter((r) => r.dst === "default")).toHaveLength(2);
    deleteRoute(sock, { dst: "default", family: 4, table: 100 });
    deleteRoute(sock, { dst: "default", family: 6, table: 1000, protocol: PROTO });
    expect(listRoutes(sock, { table: 0, protocol: PROTO }).filter((r) => r.dst === "default")).toHaveLength(0);
  });

  it("deletes only a route of the given protocol; a missing one fails with ESRCH", () => {
    expect(thrown(() => deleteRoute(sock, { dst: "10.20.0.0/16", protocol: PROTO + 1 })).code).toBe("ESRCH");
    deleteRoute(sock, { dst: "10.20.0.0/16", protocol: PROTO });
    deleteRoute(sock, { dst: "fd20::/64", protocol: PROTO });
    expect(listRoutes(sock, { protocol: PROTO }).map((r) => r.dst)).toEqual(["10.21.0.0/16", "10.244.1.0/24"]);
    const error = thrown(() => deleteRoute(sock, { dst: "10.20.0.0/16", protocol: PROTO }));
    expect(error.code).toBe("ESRCH");
    expect(error.message).toMatch(/^RTM_DELROUTE 10.20.0.0\/16: ESRCH/);
  });

  it("dumps 1,000 routes across many parts", () => {
    const started = performance.now();
    for (let i = 0; i < 1000; i++) addRoute(sock, { dst: `10.100.${i >> 8}.${i & 255}/32`, index: link.index, protocol: PROTO + 1 });
    const added = performance.now();
    const routes = listRoutes(sock, { protocol: PROTO + 1 });
    const dumped = performance.now();
    expect(routes).toHaveLength(1000);
    expect(new Set(routes.map((r) => r.dst)).size).toBe(1000);
    expect(routes[999]).toMatchObject({ dst: "10.100.3.231/32", scope: RT_SCOPE_LINK, index: link.index });
    expect(listRoutes(sock, { family: 4 }).length).toBe(ipJson<IpRoute>(ns, ["route", "show"]).length);
    expect(ipJson<IpRoute>(ns, ["route", "show", "proto", String(PROTO + 1)])).toHaveLength(1000);
    const small = withNetns(ns.path, () => NetlinkSocket.open({ receiveBufferBytes: 512 }));
    try {
      // Parts larger than the buffer: it grows, the dump is drained and repeated, nothing is lost.
      expect(listRoutes(small, { protocol: PROTO + 1 })).toEqual(routes);
      expect(listRoutes(small, { protocol: PROTO + 1 })).toHaveLength(1000);
    } finally {
      small.close();
    }
    console.info(`1,000 routes: add ${(added - started).toFixed(0)} ms, dump ${(dumped - added).toFixed(1)} ms`);
  });
});

describe("neighbours", () => {
  let link: Link;
  beforeAll(() => {
    link = mustGet("rt0");
  });

  it("replaces permanent IPv4 and IPv6 entries, as ip reports them", () => {
    replaceNeighbour(sock, { index: link.index, ip: "10.10.0.50", mac: "02:00:00:00:00:50" });
    replaceNeighbour(sock, { index: link.index, ip: "10.10.0.50", mac: "02:00:00:00:00:51" });
    replaceNeighbour(sock, { index: link.index, ip: "fd10::50", mac: "02:00:00:00:00:52" });
    const ours = listNeighbours(sock, { index: link.index }).filter((n) => n.state === NUD_PERMANENT);
    expect(ours.map(({ ip, mac, family }) => ({ ip, mac, family }))).toEqual([
      { ip: "10.10.0.50", mac: "02:00:00:00:00:51", family: 4 },
      { ip: "fd10::50", mac: "02:00:00:00:00:52", family: 6 },
    ]);
    expect(listNeighbours(sock, { family: 6 }).filter((n) => n.state === NUD_PERMANENT).map((n) => n.ip)).toEqual(["fd10::50"]);
    const shown = ipJson<IpNeighbour>(ns, ["neigh", "show", "dev", "rt0", "nud", "permanent"]);
    expect(shown.map((n) => [n.dst, n.lladdr, n.state])).toEqual([
      ["10.10.0.50", "02:00:00:00:00:51", ["PERMANENT"]],
      ["fd10::50", "02:00:00:00:00:52", ["PERMANENT"]],
    ]);
  });

  it("deletes entries; a missing one fails with ENOENT", () => {
    deleteNeighbour(sock, { index: link.index, ip: "10.10.0.50" });
    deleteNeighbour(sock, { index: link.index, ip: "fd10::50" });
    expect(listNeighbours(sock, { index: link.index }).filter((n) => n.state === NUD_PERMANENT)).toEqual([]);
    const error = thrown(() => deleteNeighbour(sock, { index: link.index, ip: "10.10.0.50" }));
    expect(error.code).toBe("ENOENT");
    expect(error.message).toMatch(`RTM_DELNEIGH 10.10.0.50 ifindex ${link.index}`);
  });
});

describe("VXLAN forwarding database", () => {
  it("replaces the destination of a MAC, as bridge fdb reports it, and deletes it", () => {
    const vx = mustGet("weft.1");
    const permanentSelf = () =>
      listFdb(sock, { index: vx.index }).filter((e) => e.state === NUD_PERMANENT && e.flags & NTF_SELF && e.dst);
    replaceFdb(sock, { index: vx.index, mac: "0a:00:00:00:00:01", dst: "192.0.2.20" });
    replaceFdb(sock, { index: vx.index, mac: "0a:00:00:00:00:02", dst: "192.0.2.30" });
    replaceFdb(sock, { index: vx.index, mac: "0a:00:00:00:00:01", dst: "192.0.2.21" });
    expect(permanentSelf().map(({ mac, dst, index }) => ({ mac, dst, index })).sort((a, b) => a.mac.localeCompare(b.mac))).toEqual([
      { mac: "0a:00:00:00:00:01", dst: "192.0.2.21", index: vx.index },
      { mac: "0a:00:00:00:00:02", dst: "192.0.2.30", index: vx.index },
    ]);
    const shown = bridgeJson<BridgeFdb>(ns, ["fdb", "show", "dev", "weft.1"]).filter((e) => e.dst);
    expect(shown.map((e) => [e.mac, e.dst, e.state]).sort()).toEqual([
      ["0a:00:00:00:00:01", "192.0.2.21", "permanent"],
      ["0a:00:00:00:00:02", "192.0.2.30", "permanent"],
    ]);

    deleteFdb(sock, { index: vx.index, mac: "0a:00:00:00:00:01", dst: "192.0.2.21" });
    deleteFdb(sock, { index: vx.index, mac: "0a:00:00:00:00:02" });
    expect(permanentSelf()).toEqual([]);
    const error = thrown(() => deleteFdb(sock, { index: vx.index, mac: "0a:00:00:00:00:02" }));
    expect(error.code).toBe("ENOENT");
    expect(error.message).toMatch(/^RTM_DELNEIGH fdb 0a:00:00:00:00:02/);
  });

  it("holds IPv6 destinations on an IPv6 VXLAN device", () => {
    const vx6 = mustGet("weft6.1");
    replaceFdb(sock, { index: vx6.index, mac: "0a:00:00:00:06:01", dst: "2001:db8::20" });
    expect(listFdb(sock, { index: vx6.index }).find((e) => e.mac === "0a:00:00:00:06:01")).toMatchObject({ dst: "2001:db8::20" });
    expect(listFdb(sock).some((e) => e.index === vx6.index && e.dst === "2001:db8::20")).toBe(true);
  });
});

describe("socket", () => {
  it("batches requests: each one's outcome in order, failures in the middle not stopping the rest", () => {
    const link = upVeth("bt0");
    const dst = (i: number) => `10.150.${i >> 8}.${i & 255}/32`;
    let refused: unknown;
    const mine: number[] = [];
    const outcomes = sock.batch(() => {
      for (let i = 0; i < 300; i++) {
        mine.push(sock.queued);
        // Every 50th: a delete of a route that does not exist; the 7th: a request for a device that is not there.
        if (i % 50 === 49) deleteRoute(sock, { dst: dst(1000 + i), protocol: PROTO + 2 });
        else addRoute(sock, { dst: dst(i), index: i === 7 ? 999_999 : link.index, protocol: PROTO + 2 });
        // A lookup in the middle sends what is queued first, and the batch goes on.
        if (i === 150) expect(getLink(sock, "bt0")?.index).toBe(link.index);
      }
      try {
        addRoute(sock, { dst: "not-a-cidr", protocol: PROTO + 2 });
      } catch (error) {
        refused = error; // input errors are thrown at once, nothing queued
      }
    });
    expect(refused).toBeInstanceOf(NetlinkInputError);
    expect(mine).toEqual(Array.from({ length: 300 }, (_, i) => i));
    expect(outcomes).toHaveLength(300);
    const failed = outcomes.flatMap((outcome, i) => (outcome ? [[i, outcome.code, outcome.message.split(":")[0]]] : []));
    expect(failed).toEqual([
      [7, "ENODEV", "RTM_NEWROUTE 10.150.0.7/32"],
      ...[49, 99, 149, 199, 249, 299].map((i) => [i, "ESRCH", `RTM_DELROUTE ${dst(1000 + i)}`]),
    ]);
    // The kernel holds exactly the 293 routes that succeeded, and the socket works as before.
    const held = ipJson<IpRoute>(ns, ["route", "show", "proto", String(PROTO + 2)]).map((r) => `${r.dst}/32`);
    expect(held.sort()).toEqual(Array.from({ length: 300 }, (_, i) => i).filter((i) => i % 50 !== 49 && i !== 7).map(dst).sort());
    expect(sock.queued).toBe(0);
    expect(sock.batch(() => undefined)).toEqual([]);
    deleteLink(sock, "bt0");
  });

  it("acts in the namespace it was opened in, and composes with withNetns", () => {
    const names = withNetns(peerNs.path, () => {
      const inner = NetlinkSocket.open();
      try {
        return listLinks(inner).map((l) => l.name);
      } finally {
        inner.close();
      }
    });
    expect(names).toContain("veth0123abcd");
    expect(names).not.toContain("br0");
    expect(withNetns(peerNs.path, () => getLink(sock, "br0"))?.name).toBe("br0");
  });

  it("closes idempotently and then fails with EBADF", () => {
    const s = withNetns(ns.path, () => NetlinkSocket.open());
    s.close();
    s.close();
    expect(s.closed).toBe(true);
    const error = thrown(() => listLinks(s));
    expect(error.code).toBe("EBADF");
  });
});

describe("sysctl", () => {
  it("writes the namespace's own values inside withNetns", () => {
    const before = readSysctl("net.ipv4.ip_forward");
    withNetns(ns.path, () => writeSysctl("net.ipv4.ip_forward", "1"));
    withNetns(ns.path, () => writeSysctl("net/ipv4/conf/rt0/arp_notify", 1));
    expect(ns.exec(["sysctl", "-n", "net.ipv4.ip_forward"]).trim()).toBe("1");
    expect(ns.exec(["sysctl", "-n", "net.ipv4.conf.rt0.arp_notify"]).trim()).toBe("1");
    expect(withNetns(ns.path, () => readSysctl("net/ipv4/ip_forward"))).toBe("1");
    expect(withNetns(peerNs.path, () => readSysctl("net.ipv4.ip_forward"))).toBe("0");
    expect(readSysctl("net.ipv4.ip_forward")).toBe(before);
    expect(() => readSysctl("net/ipv4/conf/rt0/arp_notify")).toThrow(expect.objectContaining({ code: "ENOENT" }));
  });
});
