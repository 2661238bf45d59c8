// --datapath and what the node has → the mode (agent/datapath/index.ts): auto falls back to the kernel path
// naming what is missing; ebpf refuses to start without it, naming it too. --tc-attach and the kernel → how the
// programs are attached (tcx or clsact).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { chooseDatapath, chooseTcAttach, type NodeFacts } from "../../agent/datapath";
import { DatapathError } from "../../agent/errors";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "weft-datapath-mode-"));
const objects = path.join(dir, "bpf");
fs.mkdirSync(objects);
for (const name of ["from_pod.o", "to_pod.o", "vtep.o"]) fs.writeFileSync(path.join(objects, name), "");
const btf = path.join(dir, "vmlinux");
fs.writeFileSync(btf, "");

const complete: NodeFacts = { backend: "vxlan", objectsDir: objects, btfPath: btf, bpffsMountPoint: dir, kernelRelease: "6.18.44-fc" };

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("chooseDatapath", () => {
  it("takes --datapath kernel as given, and ebpf or auto on a node that has everything", () => {
    expect(chooseDatapath("kernel", complete)).toEqual({ mode: "kernel", reason: "--datapath kernel" });
    expect(chooseDatapath("ebpf", complete)).toEqual({ mode: "ebpf", reason: "--datapath ebpf" });
    expect(chooseDatapath("auto", complete)).toEqual({ mode: "ebpf", reason: "auto: this node has what the eBPF datapath needs" });
  });

  it("falls back to the kernel path with auto, naming every missing feature", () => {
    const lacking: NodeFacts = { ...complete, btfPath: path.join(dir, "none"), kernelRelease: "5.4.0-216-generic" };
    expect(chooseDatapath("auto", lacking)).toEqual({
      mode: "kernel",
      reason: `auto: this node lacks kernel BTF (${path.join(dir, "none")}), bpf_redirect_peer (Linux 5.10 or later; this is 5.4.0-216-generic)`,
    });
    expect(chooseDatapath("auto", { ...complete, backend: "host-gw" })).toEqual({ mode: "kernel", reason: "auto: this node lacks the vxlan backend (the eBPF datapath is for vxlan; host-gw keeps the kernel path)" });
  });

  it("refuses --datapath ebpf on a node that lacks something, naming it", () => {
    const lacking: NodeFacts = { ...complete, objectsDir: path.join(dir, "empty"), bpffsMountPoint: path.join(dir, "no-bpffs") };
    expect(() => chooseDatapath("ebpf", lacking)).toThrow(DatapathError);
    expect(() => chooseDatapath("ebpf", lacking)).toThrow(
      `Cannot use --datapath ebpf: this node lacks a bpf filesystem mount point (${path.join(dir, "no-bpffs")}), the datapath's object ${path.join(dir, "empty", "from_pod.o")}, the datapath's object ${path.join(dir, "empty", "to_pod.o")}, the datapath's object ${path.join(dir, "empty", "vtep.o")}`,
    );
  });
});

describe("the programs' attachment (--tc-attach)", () => {
  it("takes tcx where the kernel has it (6.6), else clsact, and a forced kind as given", () => {
    expect(chooseTcAttach("auto", "6.18.44-fc")).toEqual({ kind: "tcx", reason: "auto: Linux 6.18.44-fc has tcx" });
    expect(chooseTcAttach("auto", "6.6.0")).toEqual({ kind: "tcx", reason: "auto: Linux 6.6.0 has tcx" });
    expect(chooseTcAttach("auto", "6.1.0-28-amd64")).toEqual({ kind: "clsact", reason: "auto: Linux 6.1.0-28-amd64 has no tcx (6.6)" });
    expect(chooseTcAttach("clsact", "6.18.44-fc")).toEqual({ kind: "clsact", reason: "--tc-attach clsact" });
    expect(chooseTcAttach("tcx", "6.18.44-fc")).toEqual({ kind: "tcx", reason: "--tc-attach tcx" });
  });

  it("lets auto pick ebpf on a kernel without tcx (clsact serves), and refuses tcx forced there", () => {
    const debian12: NodeFacts = { ...complete, kernelRelease: "6.1.0-28-amd64" };
    expect(chooseDatapath("auto", debian12)).toEqual({ mode: "ebpf", reason: "auto: this node has what the eBPF datapath needs" });
    expect(chooseDatapath("auto", { ...debian12, tcAttach: "clsact" }).mode).toBe("ebpf");
    expect(chooseDatapath("auto", { ...debian12, tcAttach: "tcx" })).toEqual({
      mode: "kernel", reason: "auto: this node lacks tcx, as --tc-attach tcx asks (Linux 6.6 or later; this is 6.1.0-28-amd64)",
    });
    expect(() => chooseDatapath("ebpf", { ...debian12, tcAttach: "tcx" })).toThrow("Cannot use --datapath ebpf: this node lacks tcx, as --tc-attach tcx asks");
    // bpf_redirect_peer (5.10) is needed however the programs are attached.
    expect(chooseDatapath("auto", { ...complete, kernelRelease: "5.4.0", tcAttach: "clsact" }).mode).toBe("kernel");
  });
});
