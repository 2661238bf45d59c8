// What netlink adds to addresses: the checks before a request is built (NetlinkInputError), MAC bytes, and the
// message layout. Addresses themselves are native/addresses' (tested there).
import { describe, expect, it } from "vitest";
import { forEachAttribute, readIp, readString } from "./attributes";
import { keepMatching } from "./dump";
import { NetlinkInputError } from "./errors";
import { parseCidrParts, parseIpFamily } from "./ip";
import { formatMac, writeMac } from "./mac";
import { MessageWriter } from "./messages";

describe("addresses in requests", () => {
  it("rejects what is not an address", () => {
    for (const bad of ["", "10.1.2", "10.1.2.256", "fe80::1%eth0", "1::2::3", "example.com"]) {
      expect(() => parseIpFamily(bad)).toThrow(NetlinkInputError);
      expect(() => new MessageWriter().ip(1, bad, bad.includes(":") ? 6 : 4)).toThrow(NetlinkInputError);
    }
  });

  it("refuses an address of the other family than the attribute's", () => {
    expect(() => new MessageWriter().ip(1, "10.1.2.3", 6)).toThrow(NetlinkInputError);
    expect(() => new MessageWriter().ip(1, "fd00::1", 4)).toThrow(NetlinkInputError);
  });

  it("parses CIDRs and bare addresses", () => {
    expect(parseCidrParts("10.1.2.3/24")).toEqual({ family: 4, address: "10.1.2.3", prefixLength: 24 });
    expect(parseCidrParts("fd00::1")).toEqual({ family: 6, address: "fd00::1", prefixLength: 128 });
    expect(parseCidrParts("0.0.0.0/0").prefixLength).toBe(0);
    for (const bad of ["10.1.2.3/33", "fd00::/129", "10.1.2.3/", "10.1.2.3/x", "x/24"]) {
      expect(() => parseCidrParts(bad)).toThrow(NetlinkInputError);
    }
    expect(() => parseCidrParts("x/24")).toThrow(/not an IP address/);
    expect(() => parseCidrParts("10.1.2.3/33")).toThrow(/prefix length must be 0 to 32/);
  });

  it("reads addresses of 4 and 16 bytes, and anything else as hex", () => {
    const buffer = Buffer.from([10, 1, 2, 3, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    expect(readIp(buffer, 0, 4)).toBe("10.1.2.3");
    expect(readIp(buffer, 4, 16)).toBe("fd00::1");
    expect(readIp(buffer, 0, 3)).toBe("0a:01:02");
  });
});

describe("dump filters", () => {
  it("keeps the entries of the link and family asked for, all when none is", () => {
    const entries = [{ index: 1, family: 4 as const }, { index: 2, family: 6 as const }, { index: 1, family: 6 as const }, { family: 4 as const }];
    expect(keepMatching(entries, {})).toBe(entries);
    expect(keepMatching(entries, { index: 1 })).toEqual([entries[0], entries[2]]);
    expect(keepMatching(entries, { family: 6 })).toEqual([entries[1], entries[2]]);
    expect(keepMatching(entries, { index: 1, family: 4 })).toEqual([entries[0]]);
  });
});

describe("MAC addresses", () => {
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
