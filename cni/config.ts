// The weft plugin's network config (stdin), and the network it resolves to: the node's ranges, routes and MTU,
// taken from the config's own `ipam.ranges` or, as flannel's CNI plugin does, from the agent's subnet file.
//
// The fields follow the reference bridge plugin where they overlap (bridge, mtu, hairpinMode, isGateway,
// isDefaultGateway, ipMasq) so that a flannel + bridge config reads the same; the defaults are weft's (hairpin
// and gateway on, as flannel's delegate sets them). Unknown fields are kept in `raw` and otherwise ignored.
//
// Decisions:
// - stdin is capped at MAX_CONFIG_BYTES (1 MiB): a real config with a prevResult is a few KiB; anything larger
//   is not a config, and is refused before decoding rather than parsed: code 7 if it starts like a JSON object,
//   else code 6 (not JSON), as smaller garbage gets.
// - `ipMasq: true` is refused (code 7): weft installs no per-pod NAT; the agent masquerades the whole pod
//   network. Silently ignoring it would hide that the setting lives in the agent.
// - `ipam.type` must be host-local or absent: weft's IPAM is in-process and host-local compatible.
// - `ipam.ranges` is checked for shape only; the addresses are cni/ipam's to validate. A legacy single range
//   (`ipam.subnet`, `rangeStart`, `rangeEnd`, `gateway`) becomes the first range set, as in host-local.

import { readFileSync } from "node:fs";
import { ipFamily, parseCidr } from "../native/addresses";
import type { FastPathConfig } from "./fast-path";
import { CniError, ErrorCode } from "./spec/errors";
import {
  invalidField,
  isObject,
  readArray,
  readBoolean,
  readInteger,
  readObject,
  readString,
  readStringArray,
  type JsonObject,
} from "./spec/fields";
import { parseDns, parsePrevResult, type CniDns, type CniResult } from "./spec/result";
import { checkSupported, type CniVersion } from "./spec/version";
import { DEFAULT_SUBNET_FILE, parseSubnetFile } from "./subnet-file";

export { DEFAULT_SUBNET_FILE } from "./subnet-file";

export const MAX_CONFIG_BYTES = 1024 * 1024;
export const DEFAULT_BRIDGE = "cni0";
/** host-local's default, so that allocations survive a move from flannel + host-local to weft. */
export const DEFAULT_IPAM_DATA_DIR = "/var/lib/cni/networks";
export const MTU_MIN = 68;
export const MTU_MAX = 65535;

/** One host-local range. Only `subnet` is required; the addresses are validated by cni/ipam. */
export interface IpamRange {
  subnet: string;
  rangeStart?: string;
  rangeEnd?: string;
  gateway?: string;
}

/** A host-local range set: ranges of one family, tried in order; one address is allocated per set. */
export type IpamRangeSet = IpamRange[];

export interface IpamRoute {
  dst: string;
  gw?: string;
}

export interface IpamConf {
  type: "host-local";
  /** Absent: the ranges come from the subnet file (see resolveNetwork). */
  ranges?: IpamRangeSet[];
  routes?: IpamRoute[];
  dataDir: string;
}

export interface NetConf {
  cniVersion: CniVersion;
  /** 1.1 config lists: the versions the list may be used with. Passed through. */
  cniVersions?: string[];
  name: string;
  type: string;
  /** Host bridge; default "cni0". */
  bridge: string;
  /** Pod interface MTU; absent means the subnet file's (or the kernel default). */
  mtu?: number;
  /** Default true: pods reach themselves through a Service. */
  hairpinMode: boolean;
  /** Default true: the bridge holds the gateway address. Forced true by isDefaultGateway. */
  isGateway: boolean;
  /** Default false: when true the pod's default route goes via the bridge. */
  isDefaultGateway: boolean;
  /** Always false: see the decisions above. */
  ipMasq: false;
  /** Default DEFAULT_SUBNET_FILE. */
  subnetFile: string;
  ipam: IpamConf;
  dns?: CniDns;
  /** Runtime-supplied capabilities (portMappings, ips, ...); weft reads `ips`, the rest is passed through. */
  runtimeConfig: JsonObject;
  args: JsonObject;
  /**
   * Addresses asked for in the config, as host-local reads them: `args.cni.ips` then `runtimeConfig.ips` (the
   * "ips" capability), a prefix length dropped ("10.1.0.5/24" → "10.1.0.5"). CNI_ARGS `IP=` comes on top (env).
   */
  requestedIps: string[];
  prevResult?: CniResult;
  /** The decoded JSON as given, unknown fields included. */
  raw: JsonObject;
}

/**
 * Decodes and validates the network config from stdin. Throws CniError: 6 for input that is not a JSON object,
 * 1 for a missing or unsupported cniVersion, 7 naming the field for anything invalid.
 */
export function parseNetConf(stdin: Uint8Array | string): NetConf {
  const raw = decodeConfig(stdin);

  if (raw.cniVersion === undefined || raw.cniVersion === null) {
    throw new CniError(ErrorCode.IncompatibleVersion, `Incompatible CNI version: network config has no "cniVersion"`);
  }
  if (typeof raw.cniVersion !== "string") throw invalidField("cniVersion", "a string like \"1.1.0\"", raw.cniVersion);
  const cniVersion = checkSupported(raw.cniVersion);
  const cniVersions = readStringArray(raw, "cniVersions", "cniVersions");

  const name = readString(raw, "name", "name");
  if (name === undefined || !isValidNetworkName(name)) {
    throw invalidField("name", "a network name (a letter or digit, then letters, digits, '_', '.' or '-')", raw.name);
  }
  const type = readString(raw, "type", "type");
  if (!type) throw invalidField("type", "the plugin's name, a non-empty string", raw.type);

  const bridge = readString(raw, "bridge", "bridge") ?? DEFAULT_BRIDGE;
  if (!isValidInterfaceName(bridge)) {
    throw invalidField("bridge", "an interface name of 1 to 15 bytes without '/', ':' or whitespace", bridge);
  }
  const mtu = readInteger(raw, "mtu", "mtu", MTU_MIN, MTU_MAX);
  const hairpinMode = readBoolean(raw, "hairpinMode", "hairpinMode") ?? true;
  const isDefaultGateway = readBoolean(raw, "isDefaultGateway", "isDefaultGateway") ?? false;
  // As in the bridge plugin: a default gateway must be a gateway.
  const isGateway = (readBoolean(raw, "isGateway", "isGateway") ?? true) || isDefaultGateway;
  if (readBoolean(raw, "ipMasq", "ipMasq") === true) {
    throw invalidField("ipMasq", "false or absent (the weft-agent masquerades the pod network; configure it there)", true);
  }
  const subnetFile = readString(raw, "subnetFile", "subnetFile") ?? DEFAULT_SUBNET_FILE;
  if (!isAbsolutePath(subnetFile)) throw invalidField("subnetFile", "an absolute path", subnetFile);

  const conf: NetConf = {
    cniVersion,
    name,
    type,
    bridge,
    hairpinMode,
    isGateway,
    isDefaultGateway,
    ipMasq: false,
    subnetFile,
    ipam: parseIpam(raw),
    runtimeConfig: readObject(raw, "runtimeConfig", "runtimeConfig") ?? {},
    args: readObject(raw, "args", "args") ?? {},
    requestedIps: [],
    raw,
  };
  const cniArgs = readObject(conf.args, "cni", "args.cni");
  for (const [where, path] of [[cniArgs, "args.cni.ips"], [conf.runtimeConfig, "runtimeConfig.ips"]] as const) {
    for (const item of (where && readStringArray(where, "ips", path)) ?? []) conf.requestedIps.push(addressPart(item, path));
  }
  if (cniVersions !== undefined) conf.cniVersions = cniVersions;
  if (mtu !== undefined) conf.mtu = mtu;
  const dns = readObject(raw, "dns", "dns");
  if (dns !== undefined) conf.dns = parseDns(dns, "dns");
  if (raw.prevResult !== undefined && raw.prevResult !== null) conf.prevResult = parsePrevResult(raw.prevResult, cniVersion);
  return conf;
}

/** "10.1.0.5/24" → "10.1.0.5", "10.1.0.5" as it is; anything else is refused naming `path`. */
function addressPart(item: string, path: string): string {
  const slash = item.indexOf("/");
  const address = slash < 0 ? item.trim() : item.slice(0, slash);
  if (!ipFamily(address) || (slash >= 0 && parseCidr(item) === undefined)) {
    throw invalidField(path, "a list of IP addresses, each optionally with a prefix length", item);
  }
  return address;
}

function decodeConfig(stdin: Uint8Array | string): JsonObject {
  const size = typeof stdin === "string" ? Buffer.byteLength(stdin) : stdin.byteLength;
  if (size > MAX_CONFIG_BYTES) {
    // Not parsed: too large to be a config. What does not even start like a JSON object is a decoding failure.
    const start = typeof stdin === "string" ? stdin.slice(0, 64) : Buffer.from(stdin.subarray(0, 64)).toString("latin1");
    const head = start.replace(/^\ufeff|^\xef\xbb\xbf/, ""); // a byte order mark, as text or as UTF-8 bytes
    if (!head.trimStart().startsWith("{")) {
      const beginning = JSON.stringify(head.slice(0, 16));
      throw new CniError(ErrorCode.DecodeFailure, `Cannot decode network config: stdin is not JSON (${size} bytes, beginning ${beginning})`);
    }
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      `Invalid network config: stdin is ${size} bytes, more than the ${MAX_CONFIG_BYTES}-byte limit`,
    );
  }
  let text: string;
  if (typeof stdin === "string") {
    text = stdin;
  } else {
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(stdin);
    } catch (error) {
      throw new CniError(ErrorCode.DecodeFailure, "Cannot decode network config: stdin is not valid UTF-8", { cause: error });
    }
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (text.trim() === "") {
    throw new CniError(ErrorCode.DecodeFailure, "Cannot decode network config: stdin is empty (expected the network config as JSON)");
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new CniError(ErrorCode.DecodeFailure, `Cannot decode network config: stdin is not JSON: ${reason}`, { cause: error });
  }
  if (!isObject(value)) {
    const kind = value === null ? "null" : Array.isArray(value) ? "an array" : `a ${typeof value}`;
    throw new CniError(ErrorCode.DecodeFailure, `Cannot decode network config: expected a JSON object, got ${kind}`);
  }
  return value;
}

function parseIpam(raw: JsonObject): IpamConf {
  const ipam = readObject(raw, "ipam", "ipam") ?? {};
  const type = readString(ipam, "type", "ipam.type");
  if (type !== undefined && type !== "host-local") {
    throw invalidField("ipam.type", "\"host-local\" or absent (weft allocates addresses itself)", type);
  }
  const dataDir = readString(ipam, "dataDir", "ipam.dataDir") ?? DEFAULT_IPAM_DATA_DIR;
  if (!isAbsolutePath(dataDir)) throw invalidField("ipam.dataDir", "an absolute path", dataDir);

  const conf: IpamConf = { type: "host-local", dataDir };
  const rangeSets: IpamRangeSet[] = [];
  const legacy = ipam.subnet === undefined || ipam.subnet === null ? undefined : parseRange(ipam, "ipam");
  if (legacy) rangeSets.push([legacy]);
  const ranges = readArray(ipam, "ranges", "ipam.ranges");
  if (ranges !== undefined) {
    if (ranges.length === 0) throw invalidField("ipam.ranges", "a non-empty array of range sets (or absent, to use the subnet file)", ranges);
    ranges.forEach((set, setIndex) => {
      const path = `ipam.ranges[${setIndex}]`;
      if (!Array.isArray(set) || set.length === 0) throw invalidField(path, "a non-empty array of ranges", set);
      rangeSets.push(
        set.map((range, rangeIndex) => {
          const rangePath = `${path}[${rangeIndex}]`;
          if (!isObject(range)) throw invalidField(rangePath, "an object with a \"subnet\"", range);
          return parseRange(range, rangePath);
        }),
      );
    });
  }
  if (rangeSets.length > 0) conf.ranges = rangeSets;

  const routes = readArray(ipam, "routes", "ipam.routes");
  if (routes !== undefined) conf.routes = routes.map((route, index) => parseIpamRoute(route, `ipam.routes[${index}]`));
  return conf;
}

function parseRange(object: JsonObject, path: string): IpamRange {
  const subnet = readString(object, "subnet", `${path}.subnet`);
  if (!subnet) throw invalidField(`${path}.subnet`, "a CIDR string", object.subnet);
  const range: IpamRange = { subnet };
  for (const key of ["rangeStart", "rangeEnd", "gateway"] as const) {
    const value = readString(object, key, `${path}.${key}`);
    if (value) range[key] = value;
  }
  return range;
}

function parseIpamRoute(route: unknown, path: string): IpamRoute {
  if (!isObject(route)) throw invalidField(path, "an object with a \"dst\"", route);
  const dst = readString(route, "dst", `${path}.dst`);
  const cidr = dst === undefined ? undefined : parseCidr(dst);
  if (dst === undefined || !cidr) throw invalidField(`${path}.dst`, "a CIDR like 10.96.0.0/12", route.dst);
  const out: IpamRoute = { dst };
  const gw = readString(route, "gw", `${path}.gw`);
  if (gw) {
    if (ipFamily(gw) !== cidr.family) throw invalidField(`${path}.gw`, `an IPv${cidr.family} address`, gw);
    out.gw = gw;
  }
  return out;
}

/** The spec's network name: a letter or digit, then letters, digits, '_', '.', '-'. It names a directory, hence ≤ 255. */
function isValidNetworkName(name: string): boolean {
  return name.length <= 255 && /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name);
}

/** A Linux interface name: 1-15 bytes, not "." or "..", no '/', ':', whitespace or control characters. */
export function isValidInterfaceName(name: string): boolean {
  if (name === "" || name === "." || name === "..") return false;
  if (Buffer.byteLength(name) > 15) return false;
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused here
  return !/[\s/:\u0000-\u001f\u007f]/u.test(name);
}

function isAbsolutePath(path: string): boolean {
  return path.startsWith("/") && !path.includes("\u0000");
}

export interface ResolvedNetwork {
  /** host-local range sets: one per address family. */
  rangeSets: IpamRangeSet[];
  /** Routes for the pod, in order: the config's ipam.routes, then each cluster network via the gateway. */
  routes: IpamRoute[];
  /** The config's mtu, else the subnet file's; undefined when neither says. */
  mtu?: number;
  /** Where the ranges came from. */
  source: "config" | "subnet-file";
  /** The subnet file's eBPF datapath, when the agent runs it. */
  fastPath?: FastPathConfig;
}

export type ReadFile = (path: string) => string | Uint8Array;

const readFileUtf8: ReadFile = (path) => readFileSync(path, "utf8");

/**
 * The ranges, routes and MTU the config resolves to. With `ipam.ranges` the config says it all. Without, they
 * come from the agent's subnet file, as flannel's delegate builds them: one range set per family holding the
 * node subnet, and a route to each cluster network via the node's gateway (the bridge), so that pod-to-pod
 * traffic across nodes stays on the pod network whatever the default route is.
 *
 * Errors: the file missing is CniError 11 (the agent is not ready: retry); unreadable, 5; malformed, 7.
 */
export function resolveNetwork(conf: NetConf, readFile: ReadFile = readFileUtf8): ResolvedNetwork {
  if (conf.ipam.ranges !== undefined) {
    const resolved: ResolvedNetwork = { rangeSets: conf.ipam.ranges, routes: [...(conf.ipam.routes ?? [])], source: "config" };
    if (conf.mtu !== undefined) resolved.mtu = conf.mtu;
    return resolved;
  }

  const path = conf.subnetFile;
  let text: string;
  try {
    const content = readFile(path);
    text = typeof content === "string" ? content : new TextDecoder().decode(content);
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    if (code === "ENOENT" || code === "ENOTDIR") {
      throw new CniError(
        ErrorCode.TryAgainLater,
        `Cannot read subnet file ${path}: it does not exist yet (weft-agent on this node has not written it; try again later)`,
        { cause: error },
      );
    }
    throw new CniError(ErrorCode.IoFailure, `Cannot read subnet file ${path}: ${typeof code === "string" ? code : "read failed"}`, {
      cause: error,
    });
  }

  const file = parseSubnetFile(text, { path });
  const rangeSets: IpamRangeSet[] = [];
  const routes: IpamRoute[] = [...(conf.ipam.routes ?? [])];
  for (const family of [file.ipv4, file.ipv6]) {
    if (!family) continue;
    rangeSets.push([{ subnet: family.subnet, gateway: family.gateway }]);
    for (const network of family.networks) routes.push({ dst: network, gw: family.gateway });
  }
  return { rangeSets, routes, mtu: conf.mtu ?? file.mtu, source: "subnet-file", ...(file.fastPath ? { fastPath: file.fastPath } : {}) };
}
