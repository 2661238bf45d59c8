// The reconciler's vocabulary: the kernel objects a node should have (DesiredState, built by a Backend), the
// weft-owned objects it has (ObservedState, read by observe), and the operations that turn one into the other
// (Op, computed by plan and executed by apply).
//
// Ownership marks (ARCHITECTURE.md): links named `weft.*` are ours; so is every permanent neighbour and FDB entry
// on them; routes are ours when they carry WEFT_ROUTE_PROTOCOL. Nothing else is ever changed or deleted, except
// the MTU of the CNI bridge, which weft's plugin creates.
import type { IpFamily } from "../../native/addresses";
import type { FdbEntry, Link, Neighbour, RouteEntry } from "../../native/netlink";

/** The local VXLAN device, flannel's flannel.1 under weft's name. */
export interface VtepSpec {
  /** `weft.<VNI>` */
  name: string;
  vni: number;
  /** UDP destination port (8472). */
  port: number;
  /** Tunnel source: this node's public IP. */
  local: string;
  /** The underlay device the tunnel goes through. */
  underlayIndex: number;
  mtu: number;
  /** Persisted and published, so that peers' ARP and FDB entries survive a restart of the agent. */
  mac: string;
  /** The node subnets' network addresses, as /32 (and /128): the next hop peers route this node's pods to. */
  addresses: string[];
  /**
   * A collect-metadata ("external") device, for the eBPF datapath: no VNI, local address or FDB of its own; a tc
   * program gives each packet its VNI and destination. flannel's peers see the same wire either way.
   */
  external: boolean;
}

/** A permanent ARP/NDP entry on the VTEP: a remote node's VTEP address → its VTEP MAC. */
export interface DesiredNeighbour {
  node: string;
  device: string;
  ip: string;
  mac: string;
}

/** A permanent FDB entry on the VTEP: a remote VTEP MAC → the remote node's public IP. */
export interface DesiredFdb {
  node: string;
  device: string;
  mac: string;
  dst: string;
}

/** A route to a remote node's pod CIDR; always created with WEFT_ROUTE_PROTOCOL in the main table. */
export interface DesiredRoute {
  node: string;
  dst: string;
  family: IpFamily;
  gateway: string;
  /** The output device by name: the VTEP (vxlan) or the underlay (host-gw). */
  device: string;
  /** The gateway is reachable on the device whatever its addresses say (vxlan: the remote VTEP address). */
  onlink: boolean;
}

/**
 * One remote node's objects in a desired state. desiredState hands out the same object run after run while the
 * node is unchanged (PeerObjectsCache): read-only, and its identity means "this node did not change".
 */
export interface NodeObjects {
  readonly neighbours: readonly DesiredNeighbour[];
  readonly fdb: readonly DesiredFdb[];
  readonly routes: readonly DesiredRoute[];
  /** External VTEP (eBPF datapath): where each pod CIDR is tunnelled, for the node map (not kernel objects). */
  readonly tunnels?: readonly DesiredTunnel[];
}

/** A remote pod CIDR → the node to tunnel it to: an entry of the eBPF datapath's node map. */
export interface DesiredTunnel {
  node: string;
  cidr: string;
  /** The node's public IP. */
  remote: string;
  vtepMac: string;
}

export interface SkippedNode {
  name: string;
  reason: string;
}

export interface DesiredState {
  vtep?: VtepSpec;
  /** The CNI bridge's MTU, set only when the bridge exists (the plugin creates it with the first pod). */
  bridge?: { name: string; mtu: number };
  neighbours: DesiredNeighbour[];
  fdb: DesiredFdb[];
  routes: DesiredRoute[];
  /** The objects above by remote node (the programmed ones, in name order): what planChanges compares. */
  byNode: Map<string, NodeObjects>;
  /** Remote nodes (or some of their pod CIDRs) that get no objects, and why: shown in the debug state. */
  skipped: SkippedNode[];
}

export interface ObservedLink extends Link {
  /** The link's addresses as CIDRs ("10.244.1.0/32"), without IPv6 link-local ones the kernel adds itself. */
  addresses: string[];
}

export interface ObservedState {
  /** Every link named `weft.*`. */
  vteps: ObservedLink[];
  /** The CNI bridge, when it exists. */
  bridge?: Link;
  /** Name → index of every link, to compare routes' output devices. */
  linkIndexes: Record<string, number>;
  /** Permanent neighbours on `weft.*` links. */
  neighbours: Neighbour[];
  /** Permanent unicast FDB entries with a remote destination on `weft.*` links. */
  fdb: FdbEntry[];
  /** Routes of the main table carrying WEFT_ROUTE_PROTOCOL, both families. */
  routes: RouteEntry[];
}

export type Op =
  /** Deletes the VTEP and creates it again: VNI, port, local address and underlay cannot change in place. */
  | { kind: "recreate-vtep"; spec: VtepSpec }
  | { kind: "create-vtep"; spec: VtepSpec }
  | { kind: "set-link"; name: string; changes: { mtu?: number; up?: boolean; mac?: string } }
  | { kind: "add-address"; device: string; cidr: string }
  | { kind: "delete-address"; device: string; cidr: string }
  | { kind: "replace-neighbour"; neighbour: DesiredNeighbour }
  | { kind: "replace-fdb"; fdb: DesiredFdb }
  | { kind: "replace-route"; route: DesiredRoute }
  | { kind: "delete-route"; route: { dst: string; family: IpFamily; gateway?: string; device?: string } }
  | { kind: "delete-fdb"; device: string; mac: string; dst: string }
  | { kind: "delete-neighbour"; device: string; ip: string; mac?: string }
  /** A `weft.*` link that is not the desired VTEP (an old VNI, or the vxlan backend before host-gw). */
  | { kind: "delete-link"; name: string };

export type OpKind = Op["kind"];

/**
 * The order apply runs operations in. The local device comes first. Then, for remote nodes, the additions in
 * flannel's order — neighbour, FDB entry, route — because a route via the remote VTEP address that exists
 * before its neighbour entry makes the kernel ARP for that address on the VTEP, which nobody answers (learning
 * is off, and there is no FDB entry for the broadcast), and the packets queued meanwhile are dropped. Removals
 * go the other way — route, FDB, neighbour — so that no route ever points at a missing neighbour. Stale links
 * go last, after their routes were moved or removed.
 */
export const OP_ORDER: readonly OpKind[] = [
  "recreate-vtep",
  "create-vtep",
  "set-link",
  "add-address",
  "delete-address",
  "replace-neighbour",
  "replace-fdb",
  "replace-route",
  "delete-route",
  "delete-fdb",
  "delete-neighbour",
  "delete-link",
];

/** `ops` in OP_ORDER, keeping the given order within one kind. */
export function sortOps(ops: readonly Op[]): Op[] {
  // A bucket per kind: linear, and stable by construction (a cold start sorts 3 operations per node).
  const buckets = new Map<OpKind, Op[]>(OP_ORDER.map((kind) => [kind, []]));
  for (const op of ops) buckets.get(op.kind)!.push(op);
  const sorted: Op[] = [];
  for (const bucket of buckets.values()) for (const op of bucket) sorted.push(op);
  return sorted;
}

/** One line for logs and the debug state: "replace-route 10.244.2.0/24 via 10.244.2.0 dev weft.1 onlink (node-b)". */
export function describeOp(op: Op): string {
  switch (op.kind) {
    case "recreate-vtep":
    case "create-vtep": {
      const s = op.spec;
      return `${op.kind} ${s.name} vni ${s.vni} port ${s.port} local ${s.local} dev-index ${s.underlayIndex} mtu ${s.mtu} mac ${s.mac}`;
    }
    case "set-link": {
      const parts = Object.entries(op.changes).map(([key, value]) => `${key} ${String(value)}`);
      return `set-link ${op.name} ${parts.join(" ")}`;
    }
    case "add-address":
    case "delete-address":
      return `${op.kind} ${op.cidr} dev ${op.device}`;
    case "replace-neighbour":
      return `replace-neighbour ${op.neighbour.ip} lladdr ${op.neighbour.mac} dev ${op.neighbour.device} (${op.neighbour.node})`;
    case "replace-fdb":
      return `replace-fdb ${op.fdb.mac} dst ${op.fdb.dst} dev ${op.fdb.device} (${op.fdb.node})`;
    case "replace-route": {
      const r = op.route;
      return `replace-route ${r.dst} via ${r.gateway} dev ${r.device}${r.onlink ? " onlink" : ""} (${r.node})`;
    }
    case "delete-route":
      return `delete-route ${op.route.dst}${op.route.gateway ? ` via ${op.route.gateway}` : ""}${op.route.device ? ` dev ${op.route.device}` : ""}`;
    case "delete-fdb":
      return `delete-fdb ${op.mac} dst ${op.dst} dev ${op.device}`;
    case "delete-neighbour":
      return `delete-neighbour ${op.ip}${op.mac ? ` lladdr ${op.mac}` : ""} dev ${op.device}`;
    case "delete-link":
      return `delete-link ${op.name}`;
  }
}
