// The one place for FFI: thin, typed wrappers over the libc calls Node does not expose. Each wrapper throws a
// KernelError carrying errno on failure, so nothing above this file sees a -1.
import { KernelError } from "./errors";
import { loadKoffi } from "./koffi-loader";

export const CLONE_NEWNET = 0x40000000;
export const AF_NETLINK = 16;
export const SOCK_RAW = 3;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SOL_NETLINK = 270;
export const SO_RCVBUF = 8;
export const SO_RCVTIMEO = 20;
export const NETLINK_EXT_ACK = 11;
export const NETLINK_GET_STRICT_CHK = 12;
export const LOCK_SH = 1;
export const LOCK_EX = 2;
export const LOCK_UN = 8;
const NS_GET_NSTYPE = 0xb703;

type Fn = (...args: unknown[]) => number;

interface Libc {
  setns: Fn;
  flock: Fn;
  ioctl: Fn;
  socket: Fn;
  send: Fn;
  recv: Fn;
  close: Fn;
  setsockopt: Fn;
}

let bound: Libc | undefined;
let errnoOf: () => number = () => 0;

function libc(): Libc {
  if (bound) return bound;
  const koffi = loadKoffi();
  const lib = koffi.load("libc.so.6");
  const f = (signature: string) => lib.func(signature) as Fn;
  errnoOf = () => koffi.errno();
  bound = {
    setns: f("int setns(int fd, int nstype)"),
    flock: f("int flock(int fd, int operation)"),
    ioctl: f("int ioctl(int fd, unsigned long request)"),
    socket: f("int socket(int domain, int type, int protocol)"),
    send: f("intptr_t send(int fd, void *buf, size_t len, int flags)"),
    recv: f("intptr_t recv(int fd, _Out_ void *buf, size_t len, int flags)"),
    close: f("int close(int fd)"),
    setsockopt: f("int setsockopt(int fd, int level, int name, void *value, uint32_t len)"),
  };
  return bound;
}

function check(operation: string, result: number): number {
  if (result < 0) throw new KernelError(operation, errnoOf());
  return result;
}

export function setns(fd: number, nstype: number): void {
  check("setns", libc().setns(fd, nstype));
}

/** Blocks until the lock is held (LOCK_SH, LOCK_EX) or releases it (LOCK_UN). */
export function flock(fd: number, operation: number): void {
  check("flock", libc().flock(fd, operation));
}

/** The namespace type of an nsfs file descriptor (CLONE_NEWNET for a network namespace). */
export function namespaceType(fd: number): number {
  return check("ioctl(NS_GET_NSTYPE)", libc().ioctl(fd, NS_GET_NSTYPE));
}

export function socket(domain: number, type: number, protocol: number): number {
  return check("socket", libc().socket(domain, type, protocol));
}

export function send(fd: number, data: Buffer): number {
  return check("send", libc().send(fd, data, data.length, 0));
}

/** Returns the number of bytes received; with MSG_PEEK|MSG_TRUNC, the size of the pending datagram. */
export function recv(fd: number, buffer: Buffer, flags = 0): number {
  return check("recv", libc().recv(fd, buffer, buffer.length, flags));
}

export function setsockoptInt(fd: number, level: number, name: number, value: number): void {
  const b = Buffer.alloc(4);
  b.writeInt32LE(value);
  check("setsockopt", libc().setsockopt(fd, level, name, b, 4));
}

export function setsockoptBuffer(fd: number, level: number, name: number, value: Buffer): void {
  check("setsockopt", libc().setsockopt(fd, level, name, value, value.length));
}

export function close(fd: number): void {
  libc().close(fd);
}

// The agent's ICMP probes: bound on first use, so that the plugin never pays for them.
interface ProbeLibc {
  sendto: Fn;
  recv: Fn & { async(...args: unknown[]): void };
}

let probeBound: ProbeLibc | undefined;

function probeLibc(): ProbeLibc {
  if (probeBound) return probeBound;
  const lib = loadKoffi().load("libc.so.6");
  probeBound = {
    sendto: lib.func("intptr_t sendto(int fd, void *buf, size_t len, int flags, void *addr, uint32_t addrlen)") as Fn,
    recv: lib.func("intptr_t recv(int fd, _Out_ void *buf, size_t len, int flags)") as ProbeLibc["recv"],
  };
  errnoOf = () => loadKoffi().errno();
  return probeBound;
}

/** sendto(2) with a raw sockaddr (sockaddr_in or sockaddr_in6). */
export function sendTo(fd: number, data: Buffer, address: Buffer): number {
  return check("sendto", probeLibc().sendto(fd, data, data.length, 0, address, address.length));
}

/**
 * recv(2) on koffi's worker thread, so that the event loop keeps running while it blocks (bounded by the
 * socket's SO_RCVTIMEO). Resolves to the byte count, or -1 when nothing arrived in time.
 */
export function recvBlocking(fd: number, buffer: Buffer): Promise<number> {
  const { recv } = probeLibc();
  return new Promise((resolve, reject) => {
    recv.async(fd, buffer, buffer.length, 0, (error: unknown, result: number) => {
      if (error) reject(error instanceof Error ? error : new Error(String(error)));
      else resolve(result);
    });
  });
}
