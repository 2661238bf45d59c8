// Textual IP and MAC addresses ⇄ the bytes netlink carries (network byte order). Writers write straight into
// the message buffer so that encoding allocates nothing; IPv6 output is canonical (RFC 5952, as inet_ntop).
import { AF_INET, AF_INET6, AF_UNSPEC } from "./constants";
import { NetlinkInputError } from "./errors";

export type IpFamily = 4 | 6;

// Plain loops rather than regular expressions: V8 compiles a regular expression on its first two uses in every
// process, ~0.4 ms for a dotted-quad pattern, more than the plugin spends parsing all its addresses.

/** Four decimal octets 0-255 without leading zeros, as inet_pton accepts them. */
function isIpv4Text(text: string): boolean {
  return ipv4Value(text) >= 0;
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

/** Validates colon-separated hex groups (the last may be dotted IPv4); returns their size in 16-bit units, or -1. */
function groupUnits(part: string): number {
  if (part === "") return 0;
  const groups = part.split(":");
  let units = 0;
  for (let i = 0; i < groups.length; i++) {
    const group = groups[i] as string;
    if (i === groups.length - 1 && group.includes(".")) {
      if (!isIpv4Text(group)) return -1;
      units += 2;
    } else if (isHexGroup(group)) {
      units += 1;
    } else {
      return -1;
    }
  }
  return units;
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

/**
 * 4, 6, or 0 when `text` is not an IP address (zone suffixes such as `%eth0` are not accepted). Our own check
 * rather than node:net's isIP: loading node:net costs the CNI plugin ~4 ms of start-up.
 */
export function ipFamily(text: string): IpFamily | 0 {
  if (isIpv4Text(text)) return 4;
  if (text.includes(":") && isIpv6Text(text)) return 6;
  return 0;
}

/** The family of an IP address; throws NetlinkInputError when `text` is not one. */
export function parseIpFamily(text: string): IpFamily {
  const family = ipFamily(text);
  if (!family) throw new NetlinkInputError(`Cannot parse IP address "${text}"`, text);
  return family;
}

/** AF_INET, AF_INET6, or AF_UNSPEC for undefined. */
export function addressFamily(family: IpFamily | undefined): number {
  return family === 4 ? AF_INET : family === 6 ? AF_INET6 : AF_UNSPEC;
}

export function ipByteLength(family: IpFamily): 4 | 16 {
  return family === 4 ? 4 : 16;
}

/** Writes the address at `offset` and returns its family; throws NetlinkInputError if it is not one. */
export function writeIp(buffer: Buffer, offset: number, text: string): IpFamily {
  const family = ipFamily(text);
  if (family === 4) {
    writeIpv4(buffer, offset, text);
  } else if (family === 6) {
    writeIpv6(buffer, offset, text);
  } else {
    throw new NetlinkInputError(`Cannot parse IP address "${text}"`, text);
  }
  return family;
}

function writeIpv4(buffer: Buffer, offset: number, text: string): void {
  let value = 0;
  let at = offset;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46 /* . */) {
      buffer[at++] = value;
      value = 0;
    } else {
      value = value * 10 + (c - 48);
    }
  }
  buffer[at] = value;
}

function writeIpv6(buffer: Buffer, offset: number, text: string): void {
  // Already validated by isIPv6: at most one "::", hex groups, optionally a trailing dotted IPv4.
  buffer.fill(0, offset, offset + 16);
  const gap = text.indexOf("::");
  const head = gap === -1 ? text : text.slice(0, gap);
  const tail = gap === -1 ? "" : text.slice(gap + 2);
  writeGroups(buffer, offset, head);
  if (gap === -1) return;
  // The part after "::" is right-aligned: measure it, then write it into its place.
  writeGroups(buffer, offset + 16 - groupsByteLength(tail), tail);
}

function groupsByteLength(part: string): number {
  if (part === "") return 0;
  let groups = 1;
  for (let i = 0; i < part.length; i++) if (part.charCodeAt(i) === 58 /* : */) groups++;
  return part.includes(".") ? (groups - 1) * 2 + 4 : groups * 2;
}

/** Writes colon-separated hex groups, the last possibly a dotted IPv4 address. */
function writeGroups(buffer: Buffer, offset: number, part: string): void {
  if (part === "") return;
  let at = offset;
  let start = 0;
  for (;;) {
    const colon = part.indexOf(":", start);
    const group = colon === -1 ? part.slice(start) : part.slice(start, colon);
    if (colon === -1 && group.includes(".")) {
      writeIpv4(buffer, at, group);
      return;
    }
    buffer.writeUInt16BE(Number.parseInt(group, 16), at);
    at += 2;
    if (colon === -1) return;
    start = colon + 1;
  }
}

export function formatIp(buffer: Buffer, offset: number, length: number): string {
  if (length === 4) return formatIpv4(buffer, offset);
  if (length === 16) return formatIpv6(buffer, offset);
  return formatHex(buffer, offset, length);
}

function formatIpv4(b: Buffer, o: number): string {
  return `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
}

function formatIpv6(b: Buffer, o: number): string {
  // The longest run of two or more zero groups becomes "::" (the first one on a tie), as inet_ntop does.
  let bestStart = -1;
  let bestLength = 0;
  let runStart = -1;
  for (let i = 0; i <= 8; i++) {
    const zero = i < 8 && b[o + 2 * i] === 0 && b[o + 2 * i + 1] === 0;
    if (zero) {
      if (runStart === -1) runStart = i;
    } else if (runStart !== -1) {
      if (i - runStart > bestLength) {
        bestStart = runStart;
        bestLength = i - runStart;
      }
      runStart = -1;
    }
  }
  if (bestLength < 2) bestStart = -1;
  // IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d) addresses end in dotted form, like glibc.
  const embedsIpv4 = bestStart === 0 && (bestLength === 6 || (bestLength === 5 && b.readUInt16BE(o + 10) === 0xffff));
  let text = "";
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      text += i === 0 ? "::" : ":";
      i += bestLength - 1;
      continue;
    }
    if (embedsIpv4 && i === 6) return `${text}${formatIpv4(b, o + 12)}`;
    text += b.readUInt16BE(o + 2 * i).toString(16);
    if (i < 7) text += ":";
  }
  return text;
}

export interface Cidr {
  family: IpFamily;
  address: string;
  prefixLength: number;
}

/** "10.1.2.3/24" → {family 4, address "10.1.2.3", prefixLength 24}; a bare address gets the full length. */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf("/");
  const address = slash === -1 ? text : text.slice(0, slash);
  const family = ipFamily(address);
  if (family === 0) throw new NetlinkInputError(`Cannot parse CIDR "${text}": not an IP address`, text);
  const max = family === 4 ? 32 : 128;
  let prefixLength = max;
  if (slash !== -1) {
    const digits = text.slice(slash + 1);
    prefixLength = /^\d{1,3}$/.test(digits) ? Number(digits) : Number.NaN;
    if (!(prefixLength <= max)) {
      throw new NetlinkInputError(`Cannot parse CIDR "${text}": prefix length must be 0 to ${max}`, text);
    }
  }
  return { family, address, prefixLength };
}

const HEX_BYTES: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** Lowercase, colon-separated: "aa:bb:cc:dd:ee:ff". */
export function formatMac(buffer: Buffer, offset: number, length: number): string {
  if (length === 6) {
    const b = buffer;
    const o = offset;
    return `${HEX_BYTES[b[o]!]}:${HEX_BYTES[b[o + 1]!]}:${HEX_BYTES[b[o + 2]!]}:${HEX_BYTES[b[o + 3]!]}:${HEX_BYTES[b[o + 4]!]}:${HEX_BYTES[b[o + 5]!]}`;
  }
  return formatHex(buffer, offset, length);
}

function formatHex(buffer: Buffer, offset: number, length: number): string {
  let text = "";
  for (let i = 0; i < length; i++) text += (i ? ":" : "") + HEX_BYTES[buffer[offset + i]!];
  return text;
}

const MAC = /^[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}$/;

/** Writes the 6 bytes of "aa:bb:cc:dd:ee:ff" (or with dashes) at `offset`. */
export function writeMac(buffer: Buffer, offset: number, text: string): void {
  const normalized = text.length === 17 ? text.replaceAll("-", ":") : text;
  if (!MAC.test(normalized)) throw new NetlinkInputError(`Cannot parse MAC address "${text}"`, text);
  for (let i = 0; i < 6; i++) buffer[offset + i] = Number.parseInt(normalized.slice(i * 3, i * 3 + 2), 16);
}
