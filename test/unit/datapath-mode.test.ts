// --datapath and what the node has → the mode (agent/datapath/index.ts): auto falls back to the kernel path
// naming what is missing; ebpf refuses to start without it, naming it too.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { chooseDatapath, type NodeFacts } from "../../agent/datapath";
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
    const lacking: NodeFacts = { ...complete, btfPath: path.join(dir, "none"), kernelRelease: "5.15.0-91-generic" };
    expect(chooseDatapath("auto", lacking)).toEqual({
      mode: "kernel",
      reason: `auto: this node lacks kernel BTF (${path.join(dir, "none")}), tcx (Linux 6.6 or later; this is 5.15.0-91-generic)`,
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
