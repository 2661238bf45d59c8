// The map layouts of native/bpf/weft.h, field by field, as the agent and the plugin write and read them. Pure
// byte encoding: the syscalls are in ./syscall.ts. An integration test checks these sizes against the objects'
// BTF (test/integration/bpf-datapath.test.ts), so the two cannot drift apart unnoticed.
//
// Addresses are 16 bytes in network order, IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d); an IPv4 CIDR of length n is
// an LPM prefix of 96 + n. Numbers are in the host's byte order (little-endian here), as the programs read them.
import { join } from "node:path";
import { formatIp, parseCidr, writeIp, type IpFamily } from "../addresses";

/** WEFT_MAPS_VERSION: pins of another version are replaced by the agent at start. */
export const MAPS_VERSION = 1;

/** The pinned objects, by name under the pin root (maps pinned by libbpf by name; programs and links by the agent and plugin). */
export const PINS = {
  endpoints: "weft_endpoints",
  nodes: "weft_nodes",
  config: "weft_config",
  counters: "weft_counters",
  fromPod: "prog_from_pod",
  fromTunnel: "prog_from_tunnel",
  toTunnel: "prog_to_tunnel",
  toPod: "prog_to_pod",
  policyEndpoints: "weft_policy_endpoints",
  policy: "weft_policy",
  policyConnections: "weft_policy_ct",
  policyHost: "weft_policy_host",
  policyStats: "weft_policy_stats",
  cluster: "weft_cluster",
  /** Directory of the tcx links, one per attachment: "<device>-ingress" (bpffs names cannot hold a dot). */
  links: "links",
} as const;

/** A device's tcx link pin: <bpfDir>/links/<device>-<direction>, dots replaced (bpffs refuses names with a dot). */
export function linkPin(bpfDir: string, device: string, direction: "ingress" | "egress"): string {
  return join(bpfDir, PINS.links, `${device.replaceAll(".", "_")}-${direction}`);
}

export const SIZES = {
  addr: 16, endpoint: 20, lpmKey: 20, node: 24, config: 24,
  policyEndpoint: 8, policyKey: 24, policyPorts: 136, ctKey: 40, ctEntry: 8, statsKey: 20, stats: 16,
} as const;

export const WEFT_NODE_IPV6 = 1;
export const WEFT_CONFIG_READY = 1;
export const WEFT_CONFIG_ZERO_CSUM = 2;
export const WEFT_CONFIG_POLICY_ONLY = 4;
export const WEFT_CONFIG_POLICY = 8;
export const WEFT_CONFIG_DEFER_EGRESS = 16;
/** WEFT_POLICY_MAX_PORTS: port ranges one policy entry holds. */
export const POLICY_MAX_PORTS = 16;

/** enum weft_counter, in order. */
export const COUNTERS = [
  "from_pod_local", "from_pod_remote", "from_pod_pass_miss", "from_pod_pass_nat", "from_pod_pass_not_ip", "from_pod_pass_mtu",
  "from_pod_pass_not_ready", "from_pod_pass_error", "from_pod_pass_kernel_mode",
  "from_tunnel_local", "from_tunnel_pass_miss", "from_tunnel_pass_nat", "from_tunnel_pass_not_ip", "from_tunnel_pass_not_ready",
  "from_tunnel_pass_error",
  "to_tunnel_keyed", "to_tunnel_had_key", "to_tunnel_drop_miss", "to_tunnel_drop_not_ip", "to_tunnel_drop_error", "to_tunnel_kernel_mode",
  "to_pod_pass", "policy_drop_ingress", "policy_drop_egress", "policy_ct_full", "policy_egress_deferred", "policy_kernel_reply",
] as const;
export type CounterName = (typeof COUNTERS)[number];

export class MapEncodingError extends Error {
  readonly code = "ERR_BPF_MAP_ENCODING";
  constructor(message: string) {
    super(message);
    this.name = "MapEncodingError";
  }
}

/** Writes `ip` as 16 bytes at `offset` (IPv4 mapped); returns its family. */
function writeAddr(buffer: Buffer, offset: number, ip: string): IpFamily {
  buffer.fill(0, offset, offset + 16);
  if (ip.includes(":")) {
    if (writeIp(buffer, offset, ip) !== 6) throw new MapEncodingError(`Not an IP address: "${ip}"`);
    return 6;
  }
  if (writeIp(buffer, offset + 12, ip) !== 4) throw new MapEncodingError(`Not an IP address: "${ip}"`);
  buffer[offset + 10] = 0xff;
  buffer[offset + 11] = 0xff;
  return 4;
}

function readAddr(buffer: Buffer, offset: number): string {
  const mapped = buffer.subarray(offset, offset + 10).every((b) => b === 0) && buffer[offset + 10] === 0xff && buffer[offset + 11] === 0xff;
  return mapped ? formatIp(buffer, offset + 12, 4) : formatIp(buffer, offset, 6);
}

function writeMac(buffer: Buffer, offset: number, mac: string): void {
  const parts = mac.split(":");
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) throw new MapEncodingError(`Not a MAC address: "${mac}"`);
  parts.forEach((p, i) => (buffer[offset + i] = Number.parseInt(p, 16)));
}

function readMac(buffer: Buffer, offset: number): string {
  return [...buffer.subarray(offset, offset + 6)].map((b) => b.toString(16).padStart(2, "0")).join(":");
}

/** struct weft_addr: the key of weft_endpoints. */
export function encodeAddr(ip: string): Buffer {
  const key = Buffer.alloc(SIZES.addr);
  writeAddr(key, 0, ip);
  return key;
}

export function decodeAddr(key: Buffer): string {
  return readAddr(key, 0);
}

export interface Endpoint {
  /** The pod's host-side veth. */
  ifindex: number;
  /** The pod's eth0. */
  mac: string;
  /** Its bridge's: the source MAC the pod sees on what the datapath delivers. */
  gatewayMac: string;
  flags?: number;
}

/** struct weft_endpoint. */
export function encodeEndpoint(endpoint: Endpoint): Buffer {
  const value = Buffer.alloc(SIZES.endpoint);
  value.writeUInt32LE(endpoint.ifindex, 0);
  writeMac(value, 4, endpoint.mac);
  writeMac(value, 10, endpoint.gatewayMac);
  value.writeUInt32LE(endpoint.flags ?? 0, 16);
  return value;
}

export function decodeEndpoint(value: Buffer): Endpoint {
  return { ifindex: value.readUInt32LE(0), mac: readMac(value, 4), gatewayMac: readMac(value, 10), flags: value.readUInt32LE(16) };
}

/** struct weft_lpm_key for a CIDR. */
export function encodeLpmKey(cidr: string): Buffer {
  const parsed = parseCidr(cidr);
  if (!parsed) throw new MapEncodingError(`Not a CIDR: "${cidr}"`);
  const key = Buffer.alloc(SIZES.lpmKey);
  const family = writeAddr(key, 4, parsed.network.split("/")[0]!);
  key.writeUInt32LE(family === 4 ? 96 + parsed.prefixLength : parsed.prefixLength, 0);
  return key;
}

/** The CIDR an LPM key holds, as the agent writes them ("10.244.3.0/24"). */
export function decodeLpmKey(key: Buffer): string {
  const length = key.readUInt32LE(0);
  const address = readAddr(key, 4);
  return `${address}/${address.includes(":") ? length : length - 96}`;
}

export interface NodeEntry {
  /** The node's underlay address. */
  ip: string;
  vtepMac: string;
}

/** struct weft_node. */
export function encodeNode(node: NodeEntry): Buffer {
  const value = Buffer.alloc(SIZES.node);
  const family = writeAddr(value, 0, node.ip);
  writeMac(value, 16, node.vtepMac);
  value.writeUInt16LE(family === 6 ? WEFT_NODE_IPV6 : 0, 22);
  return value;
}

export function decodeNode(value: Buffer): NodeEntry {
  return { ip: readAddr(value, 0), vtepMac: readMac(value, 16) };
}

export interface DatapathConfig {
  vtepIfindex: number;
  vni: number;
  vtepMac: string;
  /** Zero outer UDP checksums on IPv4 tunnels (accepted by flannel's and weft's kernel VTEPs; see weft.h). */
  zeroChecksum: boolean;
  /** Kernel mode: the programs check policy and forward nothing. */
  policyOnly?: boolean;
  /** Some local pod is selected by a NetworkPolicy. */
  policy?: boolean;
  /** Egress denials toward outside the cluster are checked again after DNAT (the nftables rule is in place). */
  deferEgress?: boolean;
}

/** struct weft_config, marked ready. */
export function encodeConfig(config: DatapathConfig): Buffer {
  const value = Buffer.alloc(SIZES.config);
  const flags = WEFT_CONFIG_READY | (config.zeroChecksum ? WEFT_CONFIG_ZERO_CSUM : 0) | (config.policyOnly ? WEFT_CONFIG_POLICY_ONLY : 0) |
    (config.policy ? WEFT_CONFIG_POLICY : 0) | (config.deferEgress ? WEFT_CONFIG_DEFER_EGRESS : 0);
  value.writeUInt32LE(flags, 0);
  value.writeUInt32LE(config.vtepIfindex, 4);
  value.writeUInt32LE(config.vni, 8);
  writeMac(value, 12, config.vtepMac);
  value.writeUInt32LE(MAPS_VERSION, 20);
  return value;
}

export function decodeConfig(value: Buffer): DatapathConfig & { ready: boolean; version: number } {
  const flags = value.readUInt32LE(0);
  return {
    ready: (flags & WEFT_CONFIG_READY) !== 0, zeroChecksum: (flags & WEFT_CONFIG_ZERO_CSUM) !== 0,
    policyOnly: (flags & WEFT_CONFIG_POLICY_ONLY) !== 0, policy: (flags & WEFT_CONFIG_POLICY) !== 0, deferEgress: (flags & WEFT_CONFIG_DEFER_EGRESS) !== 0,
    vtepIfindex: value.readUInt32LE(4), vni: value.readUInt32LE(8), vtepMac: readMac(value, 12), version: value.readUInt32LE(20),
  };
}

/** Sums a per-CPU counter's value (one u64 per possible CPU). */
export function sumPerCpu(value: Buffer): bigint {
  let total = 0n;
  for (let offset = 0; offset + 8 <= value.length; offset += 8) total += value.readBigUInt64LE(offset);
  return total;
}

// ---- NetworkPolicy (weft.h: weft_policy_endpoints, weft_policy, weft_policy_stats) ----

/** IANA protocol numbers, as the programs compare them; 0 = any protocol (a rule without ports). */
export const PROTOCOL_NUMBERS = { ANY: 0, TCP: 6, UDP: 17, SCTP: 132 } as const;

export interface PolicySets {
  /** The pod's ingress rule set; 0 = not isolated. */
  ingressSet: number;
  egressSet: number;
}

/** struct weft_policy_endpoint. */
export function encodePolicyEndpoint(sets: PolicySets): Buffer {
  const value = Buffer.alloc(SIZES.policyEndpoint);
  value.writeUInt32LE(sets.ingressSet, 0);
  value.writeUInt32LE(sets.egressSet, 4);
  return value;
}

export function decodePolicyEndpoint(value: Buffer): PolicySets {
  return { ingressSet: value.readUInt32LE(0), egressSet: value.readUInt32LE(4) };
}

/** struct weft_policy_key: a rule set's peer prefix (the set's 32 bits are part of every prefix). */
export function encodePolicyKey(set: number, cidr: string): Buffer {
  const lpm = encodeLpmKey(cidr);
  const key = Buffer.alloc(SIZES.policyKey);
  key.writeUInt32LE(32 + lpm.readUInt32LE(0), 0);
  key.writeUInt32LE(set, 4);
  lpm.copy(key, 8, 4);
  return key;
}

export function decodePolicyKey(key: Buffer): { set: number; cidr: string } {
  const lpm = Buffer.alloc(SIZES.lpmKey);
  lpm.writeUInt32LE(key.readUInt32LE(0) - 32, 0);
  key.copy(lpm, 4, 8);
  return { set: key.readUInt32LE(4), cidr: decodeLpmKey(lpm) };
}

export interface PortRangeEntry {
  protocol: keyof typeof PROTOCOL_NUMBERS;
  first: number;
  last: number;
}

/** struct weft_policy_ports; at most POLICY_MAX_PORTS ranges (the compiler merges them first). */
export function encodePolicyPorts(ranges: readonly PortRangeEntry[]): Buffer {
  if (ranges.length > POLICY_MAX_PORTS) throw new MapEncodingError(`A policy entry holds at most ${POLICY_MAX_PORTS} port ranges, not ${ranges.length}`);
  const value = Buffer.alloc(SIZES.policyPorts);
  value.writeUInt32LE(ranges.length, 0);
  ranges.forEach((range, i) => {
    const at = 8 + i * 8;
    if (!(range.protocol in PROTOCOL_NUMBERS)) throw new MapEncodingError(`Not a policy protocol: "${range.protocol}"`);
    if (!(Number.isInteger(range.first) && Number.isInteger(range.last) && range.first >= 0 && range.first <= range.last && range.last <= 65535)) {
      throw new MapEncodingError(`Not a port range: ${range.first}-${range.last}`);
    }
    value.writeUInt8(PROTOCOL_NUMBERS[range.protocol], at);
    value.writeUInt16LE(range.first, at + 2);
    value.writeUInt16LE(range.last, at + 4);
  });
  return value;
}

export function decodePolicyPorts(value: Buffer): PortRangeEntry[] {
  const names = Object.fromEntries(Object.entries(PROTOCOL_NUMBERS).map(([name, number]) => [number, name])) as Record<number, PortRangeEntry["protocol"]>;
  const count = Math.min(value.readUInt32LE(0), POLICY_MAX_PORTS);
  return Array.from({ length: count }, (_, i) => ({ protocol: names[value.readUInt8(8 + i * 8)] ?? "ANY", first: value.readUInt16LE(8 + i * 8 + 2), last: value.readUInt16LE(8 + i * 8 + 4) }));
}

/** struct weft_stats_key: a local pod address and direction (0 ingress, 1 egress). */
export function encodeStatsKey(ip: string, direction: "ingress" | "egress"): Buffer {
  const key = Buffer.alloc(SIZES.statsKey);
  writeAddr(key, 0, ip);
  key.writeUInt32LE(direction === "ingress" ? 0 : 1, 16);
  return key;
}

export function decodeStatsKey(key: Buffer): { ip: string; direction: "ingress" | "egress" } {
  return { ip: readAddr(key, 0), direction: key.readUInt32LE(16) === 0 ? "ingress" : "egress" };
}

/** A per-CPU struct weft_stats, summed over the CPUs. */
export function sumPerCpuStats(value: Buffer): { allowed: number; denied: number } {
  let allowed = 0n;
  let denied = 0n;
  for (let offset = 0; offset + SIZES.stats <= value.length; offset += SIZES.stats) {
    allowed += value.readBigUInt64LE(offset);
    denied += value.readBigUInt64LE(offset + 8);
  }
  return { allowed: Number(allowed), denied: Number(denied) };
}
