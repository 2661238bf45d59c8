// The forwarding database of a VXLAN device (AF_BRIDGE neighbours with NTF_SELF): which remote VTEP a MAC is
// behind. `replaceFdb` is `bridge fdb replace MAC dev vx dst IP self permanent`.
import { align4, forEachAttribute, readIp, readMac } from "./attributes";
import {
  AF_BRIDGE, NDA_DST, NDA_LLADDR, NDA_MASTER, NDA_VNI, NLM_F_CREATE, NLM_F_REPLACE, NTF_SELF, NUD_PERMANENT,
  RTM_DELNEIGH, RTM_GETNEIGH, RTM_NEWNEIGH,
} from "./constants";
import { keepMatching } from "./dump";
import { parseIpFamily } from "./ip";
import { NDMSG } from "./messages";
import type { NetlinkSocket } from "./socket";

export interface FdbEntry {
  index: number;
  mac: string;
  /** The remote VTEP (VXLAN entries). */
  dst?: string;
  vni?: number;
  /** The bridge, for entries of a bridge port. */
  masterIndex?: number;
  /** NUD_* bits. */
  state: number;
  /** NTF_* bits (NTF_SELF for the device's own table, NTF_MASTER for its bridge's). */
  flags: number;
}

/** Every FDB entry, or those of one device. Includes the multicast and own-address entries devices carry. */
export function listFdb(sock: NetlinkSocket, options: { index?: number } = {}): FdbEntry[] {
  const m = sock.message(RTM_GETNEIGH).ndmsg({ family: AF_BRIDGE, index: options.index ?? 0 });
  return keepMatching(sock.dump(m, decodeFdbEntry, "RTM_GETNEIGH fdb dump"), options);
}

export interface FdbTarget {
  index: number;
  mac: string;
  dst: string;
  /** Default NUD_PERMANENT. */
  state?: number;
}

/** Points `mac` at the remote `dst`, replacing the entry's destination if it exists. */
export function replaceFdb(sock: NetlinkSocket, entry: FdbTarget): void {
  const m = sock.message(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE).ndmsg({
    family: AF_BRIDGE,
    index: entry.index,
    state: entry.state ?? NUD_PERMANENT,
    flags: NTF_SELF,
  });
  m.mac(NDA_LLADDR, entry.mac).ip(NDA_DST, entry.dst, parseIpFamily(entry.dst));
  sock.request(m, `RTM_NEWNEIGH fdb ${entry.mac} dst ${entry.dst} ifindex ${entry.index}`);
}

/** Deletes the entry for `mac` (only its destination `dst`, when given). ENOENT when there is none. */
export function deleteFdb(sock: NetlinkSocket, entry: { index: number; mac: string; dst?: string }): void {
  const m = sock.message(RTM_DELNEIGH).ndmsg({ family: AF_BRIDGE, index: entry.index, flags: NTF_SELF });
  m.mac(NDA_LLADDR, entry.mac);
  if (entry.dst !== undefined) m.ip(NDA_DST, entry.dst, parseIpFamily(entry.dst));
  sock.request(m, `RTM_DELNEIGH fdb ${entry.mac}${entry.dst ? ` dst ${entry.dst}` : ""} ifindex ${entry.index}`);
}

export function decodeFdbEntry(b: Buffer, offset: number, end: number, type: number): FdbEntry | undefined {
  if (type !== RTM_NEWNEIGH || b[offset + NDMSG.family] !== AF_BRIDGE) return undefined;
  const entry: FdbEntry = {
    index: b.readInt32LE(offset + NDMSG.index),
    mac: "",
    state: b.readUInt16LE(offset + NDMSG.state),
    flags: b[offset + NDMSG.flags]!,
  };
  forEachAttribute(b, offset + align4(NDMSG.length), end, (attribute, at, length) => {
    switch (attribute) {
      case NDA_LLADDR:
        entry.mac = readMac(b, at, length);
        break;
      case NDA_DST:
        entry.dst = readIp(b, at, length);
        break;
      case NDA_VNI:
        entry.vni = b.readUInt32LE(at);
        break;
      case NDA_MASTER:
        entry.masterIndex = b.readUInt32LE(at);
        break;
    }
  });
  return entry;
}
