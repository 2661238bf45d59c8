// Network namespaces. setns(2) switches only the calling thread, so `withNetns` runs a *synchronous* callback on
// the main thread and always switches back before returning; an `await` inside would let unrelated code run
// in the pod's namespace. For async work, open the socket inside and use it outside.
import { constants, openSync } from "node:fs";
import { KernelError } from "./errors";
import { CLONE_NEWNET, close, namespaceType, setns } from "./libc";

export class NetnsError extends Error {
  readonly code: "ENOENT" | "ENOTNETNS" | "EACCES" | "EINVAL";
  readonly path: string;
  constructor(path: string, code: NetnsError["code"], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "NetnsError";
    this.code = code;
    this.path = path;
  }
}

/** Opens a network namespace file and checks that it is one. The caller closes the fd. */
export function openNetns(path: string): number {
  if (!path || !path.startsWith("/")) {
    throw new NetnsError(path, "EINVAL", `Cannot open netns "${path}": not an absolute path`);
  }
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code === "ENOENT" ? "ENOENT" : "EACCES";
    throw new NetnsError(path, code, `Cannot open netns ${path}: ${(error as Error).message}`, { cause: error });
  }
  let type = 0;
  try {
    type = namespaceType(fd);
  } catch (error) {
    if (!(error instanceof KernelError)) throw error;
  }
  if (type !== CLONE_NEWNET) {
    close(fd);
    throw new NetnsError(path, "ENOTNETNS", `Cannot use ${path}: not a network namespace`);
  }
  return fd;
}

/** An fd for the namespace this thread is in now (the host's, outside withNetns). The caller closes it. */
export function openCurrentNetns(): number {
  return openSync("/proc/thread-self/ns/net", constants.O_RDONLY);
}

/** Runs `fn` inside the network namespace at `path` (or an open netns fd), then returns to where it was. */
export function withNetns<T>(target: string | number, fn: () => T): T {
  const targetFd = typeof target === "number" ? target : openNetns(target);
  const originFd = openCurrentNetns();
  try {
    setns(targetFd, CLONE_NEWNET);
    try {
      const result = fn();
      if (result instanceof Promise) {
        throw new Error("withNetns takes a synchronous callback: an await would run other code in the namespace");
      }
      return result;
    } finally {
      try {
        setns(originFd, CLONE_NEWNET);
      } catch (error) {
        // Staying in the wrong namespace would make every later operation silently wrong: stop here.
        process.stderr.write(`fatal: cannot return to the original network namespace: ${String(error)}\n`);
        process.abort();
      }
    }
  } finally {
    close(originFd);
    if (typeof target !== "number") close(targetFd);
  }
}
