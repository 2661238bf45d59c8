// The backends and desiredState: which objects each remote node gets, and which nodes are skipped and why.
import { describe, expect, it } from "vitest";
import { createBackend, generateVtepMac, HostGwBackend, normalizeMac, VxlanBackend } from "../../agent/backends";
import type { PeerNode } from "../../agent/model";
import { desiredState, type LocalNode } from "../../agent/reconcile";
import { parseNetworkConfig } from "../../agent/network-config";

const MAC_A = "02:aa:00:00:00:01";
const MAC_B = "02:bb:00:00:00:02";
const nodeA: PeerNode = { name: "node-a", podCidrs: ["10.244.1.0/24"], publicIp: "192.168.1.1", vtepMac: MAC_A };
const nodeB: PeerNode = { name: "node-b", podCidrs: ["10.244.2.0/24"], publicIp: "192.168.1.2", vtepMac: MAC_B };
const local: LocalNode = { node: nodeA, underlay: { index: 2, name: "eth0", mtu: 1500, subnets: ["192.168.1.0/24"] } };

describe("VxlanBackend", () => {
  it("describes weft.<VNI>: port 8472, local = node IP, MTU = underlay − 50, address = subnet network /32", () => {
    expect(new VxlanBackend({ mac: MAC_A }).localDevice(local)).toEqual({
      name: "weft.1", vni: 1, port: 8472, local: "192.168.1.1", underlayIndex: 2, mtu: 1450, mac: MAC_A, addresses: ["10.244.1.0/32"], external: false,
    });
  });

  it("takes 70 bytes of overhead on an IPv6 underlay, and the configured MTU over both", () => {
    const v6: LocalNode = { node: { ...nodeA, publicIp: "fd00::1" }, underlay: { ...local.underlay, mtu: 9000 } };
    expect(new VxlanBackend().mtu(v6)).toBe(8930);
    expect(new VxlanBackend({ mtu: 1300 }).mtu(local)).toBe(1300);
  });

  it("keeps the MAC it is given (normalized) and otherwise generates a locally administered unicast one", () => {
    expect(new VxlanBackend({ mac: "02-AA-00-00-00-01" }).mac).toBe(MAC_A);
    expect(() => new VxlanBackend({ mac: "01:00:5e:00:00:01" })).toThrow(/not a unicast MAC/);
    for (let i = 0; i < 50; i++) {
      const mac = generateVtepMac();
      const first = Number.parseInt(mac.slice(0, 2), 16);
      expect(mac).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
      expect(first & 0x01).toBe(0);
      expect(first & 0x02).toBe(2);
    }
    expect(new VxlanBackend().mac).not.toBe(new VxlanBackend().mac);
    expect(normalizeMac("ff:ff:ff:ff:ff:ff")).toBeUndefined();
  });

  it("gives a remote node a neighbour, an FDB entry and an onlink route", () => {
    expect(new VxlanBackend({ mac: MAC_A }).peer(local, nodeB)).toEqual({
      neighbours: [{ node: "node-b", device: "weft.1", ip: "10.244.2.0", mac: MAC_B }],
      fdb: [{ node: "node-b", device: "weft.1", mac: MAC_B, dst: "192.168.1.2" }],
      routes: [{ node: "node-b", dst: "10.244.2.0/24", family: 4, gateway: "10.244.2.0", device: "weft.1", onlink: true }],
    });
  });

  it("skips a node without a VTEP MAC, and one whose public IP is of the other family", () => {
    const backend = new VxlanBackend({ mac: MAC_A });
    expect(backend.peer(local, { ...nodeB, vtepMac: undefined })).toEqual({ neighbours: [], fdb: [], routes: [], skipped: "no VTEP MAC published yet" });
    expect(backend.peer(local, { ...nodeB, publicIp: "fd00::2" }).skipped).toMatch(/fd00::2 is not IPv4/);
  });

  it("skips a remote IPv6 pod CIDR when this node has none, but keeps its IPv4 one", () => {
    const objects = new VxlanBackend({ mac: MAC_A }).peer(local, { ...nodeB, podCidrs: ["10.244.2.0/24", "fd00:10:244:2::/64"] });
    expect(objects.routes.map((r) => r.dst)).toEqual(["10.244.2.0/24"]);
    expect(objects.skipped).toMatch(/fd00:10:244:2::\/64: this node has no pod CIDR of that family/);
  });
});

describe("HostGwBackend", () => {
  it("routes a node on the underlay's subnet via its public IP and has no local device", () => {
    const backend = new HostGwBackend();
    expect(backend.localDevice()).toBeUndefined();
    expect(backend.mtu(local)).toBe(1500);
    expect(backend.peer(local, nodeB).routes).toEqual([
      { node: "node-b", dst: "10.244.2.0/24", family: 4, gateway: "192.168.1.2", device: "eth0", onlink: false },
    ]);
  });

  it("skips a node that is not on the same L2 network, saying so", () => {
    const objects = new HostGwBackend().peer(local, { ...nodeB, publicIp: "10.9.9.9" });
    expect(objects.routes).toEqual([]);
    expect(objects.skipped).toBe("public IP 10.9.9.9 is not on a subnet of eth0 (192.168.1.0/24): host-gw needs all nodes on one L2 network");
  });
});

describe("desiredState", () => {
  const backend = new VxlanBackend({ mac: MAC_A });

  it("leaves out the local node and reports skipped nodes", () => {
    const state = desiredState(backend, local, [nodeA, nodeB, { name: "node-x", podCidrs: ["10.244.9.0/24"], publicIp: "192.168.1.9" }]);
    expect(state.routes.map((r) => r.node)).toEqual(["node-b"]);
    expect(state.skipped).toEqual([{ name: "node-x", reason: "no VTEP MAC published yet" }]);
    expect(state.bridge).toEqual({ name: "cni0", mtu: 1450 });
  });

  it("resolves conflicts for the node whose name sorts first", () => {
    const state = desiredState(backend, local, [
      { name: "node-d", podCidrs: ["10.244.2.128/25"], publicIp: "192.168.1.4", vtepMac: "02:dd:00:00:00:04" },
      { name: "node-e", podCidrs: ["10.244.5.0/24"], publicIp: "192.168.1.5", vtepMac: MAC_B },
      { name: "node-f", podCidrs: ["10.244.6.0/24"], publicIp: "192.168.1.2", vtepMac: "02:ff:00:00:00:06" },
      { name: "node-g", podCidrs: ["10.244.1.0/24"], publicIp: "192.168.1.7", vtepMac: "02:00:00:00:00:07" },
      { name: "node-h", podCidrs: ["10.244.8.0/24"], publicIp: "192.168.1.8", vtepMac: MAC_A },
      nodeB,
    ]);
    expect(state.routes.map((r) => r.node)).toEqual(["node-b"]);
    expect(state.skipped).toEqual([
      { name: "node-d", reason: "pod CIDR 10.244.2.128/25 overlaps node node-b's 10.244.2.0/24" },
      { name: "node-e", reason: `VTEP MAC ${MAC_B} is also node node-b's` },
      { name: "node-f", reason: "public IP 192.168.1.2 is also node node-b's" },
      { name: "node-g", reason: "pod CIDR 10.244.1.0/24 overlaps node node-a's 10.244.1.0/24" },
      { name: "node-h", reason: `VTEP MAC ${MAC_A} is also node node-a's` },
    ]);
  });

  it("builds the backend named by the network config", () => {
    const vxlan = createBackend(parseNetworkConfig({ Network: "10.244.0.0/16", Backend: { VNI: 7 } }), { vtepMac: MAC_A });
    expect(vxlan).toBeInstanceOf(VxlanBackend);
    expect(vxlan.localDevice(local)).toMatchObject({ name: "weft.7", vni: 7, mac: MAC_A });
    expect(createBackend(parseNetworkConfig({ Network: "10.244.0.0/16", Backend: { Type: "host-gw" } }))).toBeInstanceOf(HostGwBackend);
  });
});
