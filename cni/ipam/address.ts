// IP addresses as the IPAM layer sees them: ip-num values, parsed strictly and printed exactly like Go's
// net.IP.String() (RFC 5952 for IPv6), because the printed form is a file name shared with host-local.
import { IPv4, IPv6, IPv6CidrRange, Validator, collapseIPv6Number } from "ip-num";
import { ipFamily } from "../../native/netlink/ip";

export type Address = IPv4 | IPv6;
export type Family = 4 | 6;

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
export function parseAddress(text: string): Address | undefined {
  if (text.includes(":")) {
    if (text.includes("%") || text.includes(".") || !Validator.isValidIPv6String(text)[0]) return undefined;
    const address = new IPv6(text);
    const { first, last } = ipv4MappedBounds();
    const mapped = first.isLessThanOrEquals(address) && address.isLessThanOrEquals(last);
    return mapped ? undefined : address;
  }
  // The IPv4 constructor validates the text by ip-num's rules, which ipFamily's (netlink's) are the same as:
  // the cheap check keeps garbage from becoming exceptions, without a second ip-num validation.
  if (ipFamily(text) !== 4) return undefined;
  return new IPv4(text);
}

/** The canonical text of an address: the name of its reservation file. */
export function formatAddress(address: Address): string {
  return address instanceof IPv6 ? collapseIPv6Number(address.toString()) : address.toString();
}

export function familyOf(address: Address): Family {
  return address instanceof IPv6 ? 6 : 4;
}

/** Normalises an address string to its canonical form, or undefined when it is not an address. */
export function canonicalAddress(text: string): string | undefined {
  const address = parseAddress(text);
  return address && formatAddress(address);
}
