// The host-gw backend: no tunnel. Each remote node's pod CIDR is routed via its public IP, which must therefore
// be directly reachable: on a subnet of this node's underlay interface (one L2 network). A node elsewhere is
// skipped with that reason; flannel fails the same way, only less visibly (its route is refused by the kernel).
import { ipFamily, parseCidr, parseCidrs } from "../../native/addresses";
import type { BackendType, PeerNode } from "../model";
import type { Backend, LocalNode, PeerObjects } from "../reconcile/backend";

export interface HostGwBackendOptions {
  /** The pods' MTU; default the underlay's. */
  mtu?: number;
}

export class HostGwBackend implements Backend {
  readonly type: BackendType = "host-gw";
  readonly #mtu: number | undefined;

  constructor(options: HostGwBackendOptions = {}) {
    this.#mtu = options.mtu;
  }

  mtu(local: LocalNode): number {
    return this.#mtu ?? local.underlay.mtu;
  }

  localDevice(): undefined {
    return undefined;
  }

  peer(local: LocalNode, peer: PeerNode): PeerObjects {
    const objects: PeerObjects = { neighbours: [], fdb: [], routes: [] };
    const family = ipFamily(peer.publicIp);
    if (!family) {
      objects.skipped = `public IP "${peer.publicIp}" is not an IP address`;
      return objects;
    }
    if (!local.underlay.subnets.some((subnet) => containsAddress(subnet, peer.publicIp))) {
      const subnets = local.underlay.subnets.length > 0 ? local.underlay.subnets.join(",") : "none";
      objects.skipped = `public IP ${peer.publicIp} is not on a subnet of ${local.underlay.name} (${subnets}): host-gw needs all nodes on one L2 network`;
      return objects;
    }
    const unreachable: string[] = [];
    for (const cidr of parseCidrs(peer.podCidrs)) {
      if (cidr.family !== family) {
        unreachable.push(cidr.network);
        continue;
      }
      objects.routes.push({ node: peer.name, dst: cidr.network, family, gateway: peer.publicIp, device: local.underlay.name, onlink: false });
    }
    if (unreachable.length > 0) objects.skipped = `pod CIDR ${unreachable.join(",")}: no next hop of that family (public IP ${peer.publicIp})`;
    return objects;
  }
}

/** Whether `ip` lies in `subnet` ("192.168.1.7" in "192.168.1.0/24"). */
export function containsAddress(subnet: string, ip: string): boolean {
  const range = parseCidr(subnet);
  // The address as a one-address CIDR: validated and parsed once per address, like the subnets (parseCidr remembers).
  const address = parseCidr(`${ip}/${ip.includes(":") ? 128 : 32}`);
  return range !== undefined && address !== undefined && range.family === address.family && range.first <= address.first && address.first <= range.last;
}
