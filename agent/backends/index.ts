// The backend named by the network config's Backend.Type.
import type { NetworkConfig } from "../model";
import { HostGwBackend } from "./host-gw";
import { VxlanBackend } from "./vxlan";

export { HostGwBackend, containsAddress, type HostGwBackendOptions } from "./host-gw";
export {
  VxlanBackend, generateVtepMac, normalizeMac, vtepName, VTEP_PREFIX, VXLAN_OVERHEAD_IPV4, VXLAN_OVERHEAD_IPV6,
  type VxlanBackendOptions,
} from "./vxlan";

export interface CreateBackendOptions {
  /** vxlan: the VTEP MAC to keep (persisted in the node's annotation or lease, or read from the existing device). */
  vtepMac?: string;
  /** vxlan: a collect-metadata VTEP, for the eBPF datapath. */
  externalVtep?: boolean;
}

export function createBackend(config: NetworkConfig, options: CreateBackendOptions = {}): VxlanBackend | HostGwBackend {
  const { type, vni, port, mtu } = config.backend;
  if (type === "host-gw") return new HostGwBackend(mtu === undefined ? {} : { mtu });
  const vxlan: ConstructorParameters<typeof VxlanBackend>[0] = { vni, port };
  if (mtu !== undefined) vxlan.mtu = mtu;
  if (options.vtepMac !== undefined) vxlan.mac = options.vtepMac;
  if (options.externalVtep) vxlan.external = true;
  return new VxlanBackend(vxlan);
}
