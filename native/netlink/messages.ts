// Netlink messages: the nlmsghdr and the fixed family headers that follow it (ifinfomsg, ifaddrmsg, rtmsg,
// ndmsg, tcmsg), then attributes. Layouts are those of the uapi headers; the offsets below are relative to the start
// of each header, for decoders reading a received message in place.
import { AttributeWriter } from "./attributes";
import { NLMSG_HDRLEN } from "./constants";

/** struct nlmsghdr { u32 len; u16 type; u16 flags; u32 seq; u32 pid } */
export const NLMSGHDR = { length: NLMSG_HDRLEN, len: 0, type: 4, flags: 6, seq: 8, pid: 12 } as const;
/** struct ifinfomsg { u8 family; u8 pad; u16 type; i32 index; u32 flags; u32 change } */
export const IFINFOMSG = { length: 16, family: 0, type: 2, index: 4, flags: 8, change: 12 } as const;
/** struct ifaddrmsg { u8 family; u8 prefixlen; u8 flags; u8 scope; u32 index } */
export const IFADDRMSG = { length: 8, family: 0, prefixLength: 1, flags: 2, scope: 3, index: 4 } as const;
/** struct rtmsg { u8 family, dst_len, src_len, tos, table, protocol, scope, type; u32 flags } */
export const RTMSG = {
  length: 12, family: 0, dstLength: 1, srcLength: 2, tos: 3, table: 4, protocol: 5, scope: 6, type: 7, flags: 8,
} as const;
/** struct ndmsg { u8 family; u8 pad1; u16 pad2; i32 ifindex; u16 state; u8 flags; u8 type } */
export const NDMSG = { length: 12, family: 0, index: 4, state: 8, flags: 10, type: 11 } as const;
/** struct tcmsg { u8 family; u8 pad1; u16 pad2; i32 ifindex; u32 handle; u32 parent; u32 info } */
export const TCMSG = { length: 20, family: 0, index: 4, handle: 8, parent: 12, info: 16 } as const;

export interface IfinfomsgFields {
  family?: number;
  index?: number;
  flags?: number;
  change?: number;
}

export interface IfaddrmsgFields {
  family: number;
  prefixLength?: number;
  flags?: number;
  scope?: number;
  index?: number;
}

export interface RtmsgFields {
  family: number;
  dstLength?: number;
  table?: number;
  protocol?: number;
  scope?: number;
  type?: number;
  flags?: number;
}

export interface NdmsgFields {
  family: number;
  index?: number;
  state?: number;
  flags?: number;
  type?: number;
}

export interface TcmsgFields {
  index: number;
  handle?: number;
  parent?: number;
  /** Filters: priority << 16 | protocol (network byte order). */
  info?: number;
}

/**
 * Builds one request in a reusable buffer: `start(type, flags)`, one family header, attributes. The socket fills
 * in the length, sequence number and request flags when it sends it.
 */
export class MessageWriter extends AttributeWriter {
  start(type: number, flags = 0): this {
    this.length = 0;
    const at = this.reserve(NLMSG_HDRLEN);
    this.buffer.writeUInt16LE(type, at + NLMSGHDR.type);
    this.buffer.writeUInt16LE(flags, at + NLMSGHDR.flags);
    return this;
  }

  get type(): number {
    return this.buffer.readUInt16LE(NLMSGHDR.type);
  }

  /** Appends `bytes` zeroed bytes (a fixed header) and returns their offset. */
  struct(bytes: number): number {
    return this.reserve(bytes);
  }

  ifinfomsg(fields: IfinfomsgFields = {}): this {
    const at = this.reserve(IFINFOMSG.length);
    const b = this.buffer;
    b[at + IFINFOMSG.family] = fields.family ?? 0;
    b.writeInt32LE(fields.index ?? 0, at + IFINFOMSG.index);
    b.writeUInt32LE((fields.flags ?? 0) >>> 0, at + IFINFOMSG.flags);
    b.writeUInt32LE((fields.change ?? 0) >>> 0, at + IFINFOMSG.change);
    return this;
  }

  ifaddrmsg(fields: IfaddrmsgFields): this {
    const at = this.reserve(IFADDRMSG.length);
    const b = this.buffer;
    b[at + IFADDRMSG.family] = fields.family;
    b[at + IFADDRMSG.prefixLength] = fields.prefixLength ?? 0;
    b[at + IFADDRMSG.flags] = fields.flags ?? 0;
    b[at + IFADDRMSG.scope] = fields.scope ?? 0;
    b.writeUInt32LE(fields.index ?? 0, at + IFADDRMSG.index);
    return this;
  }

  rtmsg(fields: RtmsgFields): this {
    const at = this.reserve(RTMSG.length);
    const b = this.buffer;
    b[at + RTMSG.family] = fields.family;
    b[at + RTMSG.dstLength] = fields.dstLength ?? 0;
    b[at + RTMSG.table] = fields.table ?? 0;
    b[at + RTMSG.protocol] = fields.protocol ?? 0;
    b[at + RTMSG.scope] = fields.scope ?? 0;
    b[at + RTMSG.type] = fields.type ?? 0;
    b.writeUInt32LE((fields.flags ?? 0) >>> 0, at + RTMSG.flags);
    return this;
  }

  ndmsg(fields: NdmsgFields): this {
    const at = this.reserve(NDMSG.length);
    const b = this.buffer;
    b[at + NDMSG.family] = fields.family;
    b.writeInt32LE(fields.index ?? 0, at + NDMSG.index);
    b.writeUInt16LE(fields.state ?? 0, at + NDMSG.state);
    b[at + NDMSG.flags] = fields.flags ?? 0;
    b[at + NDMSG.type] = fields.type ?? 0;
    return this;
  }

  tcmsg(fields: TcmsgFields): this {
    const at = this.reserve(TCMSG.length);
    const b = this.buffer;
    b.writeInt32LE(fields.index, at + TCMSG.index);
    b.writeUInt32LE((fields.handle ?? 0) >>> 0, at + TCMSG.handle);
    b.writeUInt32LE((fields.parent ?? 0) >>> 0, at + TCMSG.parent);
    b.writeUInt32LE((fields.info ?? 0) >>> 0, at + TCMSG.info);
    return this;
  }

  /** Completes the header (length, extra flags, sequence number) and returns the bytes to send. */
  seal(extraFlags: number, seq: number): Buffer {
    const b = this.buffer;
    b.writeUInt32LE(this.length, NLMSGHDR.len);
    b.writeUInt16LE(b.readUInt16LE(NLMSGHDR.flags) | extraFlags, NLMSGHDR.flags);
    b.writeUInt32LE(seq >>> 0, NLMSGHDR.seq);
    b.writeUInt32LE(0, NLMSGHDR.pid);
    return b.subarray(0, this.length);
  }
}
