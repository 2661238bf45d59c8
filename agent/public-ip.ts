// This node's public IP: the underlay address other nodes send VXLAN packets to (or route pods via, in host-gw).
// In order: --public-ip; --iface (an address, or an interface's first global address); the node's address as
// the source knows it (kube: InternalIP; file: its entry); the source address of the default route.
import { listAddresses, listLinks, listRoutes, RT_SCOPE_UNIVERSE, RTN_UNICAST, type NetlinkSocket } from "../native/netlink";
import { ipFamily } from "../native/addresses";
import { parsePublicIp } from "./sources/validate";
import { PublicIpError } from "./errors";

export interface PublicIpOptions {
  publicIp?: string;
  iface?: string;
  /** The node's address from the node source, when it has one. */
  nodeAddress?: string;
  /** The family to prefer: the cluster network's. Default 4. */
  family?: 4 | 6;
}

export interface PublicIpChoice {
  publicIp: string;
  /** How it was chosen, for the start-up log and the debug state. */
  from: "--public-ip" | "--iface" | "node address" | "default route";
}

export function choosePublicIp(sock: NetlinkSocket, options: PublicIpOptions): PublicIpChoice {
  const family = options.family ?? 4;
  if (options.publicIp !== undefined) {
    const ip = parsePublicIp(options.publicIp);
    if (!ip) throw new PublicIpError(`Invalid --public-ip "${options.publicIp}": not a unicast IP address`);
    return { publicIp: ip, from: "--public-ip" };
  }
  if (options.iface !== undefined) {
    if (ipFamily(options.iface) !== 0) {
      const ip = parsePublicIp(options.iface);
      if (!ip) throw new PublicIpError(`Invalid --iface "${options.iface}": not a unicast IP address`);
      return { publicIp: ip, from: "--iface" };
    }
    const link = listLinks(sock).find((l) => l.name === options.iface);
    if (!link) throw new PublicIpError(`Invalid --iface "${options.iface}": no such interface`);
    const ip = globalAddress(sock, link.index, family);
    if (!ip) throw new PublicIpError(`Invalid --iface "${options.iface}": the interface has no global address`);
    return { publicIp: ip, from: "--iface" };
  }
  if (options.nodeAddress !== undefined) return { publicIp: options.nodeAddress, from: "node address" };
  for (const f of [family, family === 4 ? 6 : 4] as const) {
    const route = listRoutes(sock, { family: f }).find((r) => r.dst === "default" && r.type === RTN_UNICAST);
    if (route?.index === undefined) continue;
    const ip = (route.src !== undefined ? parsePublicIp(route.src) : undefined) ?? globalAddress(sock, route.index, f);
    if (ip) return { publicIp: ip, from: "default route" };
  }
  throw new PublicIpError("Cannot choose the public IP: no default route; set --iface or --public-ip");
}

function globalAddress(sock: NetlinkSocket, index: number, family: 4 | 6): string | undefined {
  const addresses = listAddresses(sock, { index }).filter((a) => a.scope === RT_SCOPE_UNIVERSE);
  return (addresses.find((a) => a.family === family) ?? addresses[0])?.address;
}
