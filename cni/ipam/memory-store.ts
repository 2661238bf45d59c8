// An in-memory Store for tests: same contract as DiskStore, no files, and a record of what was asked of it.
import type { Owner, Reservation, Store } from "./store";
import { isSameOwner } from "./store";

export class MemoryStore implements Store {
  readonly reservations = new Map<string, Owner>();
  readonly lastReserved = new Map<number, string>();
  /** Every address passed to reserve(), in order, whether or not it was free. */
  readonly attempts: string[] = [];
  private lockDepth = 0;

  get locked(): boolean {
    return this.lockDepth > 0;
  }

  withLock<T>(fn: () => T): T {
    this.lockDepth++;
    try {
      return fn();
    } finally {
      this.lockDepth--;
    }
  }

  reserve(ip: string, owner: Required<Owner>, rangeSetIndex: number): boolean {
    this.assertLocked();
    this.attempts.push(ip);
    if (this.reservations.has(ip)) return false;
    this.reservations.set(ip, { id: owner.id.trim(), ifname: owner.ifname });
    this.lastReserved.set(rangeSetIndex, ip);
    return true;
  }

  lastReservedIP(rangeSetIndex: number): string | undefined {
    this.assertLocked();
    return this.lastReserved.get(rangeSetIndex);
  }

  release(ip: string, owner?: Owner): boolean {
    this.assertLocked();
    const holder = this.reservations.get(ip);
    if (!holder || (owner && !isSameOwner(holder, owner))) return false;
    return this.reservations.delete(ip);
  }

  listReservations(): Reservation[] {
    this.assertLocked();
    return [...this.reservations].map(([ip, owner]) => ({ ip, ...owner }));
  }

  private assertLocked(): void {
    if (!this.locked) throw new Error("MemoryStore used outside withLock()");
  }
}
