// Neighbours (ARP and NDP entries): list, replace (`ip neigh replace … nud permanent`), delete.
import type { IpFamily } from "../addresses";
import { align4, forEachAttribute, readIp, readMac } from "./attributes";
import {
  NDA_DST, NDA_IFINDEX, NDA_LLADDR, NLM_F_CREATE, NLM_F_REPLACE, NUD_PERMANENT, RTM_DELNEIGH,
  RTM_GETNEIGH, RTM_NEWNEIGH,
} from "./constants";
import { keepMatching } from "./dump";
import { addressFamily, familyOfAddressFamily, parseIpFamily } from "./ip";
import { NDMSG } from "./messages";
import type { NetlinkSocket } from "./socket";

export interface Neighbour {
  index: number;
  family: IpFamily;
  ip: string;
  /** Absent for entries still being resolved or failed. */
  mac?: string;
  /** NUD_* bits (NUD_PERMANENT, NUD_REACHABLE, …). */
  state: number;
  /** NTF_* bits. */
  flags: number;
}

export interface ListNeighboursOptions {
  index?: number;
  family?: IpFamily;
}

export function listNeighbours(sock: NetlinkSocket, options: ListNeighboursOptions = {}): Neighbour[] {
  const m = sock.message(RTM_GETNEIGH).ndmsg({ family: addressFamily(options.family) });
  if (options.index !== undefined) m.u32(NDA_IFINDEX, options.index);
  return keepMatching(sock.dump(m, decodeNeighbour, "RTM_GETNEIGH dump"), options);
}

export interface NeighbourEntry {
  index: number;
  ip: string;
  mac: string;
  /** Default NUD_PERMANENT. */
  state?: number;
}

/** Creates or overwrites the entry for `ip` on the link. */
export function replaceNeighbour(sock: NetlinkSocket, entry: NeighbourEntry): void {
  const family = parseIpFamily(entry.ip);
  const m = sock.message(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE).ndmsg({
    family: addressFamily(family),
    index: entry.index,
    state: entry.state ?? NUD_PERMANENT,
  });
  m.ip(NDA_DST, entry.ip, family).mac(NDA_LLADDR, entry.mac);
  sock.request(m, `RTM_NEWNEIGH ${entry.ip} ifindex ${entry.index}`);
}

/** Deletes the entry for `ip` on the link (ENOENT when there is none). */
export function deleteNeighbour(sock: NetlinkSocket, entry: { index: number; ip: string }): void {
  const family = parseIpFamily(entry.ip);
  const m = sock.message(RTM_DELNEIGH).ndmsg({ family: addressFamily(family), index: entry.index });
  m.ip(NDA_DST, entry.ip, family);
  sock.request(m, `RTM_DELNEIGH ${entry.ip} ifindex ${entry.index}`);
}

export function decodeNeighbour(b: Buffer, offset: number, end: number, type: number): Neighbour | undefined {
  if (type !== RTM_NEWNEIGH) return undefined;
  const family = familyOfAddressFamily(b[offset + NDMSG.family]);
  if (family === undefined) return undefined;
  const neighbour: Neighbour = {
    index: b.readInt32LE(offset + NDMSG.index),
    family,
    ip: "",
    state: b.readUInt16LE(offset + NDMSG.state),
    flags: b[offset + NDMSG.flags]!,
  };
  forEachAttribute(b, offset + align4(NDMSG.length), end, (attribute, at, length) => {
    if (attribute === NDA_DST) neighbour.ip = readIp(b, at, length);
    else if (attribute === NDA_LLADDR) neighbour.mac = readMac(b, at, length);
  });
  return neighbour.ip ? neighbour : undefined;
}
