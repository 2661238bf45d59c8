// The single executable on its own, its code cache, and beside the reference host-local on one IPAM data dir.
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runPlugin, runPluginAsync } from "../support/cni-exec";
import { WEFT_BINARY } from "../support/global-setup";
import { createTestNetns, RUN_PREFIX } from "../support/netns";
import { CniNode } from "../support/weft-fixture";

describe("dist/weft copied alone", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), `${RUN_PREFIX}alone-`));
    copyFileSync(WEFT_BINARY, join(dir, "weft"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("runs from an empty directory with no node_modules and an empty environment", () => {
    const cacheDir = join(dir, "cache");
    const version = spawnSync(join(dir, "weft"), ["--version"], { cwd: dir, env: { WEFT_CACHE_DIR: cacheDir }, encoding: "utf8" });
    expect(version.stdout).toMatch(/^weft \d+\.\d+\.\d+/);
    const cni = spawnSync(join(dir, "weft"), [], {
      cwd: dir,
      env: { CNI_COMMAND: "VERSION", WEFT_CACHE_DIR: cacheDir },
      input: '{"cniVersion":"1.0.0"}',
      encoding: "utf8",
    });
    expect(cni.status, cni.stderr).toBe(0);
    expect(JSON.parse(cni.stdout)).toMatchObject({ cniVersion: "1.0.0", supportedVersions: expect.arrayContaining(["1.1.0"]) });
    // --version and VERSION load no FFI; DEL does (netlink). Run it in a throwaway node namespace.
    const netns = createTestNetns("alone");
    try {
      const del = spawnSync("nsenter", [`--net=${netns.path}`, join(dir, "weft")], {
        cwd: dir,
        env: { CNI_COMMAND: "DEL", CNI_CONTAINERID: "alone", CNI_IFNAME: "eth0", WEFT_CACHE_DIR: cacheDir },
        input: JSON.stringify({ cniVersion: "1.0.0", name: "alone", type: "weft", ipam: { ranges: [[{ subnet: "10.9.0.0/24" }]], dataDir: join(dir, "ipam") } }),
        encoding: "utf8",
      });
      expect(del.status, del.stdout + del.stderr).toBe(0);
    } finally {
      netns.remove();
    }
    // The FFI addon was extracted once, content-addressed, into the private cache directory, beside the code cache.
    expect(readdirSync(cacheDir).sort()).toEqual([
      expect.stringMatching(/^koffi-[0-9a-f]{16}\.node$/),
      expect.stringMatching(/^weft-[0-9a-f]{16}\.code-cache$/),
    ]);
  });
});

describe("the executable's code cache", () => {
  let cacheDir: string;
  beforeAll(() => {
    cacheDir = mkdtempSync(join(tmpdir(), `${RUN_PREFIX}code-cache-`));
  });
  afterAll(() => rmSync(cacheDir, { recursive: true, force: true }));

  /** Runs a command that needs no namespace; WEFT_DEBUG=1 makes the executable say what it did with its cache. */
  function run(command: string, stdin = '{"cniVersion":"1.0.0"}') {
    const result = spawnSync(WEFT_BINARY, [], {
      env: { CNI_COMMAND: command, WEFT_CACHE_DIR: cacheDir, WEFT_DEBUG: "1" },
      input: stdin,
      encoding: "utf8",
    });
    const file = readdirSync(cacheDir).find((name) => name.endsWith(".code-cache"));
    const cache = file === undefined ? undefined : readFileSync(join(cacheDir, file));
    return {
      status: result.status,
      stdout: result.stdout,
      use: /code cache \S+: (\w+)/.exec(result.stderr)?.[1],
      file: file && join(cacheDir, file),
      /** The commands the cache file says have completed with it. */
      commands: cache?.toString("latin1", 0, cache.indexOf(10)).split(" ")[2]?.split(",").filter(Boolean),
    };
  }

  it("is written by a first run, used by later ones, and learns each command once it has succeeded", () => {
    const first = run("VERSION");
    expect(first).toMatchObject({ status: 0, use: "none", commands: ["VERSION"] });
    const again = run("VERSION");
    expect(again).toMatchObject({ status: 0, use: "used", commands: ["VERSION"] });
    expect(again.stdout).toBe(first.stdout);
    const mtime = statSync(again.file as string).mtimeMs;
    // A command that fails is not learned (its success path has not run), and leaves the cache as it was.
    const failed = run("STATUS", JSON.stringify({ cniVersion: "1.1.0", name: "cc", type: "weft", subnetFile: join(cacheDir, "missing.env") }));
    expect(failed).toMatchObject({ status: 1, use: "used", commands: ["VERSION"] });
    expect(statSync(failed.file as string).mtimeMs).toBe(mtime);
  });

  it("is replaced when V8 rejects it, and the answer is the same either way", () => {
    const good = run("VERSION");
    expect(good.use).toBe("used");
    truncateSync(good.file as string, 4096);
    const damaged = run("VERSION");
    expect(damaged).toMatchObject({ status: 0, use: "rejected", stdout: good.stdout, commands: ["VERSION"] });
    expect(run("VERSION").use).toBe("used");
  });
});

describe("weft and the reference host-local on one data dir", () => {
  let node: CniNode;
  beforeAll(() => {
    node = new CniNode("interop");
  });
  afterAll(() => node?.close());

  it("never hand out the same IP, and each releases what the other reserved", async () => {
    const subnet = "10.243.0.0/26";
    const weftConf = node.conf({ bridge: "cniio", ipam: { ranges: [[{ subnet }]], dataDir: node.dataDir } }, "1.0.0");
    const hostLocalConf = { cniVersion: "1.0.0", name: node.networkName, ipam: { type: "host-local", ranges: [[{ subnet }]], dataDir: node.dataDir } };
    const pods = Array.from({ length: 40 }, (_, i) => ({ i, containerId: node.containerId(), netns: node.pod().path }));
    // Interleaved and concurrent: even pods through weft, odd ones through host-local (which touches no netns).
    const results = await Promise.all(
      pods.map((pod) =>
        pod.i % 2 === 0
          ? node.runAsync("ADD", pod, weftConf)
          : runPluginAsync("/usr/lib/cni/host-local", { command: "ADD", containerId: pod.containerId, netns: pod.netns, ifname: "eth0", path: "/usr/lib/cni", stdin: { ...hostLocalConf } }),
      ),
    );
    for (const result of results) expect(result.code, result.stdout + result.stderr).toBe(0);
    const ips = results.map((result) => result.json.ips[0].address);
    expect(new Set(ips).size).toBe(40);
    expect(node.reservations()).toHaveLength(40);

    // Each releases what the other reserved: weft's DEL frees host-local's reservations, host-local's DEL frees
    // weft's (the interfaces weft made are then removed by weft's own DEL, which finds no IP left to free).
    for (const pod of pods) {
      const del =
        pod.i % 2 === 1
          ? node.run("DEL", pod, weftConf)
          : runPlugin("/usr/lib/cni/host-local", { command: "DEL", containerId: pod.containerId, netns: pod.netns, ifname: "eth0", path: "/usr/lib/cni", stdin: hostLocalConf });
      expect(del.code, del.stdout + del.stderr).toBe(0);
    }
    expect(node.reservations()).toEqual([]);
    for (const pod of pods.filter((p) => p.i % 2 === 0)) expect(node.run("DEL", pod, weftConf).code).toBe(0);
    expect(node.hostVeths()).toEqual([]);
  });
});
