// The agent's cached, arithmetic pod CIDR parsing must read every text exactly as cni/spec/addresses (ip-num) does.
import { describe, expect, it } from "vitest";
import { IPv4 } from "ip-num";
import { containsAddress } from "../../agent/backends";
import { dottedQuad, familyOfValidIp, podCidr, podCidrsOf } from "../../agent/pod-cidr";
import { allDisjoint } from "../../agent/ranges";
import { parsePublicIp } from "../../agent/sources/validate";
import { networkAddress, parseCidr } from "../../cni/spec/addresses";

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
];

describe("podCidr", () => {
  it("reads every text as parseCidr does (network, network address, prefix, bounds), or refuses it alike", () => {
    const next = random(42);
    const octet = (): number => Math.floor(next() * 256);
    const texts = [...ODD];
    for (let i = 0; i < 3000; i++) texts.push(`${octet()}.${octet()}.${octet()}.${octet()}/${Math.floor(next() * 33)}`);
    for (const text of texts) {
      const expected = parseCidr(text);
      if (!expected) {
        expect(podCidr(text), text).toBeUndefined();
        continue;
      }
      expect(podCidr(text), text).toEqual({
        family: expected.family, cidr: expected.network, address: networkAddress(expected), prefixLength: expected.prefixLength,
        first: expected.range.getFirst().getValue(), last: expected.range.getLast().getValue(),
      });
    }
  });

  it("hands out the same frozen object for the same text", () => {
    const first = podCidr("10.244.9.0/24");
    expect(podCidr("10.244.9.0/24")).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
    expect(podCidrsOf({ podCidrs: ["garbage", "10.244.9.0/24", "fd00:9::/64"] }).map((c) => c.cidr)).toEqual(["10.244.9.0/24", "fd00:9::/64"]);
  });

  it("prints IPv4 values as dotted quads, and tells the family of a validated address", () => {
    for (const text of ["0.0.0.0", "255.255.255.255", "10.244.3.1", "192.168.0.254"]) expect(dottedQuad(Number(IPv4.fromString(text).getValue()))).toBe(text);
    expect(familyOfValidIp("192.168.50.1")).toBe(4);
    expect(familyOfValidIp("fd00::1")).toBe(6);
  });
});

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

describe("allDisjoint (the no-conflict fast path of the overlap checks)", () => {
  it("agrees with comparing every pair, on 2,000 random lists of CIDRs of both families", () => {
    let seed = 42;
    const next = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const overlaps = (a: { first: bigint; last: bigint; family: number }, b: typeof a) => a.family === b.family && a.first <= b.last && b.first <= a.last;
    let withOverlap = 0;
    for (let list = 0; list < 2_000; list++) {
      const ranges = Array.from({ length: 1 + Math.floor(next() * 12) }, () => {
        const v6 = next() < 0.3;
        const text = v6 ? `fd00:0:${Math.floor(next() * 8)}::/${48 + Math.floor(next() * 3) * 8}` : `10.${Math.floor(next() * 4)}.${Math.floor(next() * 8)}.0/${22 + Math.floor(next() * 3)}`;
        return podCidr(text)!;
      });
      const pairwise = ranges.every((a, i) => ranges.every((b, j) => i === j || !overlaps(a, b)));
      expect(allDisjoint(ranges), ranges.map((r) => r.cidr).join(" ")).toBe(pairwise);
      if (!pairwise) withOverlap++;
    }
    expect(withOverlap).toBeGreaterThan(200);
    expect(withOverlap).toBeLessThan(1_800);
  });
});
