// flannel's net-conf.json (the `kube-flannel-cfg` ConfigMap's `net-conf.json`, or the etcd network key), plus
// weft's `NonMasqueradeCIDRs`, parsed into the agent's NetworkConfig.
//
//   {
//     "Network": "10.244.0.0/16",          required: the IPv4 cluster network, a network address
//     "SubnetLen": 24,                     each node's subnet; default 24 (flannel: Network prefix + 2 when
//                                          the network is /22 or smaller)
//     "EnableIPv6": true,                  optional dual-stack:
//     "IPv6Network": "fd00:10:244::/56",     required with EnableIPv6
//     "IPv6SubnetLen": 64,                   default 64 (flannel: prefix + 2 when the network is /62 or smaller)
//     "Backend": { "Type": "vxlan", "VNI": 1, "Port": 8472, "MTU": 1450 },   or { "Type": "host-gw" }
//     "NonMasqueradeCIDRs": ["10.0.0.0/8"] weft's own: destinations pods reach with their own address;
//                                          default the link-local ranges 169.254.0.0/16 and fe80::/10
//   }
//
// As in flannel (Go's encoding/json), keys match case-insensitively and unknown keys are ignored (SubnetMin,
// SubnetMax, the vxlan backend's GBP, DirectRouting, … belong to flannel features weft does not have).
// Anything malformed or contradictory is a NetworkConfigError whose one-line message names the field.

import type { NetworkConfig, BackendType } from "./model";
import { cidrInside, parseCidr, type Cidr, type IpFamily } from "../native/addresses";
import { NetworkConfigError } from "./errors";

export const DEFAULT_VNI = 1;
/** flannel's and Linux's VXLAN port (IANA's is 4789). */
export const DEFAULT_VXLAN_PORT = 8472;
const MAX_VNI = 0xffffff;
export const DEFAULT_NON_MASQUERADE_CIDRS: readonly string[] = ["169.254.0.0/16", "fe80::/10"];
const BACKEND_TYPES: readonly BackendType[] = ["vxlan", "host-gw"];
const MTU_MIN = 68;
const MTU_MAX = 65535;
/** The longest node subnet: a /30 (IPv4) or /126 still holds the gateway and one pod. */
const MAX_SUBNET_LEN: Record<IpFamily, number> = { 4: 30, 6: 126 };

type Json = Record<string, unknown>;

/** Parses net-conf.json (its text or the decoded object). Throws NetworkConfigError. */
export function parseNetworkConfig(input: string | Json): NetworkConfig {
  const doc = typeof input === "string" ? decode(input) : input;
  if (!isObject(doc)) throw new NetworkConfigError("", `Invalid network config: expected a JSON object, got ${describe(doc)}`);

  if (readBoolean(doc, "EnableIPv4") === false) {
    throw invalid("EnableIPv4", "must be true or absent: weft needs an IPv4 Network (IPv6-only clusters are not supported)");
  }
  const network = readNetwork(doc, "Network", 4, true)!;
  const subnetLen = readSubnetLen(doc, "SubnetLen", network);

  const enableIpv6 = readBoolean(doc, "EnableIPv6") ?? false;
  const ipv6Network = readNetwork(doc, "IPv6Network", 6, enableIpv6);
  if (!enableIpv6 && ipv6Network) throw invalid("IPv6Network", "is set but EnableIPv6 is not true");
  if (!enableIpv6 && get(doc, "IPv6SubnetLen") !== undefined) throw invalid("IPv6SubnetLen", "is set but EnableIPv6 is not true");

  const config: NetworkConfig = {
    network: network.network,
    subnetLen,
    backend: readBackend(doc),
    nonMasqueradeCidrs: readNonMasqueradeCidrs(doc),
  };
  if (ipv6Network) {
    config.ipv6Network = ipv6Network.network;
    config.ipv6SubnetLen = readSubnetLen(doc, "IPv6SubnetLen", ipv6Network);
  }
  return config;
}

function decode(text: string): unknown {
  try {
    return JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (error) {
    throw new NetworkConfigError("", `Invalid network config: not JSON: ${(error as Error).message}`, { cause: error });
  }
}

function readNetwork(doc: Json, field: string, family: IpFamily, required: boolean): Cidr | undefined {
  const value = get(doc, field);
  if (value === undefined) {
    if (required) throw invalid(field, `is required (an IPv${family} CIDR such as ${family === 4 ? "10.244.0.0/16" : "fd00:10:244::/56"})`);
    return undefined;
  }
  const cidr = typeof value === "string" ? parseCidr(value) : undefined;
  if (!cidr || cidr.family !== family) throw invalid(field, `must be an IPv${family} CIDR, got ${describe(value)}`);
  if (`${cidr.address}/${cidr.prefixLength}` !== cidr.network) {
    throw invalid(field, `must be a network address: ${describe(value)} has host bits set (did you mean ${cidr.network}?)`);
  }
  return cidr;
}

/** flannel's default: a /24 (IPv4) or /64 (IPv6) per node, or a quarter of a network too small for that. */
function readSubnetLen(doc: Json, field: string, network: Cidr): number {
  const max = MAX_SUBNET_LEN[network.family];
  const value = get(doc, field);
  if (value === undefined || value === 0) {
    const preferred = network.family === 4 ? 24 : 64;
    const fallback = network.prefixLength + 2;
    const length = network.prefixLength < preferred - 2 ? preferred : fallback;
    if (length > max) throw invalid(field, `cannot be chosen: Network /${network.prefixLength} is too small for node subnets`);
    return length;
  }
  if (!Number.isInteger(value)) throw invalid(field, `must be an integer, got ${describe(value)}`);
  const length = value as number;
  if (length <= network.prefixLength) {
    throw invalid(field, `${length} must be longer than the network's prefix /${network.prefixLength} (${network.network})`);
  }
  if (length > max) throw invalid(field, `${length} is too long: at most ${max}`);
  return length;
}

function readBackend(doc: Json): NetworkConfig["backend"] {
  const raw = get(doc, "Backend");
  if (raw === undefined) return { type: "vxlan", vni: DEFAULT_VNI, port: DEFAULT_VXLAN_PORT };
  if (!isObject(raw)) throw invalid("Backend", `must be an object like {"Type": "vxlan"}, got ${describe(raw)}`);
  const type = get(raw, "Type") ?? "vxlan";
  if (typeof type !== "string" || !BACKEND_TYPES.includes(type as BackendType)) {
    throw invalid("Backend.Type", `must be one of ${BACKEND_TYPES.map((t) => `"${t}"`).join(", ")}, got ${describe(type)}`);
  }
  const vni = readInteger(raw, "VNI", "Backend.VNI", 0, MAX_VNI) ?? DEFAULT_VNI;
  // Port 0 is flannel's "the kernel's default", which is 8472.
  const port = readInteger(raw, "Port", "Backend.Port", 0, 65535) || DEFAULT_VXLAN_PORT;
  const backend: NetworkConfig["backend"] = { type: type as BackendType, vni, port };
  const mtu = readInteger(raw, "MTU", "Backend.MTU", 0, MTU_MAX);
  if (mtu !== undefined && mtu !== 0) {
    if (mtu < MTU_MIN) throw invalid("Backend.MTU", `must be between ${MTU_MIN} and ${MTU_MAX}, got ${mtu}`);
    backend.mtu = mtu;
  }
  return backend;
}

function readNonMasqueradeCidrs(doc: Json): string[] {
  const field = "NonMasqueradeCIDRs";
  const value = get(doc, field);
  if (value === undefined) return [...DEFAULT_NON_MASQUERADE_CIDRS];
  if (!Array.isArray(value)) throw invalid(field, `must be an array of CIDRs, got ${describe(value)}`);
  const cidrs: string[] = [];
  value.forEach((item, index) => {
    const cidr = typeof item === "string" ? parseCidr(item) : undefined;
    if (!cidr) throw invalid(`${field}[${index}]`, `must be a CIDR such as 10.0.0.0/8, got ${describe(item)}`);
    if (`${cidr.address}/${cidr.prefixLength}` !== cidr.network) {
      throw invalid(`${field}[${index}]`, `must be a network address: ${describe(item)} has host bits set (did you mean ${cidr.network}?)`);
    }
    // A CIDR inside one already listed adds nothing; keep the list as written otherwise.
    if (!cidrs.some((seen) => cidrInside(cidr, parseCidr(seen)!))) cidrs.push(cidr.network);
  });
  return cidrs;
}

/** Exact key first, then case-insensitively, as Go's encoding/json (and so flannel) matches struct fields. */
function get(object: Json, key: string): unknown {
  if (Object.hasOwn(object, key)) return nullToUndefined(object[key]);
  const lower = key.toLowerCase();
  for (const candidate of Object.keys(object)) {
    if (candidate.toLowerCase() === lower) return nullToUndefined(object[candidate]);
  }
  return undefined;
}

function nullToUndefined(value: unknown): unknown {
  return value === null ? undefined : value;
}

function readBoolean(object: Json, key: string): boolean | undefined {
  const value = get(object, key);
  if (value === undefined || typeof value === "boolean") return value;
  throw invalid(key, `must be true or false, got ${describe(value)}`);
}

function readInteger(object: Json, key: string, field: string, min: number, max: number): number | undefined {
  const value = get(object, key);
  if (value === undefined) return undefined;
  if (!Number.isInteger(value) || (value as number) < min || (value as number) > max) {
    throw invalid(field, `must be an integer from ${min} to ${max}, got ${describe(value)}`);
  }
  return value as number;
}

function invalid(field: string, problem: string): NetworkConfigError {
  return new NetworkConfigError(field, `Invalid network config: ${field} ${problem}`);
}

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "an object";
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 64 ? `${text.slice(0, 61)}...` : text;
}
