// The underlay: the interface that holds this node's public IP. Its index and MTU configure the VTEP; its
// subnets are what host-gw can reach without a router.
import { listAddresses, listLinks, RT_SCOPE_LINK, type NetlinkSocket } from "../../native/netlink";
import { parseCidr } from "../../native/addresses";
import type { Underlay } from "./backend";
import { UnderlayError } from "../errors";

/** The interface that has `publicIp` as one of its addresses. Throws UnderlayError when none has. */
export function findUnderlay(sock: NetlinkSocket, publicIp: string): Underlay {
  const addresses = listAddresses(sock);
  const normalized = parseCidr(`${publicIp}/${publicIp.includes(":") ? 128 : 32}`)?.address ?? publicIp;
  const own = addresses.find((a) => a.address === normalized);
  if (!own) throw new UnderlayError(`Cannot find the underlay interface: no interface has the public IP ${publicIp}`);
  const link = listLinks(sock).find((l) => l.index === own.index);
  if (!link) throw new UnderlayError(`Cannot find the underlay interface: ifindex ${own.index} of ${publicIp} disappeared`);
  // Link-local subnets (fe80::/64) reach no other node's public IP: leave them out of what host-gw can use.
  const subnets = addresses
    .filter((a) => a.index === own.index && a.scope !== RT_SCOPE_LINK)
    .map((a) => parseCidr(a.cidr)?.network)
    .filter((network): network is string => network !== undefined);
  return { index: link.index, name: link.name, mtu: link.mtu, subnets: [...new Set(subnets)] };
}
