// Kernel parameters under /proc/sys. Files under /proc/sys/net belong to the network namespace of the thread
// that opens them, so inside withNetns these read and write the target namespace's values.
import { readFileSync, writeFileSync } from "node:fs";
import { KernelError } from "./errors";

/** "net.ipv4.ip_forward" or "net/ipv4/ip_forward" → "/proc/sys/net/ipv4/ip_forward". Use slashes when a
 *  component contains a dot (an interface name such as "eth0.100"). */
export function sysctlPath(key: string): string {
  return `/proc/sys/${key.includes("/") ? key.replace(/^\/+/, "") : key.replaceAll(".", "/")}`;
}

export function readSysctl(key: string): string {
  try {
    return readFileSync(sysctlPath(key), "utf8").trimEnd();
  } catch (error) {
    throw asKernelError(`read sysctl ${key}`, error);
  }
}

/** Writes `value` (synchronously, on this thread, so into the current thread's namespace). */
export function writeSysctl(key: string, value: string | number): void {
  try {
    writeFileSync(sysctlPath(key), String(value));
  } catch (error) {
    throw asKernelError(`write sysctl ${key}=${value}`, error);
  }
}

function asKernelError(operation: string, error: unknown): unknown {
  const errno = (error as NodeJS.ErrnoException).errno;
  return typeof errno === "number" ? new KernelError(operation, Math.abs(errno), { cause: error }) : error;
}
