// IP addresses, for every layer: the one place that reads, writes, compares and prints them (netlink only
// moves their bytes). Nothing here knows about CNI, nodes or the kernel.
//
// Hand-written, the fast path (measured: these run per pod ADD, or per node on every reconcile run):
//   syntax.ts   ipFamily, ipv4Value: is this text an address, of which family. Plain loops: a regular
//               expression or node:net costs the plugin's start-up more than all its parsing (see there).
//   bytes.ts    writeIp, formatIp: text ⇄ network-order bytes, straight into netlink's buffer.
//   cidr.ts     splitCidr; parseCidr for IPv4, by arithmetic on the dotted quad's value; the bounds of every
//               CIDR as bigints, so that containment and overlap (ranges.ts) are comparisons. ip-num took
//               ~0.5 s per reconcile run at 5,000 nodes for the same work.
// Through ip-num (ARCHITECTURE.md: "ip-num for CIDRs, ranges and containment"), where speed does not matter and
// its reading is the reference the fast path is tested against:
//   cidr.ts       parseCidr for IPv6 (and the shortest form of IPv6 values).
//   ip-address.ts addresses and CIDR ranges as ip-num values, for the IPAM allocator's arithmetic.
// The plugin loads ip-num either way (IPAM); the build makes ip-num's constant ranges lazy (scripts/lazy-ip-num-statics.mjs).
export { dottedQuad, familyOfValidIp, ipFamily, ipv4Value, type IpFamily } from "./syntax";
export { formatIp, writeIp } from "./bytes";
export {
  cidrInside, firstHost, formatIpValue, networkAddress, parseCidr, parseCidrs, splitCidr, type Cidr, type CidrParts,
} from "./cidr";
export {
  canonicalAddress, countAddresses, familyOf, formatAddress, parseAddress, parseCidrRange, type CidrRange, type IpAddress,
} from "./ip-address";
export { allDisjoint, DisjointRanges, type AddressRange } from "./ranges";
