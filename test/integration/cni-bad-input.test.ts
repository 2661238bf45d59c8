// Bad input: each case gets the spec's error JSON on stdout with the right code, exit 1, and changes nothing —
// no link in the node or the pod, no reservation, no IPAM directory.
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { linkNames } from "../support/netns";
import { CniNode } from "../support/weft-fixture";
import { runPlugin, type PluginRun } from "../support/cni-exec";
import { WEFT_BINARY } from "../support/global-setup";

// Created while the file is collected, because the case table below names its paths; afterAll removes it
// (and the run's global teardown removes anything left by a crash).
const node = new CniNode("bad");
const pod = node.pod();
const { path: podPath } = pod;

beforeAll(() => {
  node.node.exec(["ip", "link", "add", "notabridge", "type", "veth", "peer", "name", "notabridge-p"]);
  fs.writeFileSync(path.join(node.dir, "plain-file"), "not a netns");
});
afterAll(() => node.close());

interface Case {
  name: string;
  code: number;
  msg: RegExp;
  env?: Partial<PluginRun>;
  stdin?: object | string;
}

const ranges = (subnets: string[][]) => ({ ranges: subnets.map((set) => set.map((subnet) => ({ subnet }))) });

const cases: Case[] = [
  { name: "CNI_COMMAND missing", code: 4, msg: /CNI_COMMAND/, env: { command: undefined } },
  { name: "CNI_COMMAND empty", code: 4, msg: /CNI_COMMAND/, env: { command: "" } },
  { name: "unknown command", code: 4, msg: /FROB/, env: { command: "FROB" } },
  { name: "CNI_CONTAINERID missing", code: 4, msg: /CNI_CONTAINERID/, env: { containerId: undefined } },
  { name: "CNI_CONTAINERID empty", code: 4, msg: /CNI_CONTAINERID/, env: { containerId: "" } },
  { name: "container ID with /", code: 4, msg: /CNI_CONTAINERID/, env: { containerId: "abc/def" } },
  { name: "container ID with ..", code: 4, msg: /CNI_CONTAINERID/, env: { containerId: "abc..def" } },
  { name: "CNI_IFNAME missing", code: 4, msg: /CNI_IFNAME/, env: { ifname: undefined } },
  { name: "CNI_IFNAME empty", code: 4, msg: /CNI_IFNAME/, env: { ifname: "" } },
  { name: "ifname longer than 15 bytes", code: 4, msg: /CNI_IFNAME/, env: { ifname: "eth0123456789abc" } },
  { name: "ifname with /", code: 4, msg: /CNI_IFNAME/, env: { ifname: "eth/0" } },
  { name: "ifname with :", code: 4, msg: /CNI_IFNAME/, env: { ifname: "eth:0" } },
  { name: "ifname with whitespace", code: 4, msg: /CNI_IFNAME/, env: { ifname: "eth 0" } },
  { name: "ifname with a tab", code: 4, msg: /CNI_IFNAME/, env: { ifname: "eth\t0" } },
  { name: "ifname with a newline", code: 4, msg: /CNI_IFNAME/, env: { ifname: "eth0\n" } },
  { name: "CNI_NETNS missing", code: 4, msg: /CNI_NETNS/, env: { netns: undefined } },
  { name: "CNI_NETNS empty", code: 4, msg: /CNI_NETNS/, env: { netns: "" } },
  { name: "netns path that does not exist", code: 4, msg: /does-not-exist/, env: { netns: "/run/netns/does-not-exist" } },
  { name: "netns path that is not a netns", code: 4, msg: /not a network namespace/, env: { netns: path.join(node.dir, "plain-file") } },
  { name: "stdin empty", code: 6, msg: /empty|no network config/i, stdin: "" },
  { name: "stdin not JSON", code: 6, msg: /JSON/, stdin: "{not json" },
  { name: "stdin 10 MB of garbage", code: 6, msg: /not JSON \(10485760 bytes/, stdin: Buffer.alloc(10 * 1024 * 1024, "x").toString() },
  { name: "stdin a 2 MB JSON object (over the 1 MiB limit)", code: 7, msg: /2097\d{3} bytes, more than/, stdin: `{"pad": "${"x".repeat(2 * 1024 * 1024)}"}` },
  { name: "unsupported cniVersion", code: 1, msg: /0\.2\.0.*supports/, stdin: node.conf({}, "0.2.0") },
  {
    name: "subnet that is not a network address",
    code: 7,
    msg: /10\.250\.0\.5\/24.*network address/,
    stdin: node.conf({ ipam: { ...ranges([["10.250.0.5/24"]]), dataDir: node.dataDir } }),
  },
  { name: "subnet /31", code: 7, msg: /\/31/, stdin: node.conf({ ipam: { ...ranges([["10.250.0.0/31"]]), dataDir: node.dataDir } }) },
  { name: "subnet /32", code: 7, msg: /\/32/, stdin: node.conf({ ipam: { ...ranges([["10.250.0.0/32"]]), dataDir: node.dataDir } }) },
  {
    name: "IPv4 and IPv6 mixed in one range set",
    code: 7,
    msg: /ranges\[0\]\[1\].*IPv6/,
    stdin: node.conf({ ipam: { ...ranges([["10.250.0.0/24", "fd00:250::/64"]]), dataDir: node.dataDir } }),
  },
  { name: "mtu of the wrong type", code: 7, msg: /"mtu"/, stdin: node.conf({ mtu: "abc" }) },
  { name: "bridge name taken by a non-bridge link", code: 7, msg: /notabridge.*not a bridge/, stdin: node.conf({ bridge: "notabridge" }) },
];

describe("bad input", () => {
  it.each(cases.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    const linksBefore = linkNames(node.node);
    const run: PluginRun = {
      command: "ADD",
      containerId: node.containerId(),
      netns: podPath,
      ifname: "eth0",
      stdin: c.stdin ?? node.conf(),
      hostNetns: node.node.path,
      ...c.env,
    };
    for (const key of ["command", "containerId", "netns", "ifname"] as const) {
      if (c.env && key in c.env && c.env[key] === undefined) delete run[key];
    }
    const podLinksBefore = linkNames(pod);
    const result = runPlugin(WEFT_BINARY, run);

    expect(result.code).toBe(1);
    expect(result.json, result.stdout).toMatchObject({ code: c.code, msg: expect.stringMatching(c.msg) });
    expect(typeof result.json.cniVersion).toBe("string");
    expect(linkNames(node.node)).toEqual(linksBefore);
    expect(linkNames(pod)).toEqual(podLinksBefore);
    expect(fs.readdirSync(node.dir).filter((f) => f !== "plain-file")).toEqual([]);
  });

  it("range exhausted: code 100 naming the network and the range, and nothing left of the failed ADD", () => {
    const conf = node.conf({ bridge: "cnix", ipam: { ...ranges([["10.251.0.0/30"]]), dataDir: node.dataDir } });
    const first = { containerId: node.containerId(), netns: node.pod().path };
    node.add(first, conf);
    const vethsBefore = node.hostVeths();
    const pod = node.pod();
    const result = node.run("ADD", { containerId: node.containerId(), netns: pod.path }, conf);
    expect(result.json).toMatchObject({ code: 100, msg: expect.stringMatching(new RegExp(`10\\.251\\.0\\.0/30.*${node.networkName}`)) });
    expect(node.hostVeths()).toEqual(vethsBefore);
    expect(pod.exec(["ip", "-o", "link"])).not.toContain("eth0");
    node.run("DEL", first, conf);
    expect(node.reservations()).toEqual([]);
  });
});
