// A simulated node for CNI tests: a netns standing in for the node's root namespace (the plugin runs there via
// nsenter, so the bridge and host veths never touch the machine), pod namespaces, and a temp IPAM data dir.
// Everything is removed by `close()`, which tests call in afterAll/afterEach.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { runPlugin, runPluginAsync, type PluginResult, type PluginRun } from "./cni-exec";
import { WEFT_BINARY } from "./global-setup";
import { createTestNetns, RUN_PREFIX, type TestNetns } from "./netns";

export const SPEC_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] as const;

export interface Attachment {
  containerId: string;
  netns: string;
  ifname?: string;
}

export class CniNode {
  readonly node: TestNetns;
  readonly dir: string;
  readonly dataDir: string;
  readonly networkName: string;
  readonly #pods: TestNetns[] = [];
  #counter = 0;

  constructor(label: string) {
    this.node = createTestNetns(label);
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `${RUN_PREFIX}${label}-`));
    this.dataDir = path.join(this.dir, "ipam");
    this.networkName = `${RUN_PREFIX}${label}`;
  }

  /** A pod namespace, removed with the node. */
  pod(label = "pod"): TestNetns {
    const pod = createTestNetns(`${label}`);
    this.#pods.push(pod);
    return pod;
  }

  containerId(): string {
    return `${RUN_PREFIX}c${this.#counter++}`;
  }

  /** A weft network config; `extra` is merged on top (use `ipam` to replace the whole IPAM section). */
  conf(extra: Record<string, unknown> = {}, cniVersion = "1.1.0"): Record<string, unknown> {
    return {
      cniVersion,
      name: this.networkName,
      type: "weft",
      ipam: { ranges: [[{ subnet: "10.240.0.0/24" }]], dataDir: this.dataDir },
      ...extra,
    };
  }

  run(command: string, attachment: Partial<Attachment>, stdin: object | string, extra: Partial<PluginRun> = {}): PluginResult {
    return runPlugin(WEFT_BINARY, this.#pluginRun(command, attachment, stdin, extra));
  }

  runAsync(command: string, attachment: Partial<Attachment>, stdin: object | string, extra: Partial<PluginRun> = {}): Promise<PluginResult> {
    return runPluginAsync(WEFT_BINARY, this.#pluginRun(command, attachment, stdin, extra));
  }

  #pluginRun(command: string, attachment: Partial<Attachment>, stdin: object | string, extra: Partial<PluginRun>): PluginRun {
    const run: PluginRun = { command, stdin, hostNetns: this.node.path, path: "/usr/lib/cni", ...extra };
    if (attachment.containerId !== undefined) run.containerId = attachment.containerId;
    if (attachment.netns !== undefined) run.netns = attachment.netns;
    run.ifname = attachment.ifname ?? "eth0";
    if (command === "GC" || command === "STATUS" || command === "VERSION") delete run.ifname;
    return run;
  }

  /** ADD that must succeed; returns the parsed result. */
  add(attachment: Attachment, conf: object = this.conf()): Record<string, any> { // eslint-disable-line @typescript-eslint/no-explicit-any
    const result = this.run("ADD", attachment, conf);
    if (result.code !== 0) throw new Error(`ADD failed: ${result.stdout} ${result.stderr}`);
    return result.json;
  }

  /** IP reservation files in this network's host-local directory. */
  reservations(name = this.networkName): string[] {
    const dir = path.join(this.dataDir, name);
    if (!fs.existsSync(dir)) return [];
    return fs.readdirSync(dir).filter((file) => file !== "lock" && !file.startsWith("last_reserved_ip"));
  }

  /** Host-side veths in the node namespace. */
  hostVeths(): string[] {
    const links = JSON.parse(this.node.exec(["ip", "-j", "link", "show", "type", "veth"]) || "[]") as { ifname: string }[];
    return links.map((link) => link.ifname);
  }

  close(): void {
    for (const pod of this.#pods) pod.remove();
    this.node.remove();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
