// The bpf filesystem the agent pins into. Agent only: the plugin just opens what is pinned there.
import { mkdirSync } from "node:fs";
import { KernelError } from "../errors";
import { loadKoffi } from "../koffi-loader";
import { isBpffs } from "./syscall";

type Fn = (...args: unknown[]) => number;

let mount: Fn | undefined;

/** Mounts a new bpf filesystem on `path` (an existing directory), readable by root only. */
export function mountBpffs(path: string): void {
  const koffi = loadKoffi();
  mount ??= koffi.load("libc.so.6").func(
    "int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)",
  ) as Fn;
  if (mount("bpf", path, "bpf", 0, "mode=0700") < 0) throw new KernelError(`mount(bpf on ${path})`, koffi.errno());
}

/**
 * Makes `path` a directory on a bpf filesystem: nothing to do if it is one or lies inside one (/sys/fs/bpf/weft
 * under the host's /sys/fs/bpf), else it is created and a bpffs mounted there.
 */
export function ensureBpffs(path: string): void {
  if (isBpffs(path)) return;
  mkdirSync(path, { recursive: true, mode: 0o700 });
  if (!isBpffs(path)) mountBpffs(path);
}
