import { IPv4 } from "ip-num";
import { describe, expect, it } from "vitest";
import { dottedQuad, familyOfValidIp, ipFamily, ipv4Value } from "./syntax";

describe("ipFamily", () => {
  it.each([
    ["10.244.1.0", 4], ["0.0.0.0", 4], ["255.255.255.255", 4],
    ["::", 6], ["::1", 6], ["1::", 6], ["fd00:0:0:0:0:0:0:5", 6], ["2001:0db8::1", 6], ["2001:DB8::A", 6],
    ["::ffff:10.1.2.3", 6], ["::FFFF:10.1.2.3", 6], ["::10.1.2.3", 6], ["64:ff9b::10.1.2.3", 6], ["1:2:3:4:5:6:10.1.2.3", 6],
  ] as const)("reads %s as IPv%i", (text, family) => {
    expect(ipFamily(text)).toBe(family);
  });

  it.each([
    "", "10.1.2", "10.1.2.256", "010.1.2.3", "10.1.2.03", "10.1.2.3 ", " 10.1.2.3", "10.1.2.3/32", "10..2.3",
    "fe80::1%eth0", "fe80::1%", "1::2::3", ":::", "12345::", "00000::", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7:",
    "::ffff:010.1.2.3", "::ffff:10.1.2.256", "1.2.3.4::", "1:2:3:4:5:6:7:1.2.3.4", "fd00::/64", "g::1", "example.com",
  ])("refuses %j", (text) => {
    expect(ipFamily(text)).toBe(0);
  });

  it("agrees with node:net's isIP (which the plugin does not load: it costs start-up) on 50,000 mutated addresses", async () => {
    const { isIP } = await import("node:net");
    const reference = (text: string) => (text.includes("%") ? 0 : isIP(text));
    const cases = ["1.2.3.4", "256.1.1.1", "01.2.3.4", "::", "::1", "1::", "fe80::1%eth0", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8:9",
      "1::2::3", "::ffff:1.2.3.4", "1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:7:1.2.3.4", "1.2.3.4::", "::1.2.3.4", "12345::", ":1::",
      "1:2:3:4:5:6:7::", "::1:2:3:4:5:6:7", "1:2:3:4::5:6:7:8", "", " 1.2.3.4", "1:2:3:4:5:6:7:"];
    for (const text of cases) expect(ipFamily(text), text).toBe(reference(text));
    const groups = () => Math.floor(Math.random() * 0x10000).toString(16);
    const mutate = (text: string) => {
      const at = Math.floor(Math.random() * (text.length + 1));
      const insert = ":.0fg"[Math.floor(Math.random() * 5)] as string;
      return Math.random() < 0.5 ? text.slice(0, at) + insert + text.slice(at) : text.slice(0, at) + text.slice(at + 1);
    };
    for (let i = 0; i < 50_000; i++) {
      const parts = Array.from({ length: 8 }, groups);
      const start = Math.floor(Math.random() * 8);
      const end = start + Math.floor(Math.random() * (8 - start));
      let text = Math.random() < 0.5 ? parts.join(":") : `${parts.slice(0, start).join(":")}::${parts.slice(end + 1).join(":")}`;
      if (Math.random() < 0.2) text = `${parts.slice(0, 2).join(":")}::${[1, 2, 3, 4].map(() => Math.floor(Math.random() * 300)).join(".")}`;
      const dottedTail = Math.random() < 0.2; // six groups and a dotted quad: the full form of an embedded IPv4
      if (dottedTail) text = `${parts.slice(0, 6).join(":")}:${[1, 2, 3, 4].map(() => Math.floor(Math.random() * 300)).join(".")}`;
      if (Math.random() < 0.5) text = mutate(text);
      expect(ipFamily(text), text).toBe(reference(text));
    }
  });
});

describe("IPv4 values", () => {
  it("reads dotted quads into their value and prints them back", () => {
    expect(ipv4Value("10.244.3.1")).toBe(0x0af40301);
    expect(ipv4Value("255.255.255.255")).toBe(0xffffffff);
    for (const text of ["0.0.0.0", "255.255.255.255", "10.244.3.1", "192.168.0.254"]) {
      expect(dottedQuad(Number(IPv4.fromString(text).getValue()))).toBe(text);
      expect(ipv4Value(text)).toBe(Number(IPv4.fromString(text).getValue()));
    }
    for (const text of ["010.0.0.1", "1.2.3", "1.2.3.4.5", "::1", "1.2.3.4/32"]) expect(ipv4Value(text), text).toBe(-1);
  });

  it("tells the family of a validated address", () => {
    expect(familyOfValidIp("192.168.50.1")).toBe(4);
    expect(familyOfValidIp("fd00::1")).toBe(6);
  });
});
