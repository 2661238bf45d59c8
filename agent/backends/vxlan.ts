// The vxlan backend, flannel-compatible on the wire: one VTEP `weft.<VNI>` (flannel's flannel.<VNI>), UDP 8472,
// learning off, the node subnet's network address as the VTEP's address. Per remote node: a permanent
// neighbour (its VTEP address → its VTEP MAC), a permanent FDB entry (that MAC → its public IP) and an onlink
// route to its pod CIDR via its VTEP address. Dual-stack nodes use the same device and MAC for both families
// (IPv6 inside an IPv4 tunnel, or the other way round): one FDB entry per node, a neighbour and route per CIDR.
import { randomBytes } from "node:crypto";
import { familyOfValidIp, networkAddress, parseCidrs } from "../../native/addresses";
import type { BackendType, PeerNode } from "../model";
import type { Backend, LocalNode, PeerObjects } from "../reconcile/backend";
import type { VtepSpec } from "../reconcile/state";
import { DEFAULT_VNI, DEFAULT_VXLAN_PORT } from "../network-config";

/** Outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14) headers. */
export const VXLAN_OVERHEAD_IPV4 = 50;
/** The same with an IPv6 outer header (40). */
export const VXLAN_OVERHEAD_IPV6 = 70;

export const VTEP_PREFIX = "weft.";

export function vtepName(vni: number): string {
  return `${VTEP_PREFIX}${vni}`;
}

/** A random unicast, locally administered MAC ("x2:…", "x6:…", "xa:…", "xe:…"), as the kernel's random ones. */
export function generateVtepMac(): string {
  const bytes = randomBytes(6);
  bytes[0] = (bytes[0]! & 0xfe) | 0x02;
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join(":");
}

/** "AA-BB-…" or "aa:bb:…" → "aa:bb:…"; undefined when it is not a unicast MAC. */
export function normalizeMac(text: string): string | undefined {
  const mac = text.trim().toLowerCase().replaceAll("-", ":");
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(mac)) return undefined;
  if (Number.parseInt(mac.slice(0, 2), 16) & 1) return undefined; // multicast/broadcast
  if (mac === "00:00:00:00:00:00") return undefined;
  return mac;
}

export interface VxlanBackendOptions {
  /** Default 1. */
  vni?: number;
  /** Default 8472. */
  port?: number;
  /** The VTEP's MTU; default the underlay's minus the encapsulation overhead. */
  mtu?: number;
  /** The VTEP MAC to keep (from the node annotation or lease, or the existing device); default a new random one. */
  mac?: string;
  /**
   * A collect-metadata VTEP for the eBPF datapath: each peer gets its ARP entry and route (the kernel path) and a
   * tunnel entry for the node map, and no FDB entry (the programs set each packet's destination). Default false.
   */
  external?: boolean;
}

export class VxlanBackend implements Backend {
  readonly type: BackendType = "vxlan";
  readonly vni: number;
  readonly port: number;
  readonly device: string;
  /** The MAC this node's VTEP has: publish it (LocalAnnouncement.vtepMac) so that peers can program it. */
  readonly mac: string;
  readonly external: boolean;
  readonly #mtu: number | undefined;

  constructor(options: VxlanBackendOptions = {}) {
    this.vni = options.vni ?? DEFAULT_VNI;
    this.port = options.port ?? DEFAULT_VXLAN_PORT;
    this.device = vtepName(this.vni);
    this.#mtu = options.mtu;
    const given = options.mac === undefined ? undefined : normalizeMac(options.mac);
    if (options.mac !== undefined && given === undefined) throw new Error(`Cannot use VTEP MAC "${options.mac}": not a unicast MAC address`);
    this.mac = given ?? generateVtepMac();
    this.external = options.external ?? false;
  }

  mtu(local: LocalNode): number {
    if (this.#mtu !== undefined) return this.#mtu;
    const overhead = familyOfValidIp(local.node.publicIp) === 6 ? VXLAN_OVERHEAD_IPV6 : VXLAN_OVERHEAD_IPV4;
    return local.underlay.mtu - overhead;
  }

  localDevice(local: LocalNode): VtepSpec {
    const addresses = parseCidrs(local.node.podCidrs).map((cidr) => `${networkAddress(cidr)}/${cidr.family === 4 ? 32 : 128}`);
    return {
      name: this.device,
      vni: this.vni,
      port: this.port,
      local: local.node.publicIp,
      underlayIndex: local.underlay.index,
      mtu: this.mtu(local),
      mac: this.mac,
      addresses,
      external: this.external,
    };
  }

  peer(local: LocalNode, peer: PeerNode): PeerObjects {
    const objects: PeerObjects = { neighbours: [], fdb: [], routes: [], ...(this.external ? { tunnels: [] } : {}) };
    const mac = peer.vtepMac === undefined ? undefined : normalizeMac(peer.vtepMac);
    if (mac === undefined) {
      objects.skipped = peer.vtepMac === undefined ? "no VTEP MAC published yet" : `VTEP MAC "${peer.vtepMac}" is not a unicast MAC`;
      return objects;
    }
    const localFamily = familyOfValidIp(local.node.publicIp);
    if (familyOfValidIp(peer.publicIp) !== localFamily) {
      objects.skipped = `public IP ${peer.publicIp} is not IPv${localFamily}, like this node's tunnel source ${local.node.publicIp}`;
      return objects;
    }
    const localFamilies = parseCidrs(local.node.podCidrs).map((cidr) => cidr.family);
    const unreachable: string[] = [];
    for (const cidr of parseCidrs(peer.podCidrs)) {
      if (!localFamilies.includes(cidr.family)) {
        unreachable.push(cidr.network);
        continue;
      }
      const vtepAddress = networkAddress(cidr);
      // The order of the three objects matters, and apply keeps it across all nodes: see OP_ORDER.
      objects.neighbours.push({ node: peer.name, device: this.device, ip: vtepAddress, mac });
      objects.routes.push({ node: peer.name, dst: cidr.network, family: cidr.family, gateway: vtepAddress, device: this.device, onlink: true });
      objects.tunnels?.push({ node: peer.name, cidr: cidr.network, remote: peer.publicIp, vtepMac: mac });
    }
    if (objects.routes.length > 0 && !this.external) objects.fdb.push({ node: peer.name, device: this.device, mac, dst: peer.publicIp });
    if (unreachable.length > 0) objects.skipped = `pod CIDR ${unreachable.join(",")}: this node has no pod CIDR of that family`;
    return objects;
  }
}

