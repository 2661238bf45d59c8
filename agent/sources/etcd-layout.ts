// flannel's etcd layout (pkg/subnet/etcd/registry.go, pkg/subnet/subnet.go, pkg/lease/lease.go), so that weft
// and flannel agents can share one etcd during a migration:
//
//   <prefix>/config                      the network config, net-conf.json's format: {"Network": "10.244.0.0/16", ...}
//   <prefix>/subnets/10.244.3.0-24       one key per node subnet, attached to an etcd lease (flannel: 24 h TTL);
//   <prefix>/subnets/10.244.3.0-24&fd00:10:244:3::-64                         dual stack: "<v4 key>&<v6 key>"
//
// with the value flannel's LeaseAttrs as Go's encoding/json writes it:
//
//   {"PublicIP":"192.168.50.11","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0e:5f:11:22:33:44"}}
//
// PublicIP is an IPv4 address (flannel cannot read anything else there). host-gw leases carry no BackendData.
// weft adds "WeftNodeName", the Kubernetes-style node name (flannel ignores unknown fields): flannel's leases have
// no name, so a lease without one is named after its IPv4 subnet key ("10.244.3.0-24").

import { formatIpValue, parseCidr, type Cidr } from "../../native/addresses";
import type { LocalAnnouncement, NetworkConfig } from "../model";
import type { NodeRecord, NodeRejection } from "./validate";
import { displayName, quote } from "./validate";

export const DEFAULT_ETCD_PREFIX = "/coreos.com/network";
/** flannel's subnetTTL. */
export const DEFAULT_LEASE_TTL_SECONDS = 24 * 60 * 60;
/** flannel picks at random among the first this many free subnets, so racing agents rarely collide. */
const CANDIDATES = 100;

/** Where the keys are, for a prefix written with or without a trailing slash. */
export function etcdKeys(prefix: string): { config: string; subnets: string } {
  const base = `/${prefix.split("/").filter(Boolean).join("/")}`;
  return { config: `${base}/config`, subnets: `${base}/subnets/` };
}

/** "10.244.3.0/24" (+ "fd00:10:244:3::/64") → "10.244.3.0-24" ("&fd00:10:244:3::-64"). */
export function makeSubnetKey(podCidrs: readonly string[]): string {
  const cidrs = podCidrs.map((text) => parseCidr(text)!);
  const v4 = cidrs.find((c) => c.family === 4);
  const v6 = cidrs.find((c) => c.family === 6);
  if (!v4) throw new TypeError("A flannel subnet key needs an IPv4 subnet");
  const part = (c: Cidr): string => c.network.replace("/", "-");
  return v6 ? `${part(v4)}&${part(v6)}` : part(v4);
}

/** The pod CIDRs named by a subnet key (the part after `<prefix>/subnets/`), or undefined when it is not one. */
export function parseSubnetKey(key: string): string[] | undefined {
  const match = /^(\d{1,3}(?:\.\d{1,3}){3})-(\d{1,2})(?:&([0-9a-f:]+)-(\d{1,3}))?$/.exec(key);
  if (!match) return undefined;
  const v4 = parseCidr(`${match[1]}/${match[2]}`);
  if (!v4 || v4.family !== 4 || v4.network !== `${match[1]}/${match[2]}`) return undefined;
  if (match[3] === undefined) return [v4.network];
  const v6 = parseCidr(`${match[3]}/${match[4]}`);
  if (!v6 || v6.family !== 6 || `${v6.address}/${v6.prefixLength}` !== v6.network) return undefined;
  return [v4.network, v6.network];
}

/** The JSON value of this node's lease. */
export function encodeLeaseAttrs(announcement: LocalAnnouncement, vni: number): string {
  const attrs: Record<string, unknown> = { PublicIP: announcement.publicIp, PublicIPv6: null, BackendType: announcement.backendType };
  if (announcement.backendType === "vxlan" && announcement.vtepMac !== undefined) {
    attrs.BackendData = { VNI: vni, VtepMAC: announcement.vtepMac };
  }
  attrs.WeftNodeName = announcement.name;
  return JSON.stringify(attrs);
}

export interface LeaseAttrs {
  /** WeftNodeName, when the lease has one (a string: validated later with the rest of the record). */
  nodeName?: string;
  publicIp?: string;
  backendType?: string;
  vtepMac?: string;
}

/** Reads a lease value; undefined when it is not a JSON object. Field values are checked later, by validate. */
export function decodeLeaseAttrs(value: string): LeaseAttrs | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(value);
  } catch {
    return undefined;
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) return undefined;
  const { PublicIP, PublicIPv6, BackendType, BackendData, WeftNodeName } = doc as Record<string, unknown>;
  const attrs: LeaseAttrs = {};
  if (WeftNodeName !== undefined && WeftNodeName !== null) attrs.nodeName = typeof WeftNodeName === "string" ? WeftNodeName : quote(WeftNodeName);
  const publicIp = PublicIP !== undefined && PublicIP !== null && PublicIP !== "0.0.0.0" ? PublicIP : PublicIPv6;
  if (publicIp !== undefined && publicIp !== null) attrs.publicIp = typeof publicIp === "string" ? publicIp : quote(publicIp);
  if (typeof BackendType === "string") attrs.backendType = BackendType;
  if (BackendType === "vxlan" && typeof BackendData === "object" && BackendData !== null) {
    const mac = (BackendData as Record<string, unknown>).VtepMAC;
    if (mac !== undefined && mac !== null) attrs.vtepMac = typeof mac === "string" ? mac : quote(mac);
  }
  return attrs;
}

/** The node record of one subnet key and its value (`key` is the part after `<prefix>/subnets/`). */
export function leaseToRecord(key: string, value: string): NodeRecord | NodeRejection {
  const podCidrs = parseSubnetKey(key);
  if (!podCidrs) return { name: displayName(key), reason: `etcd key ${quote(key)} is not a flannel subnet key` };
  const keyName = key.split("&")[0]!;
  const attrs = decodeLeaseAttrs(value);
  if (!attrs) return { name: keyName, reason: `lease value of ${keyName} is not a JSON object` };
  return { name: attrs.nodeName ?? keyName, podCidrs, publicIp: attrs.publicIp, vtepMac: attrs.vtepMac };
}

/** net-conf.json's format, as flannel reads the config key (plus weft's NonMasqueradeCIDRs, ignored by flannel). */
export function encodeNetworkConfig(config: NetworkConfig): string {
  const doc: Record<string, unknown> = { Network: config.network, SubnetLen: config.subnetLen };
  if (config.ipv6Network !== undefined) {
    doc.EnableIPv6 = true;
    doc.IPv6Network = config.ipv6Network;
    doc.IPv6SubnetLen = config.ipv6SubnetLen;
  }
  const backend: Record<string, unknown> = { Type: config.backend.type };
  if (config.backend.type === "vxlan") Object.assign(backend, { VNI: config.backend.vni, Port: config.backend.port });
  if (config.backend.mtu !== undefined) backend.MTU = config.backend.mtu;
  doc.Backend = backend;
  doc.NonMasqueradeCIDRs = config.nonMasqueradeCidrs;
  return JSON.stringify(doc);
}

/** The fields two agents must agree on; empty when they do. */
export function networkConfigDifferences(ours: NetworkConfig, theirs: NetworkConfig): string[] {
  const fields: [string, unknown, unknown][] = [
    ["Network", ours.network, theirs.network],
    ["SubnetLen", ours.subnetLen, theirs.subnetLen],
    ["IPv6Network", ours.ipv6Network, theirs.ipv6Network],
    ["IPv6SubnetLen", ours.ipv6SubnetLen, theirs.ipv6SubnetLen],
    ["Backend.Type", ours.backend.type, theirs.backend.type],
  ];
  if (ours.backend.type === "vxlan" && theirs.backend.type === "vxlan") {
    fields.push(["Backend.VNI", ours.backend.vni, theirs.backend.vni], ["Backend.Port", ours.backend.port, theirs.backend.port]);
  }
  return fields.filter(([, a, b]) => a !== b).map(([name, a, b]) => `${name} ${JSON.stringify(a) ?? "unset"} ≠ ${JSON.stringify(b) ?? "unset"}`);
}

/**
 * Whether a subnet fits the config as flannel's isSubnetConfigCompat checks it: inside the network, of the
 * configured length, and not the network's first subnet (flannel's SubnetMin skips it).
 */
export function isSubnetCompatible(podCidrs: readonly string[], config: NetworkConfig): boolean {
  const cidrs = podCidrs.map((text) => parseCidr(text));
  if (cidrs.some((c) => !c)) return false;
  const fits = (cidr: Cidr | undefined, network: string | undefined, length: number | undefined): boolean => {
    if (network === undefined) return cidr === undefined;
    if (cidr === undefined) return false;
    const outer = parseCidr(network)!;
    return cidr.prefixLength === length && cidr.first > outer.first && cidr.last <= outer.last;
  };
  return fits(cidrs.find((c) => c!.family === 4), config.network, config.subnetLen)
    && fits(cidrs.find((c) => c!.family === 6), config.ipv6Network, config.ipv6SubnetLen);
}

/** A taken address range (another lease's subnet). */
export interface TakenRange {
  first: bigint;
  last: bigint;
}

/** The ranges of a set of pod CIDRs, for `pickFreeSubnet`. */
export function rangesOf(podCidrs: readonly string[]): { 4: TakenRange[]; 6: TakenRange[] } {
  const ranges: { 4: TakenRange[]; 6: TakenRange[] } = { 4: [], 6: [] };
  for (const text of podCidrs) {
    const cidr = parseCidr(text);
    if (cidr) ranges[cidr.family].push({ first: cidr.first, last: cidr.last });
  }
  return ranges;
}

/**
 * flannel's allocateSubnet: walk the subnets of `network` of length `subnetLen` from the second one (SubnetMin)
 * to the last (SubnetMax), collect the first 100 that overlap no taken range, pick one at random.
 */
export function pickFreeSubnet(network: string, subnetLen: number, taken: readonly TakenRange[], random: () => number = Math.random): string | undefined {
  const outer = parseCidr(network);
  if (!outer) throw new TypeError(`${network} is not a CIDR`);
  // Each candidate is a subnet of length subnetLen, aligned: the first is the network's second (SubnetMin).
  const size = 1n << BigInt((outer.family === 4 ? 32 : 128) - subnetLen);
  // Candidates only grow, so one sweep over the taken ranges sorted by start suffices: a candidate [first, last]
  // overlaps a taken range iff the largest end among the ranges starting at or before `last` reaches `first`.
  const sorted = [...taken].sort((a, b) => (a.first < b.first ? -1 : a.first > b.first ? 1 : 0));
  let next = 0;
  let reach = -1n;
  const free: string[] = [];
  for (let first = outer.first + size; first + size - 1n <= outer.last && free.length < CANDIDATES; first += size) {
    const last = first + size - 1n;
    while (next < sorted.length && sorted[next]!.first <= last) {
      if (sorted[next]!.last > reach) reach = sorted[next]!.last;
      next++;
    }
    if (reach < first) free.push(`${formatIpValue(outer.family, first)}/${subnetLen}`);
  }
  return free.length === 0 ? undefined : free[Math.floor(random() * free.length)];
}
