// Hands out one address per range set to a container interface, host-local's way: round-robin from the address
// after the one last reserved in that range set, across its ranges, wrapping, skipping the gateway; the first
// address whose reservation file can be created wins. All of it under the store's lock.
//
// Unlike host-local, which fails an ADD for an owner that already holds an address ("duplicate allocation is
// not allowed"), the address already held by the same container id and ifname is returned again: an ADD
// retried after a timeout gets the same answer instead of an error.
import { formatAddress, parseAddress, type IpAddress } from "../../native/addresses";
import { type RangeSet, formatRangeSet } from "./config";
import { IpamError } from "./errors";
import { findRange, unallocatable } from "./range";
import type { Store } from "./store";
import { isSameOwner } from "./store";

export interface AllocateRequest {
  /** The container id (CNI_CONTAINERID); surrounding whitespace is ignored, as by host-local. */
  id: string;
  /** The interface inside the container (CNI_IFNAME). */
  ifname: string;
  /** The network name, for messages (the store already knows its directory). */
  network: string;
  rangeSets: readonly RangeSet[];
  /** Specific addresses wanted (CNI_ARGS IP=, args.cni.ips, runtimeConfig.ips); each must fall in some range set. */
  requestedIPs?: readonly string[];
}

export interface Allocation {
  /** The address with the prefix length of its subnet: "10.1.2.3/24". */
  address: string;
  gateway: string;
  rangeSetIndex: number;
}

function unavailable(message: string): IpamError {
  return new IpamError("ADDRESS_UNAVAILABLE", message);
}

/** Assigns each requested address to the range set that contains it. */
function assignRequested(request: AllocateRequest): Map<number, IpAddress> {
  const wanted = new Map<number, IpAddress>();
  for (const text of request.requestedIPs ?? []) {
    const address = parseAddress(text);
    if (!address) throw unavailable(`Cannot allocate IP ${JSON.stringify(text)}: not an IP address`);
    const index = request.rangeSets.findIndex((set) => findRange(set, address) >= 0);
    const set = request.rangeSets[index];
    if (!set) throw unavailable(`Cannot allocate IP ${text}: not in any range of network "${request.network}"`);
    const other = wanted.get(index);
    if (other?.isEquals(address)) continue; // asked for twice (CNI_ARGS and runtimeConfig): host-local takes it once
    if (other) {
      throw unavailable(`Cannot allocate IP ${text}: ${formatAddress(other)} is requested from the same range set`);
    }
    const range = set[findRange(set, address)] as RangeSet[number];
    if (unallocatable(range).some((excluded) => excluded.isEquals(address))) {
      throw unavailable(`Cannot allocate IP ${text}: it is the gateway, network or broadcast address of ${formatRangeSet([range])}`);
    }
    wanted.set(index, address);
  }
  return wanted;
}

/**
 * Every allocatable address of `set` once, starting after `last` when it lies in the set (else at the first
 * range's start), moving on to the next range at each range's end and wrapping from the last range to the first.
 */
export function* candidates(set: RangeSet, last: IpAddress | undefined): Generator<{ address: IpAddress; rangeIndex: number }> {
  const skip = set.map(unallocatable);
  let index = 0;
  let cursor: IpAddress = (set[0] as RangeSet[number]).start;
  const advance = (): void => {
    const range = set[index] as RangeSet[number];
    if (cursor.isEquals(range.end)) {
      index = (index + 1) % set.length;
      cursor = (set[index] as RangeSet[number]).start;
    } else {
      cursor = cursor.nextIPNumber();
    }
  };
  const lastIndex = last ? findRange(set, last) : -1;
  if (last && lastIndex >= 0) {
    index = lastIndex;
    cursor = last;
    advance();
  }
  const origin = { index, cursor };
  do {
    if (!skip[index]?.some((excluded) => excluded.isEquals(cursor))) yield { address: cursor, rangeIndex: index };
    advance();
  } while (!(index === origin.index && cursor.isEquals(origin.cursor)));
}

/**
 * Reserves one address in each range set for `request.id`/`request.ifname`. Either every range set yields an
 * address or nothing stays reserved: on failure, what this call reserved is released before the error is thrown.
 */
export function allocate(store: Store, request: AllocateRequest): Allocation[] {
  const owner = { id: request.id.trim(), ifname: request.ifname };
  const wanted = assignRequested(request);

  return store.withLock(() => {
    const held = store
      .listReservations()
      .filter((reservation) => isSameOwner(reservation, owner))
      .map((reservation) => parseAddress(reservation.ip))
      .filter((address): address is IpAddress => address !== undefined);
    const reservedNow: string[] = [];

    const allocateFrom = (set: RangeSet, setIndex: number): Allocation => {
      const result = (address: IpAddress, rangeIndex: number): Allocation => {
        const range = set[rangeIndex] as RangeSet[number];
        return {
          address: `${formatAddress(address)}/${range.subnet.getPrefix().getValue()}`,
          gateway: formatAddress(range.gateway),
          rangeSetIndex: setIndex,
        };
      };
      const want = wanted.get(setIndex);
      const mine = held.find((address) => findRange(set, address) >= 0);
      if (mine) {
        if (!want || want.isEquals(mine)) return result(mine, findRange(set, mine));
        throw unavailable(
          `Cannot allocate IP ${formatAddress(want)}: ${owner.id}/${owner.ifname} already holds ${formatAddress(mine)} in network "${request.network}"`,
        );
      }
      if (want) {
        const ip = formatAddress(want);
        if (!store.reserve(ip, owner, setIndex)) {
          throw unavailable(`Cannot allocate IP ${ip}: already reserved in network "${request.network}"`);
        }
        reservedNow.push(ip);
        return result(want, findRange(set, want));
      }
      const last = store.lastReservedIP(setIndex);
      for (const { address, rangeIndex } of candidates(set, last === undefined ? undefined : parseAddress(last))) {
        const ip = formatAddress(address);
        if (store.reserve(ip, owner, setIndex)) {
          reservedNow.push(ip);
          return result(address, rangeIndex);
        }
      }
      throw new IpamError(
        "RANGE_EXHAUSTED",
        `Cannot allocate IP: range ${formatRangeSet(set)} exhausted in network "${request.network}"`,
      );
    };

    try {
      return request.rangeSets.map(allocateFrom);
    } catch (error) {
      for (const ip of reservedNow) {
        try {
          store.release(ip, owner);
        } catch {
          // keep the original error; a leftover file is found by GC
        }
      }
      throw error;
    }
  });
}
