// The IPAM layer: host-local compatible address management for the CNI commands.
export { allocate, type AllocateRequest, type Allocation } from "./allocate";
export { DEFAULT_DATA_DIR, parseIpamConfig, type AddressRange, type IpamConfig, type RangeSet, type Route } from "./config";
export { DiskStore, type DiskStoreOptions } from "./disk-store";
export { IpamError, isIpamError, type IpamErrorCode } from "./errors";
export { release, releaseIP, type ReleaseIPOptions } from "./release";
export { listReservations } from "./reservations";
export type { Owner, Reservation, Store } from "./store";
export { measureUsage, type RangeSetUsage } from "./usage";
