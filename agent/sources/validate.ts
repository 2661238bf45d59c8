// The edge between what a source reads (Node objects, etcd leases, a file) and what the datapath may use.
// Every value that came from another node is checked and canonicalised here before it becomes a PeerNode, so
// that nothing reaches a netlink message, a command line or a file path unvalidated:
//
//   - name: a DNS-1123 subdomain, as Kubernetes requires of node names (≤ 253 characters, [a-z0-9.-]).
//   - podCidrs: one or two CIDRs, at most one per family, host bits cleared ("10.244.3.7/24" → "10.244.3.0/24", as
//     Go's net.ParseCIDR and so flannel read it). A CIDR of a family the cluster network has (Network,
//     IPv6Network) must lie inside it; a CIDR of a family the cluster does not use (an IPv6 pod CIDR on an
//     IPv4-only cluster) is ignored, as flannel ignores it. A node left without any pod CIDR is rejected.
//   - publicIp: a unicast IPv4 or IPv6 address, printed canonically (no zone, no IPv4-mapped IPv6, not
//     unspecified, loopback, multicast, broadcast or IPv6 link-local).
//   - vtepMac: six octets, ":" or "-" separated, unicast and non-zero; printed lowercase with ":".
//
// Then, across nodes, in the order of their names (so that the outcome never depends on arrival order): a node
// whose pod CIDR overlaps one of an accepted node, whose name repeats an accepted node's, or whose VTEP MAC an
// accepted node already uses (FDB entries are keyed by MAC) is rejected; the lexically smaller name wins.

import {
  DisjointRanges, familyOf, formatAddress, ipv4Value, parseAddress, parseCidr, type AddressRange, type Cidr,
} from "../../native/addresses";
import type { NetworkConfig, NodeSnapshot, PeerNode } from "../model";

/** A node as a source read it, before validation. Absent fields are undefined. */
export interface NodeRecord {
  name: string;
  podCidrs: readonly string[];
  publicIp?: string | undefined;
  vtepMac?: string | undefined;
}

/** A node the source could not even turn into a record (garbage JSON, bad key), with why. */
export interface NodeRejection {
  name: string;
  reason: string;
}

/** The cluster networks the pod CIDRs must lie in, parsed once. */
export interface ClusterNetworks {
  4?: Cidr;
  6?: Cidr;
}

/** The result of checking one node on its own; `ranges` feed the cross-node overlap check. */
export type NodeCheck =
  | { ok: true; node: PeerNode; ranges: AddressRange[] }
  | { ok: false; name: string; reason: string };


const NODE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const MAX_NODE_NAME = 253;
const MAC = /^[0-9a-f]{2}([:-])[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}$/i;

// As [first, last] values: comparing bigints is much cheaper than ip-num's containment checks. Built on first
// use: parsing the IPv6 ones with ip-num at load time cost ~10 ms of every start.
let notUnicast: { 4: Cidr[]; 6: Cidr[] } | undefined;
/** Whether the address of this family and value is unspecified, loopback, multicast, broadcast or link-local. */
function isNotUnicast(family: 4 | 6, value: bigint): boolean {
  notUnicast ??= {
    4: ["0.0.0.0/32", "127.0.0.0/8", "224.0.0.0/4", "255.255.255.255/32"].map((c) => parseCidr(c)!),
    6: ["::/128", "::1/128", "ff00::/8", "fe80::/10"].map((c) => parseCidr(c)!),
  };
  return notUnicast[family].some((r) => r.first <= value && value <= r.last);
}

export function parseClusterNetworks(config: NetworkConfig): ClusterNetworks {
  const networks: ClusterNetworks = {};
  for (const text of [config.network, config.ipv6Network]) {
    if (text === undefined) continue;
    const cidr = parseCidr(text);
    if (!cidr) throw new TypeError(`Invalid network config: ${JSON.stringify(text)} is not a CIDR`);
    networks[cidr.family] = cidr;
  }
  return networks;
}

export function isValidNodeName(name: unknown): name is string {
  return typeof name === "string" && name.length <= MAX_NODE_NAME && NODE_NAME.test(name);
}

/** The canonical text of a unicast IP address, or undefined. */
export function parsePublicIp(text: unknown): string | undefined {
  if (typeof text !== "string") return undefined;
  const v4 = ipv4Value(text);
  if (v4 >= 0) {
    // The common case, by arithmetic: a dotted quad without leading zeros is already canonical.
    return isNotUnicast(4, BigInt(v4)) ? undefined : text;
  }
  const address = parseAddress(text);
  if (!address) return undefined;
  return isNotUnicast(familyOf(address), address.getValue()) ? undefined : formatAddress(address);
}

/** "AA-BB-CC-DD-EE-FF" → "aa:bb:cc:dd:ee:ff"; undefined unless a unicast, non-zero 48-bit MAC. */
export function parseMac(text: unknown): string | undefined {
  if (typeof text !== "string" || !MAC.test(text)) return undefined;
  const mac = text.toLowerCase().replaceAll("-", ":");
  const firstOctet = Number.parseInt(mac.slice(0, 2), 16);
  if ((firstOctet & 1) === 1 || mac === "00:00:00:00:00:00") return undefined;
  return mac;
}

/** A value quoted for a rejection reason: JSON-escaped and cut short, so garbage cannot forge log lines. */
export function quote(value: unknown): string {
  const text = typeof value === "string" ? JSON.stringify(value) : (JSON.stringify(value) ?? String(value));
  return text.length > 64 ? `${text.slice(0, 60)}..."` : text;
}

/** A name fit to show in the rejected list even when it is not a valid node name. */
export function displayName(name: unknown): string {
  if (isValidNodeName(name)) return name;
  const text = typeof name === "string" ? name : String(name);
  const printable = text.replace(/[^\x20-\x7e]/g, "?");
  return printable.length > MAX_NODE_NAME ? `${printable.slice(0, MAX_NODE_NAME - 3)}...` : printable || "(no name)";
}

/** Checks one node on its own: name, pod CIDRs against the cluster networks, public IP, VTEP MAC. */
export function checkNode(record: NodeRecord, networks: ClusterNetworks): NodeCheck {
  const reject = (reason: string): NodeCheck => ({ ok: false, name: displayName(record.name), reason });
  if (!isValidNodeName(record.name)) return reject(`invalid node name ${quote(record.name)}: not a DNS-1123 subdomain`);

  const cidrs = checkPodCidrs(record.podCidrs, networks);
  if (typeof cidrs === "string") return reject(cidrs);

  if (record.publicIp === undefined || record.publicIp === "") return reject("no public IP");
  const publicIp = parsePublicIp(record.publicIp);
  if (!publicIp) return reject(`public IP ${quote(record.publicIp)} is not a unicast IP address`);

  const node: PeerNode = { name: record.name, podCidrs: cidrs.map((c) => c.network), publicIp };
  if (record.vtepMac !== undefined && record.vtepMac !== "") {
    const mac = parseMac(record.vtepMac);
    if (!mac) return reject(`VTEP MAC ${quote(record.vtepMac)} is not a unicast MAC address`);
    node.vtepMac = mac;
  }
  return { ok: true, node, ranges: cidrs };
}

/** The node's pod CIDRs as ranges (IPv4 first), or why they are unusable. */
function checkPodCidrs(podCidrs: readonly string[], networks: ClusterNetworks): AddressRange[] | string {
  if (!Array.isArray(podCidrs) || podCidrs.length === 0) return "no pod CIDR assigned";
  if (podCidrs.length > 2) return `${podCidrs.length} pod CIDRs: at most one IPv4 and one IPv6`;
  const ranges: AddressRange[] = [];
  const ignored: string[] = [];
  for (const text of podCidrs) {
    const range = typeof text === "string" ? parseCidr(text) : undefined;
    if (!range) return `pod CIDR ${quote(text)} is not a CIDR`;
    if (ranges.some((r) => r.family === range.family)) return `two IPv${range.family} pod CIDRs: ${podCidrs.join(", ")}`;
    const network = networks[range.family];
    if (!network) {
      ignored.push(range.network);
      continue;
    }
    if (range.first < network.first || range.last > network.last) return `pod CIDR ${range.network} is outside the cluster network ${network.network}`;
    ranges.push(range);
  }
  if (ranges.length === 0) {
    const families = Object.keys(networks).map((f) => `IPv${f}`).join(" and ");
    return `no pod CIDR of the cluster's families (${families}): ${ignored.join(", ")}`;
  }
  return ranges.sort((a, b) => a.family - b.family);
}

/**
 * Applies the cross-node rules to checked nodes: in name order, a node overlapping, duplicating the name of, or
 * sharing the VTEP MAC of an already accepted node is rejected. Returns the snapshot's `nodes` and `rejected`,
 * both sorted by name.
 */
export function resolveConflicts(checks: Iterable<NodeCheck>): Pick<NodeSnapshot, "nodes" | "rejected"> {
  const ordered = [...checks].sort((a, b) => compareNames(nameOf(a), nameOf(b)));
  const nodes: PeerNode[] = [];
  const rejected: NodeRejection[] = [];
  const names = new Set<string>();
  const macs = new Map<string, string>();
  const everyRange: AddressRange[] = [];
  for (const check of ordered) if (check.ok) for (const range of check.ranges) everyRange.push(range);
  const taken = new DisjointRanges(everyRange);

  for (const check of ordered) {
    if (!check.ok) {
      rejected.push({ name: check.name, reason: check.reason });
      continue;
    }
    const { node, ranges } = check;
    const reason = names.has(node.name)
      ? "duplicate node name"
      : macConflict(node, macs) ?? overlapReason(taken.firstOverlap(ranges));
    if (reason) {
      rejected.push({ name: node.name, reason });
      continue;
    }
    names.add(node.name);
    if (node.vtepMac) macs.set(node.vtepMac, node.name);
    for (const range of ranges) taken.add(range, node.name);
    nodes.push(node);
  }
  return { nodes, rejected };
}

/** Checks and resolves a whole list at once (the file source and tests). */
export function validateNodes(records: Iterable<NodeRecord | NodeRejection>, config: NetworkConfig): Pick<NodeSnapshot, "nodes" | "rejected"> {
  const networks = parseClusterNetworks(config);
  const checks: NodeCheck[] = [];
  for (const record of records) {
    checks.push("reason" in record ? { ok: false, name: displayName(record.name), reason: record.reason } : checkNode(record, networks));
  }
  return resolveConflicts(checks);
}

function nameOf(check: NodeCheck): string {
  return check.ok ? check.node.name : check.name;
}

function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function macConflict(node: PeerNode, macs: Map<string, string>): string | undefined {
  const owner = node.vtepMac === undefined ? undefined : macs.get(node.vtepMac);
  return owner === undefined ? undefined : `VTEP MAC ${node.vtepMac} is already used by node ${owner}`;
}

function overlapReason(found: ReturnType<DisjointRanges["firstOverlap"]>): string | undefined {
  return found && `pod CIDR ${found.range.network} overlaps node ${found.owner}'s ${found.network}`;
}
