// The whole desired state of this node: the backend's local device and its objects for every remote node, after
// the checks that concern the node list rather than one node: the local node itself, duplicate public IPs, pod
// CIDRs that overlap this node's or another node's, VTEP MACs used twice. In each conflict the node whose name
// sorts first wins, so that every agent of the cluster resolves it the same way.
import type { PeerNode } from "../model";
import { DEFAULT_BRIDGE } from "../../cni/config";
import { podCidrsOf } from "../pod-cidr";
import { DisjointRanges } from "../ranges";
import type { Backend, LocalNode } from "./backend";
import type { DesiredState } from "./state";

export { DEFAULT_BRIDGE };

export interface DesiredStateOptions {
  /** The CNI bridge whose MTU to keep at the backend's; default "cni0". */
  bridge?: string;
}

export function desiredState(backend: Backend, local: LocalNode, peers: readonly PeerNode[], options: DesiredStateOptions = {}): DesiredState {
  const vtep = backend.localDevice(local);
  const state: DesiredState = {
    bridge: { name: options.bridge ?? DEFAULT_BRIDGE, mtu: backend.mtu(local) },
    neighbours: [],
    fdb: [],
    routes: [],
    skipped: [],
  };
  if (vtep) state.vtep = vtep;

  const taken = new DisjointRanges();
  for (const range of podCidrsOf(local.node)) taken.add(range, local.node.name);
  const publicIps = new Map<string, string>([[local.node.publicIp, local.node.name]]);
  const macs = new Map<string, string>(vtep ? [[vtep.mac, local.node.name]] : []);

  for (const peer of [...peers].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (peer.name === local.node.name) continue;
    const skip = (reason: string) => state.skipped.push({ name: peer.name, reason });
    const ipOwner = publicIps.get(peer.publicIp);
    if (ipOwner !== undefined) {
      skip(`public IP ${peer.publicIp} is also node ${ipOwner}'s`);
      continue;
    }
    const ranges = podCidrsOf(peer);
    const overlap = ranges.map((range) => taken.overlap(range)).find((found) => found !== undefined);
    if (overlap) {
      skip(`pod CIDR ${peer.podCidrs.join(",")} overlaps node ${overlap.owner}'s ${overlap.cidr}`);
      continue;
    }
    const objects = backend.peer(local, peer);
    const macOwner = objects.fdb.map((entry) => macs.get(entry.mac)).find((owner) => owner !== undefined);
    if (macOwner !== undefined) {
      skip(`VTEP MAC ${peer.vtepMac} is also node ${macOwner}'s`);
      continue;
    }
    if (objects.skipped) skip(objects.skipped);
    if (objects.routes.length === 0) continue;
    publicIps.set(peer.publicIp, peer.name);
    for (const range of ranges) taken.add(range, peer.name);
    for (const entry of objects.fdb) macs.set(entry.mac, peer.name);
    state.neighbours.push(...objects.neighbours);
    state.fdb.push(...objects.fdb);
    state.routes.push(...objects.routes);
  }
  return state;
}

