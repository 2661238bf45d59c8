import { describe, expect, it } from "vitest";
import { forEachAttribute, readString } from "./attributes";
import { NetlinkInputError } from "./errors";
import { formatIp, formatMac, ipFamily, parseCidr, writeIp, writeMac } from "./ip";
import { MessageWriter } from "./messages";

function roundTrip(text: string): string {
  const buffer = Buffer.alloc(16);
  const family = writeIp(buffer, 0, text);
  return formatIp(buffer, 0, family === 4 ? 4 : 16);
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
    ["64:ff9b::10.1.2.3", "64:ff9b::a01:203"],
  ])("%s → %s", (input, canonical) => {
    expect(roundTrip(input)).toBe(canonical);
  });

  it("agrees with the WHATWG URL serializer on IPv6 compression", () => {
    for (let i = 0; i < 2000; i++) {
      const groups = Array.from({ length: 8 }, () => (Math.random() < 0.5 ? "0" : Math.floor(Math.random() * 0x10000).toString(16)));
      const text = groups.join(":");
      const expected = new URL(`http://[${text}]/`).hostname.slice(1, -1);
      const buffer = Buffer.alloc(16);
      writeIp(buffer, 0, text);
      if (/^::(ffff:)?[0-9a-f]{1,4}:[0-9a-f]{1,4}$/.test(expected) && expected !== "::1") continue; // dotted form differs
      expect(formatIp(buffer, 0, 16)).toBe(expected);
    }
  });

  it("rejects what is not an address", () => {
    for (const bad of ["", "10.1.2", "10.1.2.256", "fe80::1%eth0", "1::2::3", "example.com"]) {
      expect(() => writeIp(Buffer.alloc(16), 0, bad)).toThrow(NetlinkInputError);
    }
  });

  it("parses CIDRs and bare addresses", () => {
    expect(parseCidr("10.1.2.3/24")).toEqual({ family: 4, address: "10.1.2.3", prefixLength: 24 });
    expect(parseCidr("fd00::1")).toEqual({ family: 6, address: "fd00::1", prefixLength: 128 });
    expect(parseCidr("0.0.0.0/0").prefixLength).toBe(0);
    for (const bad of ["10.1.2.3/33", "fd00::/129", "10.1.2.3/", "10.1.2.3/x", "x/24"]) {
      expect(() => parseCidr(bad)).toThrow(NetlinkInputError);
    }
  });

  it("writes and formats MAC addresses", () => {
    const buffer = Buffer.alloc(6);
    writeMac(buffer, 0, "0A:1b:2c:3D:4e:5f");
    expect(formatMac(buffer, 0, 6)).toBe("0a:1b:2c:3d:4e:5f");
    writeMac(buffer, 0, "02-00-00-00-00-01");
    expect(formatMac(buffer, 0, 6)).toBe("02:00:00:00:00:01");
    expect(() => writeMac(buffer, 0, "02:00:00:00:00")).toThrow(NetlinkInputError);
  });
});

describe("message encoding", () => {
  it("pads attributes to 4 bytes and patches nested lengths", () => {
    const m = new MessageWriter(16).start(16, 0x400).ifinfomsg({ index: 7 });
    m.string(3, "eth0");
    const nest = m.begin(18);
    m.string(1, "veth").u8(7, 1);
    m.end(nest);
    const bytes = m.seal(0x5, 42);
    expect(bytes.length).toBe(16 + 16 + 12 + 4 + 12 + 8);
    expect(bytes.readUInt32LE(0)).toBe(bytes.length);
    expect(bytes.readUInt16LE(6)).toBe(0x405);
    expect(bytes.readUInt32LE(8)).toBe(42);
    expect(bytes.readInt32LE(16 + 4)).toBe(7);
    const seen: [number, number][] = [];
    forEachAttribute(bytes, 32, bytes.length, (type, offset, length) => seen.push([type, length]));
    expect(seen).toEqual([[3, 5], [18, 20]]);
    const inner: string[] = [];
    forEachAttribute(bytes, 32 + 12 + 4, bytes.length, (type, offset, length) => {
      if (type === 1) inner.push(readString(bytes, offset, length));
    });
    expect(inner).toEqual(["veth"]);
  });
});

describe("ipFamily agrees with node:net's isIP (which the plugin does not load: it costs start-up)", () => {
  it("on edge cases and on 50,000 mutated addresses", async () => {
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
      if (Math.random() < 0.5) text = mutate(text);
      expect(ipFamily(text), text).toBe(reference(text));
    }
  });
});
