// Many ADDs at once (as a node starting a DaemonSet's worth of pods), and ADDs killed midway: distinct
// addresses, and after DEL/GC nothing reserved and no veth left.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CniNode } from "../support/weft-fixture";

let node: CniNode;
beforeAll(() => {
  node = new CniNode("conc");
});
afterAll(() => node?.close());

describe("concurrency", () => {
  it("64 concurrent ADDs get 64 distinct IPs; 64 concurrent DELs leave nothing", async () => {
    const pods = Array.from({ length: 64 }, () => ({ containerId: node.containerId(), netns: node.pod().path }));
    const adds = await Promise.all(pods.map((pod) => node.runAsync("ADD", pod, node.conf())));
    for (const add of adds) expect(add.code, add.stdout + add.stderr).toBe(0);
    const ips = adds.map((add) => add.json.ips[0].address);
    expect(new Set(ips).size).toBe(64);
    expect(node.reservations()).toHaveLength(64);
    expect(node.hostVeths()).toHaveLength(64);

    const dels = await Promise.all(pods.map((pod) => node.runAsync("DEL", pod, node.conf())));
    for (const del of dels) expect(del.code, del.stdout + del.stderr).toBe(0);
    expect(node.reservations()).toEqual([]);
    expect(node.hostVeths()).toEqual([]);
  });

  it("ADDs killed with SIGKILL at random points leak nothing after DEL, and GC cleans what DEL was not told of", async () => {
    const conf = node.conf();
    // Kill points spread over a whole ADD, measured here (start-up dominates; the kernel work is a few ms).
    const probe = { containerId: node.containerId(), netns: node.pod().path };
    const started = performance.now();
    node.add(probe, conf);
    const addMs = performance.now() - started;
    node.run("DEL", probe, conf);

    const killed: { containerId: string; netns: string }[] = [];
    let vethsLeft = 0;
    for (let round = 0; round < 6 && vethsLeft === 0; round++) {
      for (let i = 0; i < 12; i++) {
        const pod = { containerId: node.containerId(), netns: node.pod().path };
        killed.push(pod);
        const result = await node.runAsync("ADD", pod, conf, { timeoutMs: Math.max(1, Math.round(addMs * (0.5 + i * 0.05))) });
        if (result.code === 0) node.run("DEL", pod, conf); // finished before the kill: not the case under test
      }
      vethsLeft = node.hostVeths().length;
    }
    // The test is only meaningful if some kill landed after the veth was made (and so after the reservation).
    expect(vethsLeft).toBeGreaterThan(0);
    expect(node.reservations().length).toBeGreaterThan(0);
    // Half are cleaned by DEL, as a runtime retrying its failed ADD would; the rest by GC.
    for (const pod of killed.slice(0, killed.length / 2)) {
      const del = node.run("DEL", pod, conf);
      expect(del.code, del.stdout).toBe(0);
    }
    const gc = node.run("GC", {}, { ...conf, "cni.dev/valid-attachments": [] });
    expect(gc.code, gc.stdout).toBe(0);
    expect(node.reservations()).toEqual([]);
    expect(node.hostVeths()).toEqual([]);
    // A retried ADD of a killed attachment works (the leftover veth name is replaced).
    const last = killed[killed.length - 1]!;
    const retry = node.run("ADD", last, conf);
    if (retry.code !== 0) {
      // the pod end may have survived a late kill inside the pod netns: DEL first, as runtimes do
      expect(retry.json.code, retry.stdout).toBe(101);
    }
    node.run("DEL", last, conf);
    expect(node.reservations()).toEqual([]);
  });

  it("a failed ADD that created the bridge never removes it from under the ADDs joining it", async () => {
    const failingRoute = { dst: "192.0.2.0/24", gw: "198.51.100.1" }; // its gateway is on no link: the pod route fails
    for (let round = 0; round < 6; round++) {
      const bridge = `cnirace${round}`;
      const good = node.conf({ bridge, ipam: { ranges: [[{ subnet: "10.250.0.0/24" }]], dataDir: node.dataDir } });
      const bad = { ...good, ipam: { ...(good.ipam as object), routes: [failingRoute] } };
      // Failing and succeeding ADDs interleaved, all racing to create the new bridge.
      const attempts = Array.from({ length: 20 }, (_, i) => ({ pod: { containerId: node.containerId(), netns: node.pod().path }, conf: i % 2 === 0 ? bad : good }));
      const results = await Promise.all(attempts.map(({ pod, conf }) => node.runAsync("ADD", pod, conf)));
      try {
        attempts.forEach(({ conf }, i) => {
          const result = results[i]!;
          if (conf === bad) expect(result.json, result.stderr).toMatchObject({ code: 102, msg: expect.stringContaining("192.0.2.0/24") });
          else expect(result.code, result.stdout + result.stderr).toBe(0);
        });
        // Every pod that got an address is on the bridge that exists now.
        for (const [i, { pod, conf }] of attempts.entries()) {
          if (conf !== good) continue;
          const check = node.run("CHECK", pod, { ...conf, prevResult: results[i]!.json });
          expect(check.code, check.stdout).toBe(0);
        }
        expect(node.node.exec(["ip", "-o", "link", "show", "master", bridge]).trim().split("\n")).toHaveLength(10);
      } finally {
        for (const { pod, conf } of attempts) if (conf === good) node.run("DEL", pod, conf);
        node.node.exec(["ip", "link", "del", bridge]);
      }
      expect(node.reservations()).toEqual([]);
      expect(node.hostVeths()).toEqual([]);
    }
  });
});
