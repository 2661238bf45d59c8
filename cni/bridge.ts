// The node's bridge (cni0 by default): created on the first ADD, then only verified. Concurrent ADDs race to
// create it; the loser finds it existing. A link of that name that is not a bridge is an error, never touched.
import {
  addAddress,
  createBridge,
  getLink,
  listAddresses,
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

export function ensureBridge(sock: NetlinkSocket, options: BridgeOptions): Link {
  let bridge = findBridge(sock, options.name);
  if (!bridge) {
    try {
      createBridge(sock, options.mtu === undefined ? { name: options.name } : { name: options.name, mtu: options.mtu });
    } catch (error) {
      if (!isErrno(error, "EEXIST")) throw error;
    }
    // Another ADD may have won the race, with a bridge or (unlikely) something else of that name.
    bridge = findBridge(sock, options.name);
    if (!bridge) throw new CniError(ErrorCode.KernelFailure, `Cannot create bridge ${options.name}: it vanished after creation`);
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
  return bridge;
}
