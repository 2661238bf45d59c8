// The pod side of the attachment, shared by ADD (set up) and CHECK (verify): which addresses and routes an
// interface gets from an allocation and the config.
import { ipFamily } from "../native/addresses";
import type { Allocation } from "./ipam";
import type { Network } from "./network";
import type { CniRoute } from "./spec/result";

export interface PodRoute extends CniRoute {
  family: 4 | 6;
}

const DEFAULT_DST = { 4: "0.0.0.0/0", 6: "::/0" } as const;

/** Routes the pod gets: default via the gateway (isDefaultGateway), then ipam.routes, gateway filled in per family. */
export function podRoutes(network: Network, allocations: readonly Allocation[]): PodRoute[] {
  const gatewayOf = new Map<number, string>();
  for (const allocation of allocations) {
    const family = ipFamily(allocation.gateway);
    if (family && !gatewayOf.has(family)) gatewayOf.set(family, allocation.gateway);
  }
  const routes: PodRoute[] = [];
  const seen = new Set<string>();
  const add = (dst: string, gw: string | undefined, family: 4 | 6): void => {
    if (seen.has(dst)) return;
    seen.add(dst);
    routes.push(gw ? { dst, gw, family } : { dst, family });
  };
  if (network.conf.isDefaultGateway) {
    for (const [family, gw] of gatewayOf) add(DEFAULT_DST[family as 4 | 6], gw, family as 4 | 6);
  }
  for (const route of network.ipam.routes) {
    const family = ipFamily(route.dst.split("/")[0] ?? "") || 4;
    // A route to the whole address space is a default route: host-local configs write it that way.
    add(route.dst === "0.0.0.0/0" || route.dst === "::/0" ? DEFAULT_DST[family] : route.dst, route.gw ?? gatewayOf.get(family), family);
  }
  return routes;
}
