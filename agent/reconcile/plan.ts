// plan(desired, observed) → ops: pure, and minimal. Nothing when the kernel already matches; otherwise exactly
// the objects that differ (replace semantics: a changed object is replaced, never deleted and added), then the
// removal of every weft-owned object nothing asks for — departed nodes' routes, neighbours and FDB entries,
// an FDB entry whose MAC changed, stale `weft.*` links. At start-up the same plan, with everything the previous
// run left observed, is the garbage collection of stale state.
import { RTN_UNICAST } from "../../native/netlink";
import { WEFT_ROUTE_PROTOCOL } from "../../native/marks";
import {
  sortOps, type DesiredState, type ObservedLink, type ObservedState, type Op, type VtepSpec,
} from "./state";

export function plan(desired: DesiredState, observed: ObservedState): Op[] {
  const ops: Op[] = [];
  const vtep = desired.vtep;
  const existing = vtep ? observed.vteps.find((link) => link.name === vtep.name) : undefined;

  // The local device. A new or recreated VTEP has none of the old one's neighbours, FDB entries and routes.
  let fresh = false;
  // Changing a device's MAC flushes its neighbour table, permanent entries included (neigh_changeaddr).
  let neighboursFlushed = false;
  if (vtep) {
    let current: Pick<ObservedLink, "mtu" | "mac" | "up" | "addresses">;
    if (!existing) {
      ops.push({ kind: "create-vtep", spec: vtep });
      current = { mtu: vtep.mtu, mac: vtep.mac, up: false, addresses: [] };
      fresh = true;
    } else if (!sameTunnel(existing, vtep)) {
      ops.push({ kind: "recreate-vtep", spec: vtep });
      current = { mtu: vtep.mtu, mac: vtep.mac, up: false, addresses: [] };
      fresh = true;
    } else {
      current = existing;
    }
    const changes: { mtu?: number; up?: boolean; mac?: string } = {};
    if (current.mtu !== vtep.mtu) changes.mtu = vtep.mtu;
    if (current.mac !== vtep.mac) {
      changes.mac = vtep.mac;
      neighboursFlushed = true;
    }
    if (!current.up) changes.up = true;
    if (Object.keys(changes).length > 0) ops.push({ kind: "set-link", name: vtep.name, changes });
    for (const cidr of vtep.addresses) {
      if (!current.addresses.includes(cidr)) ops.push({ kind: "add-address", device: vtep.name, cidr });
    }
    for (const cidr of current.addresses) {
      if (!vtep.addresses.includes(cidr)) ops.push({ kind: "delete-address", device: vtep.name, cidr });
    }
  }
  if (desired.bridge && observed.bridge && observed.bridge.mtu !== desired.bridge.mtu) {
    ops.push({ kind: "set-link", name: desired.bridge.name, changes: { mtu: desired.bridge.mtu } });
  }

  // Neighbours and FDB entries: only those of the desired VTEP are compared; a stale link takes its own along.
  const vtepIndex = existing && !fresh ? existing.index : undefined;
  const vtepDevice = vtep?.name ?? "";
  const observedNeighbours = neighboursFlushed ? [] : observed.neighbours.filter((n) => n.index === vtepIndex);
  // Lookups by key (Map/Set), not by scanning: a plan over 5,000 nodes stays linear.
  const observedNeighbourByIp = new Map(observedNeighbours.map((n) => [n.ip, n]));
  const desiredNeighbourIps = new Set(desired.neighbours.map((d) => d.ip));
  for (const neighbour of desired.neighbours) {
    const found = observedNeighbourByIp.get(neighbour.ip);
    if (found?.mac !== neighbour.mac) ops.push({ kind: "replace-neighbour", neighbour });
  }
  for (const n of observedNeighbours) {
    if (!desiredNeighbourIps.has(n.ip)) {
      ops.push(n.mac === undefined ? { kind: "delete-neighbour", device: vtepDevice, ip: n.ip } : { kind: "delete-neighbour", device: vtepDevice, ip: n.ip, mac: n.mac });
    }
  }

  const observedFdb = observed.fdb.filter((e) => e.index === vtepIndex);
  const fdbKey = (mac: string, dst: string | undefined) => `${mac}|${dst ?? ""}`;
  const observedFdbKeys = new Set(observedFdb.map((e) => fdbKey(e.mac, e.dst)));
  const desiredFdbKeys = new Set(desired.fdb.map((d) => fdbKey(d.mac, d.dst)));
  for (const fdb of desired.fdb) {
    if (!observedFdbKeys.has(fdbKey(fdb.mac, fdb.dst))) ops.push({ kind: "replace-fdb", fdb });
  }
  for (const e of observedFdb) {
    // An entry whose MAC no node has any more (a departed node, or a node whose VTEP MAC changed), or a second
    // destination for a MAC that points elsewhere now.
    if (e.dst !== undefined && !desiredFdbKeys.has(fdbKey(e.mac, e.dst))) {
      ops.push({ kind: "delete-fdb", device: vtepDevice, mac: e.mac, dst: e.dst });
    }
  }

  // Routes: ours only (the protocol), in the main table; keyed by destination like the kernel's replace.
  const names = new Map(Object.entries(observed.linkIndexes).map(([name, index]) => [index, name]));
  const observedRoutes = observed.routes.filter(
    (r) => r.protocol === WEFT_ROUTE_PROTOCOL && !(fresh && existing && r.index === existing.index),
  );
  const routeKey = (family: number, dst: string) => `${family}|${dst}`;
  const observedRouteByKey = new Map(observedRoutes.map((r) => [routeKey(r.family, r.dst), r]));
  const desiredRouteKeys = new Set(desired.routes.map((d) => routeKey(d.family, d.dst)));
  for (const route of desired.routes) {
    const found = observedRouteByKey.get(routeKey(route.family, route.dst));
    const index = route.device === vtep?.name && fresh ? undefined : observed.linkIndexes[route.device];
    const same =
      found !== undefined &&
      index !== undefined &&
      found.index === index &&
      found.gateway === route.gateway &&
      (found.onlink ?? false) === route.onlink &&
      found.type === RTN_UNICAST;
    if (!same) ops.push({ kind: "replace-route", route });
  }
  for (const r of observedRoutes) {
    if (desiredRouteKeys.has(routeKey(r.family, r.dst))) continue;
    const route: Extract<Op, { kind: "delete-route" }>["route"] = { dst: r.dst, family: r.family };
    if (r.gateway !== undefined) route.gateway = r.gateway;
    const device = r.index === undefined ? undefined : names.get(r.index);
    if (device !== undefined) route.device = device;
    ops.push({ kind: "delete-route", route });
  }

  for (const link of observed.vteps) {
    if (link.name !== vtep?.name) ops.push({ kind: "delete-link", name: link.name });
  }
  return sortOps(ops);
}

/** What cannot change on a live VXLAN device. */
function sameTunnel(link: ObservedLink, spec: VtepSpec): boolean {
  const info = link.vxlan;
  if (link.kind !== "vxlan" || info === undefined || info.external !== spec.external) return false;
  if (spec.external) return info.port === spec.port;
  return (
    info.vni === spec.vni &&
    info.port === spec.port &&
    info.local === spec.local &&
    info.underlayIndex === spec.underlayIndex &&
    !info.learning
  );
}
