// CIDRs: an address with a prefix length. Two readings, for two kinds of callers:
//   splitCidr  the encoder's: address and prefix length checked, nothing computed (netlink requests, where a bare
//              address is a host route and iproute2 reads "/08" as 8).
//   parseCidr  everyone else's: the network, its bounds as numbers (containment and overlap are comparisons),
//              the address in its canonical form. Strict, as the CNI types, flannel and Go read a CIDR: a "/"
//              is required, the prefix length has no leading zeros.
// parseCidr reads IPv4 by arithmetic and IPv6 through ip-num (see index.ts for why), and remembers what it read.
import { IPv6, IPv6CidrRange, Validator, collapseIPv6Number } from "ip-num";
import { dottedQuad, ipFamily, ipv4Value, type IpFamily } from "./syntax";

/** The parts of "address/prefix", as written. */
export interface CidrParts {
  family: IpFamily;
  address: string;
  prefixLength: number;
}

export interface Cidr {
  readonly family: IpFamily;
  /** The address part, IPv6 in its shortest form: "10.244.1.1" of "10.244.1.1/24". */
  readonly address: string;
  readonly prefixLength: number;
  /** The network the CIDR lies in, host bits cleared: "10.244.1.0/24". */
  readonly network: string;
  /** The network's first and last addresses as numbers. */
  readonly first: bigint;
  readonly last: bigint;
}

const BITS: Record<IpFamily, number> = { 4: 32, 6: 128 };

/**
 * "10.1.2.3/24" → {family 4, address "10.1.2.3", prefixLength 24}; a bare address gets the full length.
 * Undefined when the address is not one or the prefix length is not 0 to 32 (128), in at most three digits.
 */
export function splitCidr(text: string): CidrParts | undefined {
  const slash = text.indexOf("/");
  const address = slash === -1 ? text : text.slice(0, slash);
  const family = ipFamily(address);
  if (family === 0) return undefined;
  if (slash === -1) return { family, address, prefixLength: BITS[family] };
  const prefixLength = readPrefixLength(text, slash + 1, BITS[family], true);
  return prefixLength < 0 ? undefined : { family, address, prefixLength };
}

// Every reconcile run of the agent walks every node's pod CIDRs several times (validation, overlap checks, the
// backends' objects); parsing them each time cost ~0.5 s per run at 5,000 nodes and most of the garbage the heap
// grew on. So each distinct text is parsed once, into a frozen Cidr shared by all who ask. Bounded: past
// MAX_REMEMBERED texts (a very long churn) it starts over, which only costs the parsing again.
const MAX_REMEMBERED = 65_536;
const remembered = new Map<string, Cidr | null>();

/** Parses "address/prefix"; undefined when it is not a CIDR of either family (zone indexes are refused). */
export function parseCidr(text: string): Cidr | undefined {
  let known = remembered.get(text);
  if (known === undefined) {
    known = parseIpv4Cidr(text) ?? parseIpv6Cidr(text) ?? null;
    if (remembered.size >= MAX_REMEMBERED) remembered.clear();
    remembered.set(text, known);
  }
  return known ?? undefined;
}

/** The CIDRs of `texts` that parse, in their order. */
export function parseCidrs(texts: readonly string[]): Cidr[] {
  const parsed: Cidr[] = [];
  for (const text of texts) {
    const cidr = parseCidr(text);
    if (cidr) parsed.push(cidr);
  }
  return parsed;
}

/** Whether `inner` lies entirely within `outer` (same family). */
export function cidrInside(inner: Cidr, outer: Cidr): boolean {
  return inner.family === outer.family && outer.first <= inner.first && inner.last <= outer.last;
}

/** The network address itself ("10.244.1.0/24" → "10.244.1.0"). */
export function networkAddress(cidr: Cidr): string {
  return cidr.network.slice(0, cidr.network.indexOf("/"));
}

/** The first address after the network address ("10.244.1.0/24" → "10.244.1.1"): the conventional gateway. */
export function firstHost(cidr: Cidr): string {
  return formatIpValue(cidr.family, cidr.first + 1n);
}

/** An address as text from its value: a dotted quad, or IPv6 in its shortest form. RangeError past the last address. */
export function formatIpValue(family: IpFamily, value: bigint): string {
  if (family === 6) return collapseIPv6Number(IPv6.fromBigInt(value).toString());
  if (value < 0n || value > 0xffffffffn) throw new RangeError(`${value} is not an IPv4 address value`);
  return dottedQuad(Number(value));
}

/** The fast path: a dotted quad with a prefix, by arithmetic. */
function parseIpv4Cidr(text: string): Cidr | undefined {
  const slash = text.indexOf("/");
  if (slash < 0) return undefined;
  const value = ipv4Value(text.slice(0, slash));
  if (value < 0) return undefined;
  const prefixLength = readPrefixLength(text, slash + 1, 32, false);
  if (prefixLength < 0) return undefined;
  const size = 2 ** (32 - prefixLength);
  const first = value - (value % size);
  return Object.freeze({
    family: 4, address: text.slice(0, slash), prefixLength, network: `${dottedQuad(first)}/${prefixLength}`,
    first: BigInt(first), last: BigInt(first + size - 1),
  });
}

/**
 * IPv6 through ip-num, as the CNI types have always read it. ip-num's CIDR check refuses most addresses with
 * a dotted IPv4 tail (::ffff:10.0.0.0/104), and its shortest form keeps the case of the digits written.
 */
function parseIpv6Cidr(text: string): Cidr | undefined {
  const slash = text.indexOf("/");
  if (slash < 0) return undefined;
  const address = text.slice(0, slash);
  const prefixLength = readPrefixLength(text, slash + 1, 128, false);
  if (prefixLength < 0 || ipFamily(address) !== 6) return undefined;
  try {
    if (!Validator.isValidIPv6CidrNotation(text)[0]) return undefined;
    const range = IPv6CidrRange.fromCidr(text);
    const first = range.getFirst();
    return Object.freeze({
      family: 6, address: collapseIPv6Number(address), prefixLength, network: `${collapseIPv6Number(first.toString())}/${prefixLength}`,
      first: first.getValue(), last: range.getLast().getValue(),
    });
  } catch {
    // ip-num's constructors throw on a few inputs its validator lets through: not a CIDR either.
    return undefined;
  }
}

/**
 * The prefix length written at text[from..]: one to three decimal digits, 0 to `max`; -1 otherwise. Leading
 * zeros ("08") only with `leadingZeros`.
 */
function readPrefixLength(text: string, from: number, max: number, leadingZeros: boolean): number {
  const digits = text.length - from;
  if (digits < 1 || digits > 3) return -1;
  let value = 0;
  for (let i = from; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x30 || c > 0x39 || (!leadingZeros && i > from && value === 0)) return -1;
    value = value * 10 + (c - 0x30);
  }
  return value <= max ? value : -1;
}
