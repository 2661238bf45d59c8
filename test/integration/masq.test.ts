// The ip-masq table in a throwaway namespace: nft runs inside it through `ip netns exec`, never in the root
// namespace. A "pod" and an "external host" namespace hang off the node namespace; the external host has no
// route back to the pod network, so a pod's ping only comes back when it was masqueraded.
import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyMasq, checkMasq, readMasq, removeMasq, renderMasqRules, type NftOptions } from "../../agent/masq";
import { parseNetworkConfig } from "../../agent/network-config";
import { createTestNetns, type TestNetns } from "../support/netns";

const PING = existsSync("/bin/busybox") ? ["/bin/busybox", "ping"] : ["ping"];

let node: TestNetns;
let pod: TestNetns;
let external: TestNetns;
let nft: NftOptions;

const config = parseNetworkConfig({ Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00:10:244::/56" });

beforeAll(() => {
  node = createTestNetns("masq-node");
  pod = createTestNetns("masq-pod");
  external = createTestNetns("masq-ext");
  nft = { nft: ["ip", "netns", "exec", node.name, "nft"] };
  node.exec(["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
  node.exec(["ip", "link", "add", "vethpod", "type", "veth", "peer", "name", "eth0", "netns", pod.name]);
  node.exec(["ip", "addr", "add", "10.244.1.1/24", "dev", "vethpod"]);
  node.exec(["ip", "link", "set", "vethpod", "up"]);
  pod.exec(["ip", "addr", "add", "10.244.1.2/24", "dev", "eth0"]);
  pod.exec(["ip", "link", "set", "eth0", "up"]);
  pod.exec(["ip", "route", "add", "default", "via", "10.244.1.1"]);
  node.exec(["ip", "link", "add", "vethext", "type", "veth", "peer", "name", "eth0", "netns", external.name]);
  node.exec(["ip", "addr", "add", "203.0.113.1/24", "dev", "vethext"]);
  node.exec(["ip", "link", "set", "vethext", "up"]);
  external.exec(["ip", "addr", "add", "203.0.113.2/24", "dev", "eth0"]);
  external.exec(["ip", "link", "set", "eth0", "up"]);
});

afterAll(() => {
  pod?.remove();
  external?.remove();
  node?.remove();
});

function podReachesExternal(attempts = 3): boolean {
  for (let i = 0; i < attempts; i++) {
    if (/\b1 (packets )?received/.test(pod.exec([...PING, "-c", "1", "-W", "1", "203.0.113.2"], { allowFailure: true }))) return true;
  }
  return false;
}

function tables(): string {
  return node.exec(["nft", "list", "tables"]);
}

describe("masquerade table", () => {
  it("is absent at first: pods cannot reach a host that has no route back to them", async () => {
    expect(await readMasq(nft)).toBeUndefined();
    expect(await checkMasq(config, nft)).toEqual({ inPlace: false, problems: ["table inet weft does not exist"] });
    expect(podReachesExternal(1)).toBe(false);
  });

  it("applies the rules for both families; the pod's traffic leaves with the node's address", async () => {
    await applyMasq(config, nft);
    const listed = node.exec(["nft", "list", "table", "inet", "weft"]);
    expect(listed).toContain("type nat hook postrouting priority srcnat; policy accept;");
    expect(listed).toMatch(/ip saddr 10\.244\.0\.0\/16 ip daddr 10\.244\.0\.0\/16 return/);
    expect(listed).toMatch(/ip saddr 10\.244\.0\.0\/16 ip daddr 169\.254\.0\.0\/16 return/);
    expect(listed).toMatch(/ip saddr 10\.244\.0\.0\/16 masquerade fully-random/);
    expect(listed).toMatch(/ip6 saddr fd00:10:244::\/56 masquerade fully-random/);
    expect(listed).toMatch(/meta mark & 0x00004000 == 0x00004000 return/);
    expect(listed).toMatch(/ip daddr 10\.244\.0\.0\/16 accept/);
    expect(await readMasq(nft)).toBe(listed);
    expect(await checkMasq(config, nft)).toEqual({ inPlace: true, problems: [] });
    expect(podReachesExternal()).toBe(true);
  });

  it("re-applies idempotently: the same single table, no duplicated rules", async () => {
    const before = await readMasq(nft);
    await applyMasq(config, nft);
    await applyMasq(config, nft);
    const after = await readMasq(nft);
    // Rule handles are renumbered by the replacement; the rules themselves are the same.
    expect(after).toBe(before);
    expect(tables().trim().split("\n")).toEqual(["table inet weft"]);
  });

  it("notices a rule removed or added by hand, and re-applying replaces the whole table", async () => {
    node.exec(["nft", "add", "rule", "inet", "weft", "forward", "ip", "saddr", "198.51.100.0/24", "drop"]);
    expect(await checkMasq(config, nft)).toEqual({ inPlace: false, problems: ["chain forward has 7 rules, expected 6"] });
    await applyMasq(config, nft);
    expect(await readMasq(nft)).not.toContain("198.51.100.0/24");
    expect((await checkMasq(config, nft)).inPlace).toBe(true);

    const other = parseNetworkConfig({ Network: "10.244.0.0/16", NonMasqueradeCIDRs: ["10.0.0.0/8"] });
    const check = await checkMasq(other, nft);
    expect(check.inPlace).toBe(false);
    expect(check.problems[0]).toMatch(/^table inet weft has digest weft:[0-9a-f]{16}, expected weft:[0-9a-f]{16}/);
  });

  it("replaces atomically: a script that fails part-way leaves the previous table as it was", async () => {
    const before = await readMasq(nft);
    const other = parseNetworkConfig({ Network: "10.245.0.0/16" });
    const broken = `${renderMasqRules(other)}add rule inet weft forward jump nosuchchain\n`;
    expect(() => node.exec(["nft", "-f", "-"], { input: broken })).toThrow(/nft -f - failed/);
    expect(await readMasq(nft)).toBe(before);
    expect((await checkMasq(config, nft)).inPlace).toBe(true);
  });

  it("switches to another config in one step", async () => {
    const other = parseNetworkConfig({ Network: "10.244.0.0/16", NonMasqueradeCIDRs: ["10.0.0.0/8", "192.168.0.0/16"] });
    await applyMasq(other, nft);
    const listed = (await readMasq(nft)) ?? "";
    expect(listed).toMatch(/ip daddr \{ 10\.0\.0\.0\/8, 192\.168\.0\.0\/16 \} return/);
    expect(listed).not.toContain("ip6");
    expect(listed).not.toContain("169.254.0.0/16");
    expect((await checkMasq(other, nft)).inPlace).toBe(true);
    expect(podReachesExternal()).toBe(true);
  });

  it("removes the table, twice without error; pods are no longer masqueraded", async () => {
    await removeMasq(nft);
    await removeMasq(nft);
    expect(await readMasq(nft)).toBeUndefined();
    expect(tables().trim()).toBe("");
    // Each ping process is a new ICMP flow (its own id), so conntrack's earlier NAT mappings do not apply.
    expect(podReachesExternal(1)).toBe(false);
  });

  it("reports nft's own error, naming the command", async () => {
    await expect(applyMasq(config, { nft: ["ip", "netns", "exec", `${node.name}-missing`, "nft"] })).rejects.toThrow(
      /^ip netns exec .*-missing nft -f - failed \(exit status \d+\): /,
    );
  });
});
