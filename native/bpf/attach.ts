// How the datapath's tc programs are attached to a device, one of two ways, chosen once per node by the agent and
// told to the plugin (the subnet file's WEFT_TC_ATTACH):
//   tcx     a bpf link (Linux 6.6+) pinned at <bpfDir>/links/<device>-<direction>: it lasts while pinned.
//   clsact  a cls_bpf filter in direct-action mode on the device's clsact qdisc (Linux 4.5+), at weft's own
//           priority and handle and named after its program (weft_…): the device holds it, no pin is needed.
// Either way the attachment outlives the agent and the plugin (SIGKILL included) and ends with the device.
import { unlinkSync } from "node:fs";
import {
  addClsact, deleteClsactIfEmpty, deleteFilter, listFilters, listLinks, replaceBpfFilter, type NetlinkSocket, type TcFilter,
} from "../netlink";
import { linkPin } from "./maps";
import { closeFd, linkUpdate, objGet, objInfo, pinNewTcxLink, type TcxDirection } from "./syscall";

export type TcAttachKind = "tcx" | "clsact";
export const TC_ATTACH_KINDS: readonly TcAttachKind[] = ["tcx", "clsact"];

export interface TcTarget {
  device: string;
  ifindex: number;
  direction: TcxDirection;
}

export interface TcAttacher {
  readonly kind: TcAttachKind;
  /** The ID of the program weft attached there; undefined when there is none (or only a stale one). */
  attachedProgram(target: TcTarget): number | undefined;
  /** Attaches the program pinned at `programPin`, in place of weft's attachment there if any (without a gap). */
  attach(target: TcTarget, programPin: string): void;
  /** Removes weft's attachment there; returns whether there was one. */
  detach(target: TcTarget): boolean;
}

/**
 * weft's clsact filters: this priority and handle on either hook. Not tc's habit (1) nor the kernel's first
 * automatic priority (0xc000), so that a filter of someone else's is not taken for ours, nor replaced.
 */
export const WEFT_FILTER = { priority: 0x5746, handle: 0x77656674 } as const;
/** The kernel's name of each of weft's programs (their C function names) starts with this. */
const PROGRAM_NAME_PREFIX = "weft_";

/** A filter weft attached: its priority and handle, and a program name of weft's. */
export function isWeftFilter(filter: TcFilter): boolean {
  return filter.kind === "bpf" && filter.priority === WEFT_FILTER.priority && filter.handle === WEFT_FILTER.handle && (filter.name ?? "").startsWith(PROGRAM_NAME_PREFIX);
}

/** tcx needs the pin root (its links' pins), clsact a netlink socket in the devices' namespace. */
export function createTcAttacher(kind: TcAttachKind, options: { bpfDir: string; sock?: NetlinkSocket }): TcAttacher {
  if (kind === "tcx") return new TcxAttacher(options.bpfDir);
  if (!options.sock) throw new Error("The clsact attachment needs a netlink socket");
  return new ClsactAttacher(options.sock);
}

function withPinned<T>(pin: string, fn: (fd: number) => T): T {
  const fd = objGet(pin);
  try {
    return fn(fd);
  } finally {
    closeFd(fd);
  }
}

class TcxAttacher implements TcAttacher {
  readonly kind = "tcx";
  readonly #bpfDir: string;

  constructor(bpfDir: string) {
    this.#bpfDir = bpfDir;
  }

  attachedProgram(target: TcTarget): number | undefined {
    let info;
    try {
      info = withPinned(linkPin(this.#bpfDir, target.device, target.direction), objInfo);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw error;
    }
    // A link whose device is gone (a recreated VTEP, a reused name) is defunct: its ifindex is 0.
    return info.kind === "link" && info.ifindex === target.ifindex ? info.progId : undefined;
  }

  attach(target: TcTarget, programPin: string): void {
    const pin = linkPin(this.#bpfDir, target.device, target.direction);
    if (this.attachedProgram(target) !== undefined) {
      withPinned(pin, (link) => withPinned(programPin, (program) => linkUpdate(link, program)));
      return;
    }
    pinNewTcxLink(programPin, target.ifindex, target.direction, pin);
  }

  detach(target: TcTarget): boolean {
    try {
      unlinkSync(linkPin(this.#bpfDir, target.device, target.direction));
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
      throw error;
    }
  }
}

class ClsactAttacher implements TcAttacher {
  readonly kind = "clsact";
  readonly #sock: NetlinkSocket;

  constructor(sock: NetlinkSocket) {
    this.#sock = sock;
  }

  #atOurPlace(target: TcTarget): TcFilter | undefined {
    return listFilters(this.#sock, target.ifindex, target.direction).find((f) => f.priority === WEFT_FILTER.priority && f.handle === WEFT_FILTER.handle);
  }

  attachedProgram(target: TcTarget): number | undefined {
    const filter = this.#atOurPlace(target);
    return filter && isWeftFilter(filter) ? filter.programId : undefined;
  }

  attach(target: TcTarget, programPin: string): void {
    const there = this.#atOurPlace(target);
    if (there && !isWeftFilter(there)) {
      throw new Error(`${target.device} ${target.direction}: a ${there.kind} filter that is not weft's${there.name ? ` (${there.name})` : ""} holds weft's priority ${WEFT_FILTER.priority} and handle 0x${WEFT_FILTER.handle.toString(16)}`);
    }
    addClsact(this.#sock, target.ifindex);
    withPinned(programPin, (program) => {
      const info = objInfo(program);
      replaceBpfFilter(this.#sock, { index: target.ifindex, hook: target.direction, ...WEFT_FILTER, programFd: program, name: info.kind === "prog" ? info.name : "" });
    });
  }

  detach(target: TcTarget): boolean {
    const filter = this.#atOurPlace(target);
    if (!filter || !isWeftFilter(filter)) return false;
    deleteFilter(this.#sock, filter);
    deleteClsactIfEmpty(this.#sock, target.ifindex);
    return true;
  }
}

/**
 * Removes weft's clsact filters from the devices of the socket's namespace that `which` picks, and a clsact qdisc
 * that this leaves empty; nothing else (another's filters, another's qdisc). Returns "<device> <direction>" of each.
 */
export function removeWeftFilters(sock: NetlinkSocket, which: (device: string, direction: TcxDirection) => boolean = () => true): string[] {
  const removed: string[] = [];
  const attacher = new ClsactAttacher(sock);
  for (const link of listLinks(sock)) {
    for (const direction of ["ingress", "egress"] as const) {
      if (!which(link.name, direction)) continue;
      try {
        if (attacher.detach({ device: link.name, ifindex: link.index, direction })) removed.push(`${link.name} ${direction}`);
      } catch (error) {
        // The device going away meanwhile takes its filters with it.
        if (!(error instanceof Error && "code" in error && error.code === "ENODEV")) throw error;
      }
    }
  }
  return removed;
}
