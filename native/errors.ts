// Errors of the kernel layer. Each carries the errno name (EEXIST, ENODEV, …) so callers can branch on it and
// operators can read it, plus the operation that failed.

const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM", 2: "ENOENT", 3: "ESRCH", 4: "EINTR", 5: "EIO", 7: "E2BIG", 8: "ENOEXEC", 9: "EBADF", 11: "EAGAIN", 12: "ENOMEM",
  13: "EACCES", 16: "EBUSY", 17: "EEXIST", 19: "ENODEV", 20: "ENOTDIR", 22: "EINVAL", 23: "ENFILE",
  24: "EMFILE", 28: "ENOSPC", 34: "ERANGE", 61: "ENODATA", 71: "EPROTO", 75: "EOVERFLOW", 90: "EMSGSIZE",
  92: "ENOPROTOOPT", 93: "EPROTONOSUPPORT", 95: "EOPNOTSUPP", 97: "EAFNOSUPPORT", 98: "EADDRINUSE",
  99: "EADDRNOTAVAIL", 100: "ENETDOWN", 101: "ENETUNREACH", 105: "ENOBUFS", 110: "ETIMEDOUT",
  113: "EHOSTUNREACH", 116: "ESTALE", 125: "ECANCELED", 524: "ENOTSUPP",
};

export function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] ?? `E${errno}`;
}

/** A failed system call or kernel request. `code` is the errno name, stable for callers to test. */
export class KernelError extends Error {
  readonly code: string;
  readonly errno: number;
  constructor(operation: string, errno: number, options?: { cause?: unknown }) {
    super(`${operation}: ${errnoName(errno)}`, options);
    this.name = "KernelError";
    this.errno = errno;
    this.code = errnoName(errno);
  }
}

export function isErrno(error: unknown, ...names: string[]): boolean {
  return error instanceof KernelError && names.includes(error.code);
}
