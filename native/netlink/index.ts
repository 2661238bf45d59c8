// rtnetlink: a synchronous NETLINK_ROUTE client. Open a NetlinkSocket in the namespace to act on (directly or
// inside withNetns), then call the operations with it; errors are NetlinkError (a KernelError: code = errno name).
export { NetlinkSocket, type MessageDecoder, type NetlinkSocketOptions } from "./socket";
export { NetlinkError, NetlinkInputError } from "./errors";
export {
  createBridge, createExternalVxlan, createVeth, createVxlan, deleteLink, deleteLinkIfExists, getLink, getLinkByIndex, listLinks, setBridgePortHairpin, setLink,
  type BridgeOptions, type Link, type LinkChanges, type VethOptions, type VxlanInfo, type VxlanOptions,
} from "./links";
export {
  addAddress, deleteAddress, listAddresses, type AddAddressOptions, type Address, type ListAddressesOptions,
} from "./addresses";
export {
  addRoute, deleteRoute, listRoutes, replaceRoute, type ListRoutesOptions, type Route, type RouteEntry,
} from "./routes";
export {
  deleteNeighbour, listNeighbours, replaceNeighbour, type ListNeighboursOptions, type Neighbour, type NeighbourEntry,
} from "./neighbours";
export { deleteFdb, listFdb, replaceFdb, type FdbEntry, type FdbTarget } from "./fdb";
export {
  addClsact, deleteClsactIfEmpty, deleteFilter, listFilters, replaceBpfFilter, type BpfFilterSpec, type TcFilter, type TcHook,
} from "./tc";
export { MessageWriter } from "./messages";
export {
  AF_BRIDGE, AF_INET, AF_INET6, AF_UNSPEC, IFF_LOWER_UP, IFF_UP, NTF_EXT_LEARNED, NTF_MASTER, NTF_ROUTER, NTF_SELF,
  NUD_DELAY, NUD_FAILED, NUD_INCOMPLETE, NUD_NOARP, NUD_NONE, NUD_PERMANENT, NUD_PROBE, NUD_REACHABLE, NUD_STALE,
  RT_SCOPE_HOST, RT_SCOPE_LINK, RT_SCOPE_NOWHERE, RT_SCOPE_SITE, RT_SCOPE_UNIVERSE, RT_TABLE_LOCAL, RT_TABLE_MAIN,
  RT_TABLE_UNSPEC, RTN_BLACKHOLE, RTN_LOCAL, RTN_PROHIBIT, RTN_UNICAST, RTN_UNREACHABLE, RTPROT_BOOT, RTPROT_KERNEL,
  RTPROT_STATIC, RTPROT_UNSPEC, type OperState,
} from "./constants";
