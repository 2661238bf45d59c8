// IP addresses ⇄ their bytes in network order, as the kernel takes them (netlink attributes, sockaddrs): the
// inet_pton and inet_ntop of weft. Writers write straight into the caller's buffer, so that encoding a message
// allocates nothing; IPv6 output is inet_ntop's (RFC 5952, with a dotted tail for IPv4-mapped addresses).
import { ipFamily, type IpFamily } from "./syntax";

/** Writes the address's 4 or 16 bytes at `offset` and returns its family; writes nothing and returns 0 if it is not one. */
export function writeIp(buffer: Buffer, offset: number, text: string): IpFamily | 0 {
  const family = ipFamily(text);
  if (family === 4) writeIpv4(buffer, offset, text);
  else if (family === 6) writeIpv6(buffer, offset, text);
  return family;
}

/** The address in the 4 (IPv4) or 16 (IPv6) bytes at `offset`. */
export function formatIp(buffer: Buffer, offset: number, family: IpFamily): string {
  return family === 4 ? formatIpv4(buffer, offset) : formatIpv6(buffer, offset);
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
  // Already validated by ipFamily: at most one "::", hex groups, optionally a trailing dotted IPv4.
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
