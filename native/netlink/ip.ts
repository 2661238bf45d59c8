// What netlink adds to IP addresses (native/addresses reads and writes them): the AF_* number of a family, and
// the checks an address passes before a request is built from it, failing with NetlinkInputError.
import { ipFamily, splitCidr, type CidrParts, type IpFamily } from "../addresses";
import { AF_INET, AF_INET6, AF_UNSPEC } from "./constants";
import { NetlinkInputError } from "./errors";


/** AF_INET, AF_INET6, or AF_UNSPEC for undefined. */
export function addressFamily(family: IpFamily | undefined): number {
  return family === 4 ? AF_INET : family === 6 ? AF_INET6 : AF_UNSPEC;
}

/** 4 for AF_INET, 6 for AF_INET6, undefined for any other family (a reply a decoder skips). */
export function familyOfAddressFamily(af: number | undefined): IpFamily | undefined {
  return af === AF_INET ? 4 : af === AF_INET6 ? 6 : undefined;
}

/** The family of an IP address; throws NetlinkInputError when `text` is not one. */
export function parseIpFamily(text: string): IpFamily {
  const family = ipFamily(text);
  if (!family) throw new NetlinkInputError(`Cannot parse IP address "${text}"`, text);
  return family;
}

/** "10.1.2.3/24" → {family 4, address "10.1.2.3", prefixLength 24}; a bare address gets the full length. */
export function parseCidrParts(text: string): CidrParts {
  const parts = splitCidr(text);
  if (parts) return parts;
  const slash = text.indexOf("/");
  const family = ipFamily(slash === -1 ? text : text.slice(0, slash));
  if (!family) throw new NetlinkInputError(`Cannot parse CIDR "${text}": not an IP address`, text);
  throw new NetlinkInputError(`Cannot parse CIDR "${text}": prefix length must be 0 to ${family === 4 ? 32 : 128}`, text);
}
