// parseCidr reads IPv4 by arithmetic and IPv6 through ip-num: it must read every text exactly as ip-num alone
// did (cni/spec/addresses before, the reference below), which the CNI types, the agent and flannel's layout share.
import { IPv4CidrRange, IPv6CidrRange, Validator, collapseIPv6Number } from "ip-num";
import { describe, expect, it } from "vitest";
import { cidrInside, firstHost, formatIpValue, networkAddress, parseCidr, parseCidrs, splitCidr, type Cidr } from "./cidr";
import { ipFamily } from "./syntax";

/** The CNI types' reading before the fast path: ip-num for both families. */
function ipNumCidr(text: string): Cidr | undefined {
  try {
    const slash = text.indexOf("/");
    if (slash < 0) return undefined;
    const address = text.slice(0, slash);
    const prefix = text.slice(slash + 1);
    if (!/^(0|[1-9]\d{0,2})$/.test(prefix)) return undefined;
    const family = ipFamily(address);
    const prefixLength = Number(prefix);
    if (family === 4) {
      if (prefixLength > 32) return undefined;
      const range = IPv4CidrRange.fromCidr(text);
      return { family, address, prefixLength, network: `${range.getFirst().toString()}/${prefixLength}`, first: range.getFirst().getValue(), last: range.getLast().getValue() };
    }
    if (family === 6) {
      if (prefixLength > 128 || !Validator.isValidIPv6CidrNotation(text)[0]) return undefined;
      const range = IPv6CidrRange.fromCidr(text);
      const network = `${collapseIPv6Number(range.getFirst().toString())}/${prefixLength}`;
      return { family, address: collapseIPv6Number(address), prefixLength, network, first: range.getFirst().getValue(), last: range.getLast().getValue() };
    }
  } catch {
    // not a CIDR
  }
  return undefined;
}

/** A small deterministic generator (mulberry32), so that a failure can be replayed. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ODD = [
  "10.0.0.0/8", "10.244.3.7/24", "0.0.0.0/0", "255.255.255.255/32", "1.2.3.4/31", "192.168.1.1/0", "128.0.0.1/1",
  "10.0.0.0/33", "10.0.0.0/08", "010.0.0.0/8", "1.2.3/24", "1.2.3.4.5/24", "10.0.0.0/", "/24", "10.0.0.256/24",
  "10.0.0.0/-1", "10.0.0.0/ 8", " 10.0.0.0/8", "10..0.0/8", "fd00::/64", "fd00::1/64", "fd00:10:244:3::/64", "::/0",
  "::ffff:10.0.0.0/104", "fe80::1%eth0/64", "abc", "",
  // more of both families: uppercase, leading zeros in groups, the whole space, dotted tails, prefixes out of range
  "FD00:10:244::1/64", "2001:0DB8:0000::/32", "::1/128", "::/128", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128",
  "::ffff:250.251.252.253/120", "::10.1.2.3/128", "fd00::/129", "fd00::/064", "fd00::/1000", "fd00::/", "fd00::1/64/1",
  "10.0.0.0/8/8", "10.0.0.0", "fd00::", "1.2.3.4/032",
];

describe("parseCidr", () => {
  it("reads every text as ip-num does (family, address, network, bounds), or refuses it alike", () => {
    const next = random(42);
    const octet = (): number => Math.floor(next() * 256);
    const group = (): string => (next() < 0.4 ? "0" : Math.floor(next() * 0x10000).toString(16));
    const texts = [...ODD];
    for (let i = 0; i < 3000; i++) texts.push(`${octet()}.${octet()}.${octet()}.${octet()}/${Math.floor(next() * 33)}`);
    for (let i = 0; i < 500; i++) texts.push(`${Array.from({ length: 8 }, group).join(":")}/${Math.floor(next() * 129)}`);
    for (const text of texts) {
      const expected = ipNumCidr(text);
      const parsed = parseCidr(text);
      if (!expected) {
        expect(parsed, text).toBeUndefined();
        continue;
      }
      expect(parsed, text).toEqual(expected);
      const first = expected.family === 4 ? IPv4CidrRange.fromCidr(text).getFirst().toString() : collapseIPv6Number(IPv6CidrRange.fromCidr(text).getFirst().toString());
      expect(networkAddress(parsed!), text).toBe(first);
    }
  });

  it("clears host bits and keeps the address part", () => {
    expect(parseCidr("10.244.3.7/24")).toEqual({ family: 4, address: "10.244.3.7", prefixLength: 24, network: "10.244.3.0/24", first: 0x0af40300n, last: 0x0af403ffn });
    expect(parseCidr("fd00:0:0:1::5/64")).toEqual({
      family: 6, address: "fd00:0:0:1::5", prefixLength: 64, network: "fd00:0:0:1::/64",
      first: 0xfd000000000000010000000000000000n, last: 0xfd00000000000001ffffffffffffffffn,
    });
    expect(parseCidr("::/0")).toMatchObject({ network: "::/0", first: 0n, last: 2n ** 128n - 1n });
    expect(parseCidr("0.0.0.0/0")).toMatchObject({ network: "0.0.0.0/0", first: 0n, last: 2n ** 32n - 1n });
  });

  it("refuses the odd forms the CNI types refuse: leading zeros, zones, no prefix, prefixes out of range", () => {
    for (const text of ["10.0.0.0/08", "010.0.0.0/8", "10.0.0.0/33", "10.0.0.0", "fd00::", "fd00::/129", "fd00::/064", "fe80::1%eth0/64", "10.0.0.0/ 8"]) {
      expect(parseCidr(text), text).toBeUndefined();
    }
  });

  it("reads IPv6 as ip-num does: a dotted tail is mostly refused, and the address part keeps the case written", () => {
    expect(parseCidr("::ffff:10.0.0.0/104")).toBeUndefined();
    expect(parseCidr("FD00:10:244::1/64")).toMatchObject({ address: "FD00:10:244::1", network: "fd00:10:244::/64" });
  });

  it("hands out the same frozen object for the same text", () => {
    const first = parseCidr("10.244.9.0/24");
    expect(parseCidr("10.244.9.0/24")).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
    expect(parseCidrs(["garbage", "10.244.9.0/24", "fd00:9::/64"]).map((c) => c.network)).toEqual(["10.244.9.0/24", "fd00:9::/64"]);
  });
});

describe("questions about a CIDR", () => {
  it("tells containment, within one family only", () => {
    const outer = parseCidr("10.244.0.0/16")!;
    expect(cidrInside(parseCidr("10.244.3.0/24")!, outer)).toBe(true);
    expect(cidrInside(outer, outer)).toBe(true);
    expect(cidrInside(parseCidr("10.0.0.0/8")!, outer)).toBe(false);
    expect(cidrInside(parseCidr("10.245.0.0/24")!, outer)).toBe(false);
    expect(cidrInside(parseCidr("fd00:0:0:1::/64")!, parseCidr("fd00::/48")!)).toBe(true);
    expect(cidrInside(parseCidr("fd00:1::/64")!, parseCidr("fd00::/48")!)).toBe(false);
    expect(cidrInside(parseCidr("::/128")!, parseCidr("0.0.0.0/0")!)).toBe(false);
  });

  it("gives the network address and the first host of both families", () => {
    expect(networkAddress(parseCidr("10.244.1.7/24")!)).toBe("10.244.1.0");
    expect(firstHost(parseCidr("10.244.1.7/24")!)).toBe("10.244.1.1");
    expect(networkAddress(parseCidr("fd00:10:244:1::9/64")!)).toBe("fd00:10:244:1::");
    expect(firstHost(parseCidr("fd00:10:244:1::/64")!)).toBe("fd00:10:244:1::1");
    expect(() => firstHost(parseCidr("255.255.255.255/32")!)).toThrow();
    expect(() => firstHost(parseCidr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128")!)).toThrow();
  });

  it("prints address values", () => {
    expect(formatIpValue(4, 0x0af40301n)).toBe("10.244.3.1");
    expect(formatIpValue(6, 0xfd000000000000000000000000000001n)).toBe("fd00::1");
    expect(formatIpValue(6, 0xffff0a010203n)).toBe("::ffff:a01:203");
    expect(() => formatIpValue(4, 2n ** 32n)).toThrow(RangeError);
  });
});

describe("splitCidr (the encoder's reading)", () => {
  it("takes bare addresses, leading zeros in the prefix, and any address ipFamily takes", () => {
    expect(splitCidr("10.1.2.3/24")).toEqual({ family: 4, address: "10.1.2.3", prefixLength: 24 });
    expect(splitCidr("10.1.2.3")).toEqual({ family: 4, address: "10.1.2.3", prefixLength: 32 });
    expect(splitCidr("fd00::1")).toEqual({ family: 6, address: "fd00::1", prefixLength: 128 });
    expect(splitCidr("10.0.0.0/08")).toEqual({ family: 4, address: "10.0.0.0", prefixLength: 8 });
    expect(splitCidr("::ffff:10.1.2.3/128")).toEqual({ family: 6, address: "::ffff:10.1.2.3", prefixLength: 128 });
    expect(splitCidr("FD00::1/64")).toEqual({ family: 6, address: "FD00::1", prefixLength: 64 });
  });

  it("refuses what is not an address or a prefix length of its family", () => {
    for (const text of ["10.1.2.3/33", "fd00::/129", "10.1.2.3/", "10.1.2.3/x", "x/24", "10.1.2.3/0024", "fe80::1%eth0/64", "10.1.2.3/-1", ""]) {
      expect(splitCidr(text), text).toBeUndefined();
    }
  });
});
