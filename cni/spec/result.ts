// The CNI result. Inside weft there is one shape, the 1.1 one; it is converted to the config's version only
// when printed, and a prevResult of any supported version is parsed into it.
//
// What differs between the versions weft speaks:
//   0.3.0, 0.3.1, 0.4.0  ips[].version ("4" or "6") is part of the result
//   1.0.0                ips[].version removed
//   1.1.0                added interfaces[].mtu, .socketPath, .pciID and routes[].mtu, .advmss, .priority,
//                        .table, .scope
// Converting down drops what the older version does not have; the reference library keeps the route extras
// in older versions, but an older runtime has no use for them and a strict one may reject them.

import { ipFamily, parseCidr } from "../../native/addresses";
import { CniError, ErrorCode } from "./errors";
import {
  invalidField,
  isObject,
  readArray,
  readInteger,
  readObject,
  readString,
  readStringArray,
  type JsonObject,
} from "./fields";
import { LATEST_VERSION, checkSupported, compareVersions } from "./version";

export interface CniInterface {
  name: string;
  /** Required when L2 addresses are meaningful (they are for a veth). */
  mac?: string;
  /** 1.1 */
  mtu?: number;
  /** The netns path for the container side; absent for host interfaces. */
  sandbox?: string;
  /** 1.1 */
  socketPath?: string;
  /** 1.1 */
  pciID?: string;
}

export interface CniIpConfig {
  /** Address with prefix length: "10.244.1.5/24". */
  address: string;
  gateway?: string;
  /** Index into `interfaces`. */
  interface?: number;
}

export interface CniRoute {
  dst: string;
  gw?: string;
  /** 1.1 */
  mtu?: number;
  /** 1.1 */
  advmss?: number;
  /** 1.1 */
  priority?: number;
  /** 1.1 */
  table?: number;
  /** 1.1 */
  scope?: number;
}

export interface CniDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

/** weft's internal result: the 1.1 result type. */
export interface CniResult {
  cniVersion: string;
  interfaces: CniInterface[];
  ips: CniIpConfig[];
  routes: CniRoute[];
  dns: CniDns;
}

const MAC_PATTERN = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5,19}$/;
const UINT32_MAX = 0xffff_ffff;

/**
 * The result as JSON for `toVersion`, ready for JSON.stringify. Throws CniError 1 if weft does not speak that
 * version. Fields that are absent stay absent; `interfaces`, `ips`, `routes` and `dns` are always present.
 */
export function convertResult(result: CniResult, toVersion: string): JsonObject {
  const version = checkSupported(toVersion);
  const hasVersionField = compareVersions(version, "1.0.0") < 0;
  const has11Fields = compareVersions(version, "1.1.0") >= 0;

  const interfaces = result.interfaces.map((item) => {
    const out: JsonObject = { name: item.name };
    if (item.mac !== undefined) out.mac = item.mac;
    if (has11Fields && item.mtu !== undefined) out.mtu = item.mtu;
    if (item.sandbox !== undefined) out.sandbox = item.sandbox;
    if (has11Fields && item.socketPath !== undefined) out.socketPath = item.socketPath;
    if (has11Fields && item.pciID !== undefined) out.pciID = item.pciID;
    return out;
  });

  const ips = result.ips.map((item) => {
    const out: JsonObject = {};
    if (hasVersionField) out.version = addressVersion(item.address);
    out.address = item.address;
    if (item.gateway !== undefined) out.gateway = item.gateway;
    if (item.interface !== undefined) out.interface = item.interface;
    return out;
  });

  const routes = result.routes.map((item) => {
    const out: JsonObject = { dst: item.dst };
    if (item.gw !== undefined) out.gw = item.gw;
    if (has11Fields) {
      for (const key of ["mtu", "advmss", "priority", "table", "scope"] as const) {
        if (item[key] !== undefined) out[key] = item[key];
      }
    }
    return out;
  });

  const dns: JsonObject = {};
  for (const key of ["nameservers", "domain", "search", "options"] as const) {
    const value = result.dns[key];
    if (value !== undefined) dns[key] = Array.isArray(value) ? [...value] : value;
  }

  return { cniVersion: version, interfaces, ips, routes, dns };
}

function addressVersion(address: string): "4" | "6" {
  const cidr = parseCidr(address);
  if (!cidr) throw new CniError(ErrorCode.Internal, `Cannot convert result: "${address}" is not an address with a prefix length`);
  return cidr.family === 4 ? "4" : "6";
}

/**
 * Parses the `prevResult` of a config whose cniVersion is `fromVersion` (0.3.0 or later) into the internal
 * type. Fields of later versions are accepted whatever the version (the reference library does the same);
 * unknown fields are dropped. An invalid prevResult is a CniError 7 naming the field.
 */
export function parsePrevResult(json: unknown, fromVersion: string, options: { path?: string } = {}): CniResult {
  const path = options.path ?? "prevResult";
  const version = checkSupported(fromVersion);
  if (!isObject(json)) throw invalidField(path, "an object", json);
  readString(json, "cniVersion", `${path}.cniVersion`);
  const hasVersionField = compareVersions(version, "1.0.0") < 0;

  const interfaces = (readArray(json, "interfaces", `${path}.interfaces`) ?? []).map((item, index) =>
    parseInterface(item, `${path}.interfaces[${index}]`),
  );
  const ips = (readArray(json, "ips", `${path}.ips`) ?? []).map((item, index) =>
    parseIpConfig(item, `${path}.ips[${index}]`, interfaces.length, hasVersionField),
  );
  const routes = (readArray(json, "routes", `${path}.routes`) ?? []).map((item, index) =>
    parseRoute(item, `${path}.routes[${index}]`),
  );
  const dnsObject = readObject(json, "dns", `${path}.dns`);
  const dns = dnsObject ? parseDns(dnsObject, `${path}.dns`) : {};
  return { cniVersion: LATEST_VERSION, interfaces, ips, routes, dns };
}

function parseInterface(item: unknown, path: string): CniInterface {
  if (!isObject(item)) throw invalidField(path, "an object", item);
  const name = readString(item, "name", `${path}.name`);
  if (!name) throw invalidField(`${path}.name`, "a non-empty string", item.name);
  const out: CniInterface = { name };
  const mac = readString(item, "mac", `${path}.mac`);
  if (mac !== undefined && mac !== "") {
    if (!MAC_PATTERN.test(mac)) throw invalidField(`${path}.mac`, "a MAC address like 0a:58:0a:f4:01:05", mac);
    out.mac = mac;
  }
  const mtu = readInteger(item, "mtu", `${path}.mtu`, 0, UINT32_MAX);
  if (mtu !== undefined && mtu !== 0) out.mtu = mtu;
  for (const key of ["sandbox", "socketPath", "pciID"] as const) {
    const value = readString(item, key, `${path}.${key}`);
    if (value !== undefined && value !== "") out[key] = value;
  }
  return out;
}

function parseIpConfig(item: unknown, path: string, interfaceCount: number, hasVersionField: boolean): CniIpConfig {
  if (!isObject(item)) throw invalidField(path, "an object", item);
  const address = readString(item, "address", `${path}.address`);
  const cidr = address === undefined ? undefined : parseCidr(address);
  if (address === undefined || !cidr) {
    throw invalidField(`${path}.address`, "an address with a prefix length like 10.244.1.5/24", item.address);
  }
  const out: CniIpConfig = { address };
  if (hasVersionField && item.version !== undefined) {
    const expected = cidr.family === 4 ? "4" : "6";
    if (item.version !== expected) throw invalidField(`${path}.version`, `"${expected}" for ${address}`, item.version);
  }
  const gateway = readString(item, "gateway", `${path}.gateway`);
  if (gateway !== undefined && gateway !== "") {
    if (ipFamily(gateway) !== cidr.family) throw invalidField(`${path}.gateway`, `an IPv${cidr.family} address`, gateway);
    out.gateway = gateway;
  }
  if (interfaceCount === 0 && item.interface !== undefined && item.interface !== null) {
    throw invalidField(`${path}.interface`, "absent when there are no interfaces", item.interface);
  }
  const index = readInteger(item, "interface", `${path}.interface`, 0, Math.max(0, interfaceCount - 1));
  if (index !== undefined) out.interface = index;
  return out;
}

function parseRoute(item: unknown, path: string): CniRoute {
  if (!isObject(item)) throw invalidField(path, "an object", item);
  const dst = readString(item, "dst", `${path}.dst`);
  const cidr = dst === undefined ? undefined : parseCidr(dst);
  if (dst === undefined || !cidr) throw invalidField(`${path}.dst`, "a CIDR like 10.244.0.0/16", item.dst);
  const out: CniRoute = { dst };
  const gw = readString(item, "gw", `${path}.gw`);
  if (gw !== undefined && gw !== "") {
    if (ipFamily(gw) !== cidr.family) throw invalidField(`${path}.gw`, `an IPv${cidr.family} address`, gw);
    out.gw = gw;
  }
  // Zero means "not set" for the unsigned ones, as in the reference types.
  for (const key of ["mtu", "advmss", "priority"] as const) {
    const value = readInteger(item, key, `${path}.${key}`, 0, UINT32_MAX);
    if (value !== undefined && value !== 0) out[key] = value;
  }
  const table = readInteger(item, "table", `${path}.table`, 0, UINT32_MAX);
  if (table !== undefined) out.table = table;
  const scope = readInteger(item, "scope", `${path}.scope`, 0, 255);
  if (scope !== undefined) out.scope = scope;
  return out;
}

/** The CNI DNS object, as found in results and in network configs. */
export function parseDns(object: JsonObject, path: string): CniDns {
  const out: CniDns = {};
  const nameservers = readStringArray(object, "nameservers", `${path}.nameservers`);
  nameservers?.forEach((server, index) => {
    if (!ipFamily(server)) throw invalidField(`${path}.nameservers[${index}]`, "an IP address", server);
  });
  if (nameservers?.length) out.nameservers = [...nameservers];
  const domain = readString(object, "domain", `${path}.domain`);
  if (domain) out.domain = domain;
  const search = readStringArray(object, "search", `${path}.search`);
  if (search?.length) out.search = [...search];
  const options = readStringArray(object, "options", `${path}.options`);
  if (options?.length) out.options = [...options];
  return out;
}
