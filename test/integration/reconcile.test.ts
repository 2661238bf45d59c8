// The reconciler against the real kernel: two "nodes", each a namespace, joined by a veth (the underlay), each
// with a cni0 bridge and one "pod" namespace behind it. The agent's datapath (observe → plan → apply) runs on
// both; pods must reach each other across, and hand-made damage must be repaired without touching anything
// that is not weft's. Everything lives in throwaway namespaces; `ip -j` / `bridge -j` check the kernel's view.
import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HostGwBackend, VxlanBackend } from "../../agent/backends";
import type { PeerNode } from "../../agent/model";
import {
  apply, desiredState, findUnderlay, observe, plan, reconcile, type Backend, type LocalNode, type Op, type ReconcileResult,
} from "../../agent/reconcile";
import { NetlinkSocket } from "../../native/netlink";
import { createTestNetns, type TestNetns } from "../support/netns";

interface SimNode {
  ns: TestNetns;
  pod: TestNetns;
  sock: NetlinkSocket;
  peer: PeerNode;
  podIp: string;
  podIp6: string;
}

const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const cleanup of cleanups.reverse()) cleanup();
});

/** Two nodes on 192.168.77.0/24 (inside their namespaces only), pods in 10.244.<n>.0/24 and fd00:10:244:<n>::/64. */
function createCluster(label: string): [SimNode, SimNode] {
  const nodes = [1, 2].map((n) => {
    const ns = createTestNetns(`${label}-node${n}`);
    cleanups.push(() => ns.remove());
    const pod = createTestNetns(`${label}-pod${n}`);
    cleanups.push(() => pod.remove());
    return { ns, pod, n };
  });
  const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
  a.ns.exec(["ip", "link", "add", "under0", "type", "veth", "peer", "name", "under0", "netns", b.ns.name]);
  return nodes.map(({ ns, pod, n }) => {
    const sh = (...argv: string[]) => ns.exec(argv);
    sh("sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1");
    sh("ip", "addr", "add", `192.168.77.${n}/24`, "dev", "under0");
    sh("ip", "link", "set", "under0", "up");
    sh("ip", "link", "add", "cni0", "type", "bridge");
    sh("ip", "addr", "add", `10.244.${n}.1/24`, "dev", "cni0");
    sh("ip", "addr", "add", `fd00:10:244:${n}::1/64`, "dev", "cni0", "nodad");
    sh("ip", "link", "set", "cni0", "up");
    sh("ip", "link", "add", "vethpod", "type", "veth", "peer", "name", "eth0", "netns", pod.name);
    sh("ip", "link", "set", "vethpod", "master", "cni0", "up");
    const p = (...argv: string[]) => pod.exec(argv);
    p("ip", "addr", "add", `10.244.${n}.2/24`, "dev", "eth0");
    p("ip", "addr", "add", `fd00:10:244:${n}::2/64`, "dev", "eth0", "nodad");
    p("ip", "link", "set", "eth0", "up");
    p("ip", "route", "add", "default", "via", `10.244.${n}.1`);
    p("ip", "-6", "route", "add", "default", "via", `fd00:10:244:${n}::1`);
    const sock = NetlinkSocket.openIn(ns.path);
    cleanups.push(() => sock.close());
    return {
      ns,
      pod,
      sock,
      peer: { name: `node-${n}`, podCidrs: [`10.244.${n}.0/24`, `fd00:10:244:${n}::/64`], publicIp: `192.168.77.${n}` },
      podIp: `10.244.${n}.2`,
      podIp6: `fd00:10:244:${n}::2`,
    };
  }) as [SimNode, SimNode];
}

function localOf(node: SimNode, vtepMac?: string): LocalNode {
  return { node: vtepMac ? { ...node.peer, vtepMac } : node.peer, underlay: findUnderlay(node.sock, node.peer.publicIp) };
}

function run(node: SimNode, backend: Backend, peers: PeerNode[], vtepMac?: string): ReconcileResult {
  const result = reconcile(node.sock, desiredState(backend, localOf(node, vtepMac), peers));
  expect(result.errors.map((e) => e.message)).toEqual([]);
  return result;
}

/** iputils' ping, or busybox's (the test dependencies install busybox-static; ping may be missing). */
const PING = existsSync("/bin/busybox") ? ["/bin/busybox", "ping"] : ["ping"];

/** Whether `from`'s pod reaches `address` (ICMP echo; retried: the pods' first ARP on the bridge may be slow). */
function pings(from: SimNode, address: string, attempts = 3): boolean {
  for (let attempt = 0; attempt < attempts; attempt++) {
    const out = from.pod.exec([...PING, "-c", "1", "-W", "1", address], { allowFailure: true });
    if (/\b1 (packets )?received/.test(out)) return true;
  }
  return false;
}

function ipJson<T>(ns: TestNetns, argv: string[]): T[] {
  return JSON.parse(ns.exec(["ip", "-j", ...argv]) || "[]") as T[];
}

function routesOf(ns: TestNetns): { dst: string; gateway?: string; dev: string; protocol: string; flags: string[] }[] {
  return ipJson(ns, ["route", "show", "table", "main"]);
}

function neighboursOf(ns: TestNetns): { dst: string; lladdr?: string; state: string[] }[] {
  return ipJson(ns, ["neigh", "show", "dev", "weft.1"]);
}

function fdbOf(ns: TestNetns): { mac: string; dst?: string; state: string }[] {
  return JSON.parse(ns.exec(["bridge", "-j", "fdb", "show", "dev", "weft.1"]) || "[]") as { mac: string; dst?: string; state: string }[];
}

const kinds = (ops: Op[]) => ops.map((op) => op.kind);

describe("vxlan", () => {
  let a: SimNode;
  let b: SimNode;
  const macA = "02:77:00:00:00:01";
  const macB = "02:77:00:00:00:02";
  const peerA = () => ({ ...a.peer, vtepMac: macA });
  const peerB = () => ({ ...b.peer, vtepMac: macB });
  const phantom: PeerNode = { name: "node-9", podCidrs: ["10.244.9.0/24"], publicIp: "192.168.77.9", vtepMac: "02:77:00:00:00:09" };

  beforeAll(() => {
    [a, b] = createCluster("vx");
  });

  it("creates weft.1 as flannel's flannel.1 and programs the peer; pods ping across, IPv4 and IPv6", () => {
    const result = run(a, new VxlanBackend({ mac: macA }), [peerA(), peerB()]);
    expect(kinds(result.ops).slice(0, 4)).toEqual(["create-vtep", "set-link", "set-link", "add-address"]); // weft.1 up, cni0 MTU
    run(b, new VxlanBackend({ mac: macB }), [peerA(), peerB()]);

    const [link] = ipJson<{ mtu: number; address: string; flags: string[]; linkinfo: { info_kind: string; info_data: Record<string, unknown> } }>(
      a.ns, ["-d", "link", "show", "weft.1"],
    );
    expect(link).toMatchObject({ mtu: 1450, address: macA, linkinfo: { info_kind: "vxlan", info_data: { id: 1, port: 8472, local: "192.168.77.1", learning: false, link: "under0" } } });
    expect(link!.flags).toContain("UP");
    const addresses = ipJson<{ addr_info: { local: string; prefixlen: number; scope: string }[] }>(a.ns, ["addr", "show", "dev", "weft.1"])[0]!.addr_info;
    expect(addresses.filter((x) => x.scope !== "link").map((x) => `${x.local}/${x.prefixlen}`)).toEqual(["10.244.1.0/32", "fd00:10:244:1::/128"]);
    expect(neighboursOf(a.ns)).toEqual(expect.arrayContaining([expect.objectContaining({ dst: "10.244.2.0", lladdr: macB, state: ["PERMANENT"] })]));
    expect(fdbOf(a.ns)).toEqual([expect.objectContaining({ mac: macB, dst: "192.168.77.2", state: "permanent" })]);
    expect(routesOf(a.ns)).toContainEqual(expect.objectContaining({ dst: "10.244.2.0/24", gateway: "10.244.2.0", dev: "weft.1", protocol: "87", flags: ["onlink"] }));
    expect(ipJson<{ mtu: number }>(a.ns, ["link", "show", "cni0"])[0]!.mtu).toBe(1450);

    expect(pings(a, b.podIp)).toBe(true);
    expect(pings(b, a.podIp)).toBe(true);
    expect(pings(a, b.podIp6)).toBe(true);
  });

  it("plans nothing on a second run, and nothing after a restart that keeps the VTEP MAC", () => {
    expect(run(a, new VxlanBackend({ mac: macA }), [peerA(), peerB()]).ops).toEqual([]);
    const sock = NetlinkSocket.openIn(a.ns.path); // a new agent process would open its own
    try {
      expect(plan(desiredState(new VxlanBackend({ mac: macA }), localOf(a, macA), [peerB()]), observe(sock))).toEqual([]);
    } finally {
      sock.close();
    }
  });

  it("restores a route deleted by hand, and only that", () => {
    a.ns.exec(["ip", "route", "del", "10.244.2.0/24"]);
    expect(pings(a, b.podIp, 1)).toBe(false);
    const result = run(a, new VxlanBackend({ mac: macA }), [peerA(), peerB()]);
    expect(kinds(result.ops)).toEqual(["replace-route"]);
    expect(pings(a, b.podIp)).toBe(true);
  });

  it("removes a departed node's route, FDB entry and neighbour, and leaves other routes alone", () => {
    a.ns.exec(["ip", "route", "add", "10.99.0.0/24", "via", "192.168.77.2"]);
    a.ns.exec(["ip", "route", "add", "10.244.50.0/24", "via", "192.168.77.2", "proto", "static"]);
    run(a, new VxlanBackend({ mac: macA }), [peerA(), peerB(), phantom]);
    expect(routesOf(a.ns)).toContainEqual(expect.objectContaining({ dst: "10.244.9.0/24", protocol: "87" }));
    expect(fdbOf(a.ns).map((e) => e.mac)).toContain(phantom.vtepMac);

    const result = run(a, new VxlanBackend({ mac: macA }), [peerA(), peerB()]);
    expect(kinds(result.ops)).toEqual(["delete-route", "delete-fdb", "delete-neighbour"]);
    expect(routesOf(a.ns).map((r) => r.dst)).not.toContain("10.244.9.0/24");
    expect(neighboursOf(a.ns).map((n) => n.dst)).not.toContain("10.244.9.0");
    expect(fdbOf(a.ns).map((e) => e.mac)).not.toContain(phantom.vtepMac);
    expect(routesOf(a.ns)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ dst: "10.99.0.0/24", gateway: "192.168.77.2" }),
        expect.objectContaining({ dst: "10.244.50.0/24", protocol: "static" }),
      ]),
    );
    expect(pings(a, b.podIp)).toBe(true);
  });

  it("collects at start-up what a previous run left: weft routes, neighbours and FDB entries of unknown nodes", () => {
    a.ns.exec(["ip", "route", "add", "10.244.60.0/24", "via", "10.244.60.0", "dev", "weft.1", "onlink", "proto", "87"]);
    a.ns.exec(["ip", "neigh", "replace", "10.244.60.0", "lladdr", "02:77:00:00:00:60", "dev", "weft.1", "nud", "permanent"]);
    a.ns.exec(["bridge", "fdb", "append", "02:77:00:00:00:60", "dev", "weft.1", "dst", "192.168.77.60", "self", "permanent"]);
    const result = run(a, new VxlanBackend({ mac: macA }), [peerA(), peerB()]);
    expect(result.ops).toEqual([
      { kind: "delete-route", route: { dst: "10.244.60.0/24", family: 4, gateway: "10.244.60.0", device: "weft.1" } },
      { kind: "delete-fdb", device: "weft.1", mac: "02:77:00:00:00:60", dst: "192.168.77.60" },
      { kind: "delete-neighbour", device: "weft.1", ip: "10.244.60.0", mac: "02:77:00:00:00:60" },
    ]);
    expect(run(a, new VxlanBackend({ mac: macA }), [peerA(), peerB()]).ops).toEqual([]);
  });

  it("follows a peer whose VTEP MAC changed: neighbour replaced, old FDB entry removed", () => {
    const newMacB = "02:77:00:00:00:22";
    // The kernel flushes weft.1's neighbours when its MAC changes: b re-adds its own (IPv4 and IPv6).
    expect(kinds(run(b, new VxlanBackend({ mac: newMacB }), [peerA(), peerB()]).ops)).toEqual(["set-link", "replace-neighbour", "replace-neighbour"]);
    expect(neighboursOf(b.ns)).toContainEqual(expect.objectContaining({ dst: "10.244.1.0", lladdr: macA, state: ["PERMANENT"] }));
    expect(pings(a, b.podIp, 1)).toBe(false); // a still has the old MAC
    const result = run(a, new VxlanBackend({ mac: macA }), [peerA(), { ...peerB(), vtepMac: newMacB }]);
    expect(kinds(result.ops)).toEqual(["replace-neighbour", "replace-neighbour", "replace-fdb", "delete-fdb"]); // IPv4 and IPv6
    expect(fdbOf(a.ns)).toEqual([expect.objectContaining({ mac: newMacB, dst: "192.168.77.2" })]);
    expect(neighboursOf(a.ns)).toContainEqual(expect.objectContaining({ dst: "10.244.2.0", lladdr: newMacB }));
    expect(pings(a, b.podIp)).toBe(true);
    run(b, new VxlanBackend({ mac: macB }), [peerA(), peerB()]);
    run(a, new VxlanBackend({ mac: macA }), [peerA(), peerB()]);
  });

  it("recreates the VTEP when its port changes, and the peers' objects come back with it", () => {
    const result = run(a, new VxlanBackend({ mac: macA, port: 4789 }), [peerA(), peerB()]);
    expect(kinds(result.ops)).toContain("recreate-vtep");
    expect(ipJson<{ linkinfo: { info_data: { port: number } } }>(a.ns, ["-d", "link", "show", "weft.1"])[0]!.linkinfo.info_data.port).toBe(4789);
    expect(routesOf(a.ns)).toContainEqual(expect.objectContaining({ dst: "10.244.2.0/24", dev: "weft.1", protocol: "87" }));
    expect(run(a, new VxlanBackend({ mac: macA, port: 4789 }), [peerA(), peerB()]).ops).toEqual([]);
    run(a, new VxlanBackend({ mac: macA }), [peerA(), peerB()]);
    expect(pings(a, b.podIp)).toBe(true);
  });

  it("keeps applying after one operation fails, and reports that one", () => {
    const ops: Op[] = [
      { kind: "replace-route", route: { node: "x", dst: "10.244.70.0/24", family: 4, gateway: "10.244.70.0", device: "nosuchdev", onlink: true } },
      { kind: "replace-route", route: { node: "y", dst: "10.244.71.0/24", family: 4, gateway: "10.244.71.0", device: "weft.1", onlink: true } },
      { kind: "delete-route", route: { dst: "10.244.72.0/24", family: 4 } }, // already gone: fine
    ];
    const result = apply(a.sock, ops);
    expect(result.errors.map((e) => e.message)).toEqual([
      "Cannot replace-route 10.244.70.0/24 via 10.244.70.0 dev nosuchdev onlink (x): device nosuchdev does not exist",
    ]);
    expect(kinds(result.applied)).toEqual(["replace-route", "delete-route"]);
    expect(routesOf(a.ns)).toContainEqual(expect.objectContaining({ dst: "10.244.71.0/24", protocol: "87" }));
    expect(kinds(run(a, new VxlanBackend({ mac: macA }), [peerA(), peerB()]).ops)).toEqual(["delete-route"]);
  });

  it("hands over to host-gw: routes replaced in place, weft.1 deleted, pods still reach each other", () => {
    const result = run(a, new HostGwBackend(), [peerA(), peerB()]);
    // cni0 back to the underlay's MTU; the IPv6 pod CIDR has no IPv6 next hop with host-gw: its route goes.
    expect(kinds(result.ops)).toEqual(["set-link", "replace-route", "delete-route", "delete-link"]);
    run(b, new HostGwBackend(), [peerA(), peerB()]);
    expect(ipJson(a.ns, ["link", "show"]).map((l) => (l as { ifname: string }).ifname)).not.toContain("weft.1");
    expect(routesOf(a.ns)).toContainEqual(expect.objectContaining({ dst: "10.244.2.0/24", gateway: "192.168.77.2", dev: "under0", protocol: "87" }));
    expect(pings(a, b.podIp)).toBe(true);
  });
});

describe("host-gw", () => {
  let a: SimNode;
  let b: SimNode;
  const faraway: PeerNode = { name: "node-far", podCidrs: ["10.244.8.0/24"], publicIp: "10.9.9.9" };
  const backend = new HostGwBackend();

  beforeAll(() => {
    [a, b] = createCluster("hg");
  });

  it("routes each pod CIDR via the peer's public IP; pods ping across, IPv4 only (one IPv4 next hop)", () => {
    const result = run(a, backend, [a.peer, b.peer, faraway]);
    run(b, backend, [a.peer, b.peer]);
    expect(routesOf(a.ns)).toContainEqual(expect.objectContaining({ dst: "10.244.2.0/24", gateway: "192.168.77.2", dev: "under0", protocol: "87" }));
    expect(ipJson(a.ns, ["link", "show"]).map((l) => (l as { ifname: string }).ifname)).not.toContain("weft.1");
    expect(result.ops.some((op) => op.kind === "replace-route" && op.route.dst === "10.244.8.0/24")).toBe(false);
    expect(pings(a, b.podIp)).toBe(true);
    expect(pings(b, a.podIp)).toBe(true);
  });

  it("reports a node that is not on the underlay's L2 network, and one IPv6 pod CIDR without an IPv6 next hop", () => {
    const desired = desiredState(backend, localOf(a), [b.peer, faraway]);
    expect(desired.skipped).toEqual([
      { name: "node-2", reason: "pod CIDR fd00:10:244:2::/64: no next hop of that family (public IP 192.168.77.2)" },
      { name: "node-far", reason: "public IP 10.9.9.9 is not on a subnet of under0 (192.168.77.0/24): host-gw needs all nodes on one L2 network" },
    ]);
  });

  it("restores a route deleted by hand and removes a departed node's, leaving other routes alone", () => {
    a.ns.exec(["ip", "route", "del", "10.244.2.0/24"]);
    a.ns.exec(["ip", "route", "add", "10.98.0.0/24", "via", "192.168.77.2"]);
    expect(kinds(run(a, backend, [a.peer, b.peer]).ops)).toEqual(["replace-route"]);
    expect(pings(a, b.podIp)).toBe(true);

    const c: PeerNode = { name: "node-3", podCidrs: ["10.244.3.0/24"], publicIp: "192.168.77.3" };
    run(a, backend, [a.peer, b.peer, c]);
    expect(routesOf(a.ns)).toContainEqual(expect.objectContaining({ dst: "10.244.3.0/24", gateway: "192.168.77.3", protocol: "87" }));
    expect(kinds(run(a, backend, [a.peer, b.peer]).ops)).toEqual(["delete-route"]);
    const dsts = routesOf(a.ns).map((r) => r.dst);
    expect(dsts).not.toContain("10.244.3.0/24");
    expect(dsts).toContain("10.98.0.0/24");
    expect(run(a, backend, [a.peer, b.peer]).ops).toEqual([]);
  });
});
