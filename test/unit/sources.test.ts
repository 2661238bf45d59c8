// Node sources, pure parts: validation of records (the edge every source shares), the node file's parsing,
// flannel's etcd key and value formats and subnet allocation, a Kubernetes Node → record, and the NodeTable's
// coalescing and refusal of an empty list after an interruption.
import { describe, expect, it } from "vitest";
import type { Logger } from "../../agent/log";
import type { NetworkConfig, NodeSnapshot, PeerNode } from "../../agent/model";
import {
  decodeLeaseAttrs, encodeLeaseAttrs, encodeNetworkConfig, etcdKeys, isSubnetCompatible, leaseToRecord, makeSubnetKey,
  networkConfigDifferences, parseSubnetKey, pickFreeSubnet, rangesOf,
} from "../../agent/sources/etcd-layout";
import { NodeFileError } from "../../agent/errors";
import { parseNodeFile } from "../../agent/sources/file";
import { flannelVtepMac, localAnnotations, nodeToRecord, weftAnnotations, type KubeNode } from "../../agent/sources/kube-node";
import { checkAnnouncement } from "../../agent/sources/local";
import { NodeTable } from "../../agent/sources/node-table";
import { parseMac, parsePublicIp, validateNodes, type NodeRecord } from "../../agent/sources/validate";
import { parseNetworkConfig } from "../../agent/network-config";

const v4: NetworkConfig = { network: "10.244.0.0/16", subnetLen: 24, backend: { type: "vxlan", vni: 1, port: 8472 }, nonMasqueradeCidrs: [] };
const dual: NetworkConfig = { ...v4, ipv6Network: "fd00:10:244::/56", ipv6SubnetLen: 64 };
const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, with: () => quiet };

const good: NodeRecord = { name: "node-a", podCidrs: ["10.244.1.0/24"], publicIp: "192.168.50.1", vtepMac: "0e:00:00:00:00:01" };

describe("validateNodes: one node", () => {
  const cases: [string, Partial<NodeRecord>, string | { podCidrs?: string[]; publicIp?: string; vtepMac?: string }, NetworkConfig?][] = [
    ["accepts a good record", {}, {}],
    ["clears host bits of a pod CIDR, as net.ParseCIDR does", { podCidrs: ["10.244.1.7/24"] }, { podCidrs: ["10.244.1.0/24"] }],
    ["normalises the MAC", { vtepMac: "0E-00-00-00-00-01" }, { vtepMac: "0e:00:00:00:00:01" }],
    ["accepts a node without a MAC", { vtepMac: undefined }, { vtepMac: undefined }],
    ["prints an IPv6 public IP canonically", { publicIp: "2001:DB8:0:0::1" }, { publicIp: "2001:db8::1" }],
    ["rejects a garbage pod CIDR", { podCidrs: ["10.244.1.0/33"] }, 'pod CIDR "10.244.1.0/33" is not a CIDR'],
    ["rejects a pod CIDR with spaces", { podCidrs: ["10.244.1.0/24 "] }, 'pod CIDR "10.244.1.0/24 " is not a CIDR'],
    ["rejects a missing pod CIDR", { podCidrs: [] }, "no pod CIDR assigned"],
    ["rejects a pod CIDR outside the network", { podCidrs: ["10.245.1.0/24"] }, "pod CIDR 10.245.1.0/24 is outside the cluster network 10.244.0.0/16"],
    ["rejects a pod CIDR larger than the network", { podCidrs: ["10.0.0.0/8"] }, "pod CIDR 10.0.0.0/8 is outside the cluster network 10.244.0.0/16"],
    ["rejects two IPv4 pod CIDRs", { podCidrs: ["10.244.1.0/24", "10.244.2.0/24"] }, "two IPv4 pod CIDRs: 10.244.1.0/24, 10.244.2.0/24"],
    ["rejects three pod CIDRs", { podCidrs: ["10.244.1.0/24", "fd00::/64", "10.244.2.0/24"] }, "3 pod CIDRs: at most one IPv4 and one IPv6"],
    ["ignores an IPv6 pod CIDR on an IPv4-only cluster", { podCidrs: ["10.244.1.0/24", "fd00:10:244:1::/64"] }, { podCidrs: ["10.244.1.0/24"] }],
    ["rejects an IPv6-only node on an IPv4-only cluster", { podCidrs: ["fd00:10:244:1::/64"] }, "no pod CIDR of the cluster's families (IPv4): fd00:10:244:1::/64"],
    ["accepts dual stack, IPv4 first", { podCidrs: ["fd00:10:244:1::/64", "10.244.1.0/24"] }, { podCidrs: ["10.244.1.0/24", "fd00:10:244:1::/64"] }, dual],
    ["rejects an IPv6 pod CIDR outside IPv6Network", { podCidrs: ["10.244.1.0/24", "fd00:99::/64"] }, "pod CIDR fd00:99::/64 is outside the cluster network fd00:10:244::/56", dual],
    ["rejects a missing public IP", { publicIp: undefined }, "no public IP"],
    ["rejects a garbage public IP", { publicIp: "192.168.50.256" }, 'public IP "192.168.50.256" is not a unicast IP address'],
    ["rejects a shell-looking public IP", { publicIp: "1.2.3.4; rm -rf /" }, 'public IP "1.2.3.4; rm -rf /" is not a unicast IP address'],
    ["rejects a public IP with leading zeros", { publicIp: "192.168.050.1" }, 'public IP "192.168.050.1" is not a unicast IP address'],
    ["rejects a loopback public IP", { publicIp: "127.0.0.1" }, 'public IP "127.0.0.1" is not a unicast IP address'],
    ["rejects an unspecified public IP", { publicIp: "0.0.0.0" }, 'public IP "0.0.0.0" is not a unicast IP address'],
    ["rejects a multicast public IP", { publicIp: "239.1.1.1" }, 'public IP "239.1.1.1" is not a unicast IP address'],
    ["rejects an IPv4-mapped IPv6 public IP", { publicIp: "::ffff:192.168.50.1" }, 'public IP "::ffff:192.168.50.1" is not a unicast IP address'],
    ["rejects a zoned public IP", { publicIp: "fe80::1%eth0" }, 'public IP "fe80::1%eth0" is not a unicast IP address'],
    ["rejects a garbage MAC", { vtepMac: "0e:00:00:00:00" }, 'VTEP MAC "0e:00:00:00:00" is not a unicast MAC address'],
    ["rejects a multicast MAC", { vtepMac: "01:00:5e:00:00:01" }, 'VTEP MAC "01:00:5e:00:00:01" is not a unicast MAC address'],
    ["rejects the zero MAC", { vtepMac: "00:00:00:00:00:00" }, 'VTEP MAC "00:00:00:00:00:00" is not a unicast MAC address'],
    ["rejects a MAC with mixed separators", { vtepMac: "0e:00-00:00:00:01" }, 'VTEP MAC "0e:00-00:00:00:01" is not a unicast MAC address'],
    ["rejects an uppercase node name", { name: "Node-A" }, 'invalid node name "Node-A": not a DNS-1123 subdomain'],
    ["rejects a path as node name", { name: "../etc/passwd" }, 'invalid node name "../etc/passwd": not a DNS-1123 subdomain'],
  ];
  for (const [title, change, expected, network] of cases) {
    it(title, () => {
      const record = { ...good, ...change };
      const { nodes, rejected } = validateNodes([record], network ?? v4);
      if (typeof expected === "string") {
        expect(nodes).toEqual([]);
        expect(rejected).toEqual([{ name: expect.any(String), reason: expected }]);
      } else {
        const node = { name: record.name, podCidrs: good.podCidrs, publicIp: good.publicIp, vtepMac: good.vtepMac, ...expected };
        if (node.vtepMac === undefined) delete node.vtepMac;
        expect(rejected).toEqual([]);
        expect(nodes).toEqual([node]);
      }
    });
  }

  it("shows an unprintable name safely in the rejected list", () => {
    const { rejected } = validateNodes([{ ...good, name: "evil\n{\"level\":\"info\"}" }], v4);
    expect(rejected[0]!.name).toBe('evil?{"level":"info"}');
    expect(rejected[0]!.reason).toContain("\\n");
  });
});

describe("validateNodes: across nodes", () => {
  const node = (name: string, cidr: string, mac?: string): NodeRecord => ({ name, podCidrs: [cidr], publicIp: "192.168.50.1", vtepMac: mac });

  it("rejects the lexically greater of two overlapping nodes, whatever the order they came in", () => {
    const a = node("node-a", "10.244.1.0/24");
    const b = node("node-b", "10.244.1.0/25");
    for (const records of [[a, b], [b, a]]) {
      expect(validateNodes(records, v4)).toEqual({
        nodes: [{ name: "node-a", podCidrs: ["10.244.1.0/24"], publicIp: "192.168.50.1" }],
        rejected: [{ name: "node-b", reason: "pod CIDR 10.244.1.0/25 overlaps node node-a's 10.244.1.0/24" }],
      });
    }
  });

  it("checks overlap against accepted nodes only, including a supernet that came first", () => {
    const result = validateNodes([node("a-big", "10.244.0.0/20"), node("b", "10.244.2.0/24"), node("c", "10.244.16.0/24"), node("d", "10.244.16.0/24")], v4);
    expect(result.nodes.map((n) => n.name)).toEqual(["a-big", "c"]);
    expect(result.rejected).toEqual([
      { name: "b", reason: "pod CIDR 10.244.2.0/24 overlaps node a-big's 10.244.0.0/20" },
      { name: "d", reason: "pod CIDR 10.244.16.0/24 overlaps node c's 10.244.16.0/24" },
    ]);
  });

  it("does not let a rejected node block another", () => {
    const result = validateNodes([node("a", "10.245.0.0/24"), node("b", "10.244.5.0/24"), node("c", "garbage")], v4);
    expect(result.nodes.map((n) => n.name)).toEqual(["b"]);
  });

  it("rejects a duplicate name and a duplicate VTEP MAC", () => {
    const result = validateNodes([
      node("a", "10.244.1.0/24", "0e:00:00:00:00:01"),
      node("a", "10.244.2.0/24"),
      node("b", "10.244.3.0/24", "0E:00:00:00:00:01"),
    ], v4);
    expect(result.nodes.map((n) => n.podCidrs[0])).toEqual(["10.244.1.0/24"]);
    expect(result.rejected).toEqual([
      { name: "a", reason: "duplicate node name" },
      { name: "b", reason: "VTEP MAC 0e:00:00:00:00:01 is already used by node a" },
    ]);
  });

  it("checks IPv6 overlaps separately from IPv4", () => {
    const result = validateNodes([
      { name: "a", podCidrs: ["10.244.1.0/24", "fd00:10:244:1::/64"], publicIp: "192.168.50.1" },
      { name: "b", podCidrs: ["10.244.2.0/24", "fd00:10:244:1::/64"], publicIp: "192.168.50.2" },
    ], dual);
    expect(result.rejected).toEqual([{ name: "b", reason: "pod CIDR fd00:10:244:1::/64 overlaps node a's fd00:10:244:1::/64" }]);
  });

  it("handles thousands of nodes quickly", () => {
    const records: NodeRecord[] = [];
    for (let i = 0; i < 5_000; i++) records.push({ name: `node-${String(i).padStart(5, "0")}`, podCidrs: [`10.${i >> 8}.${i & 255}.0/24`], publicIp: "10.0.0.1" });
    const started = performance.now();
    const result = validateNodes(records, { ...v4, network: "10.0.0.0/8" });
    expect(result.nodes).toHaveLength(5_000);
    expect(performance.now() - started).toBeLessThan(2_000);
  });
});

describe("parsePublicIp, parseMac", () => {
  it("accept what flannel writes", () => {
    expect(parsePublicIp("10.0.0.1")).toBe("10.0.0.1");
    expect(parseMac("de:ad:be:ef:00:01")).toBe("de:ad:be:ef:00:01");
  });
  it("reject non-strings", () => {
    expect(parsePublicIp(42)).toBeUndefined();
    expect(parseMac({ mac: "x" })).toBeUndefined();
  });
});

describe("parseNodeFile", () => {
  it("reads entries, turning unusable ones into rejections", () => {
    const text = JSON.stringify({
      nodes: [
        { name: "a", podCidrs: ["10.244.1.0/24"], publicIp: "192.168.50.1", vtepMac: "0e:00:00:00:00:01", comment: "ignored" },
        { name: "b", podCidrs: "10.244.2.0/24", publicIp: "192.168.50.2" },
        { podCidrs: ["10.244.3.0/24"] },
        null,
        { name: "e", publicIp: 5 },
        { name: "f" },
      ],
    });
    expect(parseNodeFile(text)).toEqual([
      { name: "a", podCidrs: ["10.244.1.0/24"], publicIp: "192.168.50.1", vtepMac: "0e:00:00:00:00:01" },
      { name: "b", reason: 'podCidrs must be an array of CIDR strings, got "10.244.2.0/24"' },
      { name: "nodes[2]", reason: "entry has no name" },
      { name: "nodes[3]", reason: "entry is not an object" },
      { name: "e", reason: "publicIp must be a string, got 5" },
      { name: "f", podCidrs: [], publicIp: undefined, vtepMac: undefined },
    ]);
  });

  it("accepts a byte order mark", () => {
    expect(parseNodeFile(`\ufeff${JSON.stringify({ nodes: [] })}`)).toEqual([]);
  });

  for (const [title, text, message] of [
    ["not JSON", '{"nodes": [', /not JSON/],
    ["an empty file", "", /not JSON/],
    ["an array", "[]", /expected an object/],
    ["no nodes key", "{}", /"nodes" must be an array/],
    ["nodes not an array", '{"nodes": {}}', /"nodes" must be an array/],
  ] as const) {
    it(`throws NodeFileError for ${title}`, () => {
      expect(() => parseNodeFile(text)).toThrow(NodeFileError);
      expect(() => parseNodeFile(text)).toThrow(message);
    });
  }
});

describe("flannel's etcd layout", () => {
  it("names keys as flannel does", () => {
    expect(etcdKeys("/coreos.com/network")).toEqual({ config: "/coreos.com/network/config", subnets: "/coreos.com/network/subnets/" });
    expect(etcdKeys("coreos.com/network/")).toEqual({ config: "/coreos.com/network/config", subnets: "/coreos.com/network/subnets/" });
    expect(makeSubnetKey(["10.244.3.0/24"])).toBe("10.244.3.0-24");
    expect(makeSubnetKey(["fd00:10:244:3::/64", "10.244.3.0/24"])).toBe("10.244.3.0-24&fd00:10:244:3::-64");
  });

  it("parses subnet keys strictly", () => {
    expect(parseSubnetKey("10.244.3.0-24")).toEqual(["10.244.3.0/24"]);
    expect(parseSubnetKey("10.244.3.0-24&fd00:10:244:3::-64")).toEqual(["10.244.3.0/24", "fd00:10:244:3::/64"]);
    for (const bad of ["10.244.3.5-24", "10.244.3.0-33", "10.244.3.0/24", "x10.244.3.0-24", "10.244.3.0-24&zz::-64", "10.244.3.0-24&fd00::1-64", "../10.244.3.0-24"]) {
      expect(parseSubnetKey(bad), bad).toBeUndefined();
    }
  });

  it("writes LeaseAttrs as Go's encoding/json does, plus WeftNodeName", () => {
    expect(JSON.parse(encodeLeaseAttrs({ name: "node-a", publicIp: "192.168.50.1", vtepMac: "0e:00:00:00:00:01", backendType: "vxlan" }, 1))).toEqual({
      PublicIP: "192.168.50.1", PublicIPv6: null, BackendType: "vxlan", BackendData: { VNI: 1, VtepMAC: "0e:00:00:00:00:01" }, WeftNodeName: "node-a",
    });
    expect(encodeLeaseAttrs({ name: "node-a", publicIp: "192.168.50.1", backendType: "host-gw" }, 1))
      .toBe('{"PublicIP":"192.168.50.1","PublicIPv6":null,"BackendType":"host-gw","WeftNodeName":"node-a"}');
  });

  it("reads flannel's leases and garbage ones", () => {
    expect(leaseToRecord("10.244.3.0-24", '{"PublicIP":"192.168.50.3","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0e:00:00:00:00:03"}}'))
      .toEqual({ name: "10.244.3.0-24", podCidrs: ["10.244.3.0/24"], publicIp: "192.168.50.3", vtepMac: "0e:00:00:00:00:03" });
    expect(leaseToRecord("10.244.3.0-24", '{"PublicIP":"192.168.50.3","BackendType":"host-gw","BackendData":{"VtepMAC":"x"}}'))
      .toEqual({ name: "10.244.3.0-24", podCidrs: ["10.244.3.0/24"], publicIp: "192.168.50.3", vtepMac: undefined });
    expect(leaseToRecord("10.244.3.0-24", '{"PublicIP":7,"BackendType":"vxlan","BackendData":{"VtepMAC":["x"]}}'))
      .toMatchObject({ publicIp: "7", vtepMac: '["x"]' });
    expect(leaseToRecord("10.244.3.0-24", "[1]")).toEqual({ name: "10.244.3.0-24", reason: "lease value of 10.244.3.0-24 is not a JSON object" });
    expect(leaseToRecord("junk", "{}")).toEqual({ name: "junk", reason: 'etcd key "junk" is not a flannel subnet key' });
    expect(decodeLeaseAttrs('{"PublicIP":"0.0.0.0","PublicIPv6":"fd00::1"}')).toEqual({ publicIp: "fd00::1" });
  });

  it("writes the network config in net-conf.json's format, which reads back the same", () => {
    const text = encodeNetworkConfig(dual);
    expect(JSON.parse(text)).toMatchObject({ Network: "10.244.0.0/16", SubnetLen: 24, EnableIPv6: true, IPv6Network: "fd00:10:244::/56", Backend: { Type: "vxlan", VNI: 1, Port: 8472 } });
    expect(networkConfigDifferences(dual, parseNetworkConfig(text))).toEqual([]);
    expect(networkConfigDifferences(v4, parseNetworkConfig('{"Network":"10.244.0.0/16","SubnetLen":25,"Backend":{"Type":"host-gw"}}')))
      .toEqual(["SubnetLen 24 ≠ 25", 'Backend.Type "vxlan" ≠ "host-gw"']);
  });

  it("judges a subnet's fit as flannel's isSubnetConfigCompat does", () => {
    expect(isSubnetCompatible(["10.244.3.0/24"], v4)).toBe(true);
    expect(isSubnetCompatible(["10.244.255.0/24"], v4)).toBe(true);
    expect(isSubnetCompatible(["10.244.0.0/24"], v4)).toBe(false); // below SubnetMin
    expect(isSubnetCompatible(["10.244.3.0/25"], v4)).toBe(false);
    expect(isSubnetCompatible(["10.245.3.0/24"], v4)).toBe(false);
    expect(isSubnetCompatible(["10.244.3.0/24"], dual)).toBe(false); // dual stack needs both
    expect(isSubnetCompatible(["10.244.3.0/24", "fd00:10:244:3::/64"], dual)).toBe(true);
    expect(isSubnetCompatible(["10.244.3.0/24", "fd00:10:244:3::/64"], v4)).toBe(false);
  });

  it("picks a free subnet between SubnetMin and SubnetMax, among the first 100", () => {
    const taken = rangesOf(["10.244.1.0/24", "10.244.2.0/23"])[4];
    expect(pickFreeSubnet("10.244.0.0/16", 24, taken, () => 0)).toBe("10.244.4.0/24");
    expect(pickFreeSubnet("10.244.0.0/16", 24, taken, () => 0.999)).toBe("10.244.103.0/24");
    expect(pickFreeSubnet("10.244.0.0/22", 24, rangesOf(["10.244.0.0/22"])[4])).toBeUndefined();
    expect(pickFreeSubnet("10.244.0.0/22", 24, rangesOf(["10.244.1.0/24", "10.244.3.0/24"])[4], () => 0.99)).toBe("10.244.2.0/24");
    expect(pickFreeSubnet("fd00:10:244::/56", 64, rangesOf(["fd00:10:244:1::/64"])[6], () => 0)).toBe("fd00:10:244:2::/64");
  });
});

describe("Kubernetes Node → record", () => {
  const annotations = weftAnnotations("weft.dev");
  const read = (node: KubeNode, flannelCompat = false) => nodeToRecord(node, { annotations, flannelCompat, family: 4 });
  const base: KubeNode = {
    metadata: { name: "node-a" },
    spec: { podCIDR: "10.244.1.0/24" },
    status: { addresses: [{ type: "Hostname", address: "node-a" }, { type: "InternalIP", address: "fd00::1" }, { type: "InternalIP", address: "192.168.60.1" }] },
  };

  it("falls back to the InternalIP of the network's family, and takes podCIDRs over podCIDR", () => {
    expect(read(base)).toEqual({ name: "node-a", podCidrs: ["10.244.1.0/24"], publicIp: "192.168.60.1" });
    expect(read({ ...base, spec: { podCIDR: "10.244.1.0/24", podCIDRs: ["10.244.1.0/24", "fd00:1::/64"] } })).toMatchObject({ podCidrs: ["10.244.1.0/24", "fd00:1::/64"] });
  });

  it("prefers weft's annotations; a garbage one rejects the node rather than falling back", () => {
    expect(read({ ...base, metadata: { name: "node-a", annotations: { "weft.dev/public-ip": "192.168.50.1", "weft.dev/vtep-mac": "0E:00:00:00:00:01" } } }))
      .toEqual({ name: "node-a", podCidrs: ["10.244.1.0/24"], publicIp: "192.168.50.1", vtepMac: "0e:00:00:00:00:01" });
    expect(read({ ...base, metadata: { name: "node-a", annotations: { "weft.dev/public-ip": "" } } }))
      .toEqual({ name: "node-a", reason: 'annotation weft.dev/public-ip "" is not a unicast IP address' });
    expect(read({ ...base, status: {} })).toEqual({ name: "node-a", reason: "no public IP: no weft.dev/public-ip annotation and no InternalIP in status.addresses" });
  });

  it("reads flannel's annotations only with flannelCompat and on flannel-managed nodes", () => {
    const flannel = {
      "flannel.alpha.coreos.com/backend-type": "vxlan",
      "flannel.alpha.coreos.com/backend-data": '{"VNI":1,"VtepMAC":"0e:ff:00:00:00:01"}',
      "flannel.alpha.coreos.com/public-ip": "192.168.70.1",
      "flannel.alpha.coreos.com/kube-subnet-manager": "true",
    };
    const node = { ...base, metadata: { name: "node-a", annotations: flannel } };
    expect(read(node, true)).toEqual({ name: "node-a", podCidrs: ["10.244.1.0/24"], publicIp: "192.168.70.1", vtepMac: "0e:ff:00:00:00:01" });
    expect(read(node, false)).toEqual({ name: "node-a", podCidrs: ["10.244.1.0/24"], publicIp: "192.168.60.1" });
    const unmanaged = { ...base, metadata: { name: "node-a", annotations: { ...flannel, "flannel.alpha.coreos.com/kube-subnet-manager": "false" } } };
    expect(read(unmanaged, true)).toEqual({ name: "node-a", podCidrs: ["10.244.1.0/24"], publicIp: "192.168.60.1" });
    const garbage = { ...base, metadata: { name: "node-a", annotations: { ...flannel, "flannel.alpha.coreos.com/backend-data": "{oops" } } };
    expect(read(garbage, true)).toMatchObject({ reason: expect.stringContaining("has no valid VtepMAC") });
    expect(flannelVtepMac('{"VNI":1,"VtepMAC":"0E:FF:00:00:00:01"}')).toBe("0e:ff:00:00:00:01");
  });

  it("publishes weft's annotations, and flannel's exact formats with flannelCompat", () => {
    const vxlan = { name: "node-a", publicIp: "192.168.50.1", vtepMac: "0e:00:00:00:00:01", backendType: "vxlan" as const };
    expect(localAnnotations(vxlan, { annotations, flannelCompat: false, vni: 1 })).toEqual({
      "weft.dev/public-ip": "192.168.50.1", "weft.dev/vtep-mac": "0e:00:00:00:00:01", "weft.dev/backend-type": "vxlan",
    });
    expect(localAnnotations(vxlan, { annotations, flannelCompat: true, vni: 7 })).toMatchObject({
      "flannel.alpha.coreos.com/backend-type": "vxlan",
      "flannel.alpha.coreos.com/backend-data": '{"VNI":7,"VtepMAC":"0e:00:00:00:00:01"}',
      "flannel.alpha.coreos.com/public-ip": "192.168.50.1",
      "flannel.alpha.coreos.com/kube-subnet-manager": "true",
    });
    const hostGw = { name: "node-a", publicIp: "192.168.50.1", backendType: "host-gw" as const };
    expect(localAnnotations(hostGw, { annotations, flannelCompat: true, vni: 1 })["flannel.alpha.coreos.com/backend-data"]).toBe("null");
  });

  it("refuses an annotation prefix that is not a DNS subdomain", () => {
    expect(() => weftAnnotations("weft.dev/x")).toThrow(/Invalid annotation prefix/);
  });
});

describe("checkAnnouncement", () => {
  it("canonicalises, and refuses what it would refuse from another node", () => {
    expect(checkAnnouncement({ name: "node-a", publicIp: "2001:DB8::1", vtepMac: "0E-00-00-00-00-01", backendType: "vxlan" }, "node-a"))
      .toEqual({ name: "node-a", publicIp: "2001:db8::1", vtepMac: "0e:00:00:00:00:01", backendType: "vxlan" });
    expect(() => checkAnnouncement({ name: "node-a", publicIp: "127.0.0.1", backendType: "vxlan" }, "node-a")).toThrow(/publicIp/);
    expect(() => checkAnnouncement({ name: "Node", publicIp: "10.0.0.1", backendType: "vxlan" }, "Node")).toThrow(/name/);
    expect(() => checkAnnouncement({ name: "node-a", publicIp: "10.0.0.1", vtepMac: "ff:ff:ff:ff:ff:ff", backendType: "vxlan" }, "node-a")).toThrow(/vtepMac/);
    expect(() => checkAnnouncement({ name: "node-a", publicIp: "10.0.0.1", backendType: "vxlan" }, "node-b")).toThrow('Invalid local announcement: name "node-a" is not the node being claimed, "node-b"');
  });
});

describe("NodeTable", () => {
  const record = (name: string, i: number): NodeRecord => ({ name, podCidrs: [`10.244.${i}.0/24`], publicIp: `192.168.50.${i}` });

  it("coalesces a burst of changes into one onChange call, and skips calls that change nothing", async () => {
    const table = new NodeTable(v4, quiet);
    const calls: number[] = [];
    table.listen((snapshot) => calls.push(snapshot.nodes.length));
    table.replaceAll([["a", record("a", 1)], ["b", record("b", 2)]], { afterInterruption: false });
    table.set("c", record("c", 3));
    await new Promise((resolve) => setImmediate(resolve));
    expect(calls).toEqual([3]);
    table.set("c", record("c", 3));
    await new Promise((resolve) => setImmediate(resolve));
    expect(calls).toEqual([3]);
    table.close();
  });

  it("hands out one frozen snapshot until the list changes, and a relist of the same records changes nothing", async () => {
    const table = new NodeTable(v4, quiet);
    const calls: NodeSnapshot[] = [];
    table.listen((snapshot) => calls.push(snapshot));
    table.replaceAll([["a", record("a", 1)], ["b", record("b", 2)]], { afterInterruption: false });
    const first = table.snapshot();
    expect(table.snapshot()).toBe(first);
    expect(Object.isFrozen(first) && Object.isFrozen(first.nodes) && Object.isFrozen(first.nodes[0]) && Object.isFrozen(first.nodes[0]!.podCidrs)).toBe(true);
    expect(() => (first.nodes as PeerNode[]).push(record("x", 9) as PeerNode)).toThrow(TypeError);
    await new Promise((resolve) => setImmediate(resolve));
    expect(calls).toEqual([first]);
    expect(calls[0]).toBe(first);

    // Equal records (new objects, as a relist or a re-read makes them): no new snapshot, no call.
    table.replaceAll([["b", record("b", 2)], ["a", record("a", 1)]], { afterInterruption: false });
    table.set("a", record("a", 1));
    expect(table.snapshot()).toBe(first);
    await new Promise((resolve) => setImmediate(resolve));
    expect(calls).toHaveLength(1);

    // One record changed: a new snapshot, in which the unchanged node is the very same (already checked) object.
    table.replaceAll([["a", record("a", 1)], ["b", { ...record("b", 2), publicIp: "192.168.50.22" }]], { afterInterruption: false });
    const second = table.snapshot();
    expect(second).not.toBe(first);
    expect(second.nodes[0]).toBe(first.nodes[0]);
    expect(second.nodes[1]).toEqual({ ...record("b", 2), publicIp: "192.168.50.22" });
    // A record whose pod CIDRs differ only in order or content is not the same record.
    table.set("a", { ...record("a", 1), podCidrs: ["10.244.1.0/24", "fd00:1::/64"] });
    expect(table.snapshot()).not.toBe(second);
    table.close();
  });

  it("refuses an empty list after an interruption, but not a first empty list", () => {
    const table = new NodeTable(v4, quiet);
    expect(table.replaceAll([], { afterInterruption: true })).toBe(true);
    expect(table.snapshot()).toEqual({ synced: true, nodes: [], rejected: [] });
    table.replaceAll([["a", record("a", 1)]], { afterInterruption: false });
    expect(table.replaceAll([], { afterInterruption: true })).toBe(false);
    expect(table.snapshot()).toMatchObject({ nodes: [record("a", 1)], error: expect.stringContaining("Refusing an empty node list") });
    expect(table.replaceAll([], { afterInterruption: false })).toBe(true);
    expect(table.snapshot().nodes).toEqual([]);
    table.close();
  });

  it("keeps nodes and reports the error while failing", () => {
    const table = new NodeTable(v4, quiet);
    table.replaceAll([["a", record("a", 1)]], { afterInterruption: false });
    table.setError(new Error("connection refused"));
    expect(table.snapshot()).toEqual({ synced: true, nodes: [record("a", 1)], rejected: [], error: "connection refused" });
    table.setError(undefined);
    expect(table.snapshot().error).toBeUndefined();
    table.close();
  });
});

describe("createNodeSource", () => {
  it("loads and builds the named source", async () => {
    const { createNodeSource } = await import("../../agent/sources/index");
    const { FileSource } = await import("../../agent/sources/file");
    const source = await createNodeSource({ kind: "file", network: v4, path: "/nonexistent/weft-nodes.json", logger: quiet });
    expect(source).toBeInstanceOf(FileSource);
    expect(source.snapshot()).toEqual({ synced: false, nodes: [], rejected: [] });
    await source.close();
    await source.close();
  });
});
