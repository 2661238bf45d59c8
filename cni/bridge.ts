// The node's bridge (cni0 by default): created on the first ADD, then only verified. Concurrent ADDs race to
// create it; the loser finds it existing. A link of that name that is not a bridge is an error, never touched.
// A failed ADD removes the bridge if it created it and no pod has joined it since; the bridge lock (shared while
// ADDs create or join the bridge, exclusive for that removal) keeps the removal from pulling a bridge out from
// under an ADD that is joining it.
import { closeSync, constants, openSync } from "node:fs";
import { join } from "node:path";
import { flock, LOCK_EX, LOCK_SH } from "../native/libc";
import { privateCacheDir } from "../native/koffi-loader";
import {
  addAddress,
  createBridge,
  deleteLink,
  getLink,
  getLinkByIndex,
  listAddresses,
  listLinks,
  setLink,
  type Link,
  type NetlinkSocket,
} from "../native/netlink";
import { isErrno } from "../native/errors";
import { CniError, ErrorCode } from "./spec/errors";

export interface BridgeOptions {
  name: string;
  mtu?: number;
  /** Gateway addresses with the subnet's prefix ("10.244.1.1/24"), present when the bridge is the gateway. */
  gatewayCidrs: string[];
}

/** The bridge if it exists; an error if the name is taken by a link that is not a bridge. */
export function findBridge(sock: NetlinkSocket, name: string): Link | undefined {
  const link = getLink(sock, name);
  if (link && link.kind !== "bridge") {
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      `Cannot use "${name}" as the bridge: a link of that name exists and is a ${link.kind ?? "device"}, not a bridge`,
    );
  }
  return link;
}

/** The bridge, up, with the MTU and gateway addresses asked for; `created` when this call created it. */
export function ensureBridge(sock: NetlinkSocket, options: BridgeOptions): { bridge: Link; created: boolean } {
  let bridge = findBridge(sock, options.name);
  let created = false;
  if (!bridge) {
    try {
      createBridge(sock, options.mtu === undefined ? { name: options.name } : { name: options.name, mtu: options.mtu });
      created = true;
    } catch (error) {
      if (!isErrno(error, "EEXIST")) throw error;
    }
    // Another ADD may have won the race, with a bridge or (unlikely) something else of that name.
    bridge = findBridge(sock, options.name);
    if (!bridge) throw new CniError(ErrorCode.KernelFailure, `Cannot create bridge ${options.name}: it vanished after creation`);
    // Pin its MAC, as the reference bridge plugin does ("set the bridge's MAC to itself"): a bridge whose address
    // was never set takes the lowest MAC of its ports, so a later pod with a lower one would change the gateway's
    // MAC under every pod that cached it (their routed traffic black-holed until ARP expires).
    if (created) setLink(sock, bridge.index, { mac: bridge.mac });
  }
  if (!bridge.up || (options.mtu !== undefined && bridge.mtu !== options.mtu)) {
    setLink(sock, bridge.index, options.mtu === undefined ? { up: true } : { up: true, mtu: options.mtu });
  }
  if (options.gatewayCidrs.length > 0) {
    const present = new Set(listAddresses(sock, { index: bridge.index }).map((a) => a.cidr));
    for (const cidr of options.gatewayCidrs) {
      if (present.has(cidr)) continue;
      try {
        addAddress(sock, bridge.index, cidr, { noDad: true });
      } catch (error) {
        if (!isErrno(error, "EEXIST")) throw error;
      }
    }
  }
  return { bridge, created };
}

/**
 * Runs `fn` holding the lock of bridge `name`: "shared" around creating or joining the bridge (ADDs do not wait
 * for each other), "exclusive" around removing it. One lock file per bridge name in weft's private directory,
 * whatever the netns: bridges of the same name in other namespaces only share a lock that is rarely exclusive.
 */
export function withBridgeLock<T>(name: string, mode: "shared" | "exclusive", fn: () => T): T {
  const fd = openSync(join(privateCacheDir(), `bridge-${name}.lock`), constants.O_RDONLY | constants.O_CREAT, 0o600);
  try {
    flock(fd, mode === "shared" ? LOCK_SH : LOCK_EX);
    return fn();
  } finally {
    closeSync(fd); // releases the lock
  }
}

/**
 * Undo of an ADD that created the bridge: removes it (and so its gateway addresses) unless another pod's port
 * joined it meanwhile. A bridge that existed before the ADD is left as it is, gateway addresses included: pods
 * already on it may route through them.
 */
export function removeBridgeIfUnused(sock: NetlinkSocket, bridge: Link): void {
  withBridgeLock(bridge.name, "exclusive", () => {
    const current = getLinkByIndex(sock, bridge.index);
    if (current?.name !== bridge.name || current.kind !== "bridge") return;
    if (listLinks(sock).some((link) => link.masterIndex === bridge.index)) return;
    deleteLink(sock, bridge.index);
  });
}
