// The agent's subnet file, in flannel's format so that either agent can feed either plugin during a migration.
// flannel's WriteSubnetFile writes, for an IPv4, IPv6 or dual-stack network:
//
//   FLANNEL_NETWORK=10.244.0.0/16            the cluster network; newer flannel writes a comma-separated list
//   FLANNEL_SUBNET=10.244.1.1/24             this node's subnet, written as its first host address (the
//                                            bridge's gateway address) with the subnet's prefix length
//   FLANNEL_IPV6_NETWORK=fd00:10:244::/56    the same two for IPv6, when enabled
//   FLANNEL_IPV6_SUBNET=fd00:10:244:1::1/64
//   FLANNEL_MTU=1450
//   FLANNEL_IPMASQ=true                      whether the agent masquerades (weft's always does)
//
// weft's agent adds, when it runs tc programs on the pods' veths (flannel's plugin ignores them): in eBPF datapath
// mode, and in kernel mode when it enforces NetworkPolicy (the same programs, forwarding left to the kernel):
//
//   WEFT_DATAPATH=ebpf                       the mode (ebpf or kernel); either way, attach the programs to each
//                                            pod's host veth (cni/fast-path.ts)
//   WEFT_BPF_DIR=/sys/fs/bpf/weft            where the agent pinned the programs and maps
//   WEFT_ENDPOINTS_DIR=/run/weft/endpoints   where the plugin records endpoints for the agent
//   WEFT_TC_ATTACH=clsact                    how to attach them: tcx links or clsact filters (native/bpf/attach.ts);
//                                            absent (an older agent): tcx
//
// As in flannel's CNI plugin, a family's network and subnet come as a pair, one family at least is present, and
// FLANNEL_MTU is required. Unknown keys, blank lines and # comments are ignored; anything else that is not
// KEY=VALUE is an error naming the line.

import { cidrInside, firstHost, networkAddress, parseCidr, type Cidr, type IpFamily } from "../native/addresses";
import type { FastPathConfig } from "./fast-path";
import { CniError, ErrorCode } from "./spec/errors";

export const DEFAULT_SUBNET_FILE = "/run/weft/subnet.env";

export interface SubnetFamily {
  /** The cluster network(s) of this family, network addresses: ["10.244.0.0/16"]. */
  networks: string[];
  /** This node's subnet, network address: "10.244.1.0/24". */
  subnet: string;
  /** The bridge's address in that subnet, as the file gives it: "10.244.1.1". */
  gateway: string;
}

export interface SubnetFile {
  ipv4?: SubnetFamily;
  ipv6?: SubnetFamily;
  mtu: number;
  /** FLANNEL_IPMASQ, when present. weft's plugin does not act on it: the agent owns masquerading. */
  ipMasq?: boolean;
  /** WEFT_DATAPATH with its two directories (the eBPF datapath's pins and endpoint records) and WEFT_TC_ATTACH. */
  fastPath?: FastPathConfig;
}

const KEYS = {
  4: { network: "FLANNEL_NETWORK", subnet: "FLANNEL_SUBNET" },
  6: { network: "FLANNEL_IPV6_NETWORK", subnet: "FLANNEL_IPV6_SUBNET" },
} as const;

const MTU_MIN = 68;
const MTU_MAX = 65535;

/** Parses the subnet file's text; a malformed file is a CniError 7 naming the file and the line. */
export function parseSubnetFile(text: string, options: { path?: string } = {}): SubnetFile {
  const where = `Invalid subnet file ${options.path ?? DEFAULT_SUBNET_FILE}`;
  const networks: Record<IpFamily, Cidr[] | undefined> = { 4: undefined, 6: undefined };
  const subnets: Record<IpFamily, Cidr | undefined> = { 4: undefined, 6: undefined };
  let mtu: number | undefined;
  let ipMasq: boolean | undefined;
  const weft: Record<string, string> = {};

  const lines = text.split(/\r?\n/);
  lines.forEach((raw, index) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const lineError = (problem: string) => new CniError(ErrorCode.InvalidNetworkConfig, `${where}: line ${index + 1}: ${problem}`);
    const match = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!match) throw lineError(`expected KEY=VALUE, got ${quote(line)}`);
    const key = match[1]!;
    const value = match[2]!.trim();
    switch (key) {
      case KEYS[4].network:
      case KEYS[6].network: {
        const family: IpFamily = key === KEYS[4].network ? 4 : 6;
        const list = value.split(",").map((part) => part.trim());
        networks[family] = list.map((part) => {
          const cidr = parseCidr(part);
          if (!cidr || cidr.family !== family) throw lineError(`${key} must be IPv${family} CIDRs separated by commas, got ${quote(value)}`);
          return cidr;
        });
        break;
      }
      case KEYS[4].subnet:
      case KEYS[6].subnet: {
        const family: IpFamily = key === KEYS[4].subnet ? 4 : 6;
        const cidr = parseCidr(value);
        if (!cidr || cidr.family !== family) throw lineError(`${key} must be an IPv${family} address with a prefix length, got ${quote(value)}`);
        subnets[family] = cidr;
        break;
      }
      case "FLANNEL_MTU": {
        const number = /^\d{1,6}$/.test(value) ? Number(value) : Number.NaN;
        if (!(number >= MTU_MIN && number <= MTU_MAX)) throw lineError(`FLANNEL_MTU must be an integer between ${MTU_MIN} and ${MTU_MAX}, got ${quote(value)}`);
        mtu = number;
        break;
      }
      case "FLANNEL_IPMASQ": {
        if (value !== "true" && value !== "false") throw lineError(`FLANNEL_IPMASQ must be true or false, got ${quote(value)}`);
        ipMasq = value === "true";
        break;
      }
      case "WEFT_DATAPATH":
      case "WEFT_BPF_DIR":
      case "WEFT_ENDPOINTS_DIR":
        if (key !== "WEFT_DATAPATH" && !value.startsWith("/")) throw lineError(`${key} must be an absolute path, got ${quote(value)}`);
        weft[key] = value;
        break;
      case "WEFT_TC_ATTACH":
        if (value !== "tcx" && value !== "clsact") throw lineError(`WEFT_TC_ATTACH must be tcx or clsact, got ${quote(value)}`);
        weft[key] = value;
        break;
      default:
        break;
    }
  });

  const result: Partial<Record<"ipv4" | "ipv6", SubnetFamily>> = {};
  for (const family of [4, 6] as const) {
    const keys = KEYS[family];
    const familyNetworks = networks[family];
    const subnet = subnets[family];
    if (familyNetworks === undefined && subnet === undefined) continue;
    if (familyNetworks === undefined) throw new CniError(ErrorCode.InvalidNetworkConfig, `${where}: ${keys.subnet} is set but ${keys.network} is missing`);
    if (subnet === undefined) throw new CniError(ErrorCode.InvalidNetworkConfig, `${where}: ${keys.network} is set but ${keys.subnet} is missing`);
    if (!familyNetworks.some((network) => cidrInside(subnet, network))) {
      throw new CniError(
        ErrorCode.InvalidNetworkConfig,
        `${where}: ${keys.subnet} ${subnet.network} is not inside ${keys.network} ${familyNetworks.map((network) => network.network).join(",")}`,
      );
    }
    // flannel writes the first host address; a file that gives the network address itself still means "the
    // first host is the gateway", which is also host-local's default.
    const gateway = subnet.address === networkAddress(subnet) ? undefined : subnet.address;
    result[family === 4 ? "ipv4" : "ipv6"] = {
      networks: familyNetworks.map((network) => network.network),
      subnet: subnet.network,
      gateway: gateway ?? firstHost(subnet),
    };
  }
  if (!result.ipv4 && !result.ipv6) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, `${where}: neither ${KEYS[4].subnet} nor ${KEYS[6].subnet} is set`);
  }
  if (mtu === undefined) throw new CniError(ErrorCode.InvalidNetworkConfig, `${where}: FLANNEL_MTU is missing`);

  const parsed: SubnetFile = { mtu };
  if (result.ipv4) parsed.ipv4 = result.ipv4;
  if (result.ipv6) parsed.ipv6 = result.ipv6;
  if (ipMasq !== undefined) parsed.ipMasq = ipMasq;
  if ((weft.WEFT_DATAPATH === "ebpf" || weft.WEFT_DATAPATH === "kernel") && weft.WEFT_BPF_DIR !== undefined && weft.WEFT_ENDPOINTS_DIR !== undefined) {
    parsed.fastPath = { bpfDir: weft.WEFT_BPF_DIR, endpointsDir: weft.WEFT_ENDPOINTS_DIR };
    if (weft.WEFT_TC_ATTACH === "clsact") parsed.fastPath.tcAttach = "clsact";
  }
  return parsed;
}

function quote(text: string): string {
  const shown = text.length > 64 ? `${text.slice(0, 61)}...` : text;
  return JSON.stringify(shown);
}
