// Questions about addresses and the ranges of a range set, shared by the allocator and the usage report.
import { familyOf, type IpAddress } from "../../native/addresses";
import type { AddressRange, RangeSet } from "./config";

export function rangeContains(range: AddressRange, address: IpAddress): boolean {
  return familyOf(address) === range.family && range.start.isLessThanOrEquals(address) && address.isLessThanOrEquals(range.end);
}

/** The index of the range of `set` that contains `address`, or -1. */
export function findRange(set: RangeSet, address: IpAddress): number {
  return set.findIndex((range) => rangeContains(range, address));
}

/**
 * Addresses of a range never handed out: the gateway, the network address and, for IPv4, the broadcast address.
 * (With host-local's defaults only the gateway falls inside the range; the others matter when rangeStart or
 * rangeEnd are set to the subnet's edges.)
 */
export function unallocatable(range: AddressRange): IpAddress[] {
  const edges = range.family === 4 ? [range.subnetFirst, range.subnetLast] : [range.subnetFirst];
  return [range.gateway, ...edges].filter(
    (address, index, all) => rangeContains(range, address) && all.findIndex((other) => other.isEquals(address)) === index,
  );
}
