// What the list* operations share after their dump: the request's filters (link index, address family) are
// applied again here, because the kernel applies them itself only with strict checking
// (NETLINK_GET_STRICT_CHK), which not every kernel has.
import type { IpFamily } from "../addresses";

export interface DumpFilter {
  /** Only entries of this link. */
  index?: number;
  family?: IpFamily;
}

/** The entries that match every filter given (all of them when none is). */
export function keepMatching<T extends { index?: number; family?: IpFamily }>(entries: T[], filter: DumpFilter): T[] {
  const { index, family } = filter;
  if (index === undefined && family === undefined) return entries;
  return entries.filter((entry) => (index === undefined || entry.index === index) && (family === undefined || entry.family === family));
}
