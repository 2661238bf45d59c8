// What the allocator needs from persistent state. DiskStore is host-local's on-disk format; MemoryStore is the
// fake for tests. Addresses cross this interface as canonical strings (formatAddress), the reservation's key.

/** Who holds an address: the container and the interface inside it. */
export interface Owner {
  id: string;
  /** Undefined for reservations written by old host-local versions, which recorded only the container id. */
  ifname?: string;
}

export interface Reservation extends Owner {
  ip: string;
}

export interface Store {
  /**
   * Runs `fn` holding the store's exclusive lock (host-local's flock on `<dir>/lock`), so that a check and the
   * write that depends on it cannot interleave with another plugin process. Re-entrant within one process.
   */
  withLock<T>(fn: () => T): T;
  /** Claims `ip` for `owner` if nobody holds it, and records it as range set `rangeSetIndex`'s last reserved IP. */
  reserve(ip: string, owner: Required<Owner>, rangeSetIndex: number): boolean;
  /** The address last reserved in range set `rangeSetIndex`: where round-robin allocation resumes. */
  lastReservedIP(rangeSetIndex: number): string | undefined;
  /** Removes the reservation of `ip`; when `owner` is given, only if it still belongs to exactly that owner. */
  release(ip: string, owner?: Owner): boolean;
  listReservations(): Reservation[];
}

export function isSameOwner(a: Owner, b: Owner): boolean {
  return a.id === b.id && a.ifname === b.ifname;
}
