// The bound on repairs of this node's own record: a writer that keeps undoing them is not fought forever.
import { describe, expect, it } from "vitest";
import { RepairGuard } from "../../agent/sources/repair-guard";

describe("RepairGuard", () => {
  it("allows `limit` repairs within the window, then pauses that kind alone", () => {
    const guard = new RepairGuard({ limit: 3, windowMs: 1_000, pauseMs: 5_000 });
    expect(guard.waitMs("annotations", 0)).toBe(0);
    expect(guard.record("annotations", 0)).toBe(false);
    expect(guard.record("annotations", 100)).toBe(false);
    expect(guard.record("annotations", 200)).toBe(true);
    expect(guard.waitMs("annotations", 200)).toBe(5_000);
    expect(guard.contested("annotations", 4_000)).toBe(true);
    expect(guard.waitMs("condition", 200)).toBe(0);
    expect(guard.waitMs("annotations", 5_200)).toBe(0);
  });

  it("spreads out repairs that stay under the limit per window without pausing", () => {
    const guard = new RepairGuard({ limit: 3, windowMs: 1_000, pauseMs: 5_000 });
    for (let t = 0; t < 10_000; t += 600) expect(guard.record("lease", t)).toBe(false);
  });

  it("doubles the pause for each contest in a row, up to the maximum, and starts afresh after a quiet window", () => {
    const guard = new RepairGuard({ limit: 2, windowMs: 1_000, pauseMs: 2_000, maxPauseMs: 5_000 });
    const contest = (at: number): number => {
      guard.record("x", at);
      expect(guard.record("x", at + 1)).toBe(true);
      return guard.waitMs("x", at + 1);
    };
    expect(contest(0)).toBe(2_000);
    expect(contest(2_001)).toBe(4_000);
    expect(contest(6_002)).toBe(5_000);
    // A full window after the pause with no repair: the next contest pauses for the first length again.
    expect(contest(11_003 + 1_000)).toBe(2_000);
  });

  it("forgets everything on reset (a new object)", () => {
    const guard = new RepairGuard({ limit: 1, windowMs: 1_000, pauseMs: 5_000 });
    guard.record("x", 0);
    expect(guard.contested("x", 1)).toBe(true);
    guard.reset();
    expect(guard.contested("x", 1)).toBe(false);
  });
});
