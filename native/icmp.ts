// ICMP echo over a raw socket: what the agent's overlay probes send. A raw socket (CAP_NET_RAW) rather than a
// ping socket, because ping sockets depend on net.ipv4.ping_group_range, which is closed in a new namespace.
//
// A raw ICMP socket sees every ICMP packet the host receives; replies are told apart by type, identifier and
// sequence. IPv4 raw sockets deliver the IP header too; IPv6 ones do not, and the kernel computes the ICMPv6
// checksum (RFC 3542).
import { ipFamily, writeIp } from "./addresses";
import { AF_INET, AF_INET6 } from "./netlink/constants";
import { close, recvBlocking, sendTo, setsockoptBuffer, SO_RCVTIMEO, SOCK_CLOEXEC, SOCK_RAW, socket, SOL_SOCKET } from "./libc";

const IPPROTO_ICMP = 1;
const IPPROTO_ICMPV6 = 58;
const ECHO_REQUEST = { 4: 8, 6: 128 } as const;
const ECHO_REPLY = { 4: 0, 6: 129 } as const;

export interface EchoReply {
  from: string;
  id: number;
  seq: number;
}

export class IcmpSocket {
  readonly family: 4 | 6;
  readonly #fd: number;
  #closed = false;
  #receiving: Promise<unknown> | undefined;

  private constructor(family: 4 | 6, fd: number) {
    this.family = family;
    this.#fd = fd;
  }

  /** Opens a raw ICMP (or ICMPv6) socket in the current thread's namespace; receive() waits at most `timeoutMs`. */
  static open(family: 4 | 6, options: { timeoutMs?: number } = {}): IcmpSocket {
    const fd = socket(family === 4 ? AF_INET : AF_INET6, SOCK_RAW | SOCK_CLOEXEC, family === 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6);
    try {
      const ms = options.timeoutMs ?? 200;
      const timeval = Buffer.alloc(16);
      timeval.writeBigInt64LE(BigInt(Math.floor(ms / 1000)), 0);
      timeval.writeBigInt64LE(BigInt((ms % 1000) * 1000), 8);
      setsockoptBuffer(fd, SOL_SOCKET, SO_RCVTIMEO, timeval);
    } catch (error) {
      close(fd);
      throw error;
    }
    return new IcmpSocket(family, fd);
  }

  sendEcho(destination: string, id: number, seq: number, payload: Buffer = Buffer.alloc(16)): void {
    const packet = Buffer.alloc(8 + payload.length);
    packet[0] = ECHO_REQUEST[this.family];
    packet.writeUInt16BE(id & 0xffff, 4);
    packet.writeUInt16BE(seq & 0xffff, 6);
    payload.copy(packet, 8);
    if (this.family === 4) packet.writeUInt16BE(checksum(packet), 2);
    sendTo(this.#fd, packet, sockaddr(this.family, destination));
  }

  /** The next echo reply, or undefined when none arrived within the timeout (other ICMP packets are skipped). */
  async receive(): Promise<EchoReply | undefined> {
    const buffer = Buffer.alloc(1500);
    for (;;) {
      if (this.#closed) return undefined;
      const pending = recvBlocking(this.#fd, buffer);
      this.#receiving = pending;
      const length = await pending;
      if (length < 0) return undefined;
      const reply = this.#parse(buffer.subarray(0, length));
      if (reply) return reply;
    }
  }

  /** Closes the socket once no receive is blocked on it. Safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#receiving?.catch(() => undefined);
    close(this.#fd);
  }

  #parse(packet: Buffer): EchoReply | undefined {
    let icmp = packet;
    let from: string;
    if (this.family === 4) {
      if (packet.length < 20) return undefined;
      const headerLength = (packet[0]! & 0x0f) * 4;
      from = [...packet.subarray(12, 16)].join(".");
      icmp = packet.subarray(headerLength);
    } else {
      // IPv6 raw sockets give no header (the source would need recvfrom): callers match replies by id and seq.
      from = "";
    }
    if (icmp.length < 8 || icmp[0] !== ECHO_REPLY[this.family] || icmp[1] !== 0) return undefined;
    return { from, id: icmp.readUInt16BE(4), seq: icmp.readUInt16BE(6) };
  }
}

function sockaddr(family: 4 | 6, address: string): Buffer {
  if (ipFamily(address) !== family) throw new Error(`Cannot probe "${address}": not an IPv${family} address`);
  // sockaddr_in: family, port, address at 4; sockaddr_in6: family, port, flowinfo, address at 8, scope id.
  const b = Buffer.alloc(family === 4 ? 16 : 28);
  b.writeUInt16LE(family === 4 ? AF_INET : AF_INET6, 0);
  writeIp(b, family === 4 ? 4 : 8, address);
  return b;
}

/** The Internet checksum (RFC 1071). */
export function checksum(data: Buffer): number {
  let sum = 0;
  for (let i = 0; i + 1 < data.length; i += 2) sum += data.readUInt16BE(i);
  if (data.length % 2 === 1) sum += data[data.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}
