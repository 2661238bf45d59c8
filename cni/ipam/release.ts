// Gives addresses back. Both functions succeed when there is nothing to release, so DEL and GC can be repeated.
import { canonicalAddress } from "../../native/addresses";
import type { Owner, Store } from "./store";
import { isSameOwner } from "./store";

/**
 * Releases every address held by a container interface, in any range set, and returns them. Reservations that
 * old host-local versions wrote with only the container id are released when the id has none with the ifname
 * (host-local's rule, so that a DEL after an upgrade still frees the address).
 */
export function release(store: Store, owner: { id: string; ifname: string }): string[] {
  const current = { id: owner.id.trim(), ifname: owner.ifname };
  return store.withLock(() => {
    const reservations = store.listReservations();
    let mine = reservations.filter((reservation) => isSameOwner(reservation, current));
    if (mine.length === 0) mine = reservations.filter((reservation) => isSameOwner(reservation, { id: current.id }));
    return mine.filter((reservation) => store.release(reservation.ip, reservation)).map(({ ip }) => ip);
  });
}

export interface ReleaseIPOptions {
  /**
   * Release only if the address is still held by exactly this owner (as listReservations reported it). GC passes
   * it, so that an address released and handed to another container since the listing is left alone.
   */
  owner?: Owner;
}

/** Releases one address. Returns false if it was not reserved (or, with `owner`, not by that owner). */
export function releaseIP(store: Store, ip: string, options: ReleaseIPOptions = {}): boolean {
  const canonical = canonicalAddress(ip);
  if (canonical === undefined) return false;
  return store.withLock(() => store.release(canonical, options.owner));
}
