// The whole desired state of this node: the backend's local device and its objects for every remote node, after
// the checks that concern the node list rather than one node: the local node itself, duplicate public IPs, pod
// CIDRs that overlap this node's or another node's, VTEP MACs used twice. In each conflict the node whose name
// sorts first wins, so that every agent of the cluster resolves it the same way.
import type { PeerNode } from "../model";
import { DEFAULT_BRIDGE } from "../../cni/config";
import { DisjointRanges, parseCidr, parseCidrs, type Cidr } from "../../native/addresses";
import type { Backend, LocalNode, PeerObjects } from "./backend";
import type { DesiredState } from "./state";

export { DEFAULT_BRIDGE };

export interface DesiredStateOptions {
  /** The CNI bridge whose MTU to keep at the backend's; default "cni0". */
  bridge?: string;
  /** Keeps each unchanged node's objects from one run to the next (the agent holds one). */
  cache?: PeerObjectsCache;
}

/**
 * Each remote node's objects, kept between runs. The sources' PeerNode records are immutable and stay the same
 * object while the node is unchanged, so the same record gets the same objects back: no work for the 4,500
 * unchanged nodes of a 5,000-node list, and planChanges tells them apart by identity. Everything is forgotten
 * when the backend or anything of this node the backends read (public IP, pod CIDRs, underlay) changes.
 */
export class PeerObjectsCache {
  #backend: Backend | undefined;
  #local = "";
  #objects = new WeakMap<object, PeerObjects>();

  /** The lookup for one run. */
  forRun(backend: Backend, local: LocalNode): (peer: PeerNode) => PeerObjects {
    const key = JSON.stringify([local.node.publicIp, local.node.podCidrs, local.underlay]);
    if (backend !== this.#backend || key !== this.#local) {
      this.#backend = backend;
      this.#local = key;
      this.#objects = new WeakMap();
    }
    const objects = this.#objects;
    return (peer) => {
      let found = objects.get(peer);
      if (found === undefined) {
        found = backend.peer(local, peer);
        objects.set(peer, found);
      }
      return found;
    };
  }
}

export function desiredState(backend: Backend, local: LocalNode, peers: readonly PeerNode[], options: DesiredStateOptions = {}): DesiredState {
  const vtep = backend.localDevice(local);
  const state: DesiredState = {
    bridge: { name: options.bridge ?? DEFAULT_BRIDGE, mtu: backend.mtu(local) },
    neighbours: [],
    fdb: [],
    routes: [],
    byNode: new Map(),
    skipped: [],
  };
  const objectsOf = options.cache?.forRun(backend, local) ?? ((peer: PeerNode) => backend.peer(local, peer));
  if (vtep) state.vtep = vtep;

  const localName = local.node.name;
  const sorted = isSortedByName(peers) ? peers : [...peers].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const localRanges = parseCidrs(local.node.podCidrs);
  const everyRange = [...localRanges];
  for (const peer of sorted) {
    if (peer.name === localName) continue;
    for (const text of peer.podCidrs) {
      const range = parseCidr(text);
      if (range) everyRange.push(range);
    }
  }
  const taken = new DisjointRanges(everyRange);
  for (const range of localRanges) taken.add(range, localName);
  const publicIps = new Map<string, string>([[local.node.publicIp, localName]]);
  const macs = new Map<string, string>(vtep ? [[vtep.mac, localName]] : []);

  for (const peer of sorted) {
    if (peer.name === localName) continue;
    const ranges = parseCidrs(peer.podCidrs);
    const objects = objectsOf(peer);
    const reason = conflictOf(peer, objects, publicIps, ranges, taken, macs);
    if (reason !== undefined) {
      state.skipped.push({ name: peer.name, reason });
      continue;
    }
    if (objects.skipped) state.skipped.push({ name: peer.name, reason: objects.skipped });
    if (objects.routes.length === 0) continue;
    publicIps.set(peer.publicIp, peer.name);
    for (const range of ranges) taken.add(range, peer.name);
    for (const entry of objects.fdb) macs.set(entry.mac, peer.name);
    state.byNode.set(peer.name, objects);
    for (const neighbour of objects.neighbours) state.neighbours.push(neighbour);
    for (const entry of objects.fdb) state.fdb.push(entry);
    for (const route of objects.routes) state.routes.push(route);
  }
  return state;
}

/** Why `peer` conflicts with a node already accepted (the local node, or one whose name sorts first). */
function conflictOf(
  peer: PeerNode, objects: PeerObjects, publicIps: Map<string, string>, ranges: readonly Cidr[], taken: DisjointRanges,
  macs: Map<string, string>,
): string | undefined {
  const ipOwner = publicIps.get(peer.publicIp);
  if (ipOwner !== undefined) return `public IP ${peer.publicIp} is also node ${ipOwner}'s`;
  const overlap = taken.firstOverlap(ranges);
  if (overlap) return `pod CIDR ${peer.podCidrs.join(",")} overlaps node ${overlap.owner}'s ${overlap.network}`;
  for (const entry of objects.fdb) {
    const macOwner = macs.get(entry.mac);
    if (macOwner !== undefined) return `VTEP MAC ${peer.vtepMac} is also node ${macOwner}'s`;
  }
  return undefined;
}

function isSortedByName(peers: readonly PeerNode[]): boolean {
  for (let i = 1; i < peers.length; i++) if (peers[i - 1]!.name > peers[i]!.name) return false;
  return true;
}
