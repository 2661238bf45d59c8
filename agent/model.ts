// The agent's shared vocabulary. Node sources (kube, etcd, file) turn their records into `PeerNode` at the edge;
// backends and the reconciler never see annotations, etcd keys or file formats.

/** A node of the cluster as the datapath needs it. Validated by the source before it gets here. */
export interface PeerNode {
  name: string;
  /** The node's pod subnets: one IPv4 and/or one IPv6 CIDR, network addresses ("10.244.3.0/24"). */
  podCidrs: string[];
  /** The underlay address other nodes reach it at (VXLAN remote, host-gw next hop). */
  publicIp: string;
  /** The node's VTEP MAC (vxlan backend); absent until its agent has published it. */
  vtepMac?: string;
}

/** What this node's agent publishes about itself through the source. */
export interface LocalAnnouncement {
  name: string;
  publicIp: string;
  vtepMac?: string;
  backendType: BackendType;
}

/**
 * The node list at one moment. `synced` is false until the first complete list; nothing is programmed before.
 * Sources hand out frozen snapshots, shared until the list changes.
 */
export interface NodeSnapshot {
  readonly synced: boolean;
  readonly nodes: readonly Readonly<PeerNode>[];
  /** Nodes the source rejected (bad data: pod CIDR, address, MAC), with the reason: shown in the debug state. */
  readonly rejected: readonly { readonly name: string; readonly reason: string }[];
  /** The last error talking to the source, if it is failing now; state is never removed because of it. */
  readonly error?: string;
}

/**
 * A source of nodes (STYLE.md: the consumer declares the interface). `start` begins list+watch and calls
 * `onChange` after every change of the snapshot; `claimLocal` finds this node in the source (its Node, its file
 * entry; etcd: nothing to find), asks `announce` for the announcement given what the source knows of the node
 * (`LocalHints`), publishes it, and returns this node with its pod CIDRs (read from its Node or file entry, or
 * allocated as an etcd lease); `close` stops everything and is safe to call twice. `keeper`, on the sources that
 * publish this node's record in the cluster (kube, etcd), keeps that record right for as long as the agent runs.
 */
export interface NodeSource {
  start(onChange: (snapshot: NodeSnapshot) => void, signal?: AbortSignal): Promise<void>;
  claimLocal(name: string, announce: (hints: LocalHints) => LocalAnnouncement, signal?: AbortSignal): Promise<PeerNode>;
  snapshot(): NodeSnapshot;
  close(): Promise<void>;
  readonly keeper?: LocalRecordKeeper;
}

/** What a source knows of this node before it is claimed. */
export interface LocalHints {
  /** The address the cluster knows this node by (kube: its InternalIP; file: its entry's publicIp): the default public IP. */
  address?: string;
  /** A VTEP MAC the source dictates (file: its entry's, given or derived); the node must use it, and follow it. */
  vtepMac?: string;
}

/**
 * Keeps this node's own record in the cluster as claimed, from the claim until close: put back when it is
 * deleted, re-created or changed by hand (kube: the Node's annotations and NetworkUnavailable condition; etcd: the
 * lease key), never in a loop with another writer (agent/sources/repair-guard.ts).
 */
export interface LocalRecordKeeper {
  /** The agent's readiness, on every change. While ready, the cluster is told so (kube: NetworkUnavailable=False). */
  setReady(ready: boolean): void;
  status(): LocalRecordStatus;
}

export interface LocalRecordStatus {
  /** What is wrong with this node's record now (its Node gone, its subnet taken, another writer): not ready. */
  problem?: string;
  /** Repairs since start, by what was repaired: "annotations", "condition", "lease". */
  repairs: Record<string, number>;
  lastRepair?: { at: string; what: string; detail: string };
}

export type BackendType = "vxlan" | "host-gw";

/** net-conf.json, flannel's shape plus weft's NonMasqueradeCIDRs. Validated by agent/network-config.ts. */
export interface NetworkConfig {
  network: string;
  ipv6Network?: string;
  subnetLen: number;
  ipv6SubnetLen?: number;
  backend: { type: BackendType; vni: number; port: number; mtu?: number };
  nonMasqueradeCidrs: string[];
}
