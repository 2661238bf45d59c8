// Traffic control over rtnetlink, as much as the eBPF datapath's clsact fallback needs (native/bpf/attach.ts): a
// clsact qdisc on a device, and bpf classifier filters in direct-action mode on its ingress or egress hook.
//   addClsact           tc qdisc add dev D clsact
//   replaceBpfFilter    tc filter replace dev D ingress protocol all prio P handle H bpf direct-action fd N name X
//   listFilters         tc filter show dev D ingress
//   deleteFilter        tc filter del dev D ingress protocol all prio P handle H bpf
//   deleteClsactIfEmpty tc qdisc del dev D clsact, only when neither hook holds a filter
// A filter holds its program (by reference, not by fd): it runs without any process, until deleted or the device goes.
import { align4, forEachAttribute, readString } from "./attributes";
import {
  AF_UNSPEC, ETH_P_ALL, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, RTM_DELQDISC, RTM_DELTFILTER, RTM_GETTFILTER, RTM_NEWQDISC,
  RTM_NEWTFILTER, TC_H_CLSACT, TC_H_CLSACT_HANDLE, TC_H_MIN_EGRESS, TC_H_MIN_INGRESS, TCA_BPF_FD, TCA_BPF_FLAG_ACT_DIRECT,
  TCA_BPF_FLAGS, TCA_BPF_ID, TCA_BPF_NAME, TCA_KIND, TCA_OPTIONS,
} from "./constants";
import { NetlinkError } from "./errors";
import { TCMSG, type MessageWriter } from "./messages";
import type { NetlinkSocket } from "./socket";

export type TcHook = "ingress" | "egress";

/** tcm_parent of a clsact hook: ffff:fff2 (ingress), ffff:fff3 (egress). */
export function hookParent(hook: TcHook): number {
  return ((TC_H_CLSACT_HANDLE | (hook === "ingress" ? TC_H_MIN_INGRESS : TC_H_MIN_EGRESS)) >>> 0);
}

function hookOf(parent: number): TcHook | undefined {
  if (parent === hookParent("ingress")) return "ingress";
  if (parent === hookParent("egress")) return "egress";
  return undefined;
}

/** ETH_P_ALL as the kernel compares it with skb->protocol: in network byte order (this code runs little-endian). */
export const PROTOCOL_ALL = ((ETH_P_ALL & 0xff) << 8) | (ETH_P_ALL >> 8);

/** tcm_info of a filter: its priority in the upper 16 bits, its protocol (network order) in the lower. */
export function filterInfo(priority: number, protocol = PROTOCOL_ALL): number {
  return ((priority << 16) | protocol) >>> 0;
}

export interface BpfFilterSpec {
  index: number;
  hook: TcHook;
  /** 1–65535: the order of filters on the hook (lower first), and with the handle what names this one. */
  priority: number;
  handle: number;
  programFd: number;
  /** TCA_BPF_NAME: shown by `tc filter show`, returned by listFilters. */
  name: string;
}

export interface TcFilter {
  index: number;
  hook: TcHook;
  priority: number;
  /** Network byte order, as in tcm_info. */
  protocol: number;
  handle: number;
  /** The classifier: "bpf", "u32", "flower", … */
  kind: string;
  /** bpf filters: the program's ID (TCA_BPF_ID). */
  programId?: number;
  /** bpf filters: the name given when attached (TCA_BPF_NAME). */
  name?: string;
  /** bpf filters: in direct-action mode (the program's return value is the verdict). */
  directAction?: boolean;
}

/** The clsact qdisc's add or delete request, for `m` started with RTM_NEWQDISC or RTM_DELQDISC. */
export function clsactMessage(m: MessageWriter, index: number): MessageWriter {
  return m.tcmsg({ index, handle: TC_H_CLSACT_HANDLE, parent: TC_H_CLSACT }).string(TCA_KIND, "clsact");
}

/** A bpf filter's create-or-replace request, for `m` started with RTM_NEWTFILTER. */
export function bpfFilterMessage(m: MessageWriter, spec: BpfFilterSpec): MessageWriter {
  m.tcmsg({ index: spec.index, handle: spec.handle, parent: hookParent(spec.hook), info: filterInfo(spec.priority) });
  m.string(TCA_KIND, "bpf");
  const options = m.begin(TCA_OPTIONS);
  m.u32(TCA_BPF_FD, spec.programFd).string(TCA_BPF_NAME, spec.name).u32(TCA_BPF_FLAGS, TCA_BPF_FLAG_ACT_DIRECT);
  return m.end(options);
}

/** Adds a clsact qdisc to the device; false when it has one already (EEXIST: also when it has `ingress`). */
export function addClsact(sock: NetlinkSocket, index: number): boolean {
  try {
    sock.request(clsactMessage(sock.message(RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL), index), `RTM_NEWQDISC clsact ifindex ${index}`);
    return true;
  } catch (error) {
    if (error instanceof NetlinkError && error.code === "EEXIST") return false;
    throw error;
  }
}

/** Creates the filter, or replaces the program of the one with the same priority and handle (atomically). */
export function replaceBpfFilter(sock: NetlinkSocket, spec: BpfFilterSpec): void {
  const m = bpfFilterMessage(sock.message(RTM_NEWTFILTER, NLM_F_CREATE | NLM_F_REPLACE), spec);
  sock.request(m, `RTM_NEWTFILTER bpf ${spec.name} ${spec.hook} ifindex ${spec.index}`);
}

/** The filters on a clsact hook of the device, in the kernel's order; [] without clsact (or without the device). */
export function listFilters(sock: NetlinkSocket, index: number, hook: TcHook): TcFilter[] {
  const m = sock.message(RTM_GETTFILTER).tcmsg({ index, parent: hookParent(hook) });
  // The filter dump also has one entry per priority without a filter (handle 0): not filters, skipped.
  return sock.dump(m, decodeFilter, `RTM_GETTFILTER ${hook} ifindex ${index}`).filter((f) => f.index === index && f.hook === hook && f.handle !== 0);
}

/** Deletes one filter; false when it is not there. */
export function deleteFilter(sock: NetlinkSocket, filter: Pick<TcFilter, "index" | "hook" | "priority" | "protocol" | "handle" | "kind">): boolean {
  const m = sock.message(RTM_DELTFILTER).tcmsg({ index: filter.index, handle: filter.handle, parent: hookParent(filter.hook), info: filterInfo(filter.priority, filter.protocol) });
  m.string(TCA_KIND, filter.kind);
  try {
    sock.request(m, `RTM_DELTFILTER ${filter.kind} ${filter.hook} prio ${filter.priority} ifindex ${filter.index}`);
    return true;
  } catch (error) {
    if (error instanceof NetlinkError && error.code === "ENOENT") return false;
    throw error;
  }
}

/**
 * Deletes the device's clsact qdisc when neither hook holds a filter (someone else's filters keep it); returns
 * whether it did. A device without clsact: false.
 */
export function deleteClsactIfEmpty(sock: NetlinkSocket, index: number): boolean {
  if (listFilters(sock, index, "ingress").length + listFilters(sock, index, "egress").length > 0) return false;
  try {
    sock.request(clsactMessage(sock.message(RTM_DELQDISC), index), `RTM_DELQDISC clsact ifindex ${index}`);
    return true;
  } catch (error) {
    // No clsact (ENOENT; EINVAL when the ingress queue holds another qdisc or none): nothing of ours to delete.
    if (error instanceof NetlinkError && (error.code === "ENOENT" || error.code === "EINVAL")) return false;
    throw error;
  }
}

export function decodeFilter(b: Buffer, offset: number, end: number, type: number): TcFilter | undefined {
  if (type !== RTM_NEWTFILTER || b[offset + TCMSG.family] !== AF_UNSPEC) return undefined;
  const hook = hookOf(b.readUInt32LE(offset + TCMSG.parent));
  if (!hook) return undefined;
  const info = b.readUInt32LE(offset + TCMSG.info);
  const filter: TcFilter = {
    index: b.readInt32LE(offset + TCMSG.index), hook, priority: info >>> 16, protocol: info & 0xffff, handle: b.readUInt32LE(offset + TCMSG.handle), kind: "",
  };
  let options: [number, number] | undefined;
  forEachAttribute(b, offset + align4(TCMSG.length), end, (attribute, at, length) => {
    if (attribute === TCA_KIND) filter.kind = readString(b, at, length);
    else if (attribute === TCA_OPTIONS) options = [at, at + length];
  });
  if (filter.kind === "bpf" && options) {
    forEachAttribute(b, options[0], options[1], (attribute, at, length) => {
      if (attribute === TCA_BPF_ID && length >= 4) filter.programId = b.readUInt32LE(at);
      else if (attribute === TCA_BPF_NAME) filter.name = readString(b, at, length);
      else if (attribute === TCA_BPF_FLAGS && length >= 4) filter.directAction = (b.readUInt32LE(at) & TCA_BPF_FLAG_ACT_DIRECT) !== 0;
    });
    filter.directAction ??= false;
  }
  return filter;
}
