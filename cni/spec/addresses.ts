// Address syntax as the CNI types use it: plain IPs ("10.1.0.1", "fd00::1") and CIDRs whose address part may
// carry host bits ("10.1.0.5/24", an interface address). The arithmetic is ip-num's; this file only decides
// what weft accepts: no zone index, no leading zeros in the prefix length.

import { IPv4CidrRange, IPv6CidrRange, Validator, collapseIPv6Number } from "ip-num";

export type IpFamily = 4 | 6;

export interface Cidr {
  family: IpFamily;
  /** The address part as written, IPv6 in its shortest form: "10.244.1.1". */
  address: string;
  prefixLength: number;
  /** The network the CIDR lies in, host bits cleared: "10.244.1.0/24". */
  network: string;
  /** ip-num's range, for containment checks. */
  range: IPv4CidrRange | IPv6CidrRange;
}

/** 4 or 6 for a plain IP address, undefined for anything else (including a zone index or a prefix). */
export function ipFamily(text: string): IpFamily | undefined {
  if (text.includes("%") || text.includes("/")) return undefined;
  try {
    if (Validator.isValidIPv4String(text)[0]) return 4;
    if (Validator.isValidIPv6String(text)[0]) return 6;
  } catch {
    // a validator that throws has found it invalid too
  }
  return undefined;
}

/** Parses "address/prefix"; undefined when it is not a valid CIDR of either family. */
export function parseCidr(text: string): Cidr | undefined {
  try {
    return parseCidrOrThrow(text);
  } catch {
    // ip-num's constructors throw on a few inputs its validator lets through: not a CIDR either.
    return undefined;
  }
}

function parseCidrOrThrow(text: string): Cidr | undefined {
  const slash = text.indexOf("/");
  if (slash < 0) return undefined;
  const address = text.slice(0, slash);
  const prefix = text.slice(slash + 1);
  if (!/^(0|[1-9]\d{0,2})$/.test(prefix)) return undefined;
  const family = ipFamily(address);
  const prefixLength = Number(prefix);
  if (family === 4) {
    if (prefixLength > 32) return undefined;
    const range = IPv4CidrRange.fromCidr(text);
    return { family, address, prefixLength, network: `${range.getFirst().toString()}/${prefixLength}`, range };
  }
  if (family === 6) {
    if (prefixLength > 128 || !Validator.isValidIPv6CidrNotation(text)[0]) return undefined;
    const range = IPv6CidrRange.fromCidr(text);
    const network = `${collapseIPv6Number(range.getFirst().toString())}/${prefixLength}`;
    return { family, address: collapseIPv6Number(address), prefixLength, network, range };
  }
  return undefined;
}

/** Whether `inner` lies entirely within `outer` (same family). */
export function cidrInside(inner: Cidr, outer: Cidr): boolean {
  if (inner.family !== outer.family) return false;
  if (inner.range instanceof IPv4CidrRange && outer.range instanceof IPv4CidrRange) return inner.range.inside(outer.range);
  if (inner.range instanceof IPv6CidrRange && outer.range instanceof IPv6CidrRange) return inner.range.inside(outer.range);
  return false;
}

/** The first address after the network address ("10.244.1.0/24" → "10.244.1.1"): the conventional gateway. */
export function firstHost(cidr: Cidr): string {
  const next = cidr.range.getFirst().nextIPNumber().toString();
  return cidr.family === 6 ? collapseIPv6Number(next) : next;
}

/** The network address itself ("10.244.1.0/24" → "10.244.1.0"). */
export function networkAddress(cidr: Cidr): string {
  const first = cidr.range.getFirst().toString();
  return cidr.family === 6 ? collapseIPv6Number(first) : first;
}
