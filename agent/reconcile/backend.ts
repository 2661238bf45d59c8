// The datapath backend as the reconciler uses it (STYLE.md: the consumer declares the interface). A backend
// turns the local node and each remote node into desired kernel objects; it never touches the kernel and never
// sees annotations, etcd keys or files: only PeerNode.
import type { BackendType, PeerNode } from "../model";
import type { DesiredFdb, DesiredNeighbour, DesiredRoute, DesiredTunnel, NodeObjects, VtepSpec } from "./state";

/** The interface this node's public IP is on. */
export interface Underlay {
  index: number;
  name: string;
  mtu: number;
  /** The networks of the interface's addresses ("192.168.1.0/24"): what host-gw can reach directly. */
  subnets: string[];
}

export interface LocalNode {
  /** This node, as the source published it: its pod CIDRs and public IP. */
  node: PeerNode;
  underlay: Underlay;
}

/** A remote node's objects. `skipped` says why some (or all) of its pod CIDRs get none. */
export interface PeerObjects extends NodeObjects {
  neighbours: DesiredNeighbour[];
  fdb: DesiredFdb[];
  routes: DesiredRoute[];
  tunnels?: DesiredTunnel[];
  skipped?: string;
}

export interface Backend {
  readonly type: BackendType;
  /** The MTU pods and the CNI bridge get (FLANNEL_MTU in the subnet file). */
  mtu(local: LocalNode): number;
  /** The local device the backend needs (vxlan: the VTEP); undefined for none (host-gw). */
  localDevice(local: LocalNode): VtepSpec | undefined;
  /** The objects that make `peer`'s pods reachable from this node. */
  peer(local: LocalNode, peer: PeerNode): PeerObjects;
}
