import { describe, expect, it } from "vitest";
import { hostVethAlias, hostVethName, isLeftoverOf, parseHostVethAlias } from "../../cni/host-veth";

describe("host veth naming and ownership", () => {
  it("derives a stable veth + 8 hex name per attachment", () => {
    expect(hostVethName("abc", "eth0")).toMatch(/^veth[0-9a-f]{8}$/);
    expect(hostVethName("abc", "eth0")).toBe(hostVethName("abc", "eth0"));
    expect(hostVethName("abc", "eth0")).not.toBe(hostVethName("abc", "eth1"));
    const names = new Set(Array.from({ length: 5000 }, (_, i) => hostVethName(`container-${i}`, "eth0")));
    expect(names.size).toBe(5000);
  });

  it("round-trips the alias and ignores other aliases", () => {
    expect(parseHostVethAlias(hostVethAlias("c1/x", "eth0"))).toEqual({ containerId: "c1/x", ifname: "eth0" });
    expect(parseHostVethAlias("flannel")).toBeUndefined();
    expect(parseHostVethAlias(undefined)).toBeUndefined();
  });

  it("recognises a marked veth, or an unmarked one on no bridge with the derived name, and nothing else", () => {
    const name = hostVethName("c1", "eth0");
    expect(isLeftoverOf({ name, kind: "veth", alias: hostVethAlias("c1", "eth0"), masterIndex: 4 }, "c1", "eth0")).toBe(true);
    expect(isLeftoverOf({ name, kind: "veth" }, "c1", "eth0")).toBe(true);
    expect(isLeftoverOf({ name, kind: "veth", masterIndex: 4 }, "c1", "eth0")).toBe(false); // enslaved by someone
    expect(isLeftoverOf({ name, kind: "veth", alias: "other" }, "c1", "eth0")).toBe(false);
    expect(isLeftoverOf({ name, kind: "bridge" }, "c1", "eth0")).toBe(false);
    expect(isLeftoverOf({ name: "veth00000000", kind: "veth" }, "c1", "eth0")).toBe(false);
  });
});
