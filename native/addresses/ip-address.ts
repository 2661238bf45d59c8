// Addresses and CIDR ranges as ip-num values, for arithmetic on them (the IPAM allocator walks, compares and
// counts addresses). Parsed strictly and printed exactly like Go's net.IP.String() (RFC 5952 for IPv6),
// because the printed form is a file name shared with host-local.
import { IPv4, IPv4CidrRange, IPv6, IPv6CidrRange, Validator, collapseIPv6Number } from "ip-num";
import { ipFamily, type IpFamily } from "./syntax";

export type IpAddress = IPv4 | IPv6;
export type CidrRange = IPv4CidrRange | IPv6CidrRange;

// host-local turns these into IPv4 addresses (Go's To4), so a file named after one would never match ours.
// Bounds kept as addresses: comparing with them is much cheaper than ip-num's CIDR containment check.
// Built on first use: parsing IPv6 text with ip-num costs milliseconds, which an IPv4-only ADD need not pay.
let ipv4Mapped: { first: IPv6; last: IPv6 } | undefined;
function ipv4MappedBounds(): { first: IPv6; last: IPv6 } {
  if (!ipv4Mapped) {
    const range = IPv6CidrRange.fromCidr("::ffff:0:0/96");
    ipv4Mapped = { first: range.getFirst(), last: range.getLast() };
  }
  return ipv4Mapped;
}

/** Parses an IPv4 or IPv6 address; returns undefined for anything else (zones, IPv4-mapped IPv6, garbage). */
export function parseAddress(text: string): IpAddress | undefined {
  if (text.includes(":")) {
    if (text.includes("%") || text.includes(".") || !Validator.isValidIPv6String(text)[0]) return undefined;
    const address = new IPv6(text);
    const { first, last } = ipv4MappedBounds();
    const mapped = first.isLessThanOrEquals(address) && address.isLessThanOrEquals(last);
    return mapped ? undefined : address;
  }
  // The IPv4 constructor validates the text by ip-num's rules, which ipFamily's are the same as: the cheap check
  // keeps garbage from becoming exceptions, without a second ip-num validation.
  if (ipFamily(text) !== 4) return undefined;
  return new IPv4(text);
}

/** The canonical text of an address: the name of its reservation file. */
export function formatAddress(address: IpAddress): string {
  return address instanceof IPv6 ? collapseIPv6Number(address.toString()) : address.toString();
}

export function familyOf(address: IpAddress): IpFamily {
  return address instanceof IPv6 ? 6 : 4;
}

/** Normalises an address string to its canonical form, or undefined when it is not an address. */
export function canonicalAddress(text: string): string | undefined {
  const address = parseAddress(text);
  return address && formatAddress(address);
}

/**
 * A CIDR as an ip-num range, read as host-local's config is: ip-num's own rules (an IPv4 prefix length may have
 * leading zeros: "10.0.0.0/08"), IPv4-mapped IPv6 refused (host-local would treat it as IPv4). Undefined when
 * it is not a CIDR.
 */
export function parseCidrRange(text: string): { family: IpFamily; range: CidrRange } | undefined {
  try {
    // IPv4CidrRange.fromCidr validates the text itself (and no IPv4 CIDR contains ":"): validating it first
    // would do that work twice.
    if (!text.includes(":")) return { family: 4, range: IPv4CidrRange.fromCidr(text) };
    if (Validator.isValidIPv6CidrNotation(text)[0] && parseAddress(text.split("/")[0] ?? "")) {
      return { family: 6, range: IPv6CidrRange.fromCidr(text) };
    }
  } catch {
    // ip-num throws on some inputs its validator lets through: treat them as not a CIDR
  }
  return undefined;
}

/** How many addresses lie from `first` to `last`, both included. */
export function countAddresses(first: IpAddress, last: IpAddress): bigint {
  return last.getValue() - first.getValue() + 1n;
}
