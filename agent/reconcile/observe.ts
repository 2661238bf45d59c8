// observe(sock): the weft-owned kernel objects of the namespace the socket belongs to, and nothing else.
import {
  listAddresses, listFdb, listLinks, listNeighbours, listRoutes, NUD_PERMANENT, RT_SCOPE_LINK, type NetlinkSocket,
} from "../../native/netlink";
import { WEFT_ROUTE_PROTOCOL } from "../../native/marks";
import { VTEP_PREFIX } from "../backends/vxlan";
import { DEFAULT_BRIDGE } from "./desired";
import type { ObservedLink, ObservedState } from "./state";

const ZERO_MAC = "00:00:00:00:00:00";

export interface ObserveOptions {
  /** The CNI bridge; default "cni0". */
  bridge?: string;
}

export function observe(sock: NetlinkSocket, options: ObserveOptions = {}): ObservedState {
  const links = listLinks(sock);
  const linkIndexes: Record<string, number> = {};
  for (const link of links) linkIndexes[link.name] = link.index;

  const vteps: ObservedLink[] = links
    .filter((link) => link.name.startsWith(VTEP_PREFIX))
    .map((link) => ({
      ...link,
      addresses: listAddresses(sock, { index: link.index })
        .filter((a) => !(a.family === 6 && a.scope === RT_SCOPE_LINK))
        .map((a) => a.cidr),
    }));
  const bridgeName = options.bridge ?? DEFAULT_BRIDGE;
  const bridge = links.find((link) => link.name === bridgeName);

  const observed: ObservedState = { vteps, linkIndexes, neighbours: [], fdb: [], routes: [] };
  if (bridge) observed.bridge = bridge;
  // Loops, not push(...list): spreading tens of thousands of arguments can overflow the stack.
  for (const vtep of vteps) {
    for (const n of listNeighbours(sock, { index: vtep.index })) {
      if ((n.state & NUD_PERMANENT) !== 0 && n.index === vtep.index) observed.neighbours.push(n);
    }
    // The all-zeros MAC is the flooding default (`bridge fdb append 00:00:00:00:00:00 dst …`): never weft's.
    for (const e of listFdb(sock, { index: vtep.index })) {
      if (e.dst !== undefined && (e.state & NUD_PERMANENT) !== 0 && e.mac !== ZERO_MAC) observed.fdb.push(e);
    }
  }
  observed.routes = listRoutes(sock, { protocol: WEFT_ROUTE_PROTOCOL });
  return observed;
}
