// The map encoders against the layouts of weft.h (sizes checked against the objects' BTF in the integration test).
import { describe, expect, it } from "vitest";
import {
  COUNTERS, decodeAddr, decodeConfig, decodeEndpoint, decodeLpmKey, decodeNode, encodeAddr, encodeConfig, encodeEndpoint,
  encodeLpmKey, encodeNode, SIZES, sumPerCpu,
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
    expect(decodeConfig(encodeConfig(config))).toEqual({ ...config, ready: true, version: 1 });
    expect(() => encodeEndpoint({ ...endpoint, mac: "0a:58" })).toThrow('Not a MAC address: "0a:58"');
  });

  it("sums per-CPU counters, and names one counter per verdict", () => {
    const value = Buffer.alloc(16);
    value.writeBigUInt64LE(3n, 0);
    value.writeBigUInt64LE(4n, 8);
    expect(sumPerCpu(value)).toBe(7n);
    expect(new Set(COUNTERS).size).toBe(COUNTERS.length);
    expect(COUNTERS).toHaveLength(19);
  });
});
