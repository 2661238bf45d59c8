// The overlay prober against the real kernel, in a throwaway namespace: raw ICMP echo, RTT, loss after warm-up.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OverlayProber } from "../../agent/debug/probe";
import { log } from "../../agent/log";
import { createTestNetns, type TestNetns } from "../support/netns";
import { eventually } from "../support/podman";

describe("OverlayProber", () => {
  let ns: TestNetns;
  let prober: OverlayProber | undefined;

  beforeAll(() => {
    ns = createTestNetns("probe");
    // A reachable address, and one routed into a black hole: its echoes go nowhere.
    ns.exec(["ip", "link", "add", "dummy0", "type", "veth", "peer", "name", "dummy1"]);
    ns.exec(["ip", "addr", "add", "192.0.2.1/24", "dev", "dummy0"]);
    ns.exec(["ip", "link", "set", "dummy0", "up"]);
    ns.exec(["ip", "link", "set", "dummy1", "up"]);
  });

  afterAll(async () => {
    await prober?.close();
    ns?.remove();
  });

  it("measures the RTT of answered echoes (IPv4 and IPv6) and counts unanswered ones as loss after the warm-up", async () => {
    prober = new OverlayProber({ intervalMs: 50, timeoutMs: 200, window: 10, logger: log, netns: ns.path });
    prober.setTargets([
      { node: "self", address: "192.0.2.1" },
      { node: "self6", address: "::1" },
      { node: "silent", address: "192.0.2.77" },
    ]);
    prober.start();
    const results = await eventually(() => {
      const all = prober!.results();
      const silent = all.find((r) => r.node === "silent")!;
      if (silent.sent < 8) throw new Error(`only ${silent.sent} probes so far`);
      return all;
    }, 15_000, 100);
    const byNode = Object.fromEntries(results.map((r) => [r.node, r]));
    for (const node of ["self", "self6"]) {
      expect(byNode[node]!.received).toBeGreaterThan(0);
      expect(byNode[node]!.loss).toBe(0);
      expect(byNode[node]!.rttMs).toBeGreaterThan(0);
      expect(byNode[node]!.rttMs).toBeLessThan(200);
    }
    expect(byNode.silent).toMatchObject({ received: 0, loss: 1 });
    expect(byNode.silent!.rttMs).toBeUndefined();
  });

  it("forgets targets that are gone and keeps the results of those that stay", () => {
    const before = prober!.results().find((r) => r.node === "self")!;
    prober!.setTargets([{ node: "self", address: "192.0.2.1" }]);
    const after = prober!.results();
    expect(after.map((r) => r.node)).toEqual(["self"]);
    expect(after[0]!.sent).toBeGreaterThanOrEqual(before.sent);
  });
});
