// The file node source on a real filesystem: re-read on write-to-temp-and-rename (at once), on in-place writes
// (after the debounce) and on a ConfigMap volume's update, the
// last good list kept while the file is garbage or missing, and this node's claim.
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import type { LocalHints, NetworkConfig, NodeSnapshot, PeerNode } from "../../agent/model";
import { FileSource } from "../../agent/sources/file";
import { RUN_PREFIX } from "../support/netns";
import { announcing } from "../support/announce";

const network: NetworkConfig = {
  network: "10.244.0.0/16",
  subnetLen: 24,
  backend: { type: "vxlan", vni: 1, port: 8472 },
  nonMasqueradeCidrs: [],
};

function entry(name: string, index: number): PeerNode {
  return { name, podCidrs: [`10.244.${index}.0/24`], publicIp: `192.168.50.${index}`, vtepMac: `0e:00:00:00:00:0${index}` };
}

let dir: string;
let counter = 0;
const sources: FileSource[] = [];

function nodeFile(nodes: unknown[]): string {
  return JSON.stringify({ nodes });
}

function setup(
  initial: string | undefined, options: { debounceMs?: number; file?: string } = {},
): { file: string; source: FileSource; seen: NodeSnapshot[]; start: () => Promise<void> } {
  const file = options.file ?? path.join(dir, `nodes-${++counter}.json`);
  if (initial !== undefined) writeFileSync(file, initial);
  const source = new FileSource({ network, path: file, debounceMs: options.debounceMs ?? 20, pollIntervalMs: 60_000 });
  sources.push(source);
  const seen: NodeSnapshot[] = [];
  return { file, source, seen, start: () => source.start((snapshot) => seen.push(snapshot)) };
}

function names(snapshot: NodeSnapshot): string[] {
  return snapshot.nodes.map((n) => n.name);
}

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), `${RUN_PREFIX}file-source-`));
});

afterEach(async () => {
  for (const source of sources.splice(0)) await source.close();
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("file source", () => {
  it("reads the list at start and reports synced, skipping bad entries", async () => {
    const { source, start } = setup(nodeFile([entry("node-1", 1), { name: "node-2", podCidrs: ["10.244.2.0/24"], publicIp: "not-an-ip" }, 42]));
    await start();
    expect(source.snapshot()).toEqual({
      synced: true,
      nodes: [entry("node-1", 1)],
      rejected: [
        { name: "node-2", reason: 'public IP "not-an-ip" is not a unicast IP address' },
        { name: "nodes[2]", reason: "entry is not an object" },
      ],
    });
  });

  it("re-reads the file after a write to a temp file and a rename over it", async () => {
    const { file, source, start, seen } = setup(nodeFile([entry("node-1", 1)]));
    await start();
    writeFileSync(`${file}.tmp`, nodeFile([entry("node-1", 1), entry("node-2", 2)]));
    renameSync(`${file}.tmp`, file);
    await vi.waitFor(() => expect(names(source.snapshot())).toEqual(["node-1", "node-2"]));
    // and again, since the watch must survive the replaced inode
    writeFileSync(`${file}.tmp`, nodeFile([entry("node-2", 2)]));
    renameSync(`${file}.tmp`, file);
    await vi.waitFor(() => expect(names(source.snapshot())).toEqual(["node-2"]));
    // The listener is called after the current task; the snapshot is computed on demand, so wait for both to agree.
    await vi.waitFor(() => expect(seen.at(-1)).toEqual(source.snapshot()));
  });

  it("reads a file renamed into place at once, and waits out the debounce after an in-place write", async () => {
    const { file, source, start } = setup(nodeFile([entry("node-1", 1)]), { debounceMs: 1_500 });
    await start();
    writeFileSync(`${file}.tmp`, nodeFile([entry("node-2", 2)]));
    let from = performance.now();
    renameSync(`${file}.tmp`, file);
    await vi.waitFor(() => expect(names(source.snapshot())).toEqual(["node-2"]), { timeout: 1_000 });
    expect(performance.now() - from).toBeLessThan(1_000);
    from = performance.now();
    writeFileSync(file, nodeFile([entry("node-3", 3)]));
    await vi.waitFor(() => expect(names(source.snapshot())).toEqual(["node-3"]), { timeout: 5_000 });
    expect(performance.now() - from).toBeGreaterThanOrEqual(1_400);
  });

  it("follows a ConfigMap volume's update (its ..data link swapped to a new directory)", async () => {
    // The kubelet's layout: nodes.json → ..data/nodes.json, ..data → ..<timestamp>/, swapped by a rename.
    const volume = mkdtempSync(path.join(dir, "configmap-"));
    const version = (n: number, nodes: PeerNode[]) => {
      mkdirSync(path.join(volume, `..v${n}`));
      writeFileSync(path.join(volume, `..v${n}`, "nodes.json"), nodeFile(nodes));
      symlinkSync(`..v${n}`, path.join(volume, "..data_tmp"));
      renameSync(path.join(volume, "..data_tmp"), path.join(volume, "..data"));
    };
    version(1, [entry("node-1", 1)]);
    symlinkSync("..data/nodes.json", path.join(volume, "nodes.json"));
    const { source, start } = setup(undefined, { file: path.join(volume, "nodes.json") });
    await start();
    expect(names(source.snapshot())).toEqual(["node-1"]);
    version(2, [entry("node-1", 1), entry("node-2", 2)]);
    // Well before the 60 s poll: the watch saw ..data change.
    await vi.waitFor(() => expect(names(source.snapshot())).toEqual(["node-1", "node-2"]), { timeout: 2_000 });
  });

  it("re-reads the file after an in-place write", async () => {
    const { file, source, start } = setup(nodeFile([entry("node-1", 1)]));
    await start();
    writeFileSync(file, nodeFile([entry("node-1", 1), entry("node-3", 3)]));
    await vi.waitFor(() => expect(names(source.snapshot())).toEqual(["node-1", "node-3"]));
    writeFileSync(file, nodeFile([{ ...entry("node-1", 1), vtepMac: "0e:00:00:00:00:11" }]));
    await vi.waitFor(() => expect(source.snapshot().nodes).toEqual([{ ...entry("node-1", 1), vtepMac: "0e:00:00:00:00:11" }]));
  });

  it("takes an in-place write read half-way for what it is: no error, and the complete file once written", async () => {
    const { file, source, start, seen } = setup(nodeFile([entry("node-1", 1)]));
    await start();
    const complete = nodeFile([entry("node-1", 1), entry("node-2", 2)]);
    // The first half, then (after the debounce, before the parse retry) the rest, as a slow writer would.
    writeFileSync(file, complete.slice(0, complete.length >> 1));
    await new Promise((resolve) => setTimeout(resolve, 80));
    writeFileSync(file, complete);
    await vi.waitFor(() => expect(names(source.snapshot())).toEqual(["node-1", "node-2"]));
    expect(seen.every((snapshot) => snapshot.error === undefined)).toBe(true);
    expect(source.snapshot().error).toBeUndefined();
  });

  it("keeps the last good list while the file is garbage or missing, refuses an empty list right after, and recovers", async () => {
    const { file, source, start } = setup(nodeFile([entry("node-1", 1)]));
    await start();
    writeFileSync(file, '{"nodes": [');
    await vi.waitFor(() => expect(source.snapshot().error).toMatch(/not JSON/));
    expect(names(source.snapshot())).toEqual(["node-1"]);
    unlinkSync(file);
    await vi.waitFor(() => expect(source.snapshot().error).toMatch(/Cannot read node file .*ENOENT/));
    expect(names(source.snapshot())).toEqual(["node-1"]);
    writeFileSync(file, nodeFile([]));
    await vi.waitFor(() => expect(source.snapshot().error).toMatch(/Refusing an empty node list/));
    expect(names(source.snapshot())).toEqual(["node-1"]);
    writeFileSync(file, nodeFile([entry("node-4", 4)]));
    await vi.waitFor(() => expect(source.snapshot()).toEqual({ synced: true, nodes: [entry("node-4", 4)], rejected: [] }));
  });

  it("is not synced while the file does not exist yet, and syncs once it appears", async () => {
    const { file, source, start } = setup(undefined);
    await start();
    expect(source.snapshot()).toMatchObject({ synced: false, nodes: [], error: expect.stringContaining("ENOENT") });
    writeFileSync(file, nodeFile([entry("node-1", 1)]));
    await vi.waitFor(() => expect(source.snapshot()).toEqual({ synced: true, nodes: [entry("node-1", 1)], rejected: [] }));
  });

  it("claimLocal waits for this node's entry and returns its pod CIDRs with the announced address and MAC", async () => {
    const { file, source, start } = setup(nodeFile([entry("node-1", 1)]));
    await start();
    const local = { name: "node-self", publicIp: "192.168.50.9", vtepMac: "0E:AA:00:00:00:09", backendType: "vxlan" as const };
    let claimed: PeerNode | undefined;
    const claim = source.claimLocal(...announcing(local)).then((node) => (claimed = node));
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(claimed).toBeUndefined();
    writeFileSync(file, nodeFile([entry("node-1", 1), { name: "node-self", podCidrs: ["10.244.9.0/24"], publicIp: "192.168.50.9" }]));
    await claim;
    expect(claimed).toEqual({ name: "node-self", podCidrs: ["10.244.9.0/24"], publicIp: "192.168.50.9", vtepMac: "0e:aa:00:00:00:09" });

    await expect(source.claimLocal(...announcing({ ...local, name: "node-absent" }), AbortSignal.timeout(200))).rejects.toMatchObject({ name: "TimeoutError" });
    await expect(source.claimLocal(...announcing({ ...local, publicIp: "1.2.3" }))).rejects.toMatchObject({ code: "ERR_SOURCE_OPTIONS" });
  });

  it("claimLocal hints the entry's publicIp and dictates its VTEP MAC, given or derived from the name", async () => {
    const { source, start } = setup(nodeFile([
      { name: "node-given", podCidrs: ["10.244.7.0/24"], publicIp: "192.168.50.7", vtepMac: "0e:00:00:00:07:07" },
      { name: "node-derived", podCidrs: ["10.244.8.0/24"], publicIp: "192.168.50.8" },
    ]));
    await start();
    const hintsOf = async (name: string): Promise<LocalHints> => {
      let seen: LocalHints | undefined;
      await source.claimLocal(name, (hints) => {
        seen = hints;
        return { name, publicIp: hints.address!, backendType: "vxlan", vtepMac: hints.vtepMac! };
      });
      return seen!;
    };
    expect(await hintsOf("node-given")).toEqual({ address: "192.168.50.7", vtepMac: "0e:00:00:00:07:07" });
    const derived = await hintsOf("node-derived");
    expect(derived.address).toBe("192.168.50.8");
    expect(derived.vtepMac).toBe(source.snapshot().nodes.find((n) => n.name === "node-derived")!.vtepMac);
    await expect(source.claimLocal("node-given", () => ({ name: "node-derived", publicIp: "192.168.50.8", backendType: "vxlan" }))).rejects.toMatchObject({ code: "ERR_SOURCE_OPTIONS" });
  });

  it("close() is safe twice and fails pending claims", async () => {
    const { source, start } = setup(nodeFile([]));
    await start();
    const pending = source.claimLocal(...announcing({ name: "node-self", publicIp: "192.168.50.9", backendType: "host-gw" }));
    await source.close();
    await source.close();
    await expect(pending).rejects.toMatchObject({ code: "ERR_SOURCE_CLOSED" });
    await expect(source.start(() => undefined)).rejects.toMatchObject({ code: "ERR_SOURCE_CLOSED" });
  });
});
