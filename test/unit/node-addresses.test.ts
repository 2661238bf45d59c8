// The agent's checks of other nodes' addresses: a public IP (sources) and whether it is on the underlay (host-gw).
// Parsing itself is native/addresses' (tested there).
import { describe, expect, it } from "vitest";
import { containsAddress } from "../../agent/backends";
import { parsePublicIp } from "../../agent/sources/validate";

describe("parsePublicIp", () => {
  it("takes unicast dotted quads as they are and refuses the special ones and odd forms", () => {
    expect(parsePublicIp("192.168.50.17")).toBe("192.168.50.17");
    expect(parsePublicIp("1.0.0.0")).toBe("1.0.0.0");
    for (const text of ["0.0.0.0", "127.0.0.1", "127.255.255.255", "224.0.0.1", "239.1.2.3", "255.255.255.255", "010.0.0.1", "1.2.3", "1.2.3.4 ", "1.2.3.4/32"]) {
      expect(parsePublicIp(text), text).toBeUndefined();
    }
    expect(parsePublicIp("FD00::0001")).toBe("fd00::1");
    expect(parsePublicIp("fe80::1")).toBeUndefined();
  });
});

describe("containsAddress (host-gw: is the peer on a subnet of the underlay?)", () => {
  it("compares by family and bounds, and refuses what is not an address", () => {
    expect(containsAddress("192.168.1.0/24", "192.168.1.7")).toBe(true);
    expect(containsAddress("192.168.1.0/24", "192.168.1.0")).toBe(true);
    expect(containsAddress("192.168.1.0/24", "192.168.1.255")).toBe(true);
    expect(containsAddress("192.168.1.0/24", "192.168.2.1")).toBe(false);
    expect(containsAddress("fd00:1::/64", "fd00:1::9")).toBe(true);
    expect(containsAddress("fd00:1::/64", "fd00:2::9")).toBe(false);
    expect(containsAddress("0.0.0.0/0", "::1")).toBe(false);
    expect(containsAddress("::/0", "10.0.0.1")).toBe(false);
    for (const ip of ["192.168.1.7/24", "192.168.1.07", "fe80::1%eth0", "", "garbage"]) expect(containsAddress("0.0.0.0/0", ip), ip).toBe(false);
    expect(containsAddress("not a subnet", "192.168.1.7")).toBe(false);
  });
});
