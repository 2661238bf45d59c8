import { describe, expect, it } from "vitest";
import { parseCidr } from "./cidr";
import { allDisjoint, DisjointRanges } from "./ranges";

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
        return parseCidr(text)!;
      });
      const pairwise = ranges.every((a, i) => ranges.every((b, j) => i === j || !overlaps(a, b)));
      expect(allDisjoint(ranges), ranges.map((r) => r.network).join(" ")).toBe(pairwise);
      if (!pairwise) withOverlap++;
    }
    expect(withOverlap).toBeGreaterThan(200);
    expect(withOverlap).toBeLessThan(1_800);
  });
});

describe("DisjointRanges", () => {
  it("finds the accepted range a new one overlaps, per family, with its owner", () => {
    const cidrs = ["10.244.0.0/24", "10.244.1.0/24", "10.244.0.0/16", "fd00::/64", "fd00::/48"].map((text) => parseCidr(text)!);
    const taken = new DisjointRanges(cidrs);
    taken.add(cidrs[0]!, "a");
    taken.add(cidrs[1]!, "b");
    taken.add(cidrs[3]!, "c");
    expect(taken.overlap(cidrs[2]!)).toEqual({ owner: "b", network: "10.244.1.0/24" });
    expect(taken.firstOverlap([cidrs[4]!])).toEqual({ range: cidrs[4], owner: "c", network: "fd00::/64" });
    expect(taken.overlap(parseCidr("10.245.0.0/24")!)).toBeUndefined();
  });

  it("has nothing to check when no two candidates overlap", () => {
    const cidrs = ["10.244.0.0/24", "10.244.1.0/24"].map((text) => parseCidr(text)!);
    const taken = new DisjointRanges(cidrs);
    taken.add(cidrs[0]!, "a");
    expect(taken.firstOverlap(cidrs)).toBeUndefined();
  });
});
