// Links: list and look up, create veth pairs, bridges and VXLAN devices, change and delete them.
import { ipFamily } from "../addresses";
import { align4, forEachAttribute, NLA_F_NESTED, readIp, readMac, readString } from "./attributes";
import {
  AF_BRIDGE, IFF_UP, IFLA_ADDRESS, IFLA_BRPORT_MODE, IFLA_IFALIAS, IFLA_EXT_MASK, IFLA_IFNAME, IFLA_INFO_DATA, IFLA_INFO_KIND,
  IFLA_INFO_SLAVE_DATA, IFLA_INFO_SLAVE_KIND, IFLA_LINK, IFLA_LINK_NETNSID, IFLA_LINKINFO, IFLA_MASTER, IFLA_MTU,
  IFLA_NET_NS_FD, IFLA_OPERSTATE, IFLA_PROTINFO, IFLA_VXLAN_COLLECT_METADATA, IFLA_VXLAN_ID, IFLA_VXLAN_LEARNING, IFLA_VXLAN_LINK,
  IFLA_VXLAN_LOCAL, IFLA_VXLAN_LOCAL6, IFLA_VXLAN_PORT, NLM_F_CREATE, NLM_F_EXCL, OPER_STATES, type OperState,
  RTEXT_FILTER_SKIP_STATS, RTM_DELLINK, RTM_GETLINK, RTM_NEWLINK, RTM_SETLINK, VETH_INFO_PEER,
} from "./constants";
import { NetlinkError } from "./errors";
import { IFINFOMSG, type MessageWriter } from "./messages";
import type { NetlinkSocket } from "./socket";

export interface VxlanInfo {
  vni: number;
  /** UDP destination port. */
  port: number;
  local?: string;
  learning: boolean;
  underlayIndex?: number;
  /** A collect-metadata ("external") device: the tunnel's destination and VNI come with each packet. */
  external: boolean;
}

export interface Link {
  index: number;
  name: string;
  /** IFLA_INFO_KIND: "veth", "bridge", "vxlan", … (absent for physical devices and loopback). */
  kind?: string;
  mtu: number;
  /** Lowercase "aa:bb:cc:dd:ee:ff" ("" when the device has none). */
  mac: string;
  /** IFF_UP: administratively up. */
  up: boolean;
  /** Raw ifi_flags (IFF_*). */
  flags: number;
  operState?: OperState;
  masterIndex?: number;
  /** IFLA_LINK: the veth peer or the lower device, possibly in the namespace `linkNetnsId`. */
  parentIndex?: number;
  linkNetnsId?: number;
  vxlan?: VxlanInfo;
  /** The bridge port's hairpin mode, for ports of a bridge. */
  hairpin?: boolean;
  /** IFLA_IFALIAS (`ip link set X alias …`). */
  alias?: string;
}

export function listLinks(sock: NetlinkSocket): Link[] {
  const m = sock.message(RTM_GETLINK).ifinfomsg().u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  return sock.dump(m, decodeLink, "RTM_GETLINK dump");
}

/** The link called `name`, or undefined when there is none. */
export function getLink(sock: NetlinkSocket, name: string): Link | undefined {
  const m = sock.message(RTM_GETLINK).ifinfomsg().string(IFLA_IFNAME, name).u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  return getOrUndefined(sock, m, `RTM_GETLINK ${name}`);
}

export function getLinkByIndex(sock: NetlinkSocket, index: number): Link | undefined {
  const m = sock.message(RTM_GETLINK).ifinfomsg({ index }).u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  return getOrUndefined(sock, m, `RTM_GETLINK ifindex ${index}`);
}

function getOrUndefined(sock: NetlinkSocket, m: MessageWriter, operation: string): Link | undefined {
  try {
    return sock.get(m, decodeLink, operation);
  } catch (error) {
    if (error instanceof NetlinkError && error.code === "ENODEV") return undefined;
    throw error;
  }
}

interface CommonLinkOptions {
  name: string;
  mtu?: number;
  mac?: string;
}

export interface VethOptions extends CommonLinkOptions {
  peerName: string;
  /** Creates the peer in this network namespace (an open nsfs fd) instead of the current one. */
  peerNetnsFd?: number;
  /** Defaults to `mtu`. */
  peerMtu?: number;
  peerMac?: string;
}

/**
 * Creates a veth pair in one request (fails with EEXIST if either name is taken in its namespace). The CNI
 * plugin calls this inside the pod's namespace with the peer placed in the host's, as the reference plugin does.
 */
export function createVeth(sock: NetlinkSocket, options: VethOptions): void {
  const m = newLink(sock, options);
  const info = m.begin(IFLA_LINKINFO);
  m.string(IFLA_INFO_KIND, "veth");
  const data = m.begin(IFLA_INFO_DATA);
  const peer = m.begin(VETH_INFO_PEER);
  m.ifinfomsg().string(IFLA_IFNAME, options.peerName);
  const peerMtu = options.peerMtu ?? options.mtu;
  if (peerMtu !== undefined) m.u32(IFLA_MTU, peerMtu);
  if (options.peerMac !== undefined) m.mac(IFLA_ADDRESS, options.peerMac);
  if (options.peerNetnsFd !== undefined) m.u32(IFLA_NET_NS_FD, options.peerNetnsFd);
  m.end(peer).end(data).end(info);
  sock.request(m, `RTM_NEWLINK ${options.name}`);
}

export type BridgeOptions = CommonLinkOptions;

export function createBridge(sock: NetlinkSocket, options: BridgeOptions): void {
  const m = newLink(sock, options);
  const info = m.begin(IFLA_LINKINFO);
  m.string(IFLA_INFO_KIND, "bridge").end(info);
  sock.request(m, `RTM_NEWLINK ${options.name}`);
}

export interface VxlanOptions extends CommonLinkOptions {
  vni: number;
  /** UDP destination port (flannel: 8472). */
  port: number;
  /** Source address of the tunnel: an IPv4 or IPv6 address. */
  local: string;
  /** The underlay device to send through. */
  underlayIndex?: number;
  /** Learn remote MACs from received packets. Default false: the FDB is programmed. */
  learning?: boolean;
}

/**
 * A collect-metadata VXLAN device (`ip link add … type vxlan external dstport …`): each packet carries its VNI and
 * destination (set by a tc program). It has no VNI of its own: the kernel hands it what arrives for any VNI on
 * its port.
 */
export interface ExternalVxlanOptions extends CommonLinkOptions {
  port: number;
}

export function createExternalVxlan(sock: NetlinkSocket, options: ExternalVxlanOptions): void {
  const m = newLink(sock, options);
  const info = m.begin(IFLA_LINKINFO);
  m.string(IFLA_INFO_KIND, "vxlan");
  const data = m.begin(IFLA_INFO_DATA);
  m.be16(IFLA_VXLAN_PORT, options.port);
  m.u8(IFLA_VXLAN_LEARNING, 0);
  m.u8(IFLA_VXLAN_COLLECT_METADATA, 1);
  m.end(data).end(info);
  sock.request(m, `RTM_NEWLINK ${options.name}`);
}

export function createVxlan(sock: NetlinkSocket, options: VxlanOptions): void {
  const m = newLink(sock, options);
  const info = m.begin(IFLA_LINKINFO);
  m.string(IFLA_INFO_KIND, "vxlan");
  const data = m.begin(IFLA_INFO_DATA);
  m.u32(IFLA_VXLAN_ID, options.vni);
  if (ipFamily(options.local) === 6) m.ip(IFLA_VXLAN_LOCAL6, options.local, 6);
  else m.ip(IFLA_VXLAN_LOCAL, options.local, 4);
  m.be16(IFLA_VXLAN_PORT, options.port);
  m.u8(IFLA_VXLAN_LEARNING, options.learning ? 1 : 0);
  if (options.underlayIndex !== undefined) m.u32(IFLA_VXLAN_LINK, options.underlayIndex);
  m.end(data).end(info);
  sock.request(m, `RTM_NEWLINK ${options.name}`);
}

function newLink(sock: NetlinkSocket, options: CommonLinkOptions): MessageWriter {
  const m = sock.message(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL).ifinfomsg().string(IFLA_IFNAME, options.name);
  if (options.mtu !== undefined) m.u32(IFLA_MTU, options.mtu);
  if (options.mac !== undefined) m.mac(IFLA_ADDRESS, options.mac);
  return m;
}

/** Deletes a link by name or index (ENODEV when there is none). Deleting one end of a veth deletes both. */
export function deleteLink(sock: NetlinkSocket, nameOrIndex: string | number): void {
  const m = sock.message(RTM_DELLINK);
  if (typeof nameOrIndex === "number") m.ifinfomsg({ index: nameOrIndex });
  else m.ifinfomsg().string(IFLA_IFNAME, nameOrIndex);
  sock.request(m, typeof nameOrIndex === "number" ? `RTM_DELLINK ifindex ${nameOrIndex}` : `RTM_DELLINK ${nameOrIndex}`);
}

/** Deletes the link; a link already gone (ENODEV) is not an error. Returns whether this call deleted it. */
export function deleteLinkIfExists(sock: NetlinkSocket, nameOrIndex: string | number): boolean {
  try {
    deleteLink(sock, nameOrIndex);
    return true;
  } catch (error) {
    if (error instanceof NetlinkError && error.code === "ENODEV") return false;
    throw error;
  }
}

export interface LinkChanges {
  up?: boolean;
  mtu?: number;
  /** Enslaves to this bridge; 0 releases ("nomaster"). */
  masterIndex?: number;
  /** Renames (the link must be down). */
  name?: string;
  mac?: string;
  /** Moves the link to this network namespace (an open nsfs fd); later changes apply there. */
  netnsFd?: number;
  /** Sets the alias ("" removes it). */
  alias?: string;
}

/** Applies all `changes` in one request, like `ip link set`. */
export function setLink(sock: NetlinkSocket, index: number, changes: LinkChanges): void {
  const m = sock.message(RTM_NEWLINK);
  if (changes.up === undefined) m.ifinfomsg({ index });
  else m.ifinfomsg({ index, flags: changes.up ? IFF_UP : 0, change: IFF_UP });
  if (changes.netnsFd !== undefined) m.u32(IFLA_NET_NS_FD, changes.netnsFd);
  if (changes.name !== undefined) m.string(IFLA_IFNAME, changes.name);
  if (changes.mtu !== undefined) m.u32(IFLA_MTU, changes.mtu);
  if (changes.mac !== undefined) m.mac(IFLA_ADDRESS, changes.mac);
  if (changes.masterIndex !== undefined) m.u32(IFLA_MASTER, changes.masterIndex);
  // Without a NUL, as iproute2 sends it: an empty payload removes the alias.
  if (changes.alias !== undefined) m.bytes(IFLA_IFALIAS, Buffer.from(changes.alias));
  sock.request(m, `RTM_NEWLINK ifindex ${index}`);
}

/** Turns hairpin mode of a bridge port on or off (`bridge link set dev X hairpin on`). */
export function setBridgePortHairpin(sock: NetlinkSocket, index: number, on: boolean): void {
  const m = sock.message(RTM_SETLINK).ifinfomsg({ family: AF_BRIDGE, index });
  const protinfo = m.begin(IFLA_PROTINFO | NLA_F_NESTED);
  m.u8(IFLA_BRPORT_MODE, on ? 1 : 0).end(protinfo);
  sock.request(m, `RTM_SETLINK ifindex ${index} hairpin ${on ? "on" : "off"}`);
}

/** Decodes an RTM_NEWLINK message (ifinfomsg at `offset`). */
export function decodeLink(b: Buffer, offset: number, end: number, type: number): Link | undefined {
  if (type !== RTM_NEWLINK) return undefined;
  const flags = b.readUInt32LE(offset + IFINFOMSG.flags);
  const link: Link = {
    index: b.readInt32LE(offset + IFINFOMSG.index),
    name: "",
    mtu: 0,
    mac: "",
    up: (flags & IFF_UP) !== 0,
    flags,
  };
  forEachAttribute(b, offset + align4(IFINFOMSG.length), end, (attribute, at, length) => {
    switch (attribute) {
      case IFLA_IFNAME:
        link.name = readString(b, at, length);
        break;
      case IFLA_MTU:
        link.mtu = b.readUInt32LE(at);
        break;
      case IFLA_ADDRESS:
        link.mac = readMac(b, at, length);
        break;
      case IFLA_OPERSTATE:
        link.operState = OPER_STATES[b[at]!] ?? "UNKNOWN";
        break;
      case IFLA_MASTER:
        link.masterIndex = b.readUInt32LE(at);
        break;
      case IFLA_LINK:
        link.parentIndex = b.readUInt32LE(at);
        break;
      case IFLA_LINK_NETNSID:
        link.linkNetnsId = b.readInt32LE(at);
        break;
      case IFLA_IFALIAS:
        link.alias = readString(b, at, length);
        break;
      case IFLA_LINKINFO:
        decodeLinkInfo(b, at, at + length, link);
        break;
    }
  });
  return link;
}

function decodeLinkInfo(b: Buffer, start: number, end: number, link: Link): void {
  let data = -1;
  let dataEnd = -1;
  let slaveKind: string | undefined;
  let slaveData = -1;
  let slaveDataEnd = -1;
  forEachAttribute(b, start, end, (attribute, at, length) => {
    if (attribute === IFLA_INFO_KIND) link.kind = readString(b, at, length);
    else if (attribute === IFLA_INFO_SLAVE_KIND) slaveKind = readString(b, at, length);
    else if (attribute === IFLA_INFO_DATA) {
      data = at;
      dataEnd = at + length;
    } else if (attribute === IFLA_INFO_SLAVE_DATA) {
      slaveData = at;
      slaveDataEnd = at + length;
    }
  });
  if (link.kind === "vxlan" && data >= 0) link.vxlan = decodeVxlan(b, data, dataEnd);
  if (slaveKind === "bridge" && slaveData >= 0) {
    forEachAttribute(b, slaveData, slaveDataEnd, (attribute, at) => {
      if (attribute === IFLA_BRPORT_MODE) link.hairpin = b[at] === 1;
    });
  }
}

function decodeVxlan(b: Buffer, start: number, end: number): VxlanInfo {
  const vxlan: VxlanInfo = { vni: 0, port: 0, learning: false, external: false };
  forEachAttribute(b, start, end, (attribute, at, length) => {
    switch (attribute) {
      case IFLA_VXLAN_ID:
        vxlan.vni = b.readUInt32LE(at);
        break;
      case IFLA_VXLAN_PORT:
        vxlan.port = b.readUInt16BE(at);
        break;
      case IFLA_VXLAN_LOCAL:
      case IFLA_VXLAN_LOCAL6:
        vxlan.local = readIp(b, at, length);
        break;
      case IFLA_VXLAN_LEARNING:
        vxlan.learning = b[at] === 1;
        break;
      case IFLA_VXLAN_LINK:
        vxlan.underlayIndex = b.readUInt32LE(at);
        break;
      case IFLA_VXLAN_COLLECT_METADATA:
        vxlan.external = b[at] === 1;
        break;
    }
  });
  return vxlan;
}
