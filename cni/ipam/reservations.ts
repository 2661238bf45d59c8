// The reservations of a network, for GC (compare with the attachments the runtime still knows) and debugging.
import type { Reservation, Store } from "./store";

/** Every reservation in the store: address, container id and ifname (undefined for old host-local files). */
export function listReservations(store: Store): Reservation[] {
  return store.withLock(() => store.listReservations());
}
