// What the datapath answers for one packet, computed from the compiled entries as its LPM map does: the longest
// entry containing the peer's address gives the ports; no entry = denied; a direction that is not isolated (null)
// allows everything. Tests hold it against explainConnection, which reads the policies themselves.
import { parseCidr } from "../../native/addresses";
import { portRangesAllow } from "./ports";
import type { DirectionRules, PolicyEntry, PolicyProtocol } from "./types";

export interface LookupResult {
  allowed: boolean;
  /** The longest matching entry; undefined when none matched or the direction is not isolated. */
  entry?: PolicyEntry;
}

export function lookupEntries(entries: DirectionRules, ip: string, port: number, protocol: PolicyProtocol | "ICMP"): LookupResult {
  if (entries === null) return { allowed: true };
  const address = parseCidr(`${ip}/${ip.includes(":") ? 128 : 32}`);
  if (!address) throw new RangeError(`${ip} is not an IP address`);
  let best: PolicyEntry | undefined;
  let bestLength = -1;
  for (const entry of entries) {
    const cidr = parseCidr(entry.cidr);
    if (!cidr || cidr.family !== address.family || cidr.prefixLength <= bestLength) continue;
    if (cidr.first <= address.first && address.first <= cidr.last) {
      best = entry;
      bestLength = cidr.prefixLength;
    }
  }
  if (!best) return { allowed: false };
  return { allowed: portRangesAllow(best.ports, protocol, port), entry: best };
}
