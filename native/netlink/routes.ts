// Routes: list, add, replace, delete. Defaults mirror `ip route`: table main, protocol boot, type unicast,
// scope universe with a gateway and link without one. weft passes its own protocol number so that it only ever
// touches its own routes (deleteRoute with a protocol deletes only a route of that protocol).
import { ipFamily, type IpFamily } from "../addresses";
import { align4, forEachAttribute, readIp } from "./attributes";
import {
  NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, RT_SCOPE_HOST, RT_SCOPE_LINK,
  RT_SCOPE_NOWHERE, RT_SCOPE_UNIVERSE, RT_TABLE_MAIN, RT_TABLE_UNSPEC, RTA_DST, RTA_GATEWAY, RTA_METRICS, RTA_OIF,
  RTA_PREFSRC, RTA_PRIORITY, RTA_TABLE, RTAX_MTU, RTM_DELROUTE, RTM_GETROUTE, RTM_NEWROUTE, RTN_LOCAL, RTN_UNICAST,
  RTN_UNSPEC, RTNH_F_ONLINK, RTPROT_BOOT,
} from "./constants";
import { keepMatching } from "./dump";
import { NetlinkInputError } from "./errors";
import { addressFamily, familyOfAddressFamily, parseCidrParts } from "./ip";
import { RTMSG } from "./messages";
import type { NetlinkSocket } from "./socket";

export interface Route {
  /** "10.0.0.0/16", "fd00::/64", a bare address (a host route), or "default" (give `family` or a gateway). */
  dst: string;
  /** Inferred from `dst` or `gateway` when omitted. */
  family?: IpFamily;
  gateway?: string;
  /** Output interface (RTA_OIF). */
  index?: number;
  /** RTPROT_*; weft uses its own number. Default RTPROT_BOOT when adding; when deleting, any. */
  protocol?: number;
  /** RT_SCOPE_*; default universe with a gateway, link without. */
  scope?: number;
  /** The gateway is on the link even if no address says so (RTNH_F_ONLINK). */
  onlink?: boolean;
  /** Default RT_TABLE_MAIN (254). */
  table?: number;
  /** Preferred source address (RTA_PREFSRC, `ip route … src`). */
  src?: string;
  mtu?: number;
  /** RTN_*; default RTN_UNICAST. */
  type?: number;
  /** RTA_PRIORITY (`metric`). */
  metric?: number;
}

/** A route as the kernel reports it. */
export interface RouteEntry extends Route {
  family: IpFamily;
  table: number;
  protocol: number;
  scope: number;
  type: number;
}

export interface ListRoutesOptions {
  family?: IpFamily;
  /** Default RT_TABLE_MAIN; 0 (RT_TABLE_UNSPEC) for every table. */
  table?: number;
  protocol?: number;
  /** Only routes through this output interface. */
  index?: number;
}

export function listRoutes(sock: NetlinkSocket, options: ListRoutesOptions = {}): RouteEntry[] {
  const table = options.table ?? RT_TABLE_MAIN;
  const protocol = options.protocol ?? 0;
  const m = sock.message(RTM_GETROUTE).rtmsg({
    family: addressFamily(options.family),
    table: table < 256 ? table : RT_TABLE_UNSPEC,
    protocol,
  });
  if (table >= 256) m.u32(RTA_TABLE, table);
  // Kernels with strict checking filter by table and protocol already; older ones do not.
  return keepMatching(sock.dump(m, decodeRoute, "RTM_GETROUTE dump"), options).filter(
    (r) => (table === RT_TABLE_UNSPEC || r.table === table) && (protocol === 0 || r.protocol === protocol),
  );
}

/** Adds a route; EEXIST if one with the same destination, table, metric (and tos) exists. */
export function addRoute(sock: NetlinkSocket, route: Route): void {
  modifyRoute(sock, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, route);
}

/** Adds the route or replaces the one with the same destination, table and metric (`ip route replace`). */
export function replaceRoute(sock: NetlinkSocket, route: Route): void {
  modifyRoute(sock, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, route);
}

/**
 * Deletes the first route matching `route`'s destination and table, and each of protocol, gateway, index, type,
 * scope and metric that is given (ESRCH when none matches).
 */
export function deleteRoute(sock: NetlinkSocket, route: Route): void {
  modifyRoute(sock, RTM_DELROUTE, 0, route);
}

function modifyRoute(sock: NetlinkSocket, type: number, flags: number, route: Route): void {
  const deleting = type === RTM_DELROUTE;
  const family = routeFamily(route);
  const dst = route.dst === "default" ? undefined : parseCidrParts(route.dst);
  if (dst && dst.family !== family) {
    throw new NetlinkInputError(`Cannot use route ${route.dst}: not an IPv${family} destination`, route.dst);
  }
  const table = route.table ?? RT_TABLE_MAIN;
  const routeType = route.type ?? (deleting ? RTN_UNSPEC : RTN_UNICAST);
  const m = sock.message(type, flags).rtmsg({
    family: addressFamily(family),
    dstLength: dst?.prefixLength ?? 0,
    table: table < 256 ? table : RT_TABLE_UNSPEC,
    protocol: route.protocol ?? (deleting ? 0 : RTPROT_BOOT),
    scope: route.scope ?? defaultScope(deleting, routeType, route.gateway),
    type: routeType,
    flags: route.onlink ? RTNH_F_ONLINK : 0,
  });
  m.u32(RTA_TABLE, table);
  if (dst) m.ip(RTA_DST, dst.address, family);
  if (route.gateway !== undefined) m.ip(RTA_GATEWAY, route.gateway, family);
  if (route.index !== undefined) m.u32(RTA_OIF, route.index);
  if (route.src !== undefined) m.ip(RTA_PREFSRC, route.src, family);
  if (route.metric !== undefined) m.u32(RTA_PRIORITY, route.metric);
  if (route.mtu !== undefined) {
    const metrics = m.begin(RTA_METRICS);
    m.u32(RTAX_MTU, route.mtu).end(metrics);
  }
  sock.request(m, `${deleting ? "RTM_DELROUTE" : "RTM_NEWROUTE"} ${route.dst}`);
}

function defaultScope(deleting: boolean, type: number, gateway: string | undefined): number {
  if (deleting) return RT_SCOPE_NOWHERE; // matches any scope
  if (type === RTN_LOCAL) return RT_SCOPE_HOST;
  if (type === RTN_UNICAST && gateway === undefined) return RT_SCOPE_LINK;
  return RT_SCOPE_UNIVERSE;
}

function routeFamily(route: Route): IpFamily {
  if (route.family) return route.family;
  const fromDst = route.dst === "default" ? 0 : ipFamily(route.dst.split("/", 1)[0]!);
  const family = fromDst || (route.gateway !== undefined ? ipFamily(route.gateway) : 0);
  if (!family) throw new NetlinkInputError(`Cannot tell the family of route ${route.dst}: give family or a gateway`, route.dst);
  return family;
}

export function decodeRoute(b: Buffer, offset: number, end: number, type: number): RouteEntry | undefined {
  if (type !== RTM_NEWROUTE) return undefined;
  const family = familyOfAddressFamily(b[offset + RTMSG.family]);
  if (family === undefined) return undefined;
  const dstLength = b[offset + RTMSG.dstLength]!;
  const route: RouteEntry = {
    dst: "default",
    family,
    table: b[offset + RTMSG.table]!,
    protocol: b[offset + RTMSG.protocol]!,
    scope: b[offset + RTMSG.scope]!,
    type: b[offset + RTMSG.type]!,
  };
  if (b.readUInt32LE(offset + RTMSG.flags) & RTNH_F_ONLINK) route.onlink = true;
  forEachAttribute(b, offset + align4(RTMSG.length), end, (attribute, at, length) => {
    switch (attribute) {
      case RTA_DST:
        route.dst = `${readIp(b, at, length)}/${dstLength}`;
        break;
      case RTA_GATEWAY:
        route.gateway = readIp(b, at, length);
        break;
      case RTA_OIF:
        route.index = b.readUInt32LE(at);
        break;
      case RTA_PREFSRC:
        route.src = readIp(b, at, length);
        break;
      case RTA_PRIORITY:
        route.metric = b.readUInt32LE(at);
        break;
      case RTA_TABLE:
        route.table = b.readUInt32LE(at);
        break;
      case RTA_METRICS:
        forEachAttribute(b, at, at + length, (metric, value) => {
          if (metric === RTAX_MTU) route.mtu = b.readUInt32LE(value);
        });
        break;
    }
  });
  return route;
}
