import { describe, expect, it } from "vitest";
import { formatIp, writeIp } from "./bytes";

function roundTrip(text: string): string {
  const buffer = Buffer.alloc(16);
  const family = writeIp(buffer, 0, text);
  if (family === 0) throw new Error(`${text} is not an address`);
  return formatIp(buffer, 0, family);
}

describe("IP text ⇄ bytes", () => {
  it.each([
    ["10.244.1.0", "10.244.1.0"],
    ["0.0.0.0", "0.0.0.0"],
    ["255.255.255.255", "255.255.255.255"],
    ["::", "::"],
    ["::1", "::1"],
    ["1::", "1::"],
    ["fd00:0:0:0:0:0:0:5", "fd00::5"],
    ["2001:DB8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
    ["2001:0db8:0000:0000:0000:0000:0002:0001", "2001:db8::2:1"],
    ["fe80::a:b:c:d", "fe80::a:b:c:d"],
    ["1:0:0:2:0:0:0:3", "1:0:0:2::3"],
    ["1:0:0:2:0:0:3:4", "1::2:0:0:3:4"],
    ["::ffff:10.1.2.3", "::ffff:10.1.2.3"],
    ["::ffff:0a01:0203", "::ffff:10.1.2.3"],
    ["::FFFF:A01:203", "::ffff:10.1.2.3"],
    ["::10.1.2.3", "::10.1.2.3"],
    ["64:ff9b::10.1.2.3", "64:ff9b::a01:203"],
  ])("%s → %s", (input, canonical) => {
    expect(roundTrip(input)).toBe(canonical);
  });

  it("writes network byte order", () => {
    const buffer = Buffer.alloc(16);
    expect(writeIp(buffer, 0, "10.1.2.3")).toBe(4);
    expect([...buffer.subarray(0, 4)]).toEqual([10, 1, 2, 3]);
    expect(writeIp(buffer, 0, "fd00::102")).toBe(6);
    expect([...buffer]).toEqual([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2]);
  });

  it("agrees with the WHATWG URL serializer on IPv6 compression", () => {
    for (let i = 0; i < 2000; i++) {
      const groups = Array.from({ length: 8 }, () => (Math.random() < 0.5 ? "0" : Math.floor(Math.random() * 0x10000).toString(16)));
      const text = groups.join(":");
      const expected = new URL(`http://[${text}]/`).hostname.slice(1, -1);
      const buffer = Buffer.alloc(16);
      writeIp(buffer, 0, text);
      if (/^::(ffff:)?[0-9a-f]{1,4}:[0-9a-f]{1,4}$/.test(expected) && expected !== "::1") continue; // dotted form differs
      expect(formatIp(buffer, 0, 6)).toBe(expected);
    }
  });

  it("writes nothing for what is not an address", () => {
    for (const bad of ["", "10.1.2", "10.1.2.256", "fe80::1%eth0", "1::2::3", "example.com", "010.1.2.3", "10.1.2.3/32"]) {
      const buffer = Buffer.alloc(16, 0xaa);
      expect(writeIp(buffer, 0, bad), bad).toBe(0);
      expect(buffer.equals(Buffer.alloc(16, 0xaa)), bad).toBe(true);
    }
  });
});
