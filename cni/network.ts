// From the parsed config to everything a command needs: the node's ranges (config or subnet file), validated by
// the IPAM layer, the pod routes and MTU, and the IPAM store. IPAM errors become CNI errors here, once.
import { resolveNetwork, type NetConf } from "./config";
import type { FastPathConfig } from "./fast-path";
import { DiskStore, isIpamError, parseIpamConfig, type IpamConfig, type Store } from "./ipam";
import { CniError, ErrorCode } from "./spec/errors";

export interface Network {
  conf: NetConf;
  ipam: IpamConfig;
  mtu?: number;
  store: Store;
  /** The eBPF datapath's directories, when the node's agent runs it. */
  fastPath?: FastPathConfig;
}

const IPAM_ERROR_CODES = {
  INVALID_RANGE: ErrorCode.InvalidNetworkConfig,
  INVALID_CONFIG: ErrorCode.InvalidNetworkConfig,
  RANGE_EXHAUSTED: ErrorCode.IpamExhausted,
  ADDRESS_UNAVAILABLE: ErrorCode.AddressUnavailable,
  IO: ErrorCode.IoFailure,
} as const;

/** Runs an IPAM call and turns its errors into CNI errors with the same message. */
export function ipamCall<T>(fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (isIpamError(error)) throw new CniError(IPAM_ERROR_CODES[error.code], error.message, { cause: error.cause });
    throw error;
  }
}

/** The IPAM store alone: enough for DEL and GC, which must work when the subnet file is gone. */
export function openStore(conf: NetConf): Store {
  return ipamCall(() => new DiskStore(conf.name, { dataDir: conf.ipam.dataDir }));
}

export function resolve(conf: NetConf): Network {
  const resolved = resolveNetwork(conf);
  const ipam = ipamCall(() =>
    parseIpamConfig({ type: conf.ipam.type, ranges: resolved.rangeSets, routes: resolved.routes, dataDir: conf.ipam.dataDir }),
  );
  const network: Network = { conf, ipam, store: openStore(conf) };
  if (resolved.mtu !== undefined) network.mtu = resolved.mtu;
  if (resolved.fastPath) network.fastPath = resolved.fastPath;
  return network;
}

/** DEL and GC: the eBPF datapath's directories if the subnet file is there and names them; they must work without. */
export function fastPathOf(conf: NetConf): FastPathConfig | undefined {
  try {
    return resolveNetwork(conf).fastPath;
  } catch {
    return undefined;
  }
}
