// The `ipam` section of a network config, parsed and validated the way host-local reads it, and stricter where
// host-local accepts nonsense (rangeStart after rangeEnd). Every error names the offending field.
//
// Defaults, as host-local: gateway = the subnet's first address after the network address; rangeStart = the same
// address (the allocator skips the gateway); rangeEnd = the last address before the broadcast (IPv4) or the
// last address of the subnet (IPv6). A range set is a list of ranges of one family that the allocator walks
// round-robin; each range set yields one address per ADD (dual-stack = one IPv4 set and one IPv6 set).
import {
  familyOf, formatAddress, parseAddress, parseCidrRange, type CidrRange, type IpAddress, type IpFamily,
} from "../../native/addresses";
import { IpamError } from "./errors";

export const DEFAULT_DATA_DIR = "/var/lib/cni/networks";

export interface AddressRange {
  family: IpFamily;
  subnet: CidrRange;
  /**
   * The subnet's first and last addresses (network and, for IPv4, broadcast), derived once here: ip-num derives
   * them anew, through strings and validation, on every getFirst()/getLast().
   */
  subnetFirst: IpAddress;
  subnetLast: IpAddress;
  /** First address handed out, inclusive. */
  start: IpAddress;
  /** Last address handed out, inclusive. */
  end: IpAddress;
  gateway: IpAddress;
}

export type RangeSet = readonly AddressRange[];

export interface Route {
  dst: string;
  gw?: string;
}

export interface IpamConfig {
  type: string | undefined;
  /** Index = the range set id in `last_reserved_ip.<id>`, as host-local numbers them. */
  rangeSets: RangeSet[];
  routes: Route[];
  dataDir: string;
}

type Json = Record<string, unknown>;

function invalid(field: string, problem: string): IpamError {
  const code = field.startsWith("ipam.routes") || field === "ipam" || field === "ipam.dataDir" || field === "ipam.type"
    ? "INVALID_CONFIG"
    : "INVALID_RANGE";
  return new IpamError(code, `${field}: ${problem}`);
}

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function optionalString(object: Json, key: string, field: string): string | undefined {
  const value = object[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") throw invalid(`${field}.${key}`, `must be a string, got ${JSON.stringify(value)}`);
  return value;
}

function parseSubnet(text: string, field: string): { subnet: CidrRange; family: IpFamily; first: IpAddress } {
  const parsed = parseCidrRange(text);
  if (!parsed) throw invalid(field, `${JSON.stringify(text)} is not a CIDR`);
  const { range: subnet, family } = parsed;
  const written = parseAddress(text.split("/")[0] ?? "");
  const first = subnet.getFirst();
  if (!written || !written.isEquals(first)) {
    throw invalid(field, `${JSON.stringify(text)} is not a network address (did you mean ${formatCidr(subnet)}?)`);
  }
  // Room for at least the gateway and one host: no /31 or /32 (IPv4), no /127 or /128 (IPv6).
  const maxPrefix = family === 4 ? 30n : 126n;
  if (subnet.getPrefix().getValue() > maxPrefix) {
    throw invalid(field, `${JSON.stringify(text)} is too small to allocate from (at most /${maxPrefix})`);
  }
  return { subnet, family, first };
}

function parseAddressIn(text: string, field: string, range: Pick<AddressRange, "subnet" | "family">): IpAddress {
  const address = parseAddress(text);
  if (!address) throw invalid(field, `${JSON.stringify(text)} is not an IP address`);
  if (familyOf(address) !== range.family || !range.subnet.contains(address)) {
    throw invalid(field, `${JSON.stringify(text)} is not in subnet ${formatCidr(range.subnet)}`);
  }
  return address;
}

function parseRange(input: unknown, field: string): AddressRange {
  if (!isObject(input)) throw invalid(field, "must be an object with a subnet");
  const subnetText = optionalString(input, "subnet", field);
  if (subnetText === undefined) throw invalid(`${field}.subnet`, "is required");
  const { subnet, family, first } = parseSubnet(subnetText, `${field}.subnet`);
  const at = { subnet, family };

  const afterNetwork = first.nextIPNumber();
  const gatewayText = optionalString(input, "gateway", field);
  const gateway = gatewayText === undefined ? afterNetwork : parseAddressIn(gatewayText, `${field}.gateway`, at);

  const startText = optionalString(input, "rangeStart", field);
  const start = startText === undefined ? afterNetwork : parseAddressIn(startText, `${field}.rangeStart`, at);

  const endText = optionalString(input, "rangeEnd", field);
  const last = subnet.getLast();
  const end =
    endText !== undefined ? parseAddressIn(endText, `${field}.rangeEnd`, at) : family === 4 ? last.previousIPNumber() : last;

  if (start.isGreaterThan(end)) {
    throw invalid(`${field}.rangeStart`, `${formatAddress(start)} is after rangeEnd ${formatAddress(end)}`);
  }
  return { family, subnet, subnetFirst: first, subnetLast: last, start, end, gateway };
}

function overlaps(a: AddressRange, b: AddressRange): boolean {
  return a.family === b.family && a.start.isLessThanOrEquals(b.end) && b.start.isLessThanOrEquals(a.end);
}

function parseRangeSet(input: unknown, field: string): { set: AddressRange[]; fields: string[] } {
  if (!Array.isArray(input)) throw invalid(field, "must be a list of ranges");
  if (input.length === 0) throw invalid(field, "must contain at least one range");
  const set = input.map((range, index) => parseRange(range, `${field}[${index}]`));
  const fields = set.map((_, index) => `${field}[${index}]`);
  set.forEach((range, index) => {
    const first = set[0] as AddressRange;
    if (range.family !== first.family) {
      throw invalid(`${fields[index]}.subnet`, `IPv${range.family} in a range set of IPv${first.family} (one family per range set)`);
    }
  });
  return { set, fields };
}

/** A human-readable range set for messages: "10.0.1.0/24" or "10.0.1.0/24 (10.0.1.10-10.0.1.99), 10.0.2.0/24". */
export function formatRangeSet(set: RangeSet): string {
  return set.map(formatRange).join(", ");
}

function formatRange(range: AddressRange): string {
  const defaultStart = range.start.isEquals(range.subnetFirst.nextIPNumber());
  const last = range.subnetLast;
  const defaultEnd = range.end.isEquals(range.family === 4 ? last.previousIPNumber() : last);
  const cidr = formatCidr(range.subnet);
  return defaultStart && defaultEnd ? cidr : `${cidr} (${formatAddress(range.start)}-${formatAddress(range.end)})`;
}

function formatCidr(subnet: CidrRange): string {
  return `${formatAddress(subnet.getFirst())}/${subnet.getPrefix().getValue()}`;
}

function parseRoutes(input: unknown): Route[] {
  if (input === undefined || input === null) return [];
  if (!Array.isArray(input)) throw invalid("ipam.routes", "must be a list");
  return input.map((route, index) => {
    const field = `ipam.routes[${index}]`;
    if (!isObject(route)) throw invalid(field, "must be an object with a dst");
    const dst = optionalString(route, "dst", field);
    if (dst === undefined) throw invalid(`${field}.dst`, "is required");
    const destination = parseCidrRange(dst);
    if (!destination) throw invalid(`${field}.dst`, `${JSON.stringify(dst)} is not a CIDR`);
    const { family } = destination;
    const gw = optionalString(route, "gw", field);
    if (gw === undefined) return { dst };
    const gateway = parseAddress(gw);
    if (!gateway) throw invalid(`${field}.gw`, `${JSON.stringify(gw)} is not an IP address`);
    if (familyOf(gateway) !== family) throw invalid(`${field}.gw`, `${gw} is not of the same family as dst ${dst}`);
    return { dst, gw };
  });
}

/**
 * Parses the `ipam` object of a network config. host-local's old single-range form (`ipam.subnet`, …) is
 * accepted and becomes range set 0, ahead of `ipam.ranges`, so that `last_reserved_ip.<n>` keeps its numbering.
 */
export function parseIpamConfig(ipam: unknown): IpamConfig {
  if (!isObject(ipam)) throw invalid("ipam", "must be an object");
  const type = optionalString(ipam, "type", "ipam");
  const dataDir = optionalString(ipam, "dataDir", "ipam") || DEFAULT_DATA_DIR;

  const sets: { set: AddressRange[]; fields: string[] }[] = [];
  if (ipam.subnet !== undefined && ipam.subnet !== null) {
    sets.push({ set: [parseRange(ipam, "ipam")], fields: ["ipam"] });
  }
  const ranges = ipam.ranges;
  if (ranges !== undefined && ranges !== null) {
    if (!Array.isArray(ranges)) throw invalid("ipam.ranges", "must be a list of range sets");
    ranges.forEach((set, index) => sets.push(parseRangeSet(set, `ipam.ranges[${index}]`)));
  }
  if (sets.length === 0) throw invalid("ipam.ranges", "is required (at least one range set)");

  // No address may belong to two ranges, within a set or across sets.
  const all = sets.flatMap(({ set, fields }) => set.map((range, index) => ({ range, field: fields[index] as string })));
  for (const [i, a] of all.entries()) {
    for (const b of all.slice(i + 1)) {
      if (overlaps(a.range, b.range)) {
        throw invalid(b.field, `${formatRange(b.range)} overlaps ${a.field} (${formatRange(a.range)})`);
      }
    }
  }
  return { type, rangeSets: sets.map(({ set }) => set), routes: parseRoutes(ipam.routes), dataDir };
}
