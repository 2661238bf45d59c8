// Interface addresses: list, add (or replace), delete.
import type { IpFamily } from "../addresses";
import { align4, forEachAttribute, readIp } from "./attributes";
import {
  IFA_ADDRESS, IFA_BROADCAST, IFA_F_NODAD, IFA_FLAGS, IFA_LOCAL, NLM_F_CREATE,
  NLM_F_EXCL, NLM_F_REPLACE, RT_SCOPE_UNIVERSE, RTM_DELADDR, RTM_GETADDR, RTM_NEWADDR,
} from "./constants";
import { keepMatching } from "./dump";
import { addressFamily, familyOfAddressFamily, parseCidrParts } from "./ip";
import { IFADDRMSG } from "./messages";
import type { NetlinkSocket } from "./socket";

export interface Address {
  index: number;
  family: IpFamily;
  address: string;
  prefixLength: number;
  /** RT_SCOPE_* (0 universe, 253 link, 254 host). */
  scope: number;
  /** "10.1.2.3/24" */
  cidr: string;
  /** IFA_F_* (e.g. IFA_F_PERMANENT, IFA_F_NODAD). */
  flags: number;
}

export interface ListAddressesOptions {
  /** Only this link's addresses. */
  index?: number;
  family?: IpFamily;
}

export function listAddresses(sock: NetlinkSocket, options: ListAddressesOptions = {}): Address[] {
  const family = addressFamily(options.family);
  const m = sock.message(RTM_GETADDR).ifaddrmsg({ family, index: options.index ?? 0 });
  return keepMatching(sock.dump(m, decodeAddress, "RTM_GETADDR dump"), options);
}

export interface AddAddressOptions {
  /** Replace an existing identical address (its flags and lifetime) instead of failing with EEXIST. */
  replace?: boolean;
  /** IPv6: skip duplicate address detection, so the address is usable at once. */
  noDad?: boolean;
  /** RT_SCOPE_*; default universe. */
  scope?: number;
}

/** Adds `cidr` ("10.1.2.3/24", "fd00::1/64") to the link; IPv4 gets the broadcast address like `brd +`. */
export function addAddress(sock: NetlinkSocket, index: number, cidr: string, options: AddAddressOptions = {}): void {
  const { family, address, prefixLength } = parseCidrParts(cidr);
  const flags = NLM_F_CREATE | (options.replace ? NLM_F_REPLACE : NLM_F_EXCL);
  const m = sock.message(RTM_NEWADDR, flags).ifaddrmsg({
    family: addressFamily(family),
    prefixLength,
    flags: options.noDad ? IFA_F_NODAD : 0,
    scope: options.scope ?? RT_SCOPE_UNIVERSE,
    index,
  });
  m.ip(IFA_LOCAL, address, family).ip(IFA_ADDRESS, address, family);
  if (family === 4 && prefixLength <= 30) {
    const local = m.buffer.readUInt32BE(m.length - 4); // the IFA_ADDRESS payload just written
    const host = prefixLength === 0 ? 0xffffffff : (0xffffffff >>> prefixLength);
    m.buffer.writeUInt32BE((local | host) >>> 0, m.attribute(IFA_BROADCAST, 4));
  }
  if (options.noDad) m.u32(IFA_FLAGS, IFA_F_NODAD);
  sock.request(m, `RTM_NEWADDR ${cidr} ifindex ${index}`);
}

/** Removes `cidr` from the link (EADDRNOTAVAIL when it has no such address). */
export function deleteAddress(sock: NetlinkSocket, index: number, cidr: string): void {
  const { family, address, prefixLength } = parseCidrParts(cidr);
  const m = sock.message(RTM_DELADDR).ifaddrmsg({ family: addressFamily(family), prefixLength, index });
  m.ip(IFA_LOCAL, address, family).ip(IFA_ADDRESS, address, family);
  sock.request(m, `RTM_DELADDR ${cidr} ifindex ${index}`);
}

export function decodeAddress(b: Buffer, offset: number, end: number, type: number): Address | undefined {
  if (type !== RTM_NEWADDR) return undefined;
  const family = familyOfAddressFamily(b[offset + IFADDRMSG.family]);
  if (family === undefined) return undefined;
  let local: string | undefined;
  let address: string | undefined;
  let flags = b[offset + IFADDRMSG.flags]!;
  forEachAttribute(b, offset + align4(IFADDRMSG.length), end, (attribute, at, length) => {
    if (attribute === IFA_LOCAL) local = readIp(b, at, length);
    else if (attribute === IFA_ADDRESS) address = readIp(b, at, length);
    else if (attribute === IFA_FLAGS) flags = b.readUInt32LE(at);
  });
  // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer's on point-to-point links.
  const own = local ?? address;
  if (own === undefined) return undefined;
  const prefixLength = b[offset + IFADDRMSG.prefixLength]!;
  return {
    index: b.readUInt32LE(offset + IFADDRMSG.index),
    family,
    address: own,
    prefixLength,
    scope: b[offset + IFADDRMSG.scope]!,
    cidr: `${own}/${prefixLength}`,
    flags,
  };
}
