// Pod CIDRs as the agent's hot paths use them: family, network text, network address and numeric bounds, parsed
// once per distinct text. Every reconcile run walks every node's pod CIDRs several times (validation, overlap
// checks, the backend's objects); parsing them through ip-num each time cost ~0.5 s per run at 5,000 nodes and
// most of the garbage the heap grew on. The cache is keyed by text and bounded: past MAX_ENTRIES distinct texts
// (a very long churn) it starts over, which only costs the parsing again.
import { networkAddress, parseCidr, type IpFamily } from "../cni/spec/addresses";
import { ipv4Value } from "../native/netlink/ip";
import type { AddressRange } from "./ranges";

export interface PodCidr extends AddressRange {
  /** The network address, without prefix ("10.244.3.0"; IPv6 in its shortest form). */
  address: string;
  prefixLength: number;
}

const MAX_ENTRIES = 65_536;
const cache = new Map<string, PodCidr | null>();

/** The parsed CIDR (host bits cleared: "10.244.3.7/24" gives 10.244.3.0/24), or undefined when it is not one. */
export function podCidr(text: string): PodCidr | undefined {
  let known = cache.get(text);
  if (known === undefined) {
    known = parse(text);
    if (cache.size >= MAX_ENTRIES) cache.clear();
    cache.set(text, known);
  }
  return known ?? undefined;
}

/** A node's pod CIDRs that parse, in their order. */
export function podCidrsOf(node: { podCidrs: readonly string[] }): PodCidr[] {
  const parsed: PodCidr[] = [];
  for (const text of node.podCidrs) {
    const cidr = podCidr(text);
    if (cidr) parsed.push(cidr);
  }
  return parsed;
}

/** The family of an address that a source has already validated (PeerNode.publicIp): no parsing needed. */
export function familyOfValidIp(ip: string): IpFamily {
  return ip.includes(":") ? 6 : 4;
}

function parse(text: string): PodCidr | null {
  const fast = parseIpv4Cidr(text);
  if (fast) return fast;
  const cidr = parseCidr(text);
  if (!cidr) return null;
  return Object.freeze({
    family: cidr.family,
    cidr: cidr.network,
    address: networkAddress(cidr),
    prefixLength: cidr.prefixLength,
    first: cidr.range.getFirst().getValue(),
    last: cidr.range.getLast().getValue(),
  });
}

const PREFIX = /^(0|[1-9]\d?)$/;

/** Dotted-quad IPv4 with a prefix, by arithmetic; anything else (IPv6, odd forms) is left to parseCidr. */
function parseIpv4Cidr(text: string): PodCidr | undefined {
  const slash = text.indexOf("/");
  if (slash < 0) return undefined;
  const value = ipv4Value(text.slice(0, slash));
  const prefix = text.slice(slash + 1);
  if (value < 0 || !PREFIX.test(prefix) || Number(prefix) > 32) return undefined;
  const prefixLength = Number(prefix);
  const size = 2 ** (32 - prefixLength);
  const first = value - (value % size);
  const address = dottedQuad(first);
  return Object.freeze({ family: 4, cidr: `${address}/${prefixLength}`, address, prefixLength, first: BigInt(first), last: BigInt(first + size - 1) });
}

/** An IPv4 address as text from its value. */
export function dottedQuad(value: number): string {
  return `${Math.floor(value / 0x1000000)}.${Math.floor(value / 0x10000) % 256}.${Math.floor(value / 0x100) % 256}.${value % 256}`;
}
