// `weft-agent uninstall` removes every kernel object and file weft created on a node, and nothing else; and
// `weft-agent install-cni` puts the plugin in place atomically.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AGENT_LAUNCHER, SimCluster, type SimNode } from "../support/cluster";
import { WEFT_BINARY } from "../support/global-setup";

function agentCommand(node: SimNode, argv: string[]): { code: number | null; stdout: string; stderr: string } {
  const result = spawnSync("nsenter", [`--net=${node.ns.path}`, AGENT_LAUNCHER, ...argv], { encoding: "utf8", timeout: 30_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

const CASES = [
  { backend: "vxlan", datapath: "kernel", label: "ux" },
  { backend: "host-gw", datapath: "kernel", label: "uh" },
  { backend: "vxlan", datapath: "ebpf", label: "ue" },
] as const;

for (const { backend, datapath, label } of CASES) {
  describe(`weft-agent uninstall (${backend}, --datapath ${datapath})`, () => {
    let cluster: SimCluster;

    beforeAll(async () => {
      cluster = SimCluster.create({ label, nodes: 2, datapath });
      const nodeFile = cluster.writeNodeFile();
      const netConf = cluster.writeNetConf({ Network: "10.244.0.0/16", Backend: { Type: backend } });
      for (const node of cluster.nodes) node.startAgent(["--source", "file", "--node-file", nodeFile, "--net-conf", netConf]);
      await Promise.all(cluster.nodes.map((node) => node.waitReady((s) => s.peers.length === 1)));
      cluster.nodes[0]!.addPod();
    }, 120_000);

    afterAll(async () => {
      await cluster?.close();
    });

    it("removes the VTEP, weft's routes, host veths, the bridge, table inet weft and weft's files; leaves the rest", async () => {
      const node = cluster.nodes[0]!;
      node.ns.exec(["ip", "route", "add", "10.99.0.0/24", "via", "192.168.90.1"]);
      node.ns.exec(["nft", "add", "table", "inet", "someone-else"]);
      const stateDir = path.join(node.dir, "state");
      if (backend === "vxlan") expect(fs.readdirSync(stateDir)).toContain("vtep-mac.1");
      expect(node.kernelObjects().routes).toHaveLength(1);
      expect(fs.existsSync(node.conflist)).toBe(true);
      expect(fs.readdirSync(path.join(node.dir, "ipam"))).toContain("weft");
      if (datapath === "ebpf") {
        expect(fs.readdirSync(node.bpfDir)).toEqual(expect.arrayContaining(["prog_from_pod", "weft_endpoints", "links"]));
        expect(fs.readdirSync(path.join(node.bpfDir, "links")).sort()).toEqual([
          expect.stringMatching(/^veth[0-9a-f]{8}-egress$/), expect.stringMatching(/^veth[0-9a-f]{8}-ingress$/), "weft_1-egress", "weft_1-ingress",
        ]);
        expect(fs.readdirSync(path.join(stateDir, "endpoints"))).toHaveLength(1);
      }
      const binDir = path.join(node.dir, "bin");
      fs.mkdirSync(binDir);
      fs.writeFileSync(path.join(binDir, "weft"), "plugin");
      fs.writeFileSync(path.join(binDir, "bridge"), "someone else's plugin");

      expect(await node.stopAgent("SIGTERM")).toBe(0);
      // Stopping leaves everything in place: a restarted agent must find it.
      expect(node.kernelObjects().routes).toHaveLength(1);

      const result = agentCommand(node, [
        "uninstall", "--cni-conf-dir", path.join(node.dir, "net.d"), "--subnet-file", node.subnetFile, "--state-dir", stateDir,
        "--ipam-data-dir", path.join(node.dir, "ipam"), "--cni-bin-dir", binDir, "--bpf-dir", node.bpfDir,
      ]);
      expect(result, result.stderr).toMatchObject({ code: 0 });
      expect(result.stdout).toContain("removed nftables table inet weft");
      expect(result.stdout).toContain("removed bridge cni0");

      expect(node.kernelObjects()).toEqual({ routes: [], neighbours: [], fdb: [] });
      const links = node.ipJson<{ ifname: string }[]>(["link", "show"]).map((l) => l.ifname);
      expect(links.filter((name) => name.startsWith("weft.") || name.startsWith("veth") || name === "cni0")).toEqual([]);
      expect(node.ns.exec(["nft", "list", "tables"])).not.toContain("inet weft");
      expect(node.ns.exec(["nft", "list", "tables"])).toContain("inet someone-else");
      expect(node.ns.exec(["ip", "route", "show", "10.99.0.0/24"])).toContain("via 192.168.90.1");
      expect(fs.existsSync(node.conflist)).toBe(false);
      expect(fs.existsSync(node.subnetFile)).toBe(false);
      if (fs.existsSync(stateDir)) expect(fs.readdirSync(stateDir).filter((f) => f.startsWith("vtep-mac"))).toEqual([]);
      expect(fs.readdirSync(path.join(node.dir, "ipam"))).not.toContain("weft");
      expect(fs.readdirSync(binDir)).toEqual(["bridge"]);
      // The eBPF datapath's pins (programs, maps, the VTEP's and the pod's links) and the pod's record: all gone.
      expect(fs.existsSync(node.bpfDir) ? fs.readdirSync(node.bpfDir) : []).toEqual([]);
      expect(fs.existsSync(path.join(stateDir, "endpoints"))).toBe(false);

      const again = agentCommand(node, ["uninstall", "--cni-conf-dir", path.join(node.dir, "net.d"), "--subnet-file", node.subnetFile, "--state-dir", stateDir, "--ipam-data-dir", path.join(node.dir, "ipam"), "--cni-bin-dir", binDir, "--bpf-dir", node.bpfDir]);
      expect(again).toMatchObject({ code: 0, stdout: "nothing of weft's found on this node\n" });
    });
  });
}

describe("weft-agent install-cni", () => {
  let cluster: SimCluster;
  beforeAll(() => {
    cluster = SimCluster.create({ label: "ic", nodes: 1 });
  });
  afterAll(async () => {
    await cluster?.close();
  });

  it("copies the plugin into the bin dir under its name, executable, and leaves an identical one alone", () => {
    const node = cluster.nodes[0]!;
    const binDir = path.join(node.dir, "opt-cni-bin");
    const first = agentCommand(node, ["install-cni", "--cni-source", WEFT_BINARY, "--cni-bin-dir", binDir]);
    expect(first, first.stderr).toMatchObject({ code: 0, stdout: `installed ${binDir}/weft\n` });
    expect(fs.readdirSync(binDir)).toEqual(["weft"]);
    expect(fs.statSync(path.join(binDir, "weft")).mode & 0o777).toBe(0o755);
    expect(spawnSync(path.join(binDir, "weft"), ["--version"], { encoding: "utf8" }).stdout).toMatch(/^weft /);
    const inode = fs.statSync(path.join(binDir, "weft")).ino;
    const second = agentCommand(node, ["install-cni", "--cni-source", WEFT_BINARY, "--cni-bin-dir", binDir]);
    expect(second.stdout).toBe(`already up to date: ${binDir}/weft\n`);
    expect(fs.statSync(path.join(binDir, "weft")).ino).toBe(inode);
  });

  it("replaces a different plugin by rename, never writing into the old file", () => {
    const node = cluster.nodes[0]!;
    const binDir = path.join(node.dir, "replace-bin");
    fs.mkdirSync(binDir);
    fs.writeFileSync(path.join(binDir, "weft"), "old plugin", { mode: 0o755 });
    const oldInode = fs.statSync(path.join(binDir, "weft")).ino;
    const result = agentCommand(node, ["install-cni", "--cni-source", WEFT_BINARY, "--cni-bin-dir", binDir]);
    expect(result.code).toBe(0);
    expect(fs.statSync(path.join(binDir, "weft")).ino).not.toBe(oldInode);
    expect(fs.readdirSync(binDir)).toEqual(["weft"]);
  });

  it("fails clearly when the source does not exist, and writes nothing", () => {
    const node = cluster.nodes[0]!;
    const binDir = path.join(node.dir, "empty-bin");
    const result = agentCommand(node, ["install-cni", "--cni-source", "/nonexistent/weft", "--cni-bin-dir", binDir]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("Cannot install the CNI plugin: /nonexistent/weft does not exist");
    expect(fs.existsSync(binDir)).toBe(false);
  });
});
