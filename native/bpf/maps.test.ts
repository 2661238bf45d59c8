// The map encoders against the layouts of weft.h (sizes checked against the objects' BTF in the integration test).
import { describe, expect, it } from "vitest";
import {
  COUNTERS, decodeAddr, decodeConfig, decodeEndpoint, decodeLpmKey, decodeNode, decodePolicyEndpoint, decodePolicyKey, decodePolicyPorts,
  decodeStatsKey, encodeAddr, encodeConfig, encodeEndpoint, encodeLpmKey, encodeNode, encodePolicyEndpoint, encodePolicyKey,
  encodePolicyPorts, encodeStatsKey, POLICY_MAX_PORTS, SIZES, sumPerCpu, sumPerCpuStats,
} from "./maps";

describe("BPF map encoders", () => {
  it("keys addresses of both families as 16 bytes, IPv4 mapped", () => {
    expect(encodeAddr("10.244.1.2").toString("hex")).toBe("00000000000000000000ffff0af40102");
    expect(encodeAddr("fd00:10:244:1::2").toString("hex")).toBe("fd000010024400010000000000000002");
    expect(decodeAddr(encodeAddr("10.244.1.2"))).toBe("10.244.1.2");
    expect(decodeAddr(encodeAddr("fd00:10:244:1::2"))).toBe("fd00:10:244:1::2");
    expect(() => encodeAddr("10.244.1")).toThrow('Not an IP address: "10.244.1"');
  });

  it("writes LPM keys with IPv4 prefixes offset by 96, from the network address", () => {
    const key = encodeLpmKey("10.244.3.0/24");
    expect(key.length).toBe(SIZES.lpmKey);
    expect(key.readUInt32LE(0)).toBe(120);
    expect(decodeLpmKey(key)).toBe("10.244.3.0/24");
    expect(decodeLpmKey(encodeLpmKey("fd00:10:244:3::/64"))).toBe("fd00:10:244:3::/64");
    expect(encodeLpmKey("fd00:10:244:3::/64").readUInt32LE(0)).toBe(64);
    expect(() => encodeLpmKey("10.244.3.0")).toThrow('Not a CIDR: "10.244.3.0"');
  });

  it("round-trips endpoints, nodes and the config", () => {
    const endpoint = { ifindex: 42, mac: "0a:58:0a:f4:01:02", gatewayMac: "0e:00:00:00:00:01", flags: 0 };
    expect(encodeEndpoint(endpoint).length).toBe(SIZES.endpoint);
    expect(decodeEndpoint(encodeEndpoint(endpoint))).toEqual(endpoint);
    for (const node of [{ ip: "192.168.90.12", vtepMac: "0e:00:00:00:00:02" }, { ip: "2001:db8::12", vtepMac: "0e:00:00:00:00:03" }]) {
      const value = encodeNode(node);
      expect(value.length).toBe(SIZES.node);
      expect(decodeNode(value)).toEqual(node);
      expect(value.readUInt16LE(22)).toBe(node.ip.includes(":") ? 1 : 0);
    }
    const config = { vtepIfindex: 7, vni: 1, vtepMac: "0e:00:00:00:00:01", zeroChecksum: true };
    expect(encodeConfig(config).length).toBe(SIZES.config);
    expect(decodeConfig(encodeConfig(config))).toEqual({ ...config, ready: true, version: 1, policy: false, policyOnly: false, deferEgress: false });
    expect(encodeConfig({ ...config, policy: true, policyOnly: true, deferEgress: true }).readUInt32LE(0)).toBe(1 | 2 | 4 | 8 | 16);
    expect(() => encodeEndpoint({ ...endpoint, mac: "0a:58" })).toThrow('Not a MAC address: "0a:58"');
  });

  it("sums per-CPU counters, and names one counter per verdict", () => {
    const value = Buffer.alloc(16);
    value.writeBigUInt64LE(3n, 0);
    value.writeBigUInt64LE(4n, 8);
    expect(sumPerCpu(value)).toBe(7n);
    expect(new Set(COUNTERS).size).toBe(COUNTERS.length);
    expect(COUNTERS).toHaveLength(27);
  });

  it("keys policy entries by rule set and peer prefix, the set counted in the prefix length", () => {
    const key = encodePolicyKey(7, "10.0.0.0/8");
    expect(key.length).toBe(SIZES.policyKey);
    expect(key.readUInt32LE(0)).toBe(32 + 96 + 8);
    expect(key.readUInt32LE(4)).toBe(7);
    expect(key.subarray(8).toString("hex")).toBe("00000000000000000000ffff0a000000");
    expect(decodePolicyKey(key)).toEqual({ set: 7, cidr: "10.0.0.0/8" });
    expect(decodePolicyKey(encodePolicyKey(9, "fd00::/64"))).toEqual({ set: 9, cidr: "fd00::/64" });
    expect(encodePolicyKey(1, "0.0.0.0/0").readUInt32LE(0)).toBe(128);
  });

  it("writes port ranges with protocol numbers, and refuses what the programs cannot hold", () => {
    const ranges = [{ protocol: "TCP", first: 80, last: 80 }, { protocol: "SCTP", first: 1000, last: 2000 }, { protocol: "ANY", first: 0, last: 65535 }] as const;
    const value = encodePolicyPorts(ranges);
    expect(value.length).toBe(SIZES.policyPorts);
    expect(value.readUInt32LE(0)).toBe(3);
    expect([value[8], value[16], value[24]]).toEqual([6, 132, 0]);
    expect(decodePolicyPorts(value)).toEqual(ranges);
    expect(encodePolicyPorts([]).readUInt32LE(0)).toBe(0);
    const tooMany = Array.from({ length: POLICY_MAX_PORTS + 1 }, (_, i) => ({ protocol: "UDP" as const, first: i, last: i }));
    expect(() => encodePolicyPorts(tooMany)).toThrow("A policy entry holds at most 16 port ranges, not 17");
    expect(() => encodePolicyPorts([{ protocol: "TCP", first: 90, last: 80 }])).toThrow("Not a port range: 90-80");
  });

  it("round-trips policy endpoints and stats keys, and sums per-CPU stats", () => {
    expect(decodePolicyEndpoint(encodePolicyEndpoint({ ingressSet: 3, egressSet: 0 }))).toEqual({ ingressSet: 3, egressSet: 0 });
    expect(decodeStatsKey(encodeStatsKey("10.244.1.2", "egress"))).toEqual({ ip: "10.244.1.2", direction: "egress" });
    const stats = Buffer.alloc(2 * SIZES.stats);
    stats.writeBigUInt64LE(5n, 0);
    stats.writeBigUInt64LE(1n, 8);
    stats.writeBigUInt64LE(2n, 16);
    stats.writeBigUInt64LE(4n, 24);
    expect(sumPerCpuStats(stats)).toEqual({ allowed: 7, denied: 5 });
  });
});
