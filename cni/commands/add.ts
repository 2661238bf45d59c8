// ADD: give the container an interface on the node's bridge and an address from the node's range.
// Reads top to bottom like the script it is; after each side effect an undo step is pushed, and any failure
// runs them newest first, so a failed ADD leaves no link, no address and no reservation behind (the bridge too,
// when this ADD created it and no other pod has joined it).
import { closeSync } from "node:fs";
import {
  addAddress,
  createVeth,
  deleteLink,
  getLink,
  getLinkByIndex,
  NetlinkSocket,
  replaceRoute,
  setBridgePortHairpin,
  setLink,
  type Link,
} from "../../native/netlink";
import { isErrno } from "../../native/errors";
import { WEFT_ROUTE_PROTOCOL } from "../../native/marks";
import { openCurrentNetns, withNetns } from "../../native/netns";
import { writeSysctl } from "../../native/sysctl";
import { ensureBridge, findBridge, removeBridgeIfUnused, withBridgeLock } from "../bridge";
import { attachEndpoint, detachEndpoint } from "../fast-path";
import { parseNetConf } from "../config";
import { requestedIpsFromArgs, type CniEnv } from "../env";
import { hostVethAlias, hostVethName, isLeftoverOf } from "../host-veth";
import { allocate, release, type Allocation } from "../ipam";
import { ipamCall, resolve, type Network } from "../network";
import { openPodNetns } from "../pod-netns";
import { podRoutes, type PodRoute } from "../pod-interface";
import { CniError, ErrorCode } from "../spec/errors";
import { convertResult, type CniResult } from "../spec/result";
import { UndoStack } from "../undo";

export function runAdd(env: CniEnv, stdin: Buffer): unknown {
  const conf = parseNetConf(stdin);
  const network = resolve(conf);
  const podNetnsFd = openPodNetns(env.netns);
  const hostNetnsFd = openCurrentNetns();
  const host = NetlinkSocket.open();
  const pod = withNetns(podNetnsFd, () => NetlinkSocket.open());
  const undo = new UndoStack();
  try {
    if (getLink(pod, env.ifname)) {
      throw new CniError(ErrorCode.InterfaceExists, `Cannot add ${env.ifname}: an interface of that name already exists in ${env.netns}`);
    }
    findBridge(host, conf.bridge); // refuse a bridge name taken by another kind of link before touching anything

    const allocations = ipamCall(() =>
      allocate(network.store, {
        id: env.containerId,
        ifname: env.ifname,
        network: conf.name,
        rangeSets: network.ipam.rangeSets,
        requestedIPs: [...requestedIpsFromArgs(env), ...conf.requestedIps],
      }),
    );
    undo.push("release IPs", () => release(network.store, { id: env.containerId, ifname: env.ifname }));

    // Under the bridge's shared lock until our port is on it: a failed ADD that created the bridge removes it
    // only while no ADD is between finding the bridge and joining it (see bridge.ts).
    const { bridge, hostVeth } = withBridgeLock(conf.bridge, "shared", () => {
      const { bridge, created } = ensureBridge(host, {
        name: conf.bridge,
        mtu: network.mtu,
        gatewayCidrs: conf.isGateway || conf.isDefaultGateway ? allocations.map(gatewayCidr) : [],
      });
      if (created) undo.push(`remove bridge ${conf.bridge}, created by this ADD`, () => removeBridgeIfUnused(host, bridge));
      const hostVeth = createVethPair(host, pod, { env, network, hostNetnsFd, undo });
      setLink(host, hostVeth.index, { masterIndex: bridge.index, up: true });
      return { bridge, hostVeth };
    });
    if (conf.isGateway || conf.isDefaultGateway) enableForwarding(allocations);
    if (conf.hairpinMode) setBridgePortHairpin(host, hostVeth.index, true);

    const podLink = configurePodInterface(pod, podNetnsFd, { env, allocations });
    const routes = podRoutes(network, allocations);
    for (const route of routes) addPodRoute(pod, podLink.index, route);

    // Read the bridge again: another ADD may have created it (the MAC is pinned at creation, see bridge.ts).
    const attachedBridge = getLinkByIndex(host, bridge.index) ?? bridge;
    if (network.fastPath) {
      const fastPath = network.fastPath;
      const outcome = attachEndpoint(fastPath, {
        containerId: env.containerId, ifname: env.ifname, hostVeth: hostVeth.name, ifindex: hostVeth.index, mac: podLink.mac,
        gatewayMac: attachedBridge.mac, ips: allocations.map((allocation) => allocation.address.split("/")[0]!),
      });
      undo.push("take the pod off the eBPF fast path", () => detachEndpoint(fastPath, hostVeth.name));
      // The kernel path always works: a pod that could not get the fast path is still connected.
      if (!outcome.attached) process.stderr.write(`weft: ${env.containerId}/${env.ifname} takes the kernel path: ${outcome.reason}\n`);
    }
    const result = buildResult(conf.prevResult, { env, network, bridge: attachedBridge, hostVeth, podLink, allocations, routes });
    return convertResult(result, conf.cniVersion);
  } catch (error) {
    const failedUndo = undo.run();
    if (failedUndo.length > 0 && error instanceof Error) {
      throw new CniError(error instanceof CniError ? error.code : ErrorCode.Internal, error.message, {
        details: `rollback incomplete: ${failedUndo.join("; ")}`,
        cause: error,
      });
    }
    throw error;
  } finally {
    pod.close();
    host.close();
    closeSync(hostNetnsFd);
    closeSync(podNetnsFd);
  }
}

function gatewayCidr(allocation: Allocation): string {
  return `${allocation.gateway}/${allocation.address.split("/")[1]}`;
}

function enableForwarding(allocations: readonly Allocation[]): void {
  for (const allocation of allocations) {
    if (allocation.gateway.includes(":")) writeSysctl("net/ipv6/conf/all/forwarding", "1");
    else writeSysctl("net/ipv4/ip_forward", "1");
  }
}

/**
 * One request inside the pod's netns creates both ends, the host end placed straight in the host netns (as the
 * reference bridge plugin does; creating it in the pod and moving it costs the kernel ~18 ms). The host name is
 * derived from the attachment, and the alias marking it as weft's follows at once. A kill between the two
 * leaves an unmarked veth whose name still says whose it is: DEL, GC and a retried ADD recognise it by that
 * name (see host-veth.ts). Anything else of that name is refused, never deleted.
 */
function createVethPair(
  host: NetlinkSocket,
  pod: NetlinkSocket,
  { env, network, hostNetnsFd, undo }: { env: CniEnv; network: Network; hostNetnsFd: number; undo: UndoStack },
): Link {
  const hostName = hostVethName(env.containerId, env.ifname);
  const create = () =>
    createVeth(pod, { name: env.ifname, peerName: hostName, peerNetnsFd: hostNetnsFd, mtu: network.mtu, peerMtu: network.mtu });
  try {
    create();
  } catch (error) {
    if (!isErrno(error, "EEXIST")) throw error;
    const existing = getLink(host, hostName);
    if (!existing || !isLeftoverOf(existing, env.containerId, env.ifname)) {
      throw new CniError(ErrorCode.KernelFailure, `Cannot create host veth ${hostName}: a link of that name belongs to ${existing?.alias ?? "someone else"}`, {
        cause: error,
      });
    }
    deleteLink(host, hostName);
    create();
  }
  undo.push(`delete ${env.ifname} in ${env.netns}`, () => deleteLink(pod, env.ifname));
  const hostVeth = getLink(host, hostName);
  if (!hostVeth) throw new CniError(ErrorCode.KernelFailure, `Cannot find host veth ${hostName} after creating it`);
  setLink(host, hostVeth.index, { alias: hostVethAlias(env.containerId, env.ifname) });
  return hostVeth;
}

function configurePodInterface(
  pod: NetlinkSocket,
  podNetnsFd: number,
  { env, allocations }: { env: CniEnv; allocations: readonly Allocation[] },
): Link {
  const link = getLink(pod, env.ifname);
  if (!link) throw new CniError(ErrorCode.KernelFailure, `Cannot find ${env.ifname} in ${env.netns} after creating it`);
  // Announce the new address at once, so neighbours' stale ARP entries for a reused IP are replaced.
  withNetns(podNetnsFd, () => writeSysctl(`net/ipv4/conf/${env.ifname}/arp_notify`, "1"));
  for (const allocation of allocations) {
    addAddress(pod, link.index, allocation.address, { noDad: true });
  }
  setLink(pod, link.index, { up: true });
  return link;
}

function addPodRoute(pod: NetlinkSocket, index: number, route: PodRoute): void {
  try {
    replaceRoute(pod, {
      family: route.family,
      dst: route.dst,
      gateway: route.gw,
      index,
      protocol: WEFT_ROUTE_PROTOCOL,
    });
  } catch (error) {
    throw new CniError(ErrorCode.KernelFailure, `Cannot add route ${route.dst}${route.gw ? ` via ${route.gw}` : ""} in the pod: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

interface Attachment {
  env: CniEnv;
  network: Network;
  bridge: Link;
  hostVeth: Link;
  podLink: Link;
  allocations: readonly Allocation[];
  routes: readonly PodRoute[];
}

/** Our interfaces and IPs, appended to a chained prevResult when there is one (indexes shifted accordingly). */
function buildResult(prev: CniResult | undefined, a: Attachment): CniResult {
  const base = prev?.interfaces.length ?? 0;
  const mtu = a.network.mtu;
  const withMtu = <T extends object>(o: T): T => (mtu === undefined ? o : { ...o, mtu });
  return {
    cniVersion: a.network.conf.cniVersion,
    interfaces: [
      ...(prev?.interfaces ?? []),
      withMtu({ name: a.bridge.name, mac: a.bridge.mac }),
      withMtu({ name: a.hostVeth.name, mac: a.hostVeth.mac }),
      withMtu({ name: a.podLink.name, mac: a.podLink.mac, sandbox: a.env.netns }),
    ],
    ips: [
      ...(prev?.ips ?? []),
      ...a.allocations.map((allocation) => ({ address: allocation.address, gateway: allocation.gateway, interface: base + 2 })),
    ],
    routes: [...(prev?.routes ?? []), ...a.routes.map(({ dst, gw }) => (gw ? { dst, gw } : { dst }))],
    dns: a.network.conf.dns ?? prev?.dns ?? {},
  };
}
