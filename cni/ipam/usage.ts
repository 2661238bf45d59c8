// How full each range set is: capacity and use, for STATUS ("can an ADD still get an address?") and metrics.
// Counts, never walks the addresses, so a /64 costs as little as a /24.
import { countAddresses, parseAddress } from "../../native/addresses";
import { type RangeSet, formatRangeSet } from "./config";
import { findRange, unallocatable } from "./range";
import type { Store } from "./store";

export interface RangeSetUsage {
  rangeSetIndex: number;
  /** The range set as in messages: "10.0.1.0/24". */
  range: string;
  /** Addresses the allocator can hand out: the ranges minus gateway, network and broadcast addresses. */
  capacity: bigint;
  /** Reservations on those addresses. */
  used: bigint;
  exhausted: boolean;
}

export function measureUsage(store: Store, rangeSets: readonly RangeSet[]): RangeSetUsage[] {
  const addresses = store
    .withLock(() => store.listReservations())
    .map(({ ip }) => parseAddress(ip))
    .filter((address) => address !== undefined);
  return rangeSets.map((set, rangeSetIndex) => {
    const skip = set.map(unallocatable);
    let capacity = 0n;
    set.forEach((range, index) => {
      capacity += countAddresses(range.start, range.end) - BigInt(skip[index]?.length ?? 0);
    });
    let used = 0n;
    for (const address of addresses) {
      const index = findRange(set, address);
      if (index >= 0 && !skip[index]?.some((excluded) => excluded.isEquals(address))) used++;
    }
    return { rangeSetIndex, range: formatRangeSet(set), capacity, used, exhausted: used >= capacity };
  });
}
