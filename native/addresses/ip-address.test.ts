// Addresses and ranges as ip-num values (the IPAM allocator's). parseAddress and formatAddress are also tested
// with the allocator, in test/unit/ipam.test.ts.
import { describe, expect, it } from "vitest";
import { canonicalAddress, countAddresses, familyOf, formatAddress, parseAddress, parseCidrRange } from "./ip-address";

describe("addresses as ip-num values", () => {
  it("reads both families and prints them canonically, refusing mapped, dotted and zoned IPv6", () => {
    expect(familyOf(parseAddress("10.1.2.3")!)).toBe(4);
    expect(familyOf(parseAddress("FD00::0001")!)).toBe(6);
    expect(canonicalAddress("FD00:0:0::0001")).toBe("fd00::1");
    expect(canonicalAddress("::")).toBe("::");
    for (const text of ["::ffff:10.1.2.3", "::ffff:a01:203", "::10.1.2.3", "fe80::1%eth0", "010.1.2.3", "10.1.2.3/32", ""]) {
      expect(parseAddress(text), text).toBeUndefined();
    }
    expect(formatAddress(parseAddress("::a01:203")!)).toBe("::a01:203");
  });

  it("counts the addresses of a range", () => {
    expect(countAddresses(parseAddress("10.0.0.1")!, parseAddress("10.0.0.254")!)).toBe(254n);
    expect(countAddresses(parseAddress("fd00::")!, parseAddress("fd00::ffff:ffff:ffff:ffff")!)).toBe(2n ** 64n);
  });
});

describe("parseCidrRange (host-local's reading of a config's CIDR)", () => {
  it("takes what ip-num takes, including a leading zero in an IPv4 prefix length", () => {
    expect(parseCidrRange("10.0.0.0/08")?.range.toCidrString()).toBe("10.0.0.0/8");
    expect(parseCidrRange("10.1.2.0/24")?.family).toBe(4);
    expect(parseCidrRange("fd00::/64")?.family).toBe(6);
  });

  it("refuses IPv4-mapped IPv6, zones, and what is not a CIDR", () => {
    for (const text of ["::ffff:10.0.0.0/120", "::ffff:a00:0/120", "fe80::%eth0/64", "fd00::/064", "fd00::/129", "10.0.0.0/33", "10.0.0.0", "x/8"]) {
      expect(parseCidrRange(text), text).toBeUndefined();
    }
  });
});
