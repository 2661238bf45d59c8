import { describe, expect, it } from "vitest";
import { NetworkConfigError } from "../../agent/errors";
import { parseNetworkConfig } from "../../agent/network-config";

function errorOf(input: string | Record<string, unknown>): NetworkConfigError {
  try {
    parseNetworkConfig(input);
  } catch (error) {
    if (error instanceof NetworkConfigError) return error;
    throw new Error(`expected a NetworkConfigError, got ${String(error)}`);
  }
  throw new Error("expected a NetworkConfigError, nothing was thrown");
}

describe("parseNetworkConfig", () => {
  it("fills flannel's defaults for a minimal config", () => {
    expect(parseNetworkConfig('{"Network": "10.244.0.0/16"}')).toEqual({
      network: "10.244.0.0/16",
      subnetLen: 24,
      backend: { type: "vxlan", vni: 1, port: 8472 },
      nonMasqueradeCidrs: ["169.254.0.0/16", "fe80::/10"],
    });
  });

  it("reads flannel's kube-flannel-cfg net-conf.json", () => {
    const text = JSON.stringify({ Network: "10.244.0.0/16", EnableNFTables: false, Backend: { Type: "vxlan" } });
    expect(parseNetworkConfig(text).backend).toEqual({ type: "vxlan", vni: 1, port: 8472 });
  });

  it("reads a dual-stack host-gw config with every field", () => {
    const config = parseNetworkConfig({
      Network: "10.100.0.0/14",
      SubnetLen: 26,
      EnableIPv6: true,
      IPv6Network: "fd00:10:244::/56",
      IPv6SubnetLen: 80,
      Backend: { Type: "host-gw", MTU: 1400 },
      NonMasqueradeCIDRs: ["10.0.0.0/8", "10.1.0.0/16", "fd00::/8"],
    });
    expect(config).toEqual({
      network: "10.100.0.0/14",
      subnetLen: 26,
      ipv6Network: "fd00:10:244::/56",
      ipv6SubnetLen: 80,
      backend: { type: "host-gw", vni: 1, port: 8472, mtu: 1400 },
      nonMasqueradeCidrs: ["10.0.0.0/8", "fd00::/8"],
    });
  });

  it("matches keys case-insensitively, as flannel's Go decoder does", () => {
    const config = parseNetworkConfig({ network: "10.244.0.0/16", subnetlen: 25, backend: { type: "vxlan", vni: 4096, port: 4789 } });
    expect(config).toMatchObject({ subnetLen: 25, backend: { vni: 4096, port: 4789 } });
  });

  it.each([
    ["a /24 network: a quarter each", "10.1.2.0/24", 26],
    ["a /22 network", "10.1.0.0/22", 24],
    ["a /21 network", "10.1.0.0/21", 24],
  ])("picks SubnetLen like flannel for %s", (_name, network, expected) => {
    expect(parseNetworkConfig({ Network: network }).subnetLen).toBe(expected);
  });

  it("defaults IPv6SubnetLen to 64", () => {
    expect(parseNetworkConfig({ Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00::/48" }).ipv6SubnetLen).toBe(64);
  });

  it("treats Port 0 as the kernel's default 8472 and MTU 0 as unset", () => {
    expect(parseNetworkConfig({ Network: "10.244.0.0/16", Backend: { Port: 0, MTU: 0 } }).backend).toEqual({ type: "vxlan", vni: 1, port: 8472 });
  });

  it("accepts an empty NonMasqueradeCIDRs list (link-local is then masqueraded too)", () => {
    expect(parseNetworkConfig({ Network: "10.244.0.0/16", NonMasqueradeCIDRs: [] }).nonMasqueradeCidrs).toEqual([]);
  });

  it.each<[string, string | Record<string, unknown>, string, RegExp]>([
    ["text that is not JSON", "{Network:", "", /not JSON/],
    ["a JSON array", "[]", "", /expected a JSON object, got an array/],
    ["no Network", {}, "Network", /Network is required/],
    ["a Network that is not a CIDR", { Network: "10.244.0.0" }, "Network", /Network must be an IPv4 CIDR, got "10.244.0.0"/],
    ["an IPv6 Network", { Network: "fd00::/48" }, "Network", /must be an IPv4 CIDR/],
    ["a Network with host bits", { Network: "10.244.1.0/16" }, "Network", /has host bits set \(did you mean 10.244.0.0\/16\?\)/],
    ["SubnetLen not longer than the network", { Network: "10.244.0.0/16", SubnetLen: 16 }, "SubnetLen", /16 must be longer than the network's prefix \/16/],
    ["SubnetLen shorter than the network", { Network: "10.244.0.0/16", SubnetLen: 8 }, "SubnetLen", /longer than/],
    ["SubnetLen /31", { Network: "10.244.0.0/16", SubnetLen: 31 }, "SubnetLen", /at most 30/],
    ["SubnetLen as a string", { Network: "10.244.0.0/16", SubnetLen: "24" }, "SubnetLen", /must be an integer/],
    ["a network too small to split", { Network: "10.0.0.0/30" }, "SubnetLen", /too small/],
    ["EnableIPv6 without IPv6Network", { Network: "10.244.0.0/16", EnableIPv6: true }, "IPv6Network", /IPv6Network is required/],
    ["IPv6Network without EnableIPv6", { Network: "10.244.0.0/16", IPv6Network: "fd00::/48" }, "IPv6Network", /EnableIPv6 is not true/],
    ["IPv6SubnetLen without EnableIPv6", { Network: "10.244.0.0/16", IPv6SubnetLen: 64 }, "IPv6SubnetLen", /EnableIPv6 is not true/],
    ["an IPv4 IPv6Network", { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "10.0.0.0/8" }, "IPv6Network", /IPv6 CIDR/],
    ["IPv6SubnetLen ≤ prefix", { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00::/64", IPv6SubnetLen: 64 }, "IPv6SubnetLen", /longer than/],
    ["EnableIPv6 as a string", { Network: "10.244.0.0/16", EnableIPv6: "yes" }, "EnableIPv6", /true or false/],
    ["IPv6-only", { Network: "10.244.0.0/16", EnableIPv4: false }, "EnableIPv4", /IPv6-only/],
    ["an unknown backend", { Network: "10.244.0.0/16", Backend: { Type: "wireguard" } }, "Backend.Type", /must be one of "vxlan", "host-gw", got "wireguard"/],
    ["a Backend that is a string", { Network: "10.244.0.0/16", Backend: "vxlan" }, "Backend", /must be an object/],
    ["a VNI out of range", { Network: "10.244.0.0/16", Backend: { VNI: 16777216 } }, "Backend.VNI", /from 0 to 16777215, got 16777216/],
    ["a negative VNI", { Network: "10.244.0.0/16", Backend: { VNI: -1 } }, "Backend.VNI", /from 0 to 16777215/],
    ["a Port out of range", { Network: "10.244.0.0/16", Backend: { Port: 70000 } }, "Backend.Port", /from 0 to 65535/],
    ["a tiny MTU", { Network: "10.244.0.0/16", Backend: { MTU: 60 } }, "Backend.MTU", /between 68 and 65535/],
    ["NonMasqueradeCIDRs not an array", { Network: "10.244.0.0/16", NonMasqueradeCIDRs: "10.0.0.0/8" }, "NonMasqueradeCIDRs", /array/],
    ["a bad non-masquerade CIDR", { Network: "10.244.0.0/16", NonMasqueradeCIDRs: ["10.0.0.0/8", "bogus"] }, "NonMasqueradeCIDRs[1]", /got "bogus"/],
    ["a non-masquerade CIDR with host bits", { Network: "10.244.0.0/16", NonMasqueradeCIDRs: ["10.0.0.1/8"] }, "NonMasqueradeCIDRs[0]", /host bits/],
  ])("refuses %s, naming the field", (_name, input, field, message) => {
    const error = errorOf(input);
    expect(error.code).toBe("ERR_NETWORK_CONFIG");
    expect(error.field).toBe(field);
    expect(error.message).toMatch(message);
    expect(error.message).not.toContain("\n");
    if (field) expect(error.message).toContain(field);
  });
});
