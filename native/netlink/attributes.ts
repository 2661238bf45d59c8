// Netlink attributes (struct nlattr): a 4-byte header {u16 length, u16 type} and a payload padded to 4 bytes.
// The writer appends to one growable buffer and patches nested lengths on close; the reader walks a byte range
// in place and hands each attribute to a visitor, so decoding allocates only what the caller keeps.
import { formatIp, ipFamily, type IpFamily, writeIp } from "../addresses";
import { NetlinkInputError } from "./errors";
import { formatHex, formatMac, writeMac } from "./mac";

export const NLA_HDRLEN = 4;
export const NLA_F_NESTED = 0x8000;
export const NLA_F_NET_BYTEORDER = 0x4000;
export const NLA_TYPE_MASK = 0x3fff;

export function align4(length: number): number {
  return (length + 3) & ~3;
}

/** Appends attributes to a reusable buffer, growing it when needed. Host byte order (little-endian) throughout. */
export class AttributeWriter {
  buffer: Buffer;
  /** Bytes written so far. */
  length = 0;

  constructor(initialSize = 1024) {
    this.buffer = Buffer.alloc(initialSize);
  }

  /** Makes room for `bytes` more (zeroed) bytes and returns the offset where they start. */
  protected reserve(bytes: number): number {
    const start = this.length;
    const end = start + bytes;
    if (end > this.buffer.length) {
      const grown = Buffer.alloc(Math.max(end, this.buffer.length * 2));
      this.buffer.copy(grown, 0, 0, start);
      this.buffer = grown;
    } else {
      this.buffer.fill(0, start, end);
    }
    this.length = end;
    return start;
  }

  /** Writes an attribute header for `payloadLength` bytes and returns the payload's offset. */
  attribute(type: number, payloadLength: number): number {
    const start = this.reserve(align4(NLA_HDRLEN + payloadLength));
    this.buffer.writeUInt16LE(NLA_HDRLEN + payloadLength, start);
    this.buffer.writeUInt16LE(type, start + 2);
    return start + NLA_HDRLEN;
  }

  flag(type: number): this {
    this.attribute(type, 0);
    return this;
  }

  u8(type: number, value: number): this {
    this.buffer[this.attribute(type, 1)] = value;
    return this;
  }

  u16(type: number, value: number): this {
    this.buffer.writeUInt16LE(value, this.attribute(type, 2));
    return this;
  }

  /** A 16-bit value in network byte order (ports). */
  be16(type: number, value: number): this {
    this.buffer.writeUInt16BE(value, this.attribute(type, 2));
    return this;
  }

  u32(type: number, value: number): this {
    this.buffer.writeUInt32LE(value >>> 0, this.attribute(type, 4));
    return this;
  }

  i32(type: number, value: number): this {
    this.buffer.writeInt32LE(value, this.attribute(type, 4));
    return this;
  }

  /** A NUL-terminated string. */
  string(type: number, value: string): this {
    const bytes = Buffer.byteLength(value);
    const at = this.attribute(type, bytes + 1);
    this.buffer.write(value, at);
    return this;
  }

  bytes(type: number, value: Uint8Array): this {
    this.buffer.set(value, this.attribute(type, value.length));
    return this;
  }

  /** An IP address of the family `family` (4 or 16 bytes); throws NetlinkInputError if `text` is not one. */
  ip(type: number, text: string, family: IpFamily): this {
    if (ipFamily(text) !== family) throw new NetlinkInputError(`Cannot use "${text}": not an IPv${family} address`, text);
    writeIp(this.buffer, this.attribute(type, family === 4 ? 4 : 16), text);
    return this;
  }

  mac(type: number, text: string): this {
    writeMac(this.buffer, this.attribute(type, 6), text);
    return this;
  }

  /** Opens a nested attribute (pass `type | NLA_F_NESTED` where the kernel requires the flag); close it with `end`. */
  begin(type: number): number {
    return this.attribute(type, 0) - NLA_HDRLEN;
  }

  end(start: number): this {
    this.buffer.writeUInt16LE(this.length - start, start);
    return this;
  }
}

/** Called for each attribute in a range: its type without flags, the payload's offset and length. */
export type AttributeVisitor = (type: number, offset: number, length: number) => void;

/** Walks the attributes in buffer[start, end), stopping at the first malformed one. */
export function forEachAttribute(buffer: Buffer, start: number, end: number, visit: AttributeVisitor): void {
  let at = start;
  while (at + NLA_HDRLEN <= end) {
    const length = buffer.readUInt16LE(at);
    if (length < NLA_HDRLEN || at + length > end) return;
    visit(buffer.readUInt16LE(at + 2) & NLA_TYPE_MASK, at + NLA_HDRLEN, length - NLA_HDRLEN);
    at += align4(length);
  }
}

/** A NUL-terminated (or unterminated) string payload. */
export function readString(buffer: Buffer, offset: number, length: number): string {
  let end = offset + length;
  while (end > offset && buffer[end - 1] === 0) end--;
  return buffer.toString("utf8", offset, end);
}

/** An IPv4 or IPv6 address by its length; any other length as hex bytes. */
export function readIp(buffer: Buffer, offset: number, length: number): string {
  if (length === 4) return formatIp(buffer, offset, 4);
  if (length === 16) return formatIp(buffer, offset, 6);
  return formatHex(buffer, offset, length);
}

export function readMac(buffer: Buffer, offset: number, length: number): string {
  return formatMac(buffer, offset, length);
}
