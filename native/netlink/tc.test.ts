// The tc messages of ./tc.ts byte by byte, against the uapi layouts (linux/rtnetlink.h struct tcmsg, linux/pkt_cls.h
// TCA_BPF_*), and the decoding of a filter dump entry as the kernel writes it. The kernel's side is in
// test/integration/tc-clsact.test.ts.
import { describe, expect, it } from "vitest";
import { forEachAttribute, readString } from "./attributes";
import { MessageWriter } from "./messages";
import { bpfFilterMessage, clsactMessage, decodeFilter, filterInfo, hookParent, PROTOCOL_ALL } from "./tc";

const RTM_NEWQDISC = 36;
const RTM_NEWTFILTER = 44;
const HEADER = 16;

/** The attributes of buffer[start, end) as [type, payload]. */
function attributes(buffer: Buffer, start: number, end: number): [number, Buffer][] {
  const found: [number, Buffer][] = [];
  forEachAttribute(buffer, start, end, (type, offset, length) => found.push([type, buffer.subarray(offset, offset + length)]));
  return found;
}

describe("tc handles", () => {
  it("names clsact's hooks as tc does (ffff:fff2 ingress, ffff:fff3 egress) and puts the priority above ETH_P_ALL", () => {
    expect(hookParent("ingress")).toBe(0xfffffff2);
    expect(hookParent("egress")).toBe(0xfffffff3);
    // htons(ETH_P_ALL) on a little-endian host: what `tc filter … protocol all` sends.
    expect(PROTOCOL_ALL).toBe(0x0300);
    expect(filterInfo(0x5746)).toBe(0x57460300);
    expect(filterInfo(0xffff)).toBe(0xffff0300);
  });
});

describe("clsact qdisc request", () => {
  it("is a tcmsg for ifindex, handle ffff:, parent ffff:fff1, then TCA_KIND clsact", () => {
    const bytes = clsactMessage(new MessageWriter().start(RTM_NEWQDISC, 0x600), 7).seal(0x5, 1);
    expect(bytes.readUInt16LE(4)).toBe(RTM_NEWQDISC);
    expect(bytes.readUInt16LE(6)).toBe(0x605);
    expect(bytes[HEADER]).toBe(0); // AF_UNSPEC
    expect(bytes.readInt32LE(HEADER + 4)).toBe(7);
    expect(bytes.readUInt32LE(HEADER + 8)).toBe(0xffff0000);
    expect(bytes.readUInt32LE(HEADER + 12)).toBe(0xfffffff1);
    expect(bytes.readUInt32LE(HEADER + 16)).toBe(0);
    const attrs = attributes(bytes, HEADER + 20, bytes.length);
    expect(attrs.map(([type, payload]) => [type, readString(payload, 0, payload.length)])).toEqual([[1, "clsact"]]);
    expect(bytes.length).toBe(HEADER + 20 + 12);
  });
});

describe("bpf filter request", () => {
  it("carries the hook, priority, handle, kind bpf, and the program fd, name and direct-action flag nested in TCA_OPTIONS", () => {
    const spec = { index: 12, hook: "egress" as const, priority: 0x5746, handle: 0x77656674, programFd: 33, name: "weft_to_pod" };
    const bytes = bpfFilterMessage(new MessageWriter().start(RTM_NEWTFILTER, 0x500), spec).seal(0x5, 9);
    expect(bytes.readUInt32LE(0)).toBe(bytes.length);
    expect(bytes.readInt32LE(HEADER + 4)).toBe(12);
    expect(bytes.readUInt32LE(HEADER + 8)).toBe(0x77656674);
    expect(bytes.readUInt32LE(HEADER + 12)).toBe(0xfffffff3);
    expect(bytes.readUInt32LE(HEADER + 16)).toBe(0x57460300);
    const [kind, options, ...rest] = attributes(bytes, HEADER + 20, bytes.length);
    expect(rest).toEqual([]);
    expect(kind![0]).toBe(1);
    expect(readString(kind![1], 0, kind![1].length)).toBe("bpf");
    expect(options![0]).toBe(2);
    const nested = attributes(options![1], 0, options![1].length);
    expect(nested.map(([type]) => type)).toEqual([6, 7, 8]); // TCA_BPF_FD, TCA_BPF_NAME, TCA_BPF_FLAGS
    expect(nested[0]![1].readUInt32LE(0)).toBe(33);
    expect(readString(nested[1]![1], 0, nested[1]![1].length)).toBe("weft_to_pod");
    expect(nested[1]![1].at(-1)).toBe(0); // NUL-terminated, as the kernel's nla_strdup expects
    expect(nested[2]![1].readUInt32LE(0)).toBe(1); // TCA_BPF_FLAG_ACT_DIRECT
  });
});

/** A dump entry as tcf_fill_node writes it: tcmsg, TCA_KIND, then (for a filter, not a priority's head) TCA_OPTIONS. */
function dumpEntry(fields: { index: number; handle: number; parent: number; info: number; kind: string; options?: (m: MessageWriter) => void }): Buffer {
  const m = new MessageWriter().start(RTM_NEWTFILTER).tcmsg(fields);
  m.string(1, fields.kind);
  if (fields.options) {
    const nest = m.begin(2 | 0x8000);
    fields.options(m);
    m.end(nest);
  }
  return m.seal(0, 1);
}

describe("filter dump decoding", () => {
  it("reads a bpf filter's hook, priority, protocol, handle, program ID, name and direct-action flag", () => {
    const bytes = dumpEntry({
      index: 4, handle: 0x77656674, parent: 0xfffffff2, info: 0x57460300, kind: "bpf",
      options: (m) => m.u32(3, 0).string(7, "weft_from_pod").u32(8, 1).bytes(10, Buffer.alloc(8, 0xab)).u32(11, 271),
    });
    expect(decodeFilter(bytes, HEADER, bytes.length, RTM_NEWTFILTER)).toEqual({
      index: 4, hook: "ingress", priority: 0x5746, protocol: 0x0300, handle: 0x77656674, kind: "bpf", programId: 271, name: "weft_from_pod", directAction: true,
    });
  });

  it("reads a bpf filter without direct-action, a filter of another classifier, and a priority's head entry (handle 0)", () => {
    const plain = dumpEntry({ index: 4, handle: 1, parent: 0xfffffff3, info: 0x00010300, kind: "bpf", options: (m) => m.string(7, "x").u32(11, 5) });
    expect(decodeFilter(plain, HEADER, plain.length, RTM_NEWTFILTER)).toMatchObject({ hook: "egress", priority: 1, programId: 5, directAction: false });
    const u32 = dumpEntry({ index: 4, handle: 0x800, parent: 0xfffffff2, info: 0xc0000008, kind: "u32", options: (m) => m.u32(1, 7) });
    expect(decodeFilter(u32, HEADER, u32.length, RTM_NEWTFILTER)).toEqual({ index: 4, hook: "ingress", priority: 0xc000, protocol: 0x0008, handle: 0x800, kind: "u32" });
    const head = dumpEntry({ index: 4, handle: 0, parent: 0xfffffff2, info: 0x57460300, kind: "bpf" });
    expect(decodeFilter(head, HEADER, head.length, RTM_NEWTFILTER)).toEqual({ index: 4, hook: "ingress", priority: 0x5746, protocol: 0x0300, handle: 0, kind: "bpf" });
  });

  it("skips what is not a clsact hook's filter", () => {
    const root = dumpEntry({ index: 4, handle: 1, parent: 0xffffffff, info: 0x00010300, kind: "bpf" });
    expect(decodeFilter(root, HEADER, root.length, RTM_NEWTFILTER)).toBeUndefined();
    const other = dumpEntry({ index: 4, handle: 1, parent: 0xfffffff2, info: 0x00010300, kind: "bpf" });
    expect(decodeFilter(other, HEADER, other.length, RTM_NEWQDISC)).toBeUndefined();
  });
});
