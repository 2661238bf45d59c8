// What is an IP address: the family of a text, and the value of a dotted quad. Hand-written, in plain loops
// rather than regular expressions: V8 compiles a regular expression on its first two uses in every process,
// ~0.4 ms for a dotted-quad pattern, more than the plugin spends parsing all its addresses; node:net's isIP
// would cost the plugin ~4 ms of start-up to load. The unit tests hold ipFamily to node:net's isIP.

export type IpFamily = 4 | 6;

/**
 * 4, 6, or 0 when `text` is not an IP address. As inet_pton reads it: IPv4 is four decimal octets without
 * leading zeros; IPv6 is hex groups of 1 to 4 digits in either case, at most one "::", optionally ending in a
 * dotted quad (::ffff:10.1.2.3). Zone suffixes (%eth0), prefixes and spaces are refused.
 */
export function ipFamily(text: string): IpFamily | 0 {
  if (ipv4Value(text) >= 0) return 4;
  if (text.includes(":") && isIpv6Text(text)) return 6;
  return 0;
}

/** The family of an address that has already been validated (a PeerNode's publicIp): no parsing needed. */
export function familyOfValidIp(ip: string): IpFamily {
  return ip.includes(":") ? 6 : 4;
}

/** The value of a dotted-quad IPv4 address (no leading zeros, as ip-num and Go read it); -1 when it is not one. */
export function ipv4Value(text: string): number {
  let octets = 0;
  let digits = 0;
  let value = 0;
  let result = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 0x2e; // a virtual "." closes the last octet
    if (c >= 0x30 && c <= 0x39) {
      if (digits > 0 && value === 0) return -1; // leading zero
      value = value * 10 + (c - 0x30);
      if (++digits > 3 || value > 255) return -1;
    } else if (c === 0x2e && digits > 0 && octets < 4) {
      octets++;
      result = result * 256 + value;
      digits = 0;
      value = 0;
    } else {
      return -1;
    }
  }
  return octets === 4 ? result : -1;
}

/** An IPv4 address as text from its value (0 to 2^32 - 1). */
export function dottedQuad(value: number): string {
  return `${Math.floor(value / 0x1000000)}.${Math.floor(value / 0x10000) % 256}.${Math.floor(value / 0x100) % 256}.${value % 256}`;
}

function isIpv6Text(text: string): boolean {
  const gap = text.indexOf("::");
  if (gap === -1) return groupUnits(text) === 8;
  if (text.indexOf("::", gap + 1) !== -1) return false;
  const head = groupUnits(text.slice(0, gap));
  const tail = groupUnits(text.slice(gap + 2));
  // A dotted IPv4 part may only end the address, never precede "::".
  if (head < 0 || tail < 0 || text.slice(0, gap).includes(".")) return false;
  return head + tail <= 7;
}

/** Validates colon-separated hex groups (the last may be dotted IPv4); returns their size in 16-bit units, or -1. */
function groupUnits(part: string): number {
  if (part === "") return 0;
  const groups = part.split(":");
  let units = 0;
  for (let i = 0; i < groups.length; i++) {
    const group = groups[i] as string;
    if (i === groups.length - 1 && group.includes(".")) {
      if (ipv4Value(group) < 0) return -1;
      units += 2;
    } else if (isHexGroup(group)) {
      units += 1;
    } else {
      return -1;
    }
  }
  return units;
}

/** One to four hex digits. */
function isHexGroup(group: string): boolean {
  if (group.length < 1 || group.length > 4) return false;
  for (let i = 0; i < group.length; i++) {
    const c = group.charCodeAt(i);
    const lower = c | 0x20; // A-F onto a-f
    if (!((c >= 0x30 && c <= 0x39) || (c >= 0x41 && lower >= 0x61 && lower <= 0x66))) return false;
  }
  return true;
}
