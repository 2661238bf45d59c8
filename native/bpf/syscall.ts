// Raw bpf(2) on pinned objects: what the CNI plugin needs to attach a program to a new host veth and to write its
// endpoint entry, without libbpf (the plugin runs copied alone). Bound on first use: a plugin run that never
// touches the eBPF datapath pays nothing. fds returned here belong to the caller, who closes them (closeFd).
//
// Each call fills only its own part of `union bpf_attr` and passes that part's size: the kernel accepts a
// shorter attr (and zero-fills the rest), so the layouts below need not follow the union's growth.
import { closeSync, mkdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { dirname } from "node:path";
import { KernelError } from "../errors";
import { loadKoffi, type Koffi } from "../koffi-loader";

/** The bpf(2) commands used here (enum bpf_cmd). */
export const BPF_CMD = {
  MAP_LOOKUP_ELEM: 1,
  MAP_UPDATE_ELEM: 2,
  MAP_DELETE_ELEM: 3,
  MAP_GET_NEXT_KEY: 4,
  OBJ_PIN: 6,
  OBJ_GET: 7,
  PROG_GET_FD_BY_ID: 13,
  OBJ_GET_INFO_BY_FD: 15,
  PROG_QUERY: 16,
  LINK_CREATE: 28,
  LINK_UPDATE: 29,
  LINK_GET_FD_BY_ID: 30,
  LINK_DETACH: 34,
} as const;
export type BpfCommand = keyof typeof BPF_CMD;

/** enum bpf_attach_type: tcx (kernel 6.6+) is newer than Debian 12's uapi headers, hence the numbers. */
export const BPF_ATTACH = { TCX_INGRESS: 46, TCX_EGRESS: 47 } as const;

/** The object types weft creates, to recognise its own objects in objInfo's answers. */
export const BPF_PROG_TYPE = { SCHED_CLS: 3 } as const;
export const BPF_MAP_TYPE = { HASH: 1, ARRAY: 2, PERCPU_ARRAY: 6, LRU_HASH: 9, LPM_TRIE: 11 } as const;
export const BPF_LINK_TYPE = { TCX: 11 } as const;

export type TcxDirection = "ingress" | "egress";
export type MapUpdateFlag = "any" | "noexist" | "exist";

const UPDATE_FLAGS: Record<MapUpdateFlag, number> = { any: 0, noexist: 1, exist: 2 };
const BPF_F_REPLACE = 1 << 2;
const BPF_F_RDONLY = 1 << 3;
const BPF_FS_MAGIC = 0xcafe4a11;
const BPF_OBJ_NAME_LEN = 16;
const BPF_TAG_SIZE = 8;
const ENOENT = 2;
const ENOTDIR = 20;
const ENOSPC = 28;
/** __NR_bpf: syscall(2) is the only way in, glibc has no bpf() wrapper. */
const SYS_BPF: Partial<Record<string, number>> = { x64: 321, arm64: 280 };

type Fn = (...args: unknown[]) => number;

/** koffi calls native/koffi-loader's `Koffi` interface does not declare. */
interface KoffiAddress {
  /** The address of a Buffer's memory: what the attr's __aligned_u64 pointer fields carry. */
  address(value: unknown): bigint;
}

interface Sys {
  syscall: Fn;
  statfs: Fn;
  nr: number;
  errno(): number;
  address(value: Buffer): bigint;
}

let bound: Sys | undefined;

function sys(): Sys {
  if (bound) return bound;
  const nr = SYS_BPF[process.arch];
  if (nr === undefined) throw new Error(`Cannot use bpf(2) on ${process.arch}: its syscall number is not known here`);
  const koffi = loadKoffi() as Koffi & KoffiAddress;
  const lib = koffi.load("libc.so.6");
  bound = {
    // syscall(2) is variadic; declared with fixed integer arguments, which x86-64 and arm64 Linux pass the same
    // way, koffi need not be told the argument types on every call.
    syscall: lib.func("long syscall(long nr, int cmd, void *attr, unsigned int size)") as Fn,
    statfs: lib.func("int statfs(const char *path, _Out_ void *buf)") as Fn,
    nr,
    errno: () => koffi.errno(),
    address: (value) => koffi.address(value),
  };
  return bound;
}

// The buffers an attr points into, held here while the syscall runs: the attr carries their addresses as plain
// integers, which would not keep them from being collected.
const inFlight: Buffer[] = [];

function bpf(command: BpfCommand, attr: Buffer, what: string, buffers: readonly Buffer[] = []): number {
  const s = sys();
  inFlight.push(...buffers);
  let result: number;
  try {
    result = Number(s.syscall(s.nr, BPF_CMD[command], attr, attr.length));
  } finally {
    inFlight.length = 0;
  }
  if (result < 0) throw new KernelError(`bpf(BPF_${command}${what ? ` ${what}` : ""})`, s.errno());
  return result;
}

function pointer(buffer: Buffer | undefined): bigint {
  return buffer ? sys().address(buffer) : 0n;
}

function cString(text: string): Buffer {
  return Buffer.from(`${text}\0`);
}

/** Opens a pinned object. A program must be opened read-write (the kernel refuses flags on programs). */
export function objGet(path: string, options: { readOnly?: boolean } = {}): number {
  const name = cString(path);
  const attr = Buffer.alloc(16); // pathname, bpf_fd, file_flags
  attr.writeBigUInt64LE(pointer(name), 0);
  attr.writeUInt32LE(options.readOnly ? BPF_F_RDONLY : 0, 12);
  return bpf("OBJ_GET", attr, path, [name]);
}

/** Pins an object in a bpffs. EEXIST if the path is taken: pins are not replaced, unlink the old one first. */
export function objPin(fd: number, path: string): void {
  const name = cString(path);
  const attr = Buffer.alloc(16);
  attr.writeBigUInt64LE(pointer(name), 0);
  attr.writeUInt32LE(fd, 8);
  bpf("OBJ_PIN", attr, path, [name]);
}

export function closeFd(fd: number): void {
  closeSync(fd);
}

// struct { map_fd; key; value / next_key; flags } of the BPF_MAP_*_ELEM commands.
function elemAttr(fd: number, key: Buffer | undefined, value: Buffer | undefined, flags = 0): Buffer {
  const attr = Buffer.alloc(32);
  attr.writeUInt32LE(fd, 0);
  attr.writeBigUInt64LE(pointer(key), 8);
  attr.writeBigUInt64LE(pointer(value), 16);
  attr.writeBigUInt64LE(BigInt(flags), 24);
  return attr;
}

/**
 * The value stored under `key`, or undefined if there is none. `valueSize` is the map's value size; for a per-CPU
 * map, the value size rounded up to 8 times possibleCpus().
 */
export function mapLookup(fd: number, key: Buffer, valueSize: number): Buffer | undefined {
  const value = Buffer.alloc(valueSize);
  try {
    bpf("MAP_LOOKUP_ELEM", elemAttr(fd, key, value), `map fd ${fd}`, [key, value]);
  } catch (error) {
    if (error instanceof KernelError && error.errno === ENOENT) return undefined;
    throw error;
  }
  return value;
}

/** "noexist" fails with EEXIST if the key is there, "exist" with ENOENT if it is not. */
export function mapUpdate(fd: number, key: Buffer, value: Buffer, flag: MapUpdateFlag = "any"): void {
  bpf("MAP_UPDATE_ELEM", elemAttr(fd, key, value, UPDATE_FLAGS[flag]), `map fd ${fd}`, [key, value]);
}

/** Returns false if the key was not there (a DEL run twice is no error). */
export function mapDelete(fd: number, key: Buffer): boolean {
  try {
    bpf("MAP_DELETE_ELEM", elemAttr(fd, key, undefined), `map fd ${fd}`, [key]);
    return true;
  } catch (error) {
    if (error instanceof KernelError && error.errno === ENOENT) return false;
    throw error;
  }
}

/** The key after `key` (the first one for undefined), or undefined at the end. */
export function mapNextKey(fd: number, key: Buffer | undefined, keySize: number): Buffer | undefined {
  const next = Buffer.alloc(keySize);
  try {
    bpf("MAP_GET_NEXT_KEY", elemAttr(fd, key, next), `map fd ${fd}`, key ? [key, next] : [next]);
  } catch (error) {
    if (error instanceof KernelError && error.errno === ENOENT) return undefined;
    throw error;
  }
  return next;
}

/**
 * Every key of a map. Deleting the key just returned is safe; a hash map whose other keys change meanwhile may
 * restart the walk (the kernel starts over from a key it cannot find), so collect first, then change.
 */
export function* mapKeys(fd: number, keySize: number): Generator<Buffer> {
  for (let key = mapNextKey(fd, undefined, keySize); key; key = mapNextKey(fd, key, keySize)) yield key;
}

const TCX_ATTACH: Record<TcxDirection, number> = { ingress: BPF_ATTACH.TCX_INGRESS, egress: BPF_ATTACH.TCX_EGRESS };

/**
 * Attaches a SCHED_CLS program to a device of the current network namespace (tcx, behind the programs already
 * there) and returns the link fd. The attachment lasts while the link is open or pinned, and ends with the
 * device. EEXIST if this program is attached there already. `expectedRevision` (from progQueryTcx) makes it fail
 * with ESTALE if the device's list changed since.
 */
export function linkCreateTcx(progFd: number, ifindex: number, direction: TcxDirection, options: { expectedRevision?: number } = {}): number {
  // prog_fd, target_ifindex, attach_type, flags, then the tcx member of the union: relative_fd, expected_revision.
  const attr = Buffer.alloc(32);
  attr.writeUInt32LE(progFd, 0);
  attr.writeUInt32LE(ifindex, 4);
  attr.writeUInt32LE(TCX_ATTACH[direction], 8);
  attr.writeBigUInt64LE(BigInt(options.expectedRevision ?? 0), 24);
  return bpf("LINK_CREATE", attr, `tcx ${direction} ifindex ${ifindex}`);
}

/**
 * Attaches the program pinned at `programPin` to a device of the calling thread's namespace with a new tcx link,
 * and pins the link at `linkPin` (a pin left there by a device that is gone is replaced), so that it outlives the
 * caller: the agent for its VTEP and for endpoints it restores, the plugin for each new pod.
 */
export function pinNewTcxLink(programPin: string, ifindex: number, direction: TcxDirection, linkPin: string): void {
  const program = objGet(programPin);
  try {
    const link = linkCreateTcx(program, ifindex, direction);
    try {
      mkdirSync(dirname(linkPin), { recursive: true, mode: 0o700 });
      rmSync(linkPin, { force: true });
      objPin(link, linkPin);
    } finally {
      closeFd(link);
    }
  } finally {
    closeFd(program);
  }
}

/**
 * Swaps the program of a link in place: no moment without a program on the device. With `expectedProgFd`, only
 * if the link still runs that program (else EPERM), so two agents cannot undo each other's update.
 */
export function linkUpdate(linkFd: number, newProgFd: number, options: { expectedProgFd?: number } = {}): void {
  const attr = Buffer.alloc(16); // link_fd, new_prog_fd, flags, old_prog_fd
  attr.writeUInt32LE(linkFd, 0);
  attr.writeUInt32LE(newProgFd, 4);
  if (options.expectedProgFd !== undefined) {
    attr.writeUInt32LE(BPF_F_REPLACE, 8);
    attr.writeUInt32LE(options.expectedProgFd, 12);
  }
  bpf("LINK_UPDATE", attr, `link fd ${linkFd}`);
}

/** Detaches a link's program now, even if the link is pinned elsewhere (the pin stays, defunct, until unlinked). */
export function linkDetach(linkFd: number): void {
  const attr = Buffer.alloc(4);
  attr.writeUInt32LE(linkFd, 0);
  bpf("LINK_DETACH", attr, `link fd ${linkFd}`);
}

export interface TcxAttachments {
  /** In the order the kernel runs them. */
  progIds: number[];
  /** linkIds[i] is the link holding progIds[i], 0 for a program attached without a link (BPF_PROG_ATTACH). */
  linkIds: number[];
  /** Changes with every attach and detach: pass it back to linkCreateTcx to attach only if nothing changed. */
  revision: number;
}

/** The programs attached with tcx to a device of the current network namespace. ENODEV if there is none. */
export function progQueryTcx(ifindex: number, direction: TcxDirection): TcxAttachments {
  let capacity = 16;
  for (;;) {
    const progIds = Buffer.alloc(4 * capacity);
    const linkIds = Buffer.alloc(4 * capacity);
    // target_ifindex, attach_type, query_flags, attach_flags, prog_ids, count, (pad), prog_attach_flags,
    // link_ids, link_attach_flags, revision.
    const attr = Buffer.alloc(64);
    attr.writeUInt32LE(ifindex, 0);
    attr.writeUInt32LE(TCX_ATTACH[direction], 4);
    attr.writeBigUInt64LE(pointer(progIds), 16);
    attr.writeUInt32LE(capacity, 24);
    attr.writeBigUInt64LE(pointer(linkIds), 40);
    try {
      bpf("PROG_QUERY", attr, `tcx ${direction} ifindex ${ifindex}`, [progIds, linkIds]);
    } catch (error) {
      // More programs than room: the kernel wrote how many there are; ask again with room for them all.
      if (error instanceof KernelError && error.errno === ENOSPC) {
        capacity = Math.max(attr.readUInt32LE(24), capacity * 2);
        continue;
      }
      throw error;
    }
    const count = attr.readUInt32LE(24);
    const ids = (buffer: Buffer) => Array.from({ length: count }, (_, i) => buffer.readUInt32LE(4 * i));
    return { progIds: ids(progIds), linkIds: ids(linkIds), revision: Number(attr.readBigUInt64LE(56)) };
  }
}

export interface ProgInfo {
  kind: "prog";
  id: number;
  type: number;
  /** The first 15 bytes of the function name, as the kernel keeps it. */
  name: string;
  /** The hash of the program's instructions, in hex: equal tags, same code. */
  tag: string;
}
export interface MapInfo {
  kind: "map";
  id: number;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  name: string;
}
export interface LinkInfo {
  kind: "link";
  id: number;
  type: number;
  progId: number;
  /** tcx links only; 0 once the device is gone (the link is then defunct). */
  ifindex?: number;
  attachType?: number;
}
export type ObjInfo = ProgInfo | MapInfo | LinkInfo;

// The anon inode names the kernel gives bpf fds (what `ls -l /proc/<pid>/fd` shows). A link is "bpf_link" on the
// fd that created it and "bpf-link" on one opened later (from a pin or an id).
const FD_KINDS: Record<string, ObjInfo["kind"]> = {
  "anon_inode:bpf-prog": "prog",
  "anon_inode:bpf-map": "map",
  "anon_inode:bpf-link": "link",
  "anon_inode:bpf_link": "link",
};

function objectName(bytes: Buffer): string {
  const end = bytes.indexOf(0);
  return bytes.toString("latin1", 0, end < 0 ? bytes.length : end);
}

/** What an fd is, to recognise objects found by path or by id. Throws EINVAL for an fd that is not a bpf object. */
export function objInfo(fd: number): ObjInfo {
  let target = "";
  try {
    target = readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    // no such fd: let the kernel say so below
  }
  const kind = FD_KINDS[target];
  // Room for the fields read below; the kernel fills min(info_len, its struct size).
  const info = Buffer.alloc(kind === "prog" ? 80 : kind === "map" ? 40 : 24);
  const attr = Buffer.alloc(16); // bpf_fd, info_len, info
  attr.writeUInt32LE(fd, 0);
  attr.writeUInt32LE(info.length, 4);
  attr.writeBigUInt64LE(pointer(info), 8);
  bpf("OBJ_GET_INFO_BY_FD", attr, `fd ${fd}`, [info]);
  const type = info.readUInt32LE(0);
  const id = info.readUInt32LE(4);
  switch (kind) {
    case "prog":
      // struct bpf_prog_info: type, id, tag[8] … name[16] at 64.
      return { kind, id, type, name: objectName(info.subarray(64, 64 + BPF_OBJ_NAME_LEN)), tag: info.toString("hex", 8, 8 + BPF_TAG_SIZE) };
    case "map":
      // struct bpf_map_info: type, id, key_size, value_size, max_entries, map_flags, name[16].
      return {
        kind, id, type, keySize: info.readUInt32LE(8), valueSize: info.readUInt32LE(12), maxEntries: info.readUInt32LE(16),
        flags: info.readUInt32LE(20), name: objectName(info.subarray(24, 24 + BPF_OBJ_NAME_LEN)),
      };
    case "link": {
      // struct bpf_link_info: type, id, prog_id, then the per-type union, 8-aligned at 16.
      const link: LinkInfo = { kind, id, type, progId: info.readUInt32LE(8) };
      if (type === BPF_LINK_TYPE.TCX) {
        link.ifindex = info.readUInt32LE(16);
        link.attachType = info.readUInt32LE(20);
      }
      return link;
    }
    default:
      throw new Error(`fd ${fd} is a bpf object of a kind weft does not use (${target})`);
  }
}

function getFdById(command: "PROG_GET_FD_BY_ID" | "LINK_GET_FD_BY_ID", id: number): number {
  const attr = Buffer.alloc(12); // prog_id / link_id, next_id, open_flags
  attr.writeUInt32LE(id, 0);
  return bpf(command, attr, `id ${id}`);
}

/** An fd for a loaded program, e.g. one progQueryTcx listed. ENOENT if it is gone. */
export function progGetFdById(id: number): number {
  return getFdById("PROG_GET_FD_BY_ID", id);
}

/** An fd for a link, e.g. one progQueryTcx listed; linkDetach on it removes that attachment. */
export function linkGetFdById(id: number): number {
  return getFdById("LINK_GET_FD_BY_ID", id);
}

/** Whether `path` is on a bpf filesystem (a subdirectory of one counts). False if it does not exist. */
export function isBpffs(path: string): boolean {
  const s = sys();
  const buf = Buffer.alloc(128); // struct statfs is 120 bytes on 64-bit Linux; f_type, a long, comes first
  if (s.statfs(path, buf) < 0) {
    const errno = s.errno();
    if (errno === ENOENT || errno === ENOTDIR) return false;
    throw new KernelError(`statfs ${path}`, errno);
  }
  return buf.readBigInt64LE(0) === BigInt(BPF_FS_MAGIC);
}

let cpus: number | undefined;

/** The number of possible CPUs: a per-CPU map's lookup returns one 8-aligned value for each. */
export function possibleCpus(): number {
  if (cpus !== undefined) return cpus;
  // "0-3" or "0,2-5": the kernel copies one value per possible CPU, holes skipped.
  const text = readFileSync("/sys/devices/system/cpu/possible", "latin1").trim();
  cpus = text.split(",").reduce((n, range) => {
    const [first, last = first] = range.split("-").map(Number) as [number, number?];
    return n + last - first + 1;
  }, 0);
  return cpus;
}
