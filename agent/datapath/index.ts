// The datapath mode (--datapath): how pod packets cross this node.
//   kernel  flannel's path: bridge → routing → VXLAN device with route/ARP/FDB (or host-gw routes).
//   ebpf    tc programs on the pods' host veths and the VTEP (./ebpf.ts); the kernel path stays the fallback for
//           what the programs do not handle. vxlan only: host-gw keeps the kernel path.
//   auto    ebpf where this node has what it needs, else kernel, with the reason shown.
// The programs are attached (--tc-attach, native/bpf/attach.ts) with tcx where the kernel has it (6.6), else with
// clsact filters (4.5); either serves the eBPF datapath, which needs bpf_redirect_peer (5.10) besides.
// Switching across a restart converges: kernel mode removes what an ebpf run pinned (./cleanup.ts), and the
// backend builds the VTEP in the other form (collect-metadata or not), which the reconciler recreates.
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { TcAttachKind } from "../../native/bpf/attach";
import { DatapathError } from "../errors";
import type { BackendType } from "../model";

export type DatapathFlag = "kernel" | "ebpf" | "auto";
export type DatapathMode = "kernel" | "ebpf";
export type TcAttachFlag = "auto" | TcAttachKind;

export const DEFAULT_BPF_DIR = "/sys/fs/bpf/weft";

/** Where the plugin records endpoints for the agent: <state dir>/endpoints. */
export function endpointsDirOf(stateDir: string): string {
  return path.join(stateDir, "endpoints");
}


export interface DatapathChoice {
  mode: DatapathMode;
  /** Why: "--datapath ebpf", or for auto the feature that decided. */
  reason: string;
}

export interface TcAttachChoice {
  kind: TcAttachKind;
  /** Why: "--tc-attach clsact", or for auto what the kernel has. */
  reason: string;
}

export interface NodeFacts {
  backend: BackendType;
  objectsDir: string;
  /** --tc-attach; default auto. */
  tcAttach?: TcAttachFlag;
  /** Where the facts are read (tests point them elsewhere). Defaults: the running kernel's. */
  btfPath?: string;
  bpffsMountPoint?: string;
  kernelRelease?: string;
}

/** What the eBPF datapath needs from this node, as a list of what is missing (empty: all there). */
export function missingForEbpf(facts: NodeFacts): string[] {
  const missing: string[] = [];
  const btf = facts.btfPath ?? "/sys/kernel/btf/vmlinux";
  const mountPoint = facts.bpffsMountPoint ?? "/sys/fs/bpf";
  const release = facts.kernelRelease ?? kernelRelease();
  if (facts.backend !== "vxlan") missing.push(`the vxlan backend (the eBPF datapath is for vxlan; ${facts.backend} keeps the kernel path)`);
  if (!existsSync(btf)) missing.push(`kernel BTF (${btf})`);
  if (!existsSync(mountPoint)) missing.push(`a bpf filesystem mount point (${mountPoint})`);
  if (!releaseAtLeast(release, 5, 10)) missing.push(`bpf_redirect_peer (Linux 5.10 or later; this is ${release})`);
  // auto takes clsact where tcx is missing: clsact and cls_bpf's direct-action mode are older than bpf_redirect_peer.
  if (facts.tcAttach === "tcx" && !releaseAtLeast(release, 6, 6)) missing.push(`tcx, as --tc-attach tcx asks (Linux 6.6 or later; this is ${release})`);
  for (const object of ["from_pod.o", "to_pod.o", "vtep.o"]) {
    if (!existsSync(path.join(facts.objectsDir, object))) missing.push(`the datapath's object ${path.join(facts.objectsDir, object)}`);
  }
  return missing;
}

/** --datapath and this node → the mode. `ebpf` with something missing is an error naming it. */
export function chooseDatapath(flag: DatapathFlag, facts: NodeFacts): DatapathChoice {
  if (flag === "kernel") return { mode: "kernel", reason: "--datapath kernel" };
  const missing = missingForEbpf(facts);
  if (flag === "ebpf") {
    if (missing.length > 0) throw new DatapathError(`Cannot use --datapath ebpf: this node lacks ${missing.join(", ")}`);
    return { mode: "ebpf", reason: "--datapath ebpf" };
  }
  return missing.length === 0 ? { mode: "ebpf", reason: "auto: this node has what the eBPF datapath needs" } : { mode: "kernel", reason: `auto: this node lacks ${missing.join(", ")}` };
}

/** --tc-attach and this kernel → how the programs are attached: tcx where the kernel has it, else clsact. */
export function chooseTcAttach(flag: TcAttachFlag, release = kernelRelease()): TcAttachChoice {
  if (flag !== "auto") return { kind: flag, reason: `--tc-attach ${flag}` };
  return releaseAtLeast(release, 6, 6)
    ? { kind: "tcx", reason: `auto: Linux ${release} has tcx` }
    : { kind: "clsact", reason: `auto: Linux ${release} has no tcx (6.6)` };
}

/** Where the built objects are: beside the agent's bundle (dist/agent/bpf, /opt/weft/agent/bpf), else the checkout's build. */
export function defaultObjectsDir(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const beside = path.join(here, "bpf");
  if (existsSync(beside)) return beside;
  return path.resolve(here, "../../dist/agent/bpf");
}

function kernelRelease(): string {
  try {
    return readFileSync("/proc/sys/kernel/osrelease", "utf8").trim();
  } catch {
    return "unknown";
  }
}

function releaseAtLeast(release: string, major: number, minor: number): boolean {
  const match = /^(\d+)\.(\d+)/.exec(release);
  if (!match) return false;
  const [have, haveMinor] = [Number(match[1]), Number(match[2])];
  return have > major || (have === major && haveMinor >= minor);
}
