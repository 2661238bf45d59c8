// Disjoint address ranges with an owner each, for the "does this pod CIDR overlap another node's?" checks that
// run over the whole node list: bigint bounds (ip-num's containment checks are far slower) kept sorted, so a
// check is a binary search, and a list of n nodes costs O(n log n) instead of O(n²).
import type { Cidr } from "./cidr";
import type { IpFamily } from "./syntax";

/** What the checks read of a CIDR: a parsed Cidr is one. */
export type AddressRange = Pick<Cidr, "family" | "network" | "first" | "last">;

/**
 * Whether no two of `ranges` overlap. One sort, O(n log n). Sorted by start, disjoint ranges each end before the
 * next starts, so comparing neighbours is enough.
 */
export function allDisjoint(ranges: readonly AddressRange[]): boolean {
  for (const family of [4, 6] as const) {
    const sorted = ranges.filter((r) => r.family === family).sort((a, b) => (a.first < b.first ? -1 : a.first > b.first ? 1 : 0));
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i]!.first <= sorted[i - 1]!.last) return false;
    }
  }
  return true;
}

export class DisjointRanges {
  readonly #taken: Record<IpFamily, { range: AddressRange; owner: string }[]> = { 4: [], 6: [] };
  /** No two candidates overlap: then no check can find anything, and nothing needs keeping. */
  readonly #noneOverlap: boolean;

  /**
   * `candidates`, when given, must hold every range that will be checked or added. If no two of them overlap (a
   * node list without conflicts, the usual case), overlap() and add() have nothing to do: one sort replaces the
   * checks node by node, whose sorted insertions cost O(n²) moves in all.
   */
  constructor(candidates?: readonly AddressRange[]) {
    this.#noneOverlap = candidates !== undefined && allDisjoint(candidates);
  }

  /** The accepted range `range` overlaps (its network), with its owner; undefined when none. */
  overlap(range: AddressRange): { owner: string; network: string } | undefined {
    if (this.#noneOverlap) return undefined;
    // The accepted ranges are disjoint and sorted by start, so a new range can only overlap the last one that
    // starts at or before its end: any earlier one ends before that one starts.
    const taken = this.#taken[range.family];
    const index = lastStartingAtOrBefore(taken, range.last);
    const candidate = index >= 0 ? taken[index] : undefined;
    if (!candidate || candidate.range.last < range.first) return undefined;
    return { owner: candidate.owner, network: candidate.range.network };
  }

  /** The first of `ranges` that overlaps an accepted one, with what it overlaps; undefined when none does. */
  firstOverlap(ranges: readonly AddressRange[]): { range: AddressRange; owner: string; network: string } | undefined {
    for (const range of ranges) {
      const found = this.overlap(range);
      if (found) return { range, ...found };
    }
    return undefined;
  }

  /** Adds a range that overlaps none (check with overlap() first). */
  add(range: AddressRange, owner: string): void {
    if (this.#noneOverlap) return;
    const taken = this.#taken[range.family];
    taken.splice(lastStartingAtOrBefore(taken, range.first) + 1, 0, { range, owner });
  }
}

function lastStartingAtOrBefore(taken: { range: AddressRange }[], value: bigint): number {
  let low = 0;
  let high = taken.length - 1;
  let found = -1;
  while (low <= high) {
    const middle = (low + high) >> 1;
    if (taken[middle]!.range.first <= value) {
      found = middle;
      low = middle + 1;
    } else {
      high = middle - 1;
    }
  }
  return found;
}
