// The agent's command line, its debug endpoint's formats and the small pure helpers around them.
import { describe, expect, it } from "vitest";
import { AgentMetrics, type MetricsView } from "../../agent/debug/metrics";
import { durationHistogram } from "../../agent/debug/run-stats";
import { parseListenAddress } from "../../agent/debug/server";
import type { AgentState } from "../../agent/debug/state";
import { FlagError } from "../../agent/errors";
import { FLAGS, parseArgs, parseDuration, renderHelp } from "../../agent/flags";
import { derivedVtepMac } from "../../agent/sources/file";
import { renderStatus, table } from "../../agent/status";
import { checksum } from "../../native/icmp";

describe("parseArgs", () => {
  it("defaults to run, with every default filled in and its origin", () => {
    const args = parseArgs(["--node-name", "n1"], {});
    expect(args.command).toBe("run");
    expect(args.values).toMatchObject({ "node-name": "n1", source: "kube", "ip-masq": true, "resync-interval": 10_000, "debug-addr": "127.0.0.1:9476" });
    expect(args.origins).toMatchObject({ "node-name": "flag", source: "default" });
  });

  it("takes --name=value, bare booleans and --name=false", () => {
    const args = parseArgs(["--source=file", "--flannel-compat", "--ip-masq=false", "--node-file", "/x"], {});
    expect(args.values).toMatchObject({ source: "file", "flannel-compat": true, "ip-masq": false, "node-file": "/x" });
  });

  it("falls back to the environment, and the command line wins over it", () => {
    const env = { NODE_NAME: "from-env", WEFT_SOURCE: "etcd", WEFT_RESYNC_INTERVAL: "2m" };
    expect(parseArgs([], env).values).toMatchObject({ "node-name": "from-env", source: "etcd", "resync-interval": 120_000 });
    expect(parseArgs(["--source", "file"], env).values.source).toBe("file");
    expect(parseArgs([], env).origins.source).toBe("env");
  });

  it("recognises the subcommands and refuses flags that do not apply to them", () => {
    expect(parseArgs(["status", "--json"], {}).values.json).toBe(true);
    expect(parseArgs(["--version"], {}).command).toBe("version");
    expect(parseArgs(["uninstall"], {}).command).toBe("uninstall");
    expect(() => parseArgs(["status", "--node-name", "x"], {})).toThrow('Flag --node-name does not apply to "status"');
  });

  it.each([
    [["frobnicate"], 'Unknown command "frobnicate"'],
    [["--no-such-flag"], "Unknown flag --no-such-flag"],
    [["--node-name"], "Flag --node-name needs a value"],
    [["--resync-interval", "soon"], 'Invalid --resync-interval: "soon" is not a duration'],
    [["--ip-masq=maybe"], 'Invalid --ip-masq: "maybe" is not true or false'],
    [["stray"], 'Unknown command "stray"'],
    [["--source", "file", "stray"], 'Unexpected argument "stray"'],
  ])("refuses %j with one clear line", (argv, message) => {
    expect(() => parseArgs(argv, {})).toThrow(FlagError);
    expect(() => parseArgs(argv, {})).toThrow(message);
  });

  it.each([
    [["--bogus=1"], "Unknown flag --bogus"],
    [["--"], "Unknown flag --"],
    [["--", "--node-name", "x"], "Unknown flag --"],
    [["--=x"], "Unknown flag --"],
    [["--no-ip-masq"], "Unknown flag --no-ip-masq"],
    [["run", "--version"], "Unknown flag --version"],
    [["--help=yes"], "Unknown flag --help"],
    [["-x"], 'Unexpected argument "-x"'],
    [["-hx"], 'Unexpected argument "-hx"'],
    [["--node-name", "n1", "-v"], 'Unexpected argument "-v"'],
    [["-"], 'Unexpected argument "-"'],
    [[""], 'Unknown command ""'],
    [["--ip-masq", "FALSE"], 'Unexpected argument "FALSE"'],
    [["--ip-masq", "true", "false"], 'Unexpected argument "false"'],
    [["--flannel-compat", "--source"], "Flag --source needs a value"],
    [["--resync-interval="], 'Invalid --resync-interval: "" is not a duration'],
    [["--ip-masq="], 'Invalid --ip-masq: "" is not true or false'],
    // The first problem on the command line is the one reported; values are checked once every word is read.
    [["--bogus", "--node-name"], "Unknown flag --bogus"],
    [["status", "--node-name", "x", "--bogus"], 'Flag --node-name does not apply to "status"'],
    [["--resync-interval", "soon", "--bogus"], "Unknown flag --bogus"],
  ])("also refuses %j", (argv, message) => {
    expect(() => parseArgs(argv, {})).toThrow(FlagError);
    expect(() => parseArgs(argv, {})).toThrow(message);
  });

  it("takes a separate true or false after a boolean, and the last of a repeated flag", () => {
    expect(parseArgs(["--ip-masq", "false", "--flannel-compat", "true"], {}).values).toMatchObject({ "ip-masq": false, "flannel-compat": true });
    expect(parseArgs(["--ip-masq=no", "--flannel-compat=YES"], {}).values).toMatchObject({ "ip-masq": false, "flannel-compat": true });
    expect(parseArgs(["--ip-masq=0"], { WEFT_FLANNEL_COMPAT: "1" }).values).toMatchObject({ "ip-masq": false, "flannel-compat": true });
    expect(parseArgs(["--source", "kube", "--source=file", "--ip-masq=false", "--ip-masq"], {}).values).toMatchObject({ source: "file", "ip-masq": true });
  });

  it("takes a flag's value verbatim, even one that looks like a flag or is empty", () => {
    expect(parseArgs(["--node-name", "--source"], {}).values).toMatchObject({ "node-name": "--source", source: "kube" });
    expect(parseArgs(["--node-name", "--help"], {}).command).toBe("run");
    expect(parseArgs(["--node-name", "-v"], {}).values["node-name"]).toBe("-v");
    expect(parseArgs(["--node-name=a=b"], {}).values["node-name"]).toBe("a=b");
    const empty = parseArgs(["--debug-addr=", "--node-name="], { NODE_NAME: "from-env" });
    expect(empty.values).toMatchObject({ "debug-addr": "", "node-name": "" });
    expect(empty.origins).toMatchObject({ "debug-addr": "flag", "node-name": "flag" });
    expect(parseArgs(["--probe-interval=0"], {}).values["probe-interval"]).toBe(0);
  });

  it("answers --help or -h anywhere among the flags, --version or -v only first", () => {
    for (const argv of [["--help"], ["-h"], ["status", "-h"], ["--node-name", "n1", "--help", "--bogus"], ["--resync-interval", "soon", "-h"], ["help"]]) {
      expect(parseArgs(argv, {}).command, JSON.stringify(argv)).toBe("help");
    }
    for (const argv of [["--version"], ["-v"], ["--version", "--bogus"], ["version"]]) {
      expect(parseArgs(argv, {}).command, JSON.stringify(argv)).toBe("version");
    }
    expect(parseArgs(["--help"], {}).values).toEqual({});
  });

  it("ignores empty variables and those of flags the subcommand does not read", () => {
    const args = parseArgs(["status"], { NODE_NAME: "n1", WEFT_SOURCE: "", WEFT_DEBUG_ADDR: "127.0.0.1:1" });
    expect(args.values["node-name"]).toBeUndefined();
    expect(args.values["debug-addr"]).toBe("127.0.0.1:1");
    expect(parseArgs([], { WEFT_SOURCE: "" }).origins.source).toBe("default");
  });

  it("names the variable when a bad value came from the environment", () => {
    expect(() => parseArgs([], { WEFT_PROBE_INTERVAL: "often" })).toThrow("Invalid WEFT_PROBE_INTERVAL (--probe-interval)");
  });

  it("documents every flag in the help, with its variable and default", () => {
    const help = renderHelp("1.2.3");
    for (const flag of FLAGS) expect(help).toContain(`--${flag.name}`);
    expect(help).toContain("NODE_NAME");
    expect(new Set(FLAGS.map((f) => f.name)).size).toBe(FLAGS.length);
    expect(new Set(FLAGS.filter((f) => f.env).map((f) => f.env)).size).toBe(FLAGS.filter((f) => f.env).length);
  });
});

describe("parseDuration", () => {
  it.each([
    ["500ms", 500], ["10s", 10_000], ["1.5m", 90_000], ["24h", 86_400_000], ["0", 0],
  ])("%s → %i ms", (text, ms) => expect(parseDuration(text)).toBe(ms));
  it.each(["", "10", "-1s", "1d", "1e3s", "9999h"])("refuses %j", (text) => expect(parseDuration(text)).toBeUndefined());
});

describe("parseListenAddress", () => {
  it("reads host:port, [v6]:port and :port", () => {
    expect(parseListenAddress("127.0.0.1:9476")).toEqual({ host: "127.0.0.1", port: 9476 });
    expect(parseListenAddress("[::1]:80")).toEqual({ host: "::1", port: 80 });
    expect(parseListenAddress(":9476")).toEqual({ host: "0.0.0.0", port: 9476 });
  });
  it.each(["9476", "localhost", "1.2.3.4:99999", "[::1]", "a:b:c"])("refuses %j", (text) => {
    expect(() => parseListenAddress(text)).toThrow(`Invalid --debug-addr "${text}"`);
  });
});

describe("derivedVtepMac", () => {
  it("is stable, per node and VNI, unicast and locally administered", () => {
    const mac = derivedVtepMac("node-1", 1);
    expect(derivedVtepMac("node-1", 1)).toBe(mac);
    expect(derivedVtepMac("node-2", 1)).not.toBe(mac);
    expect(derivedVtepMac("node-1", 2)).not.toBe(mac);
    const first = Number.parseInt(mac.slice(0, 2), 16);
    expect(first & 1).toBe(0);
    expect(first & 2).toBe(2);
    expect(mac).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
  });
});

describe("ICMP checksum", () => {
  it("matches RFC 1071's worked example and verifies to zero", () => {
    // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2, checksum 220d.
    expect(checksum(Buffer.from([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]))).toBe(0x220d);
    const packet = Buffer.from([8, 0, 0, 0, 0x12, 0x34, 0, 1, 0xab]);
    packet.writeUInt16BE(checksum(packet), 2);
    expect(checksum(packet)).toBe(0);
  });
});

function sampleState(): AgentState {
  return {
    version: "0.1.0",
    startedAt: "2026-11-22T00:00:00.000Z",
    node: {
      name: "node-1", podCidrs: ["10.244.1.0/24"], publicIp: "192.168.1.11", publicIpFrom: "node address",
      underlay: { name: "eth0", mtu: 1500 }, backend: { type: "vxlan", vni: 1, port: 8472 },
      vtep: { name: "weft.1", mac: "0e:00:00:00:00:01", macFrom: "device", mtu: 1450, addresses: ["10.244.1.0/32"] }, podMtu: 1450,
    },
    network: { network: "10.244.0.0/16", ipv6Network: undefined, subnetLen: 24, nonMasqueradeCidrs: ["169.254.0.0/16"] },
    readiness: { ready: true, sourceSynced: true, overlay: true, masq: true, cniConfig: true, localRecord: true },
    source: { kind: "file", synced: true, nodes: 3, rejected: 1 },
    peers: [
      {
        name: "node-2", podCidrs: ["10.244.2.0/24"], publicIp: "192.168.1.12", vtepMac: "0e:00:00:00:00:02", status: "programmed",
        objects: { routes: ["10.244.2.0/24 via 10.244.2.0 dev weft.1 onlink"], neighbours: ["n"], fdb: ["f"] },
        probes: [{ node: "node-2", address: "10.244.2.0", sent: 10, received: 9, loss: 0.1, rttMs: 0.25 }],
      },
      { name: "bad\"node", podCidrs: [], publicIp: "", status: "rejected", reason: "pod CIDR 10.9.0.0/24 is outside the network", objects: { routes: [], neighbours: [], fdb: [] }, probes: [] },
    ],
    kernel: { routes: 1, neighbours: 1, fdb: 1, vtep: "weft.1" },
    reconcile: { runs: 7, fullRuns: 3, runsWithErrors: 1, opsApplied: { "replace-route": 1 }, lastRun: { at: "t", trigger: "resync", mode: "full", durationMs: 1.5, phasesMs: { desired: 0.5, plan: 0.5, apply: 0.5 }, operations: 0, failed: 0, planned: [], errors: [] }, recentErrors: [{ at: "t", error: "Cannot replace-route: EINVAL" }] },
    masq: { enabled: true, inPlace: true, problems: [], applied: 1, table: "inet weft" },
    files: { cniConfList: "/etc/cni/net.d/10-weft.conflist", subnetFile: "/run/weft/subnet.env", written: true, conflist: "{}" },
    datapath: { mode: "kernel", reason: "--datapath kernel", problems: [] },
  };
}

/** The counts /metrics reads, as the agent would give them for `state`. */
function viewOf(state: AgentState): MetricsView {
  const count = (status: string) => state.peers.filter((p) => p.status === status).length;
  return {
    version: state.version, backend: state.node.backend.type, sourceKind: state.source.kind, readiness: state.readiness,
    sourceSynced: state.source.synced, sourceError: state.source.error !== undefined,
    nodes: { programmed: count("programmed"), skipped: count("skipped"), rejected: count("rejected") },
    objects: { route: state.kernel.routes, neighbour: state.kernel.neighbours, fdb: state.kernel.fdb },
    reconcile: state.reconcile, localRecord: state.source.localRecord, probes: state.peers.flatMap((p) => p.probes), datapath: state.datapath,
  };
}

async function renderMetrics(state: AgentState, durations = durationHistogram()): Promise<string> {
  return new AgentMetrics({ metricsView: () => viewOf(state), durations }).render();
}

describe("renderMetrics", () => {
  it("writes valid exposition lines for every family, escaping label values", async () => {
    const durations = durationHistogram();
    durations.observe(0.002);
    durations.observe(0.3);
    const text = await renderMetrics(sampleState(), durations);
    expect(text).toMatch(/^weft_ready 1$/m);
    expect(text).toMatch(/^weft_nodes_known\{status="rejected"\} 1$/m);
    expect(text).toMatch(/^weft_reconcile_duration_seconds_bucket\{le="0.0025"\} 1$/m);
    expect(text).toMatch(/^weft_reconcile_duration_seconds_bucket\{le="\+Inf"\} 2$/m);
    expect(text).toMatch(/^weft_probe_rtt_seconds\{node="node-2",address="10.244.2.0"\} 0.00025$/m);
    expect(text).toMatch(/^weft_probe_loss_ratio\{node="node-2",address="10.244.2.0"\} 0.1$/m);
    // Blank lines between families are valid exposition (prom-client writes them), and so are digits in names.
    for (const line of text.trim().split("\n").filter((l) => l !== "")) {
      expect(line).toMatch(/^(# (HELP|TYPE) (weft|process|nodejs)_[a-z0-9_]+ .+|(weft|process|nodejs)_[a-z0-9_]+(\{([a-z_]+="([^"\\]|\\.)*",?)+\})? [-+0-9.eInfNa]+)$/);
    }
  });

  it("has Node's process metrics, and no own-record families with the file source", async () => {
    const text = await renderMetrics(sampleState());
    expect(text).toMatch(/^process_resident_memory_bytes \d+$/m);
    expect(text).toMatch(/^nodejs_heap_size_used_bytes \d+$/m);
    expect(text).not.toMatch(/^weft_local_record_(ok|repairs_total)[{ ]/m);
  });
});

describe("renderStatus", () => {
  it("shows the node, readiness, every peer with probe results, and the reasons of rejected ones", () => {
    const text = renderStatus(sampleState());
    expect(text).toContain("weft-agent 0.1.0 on node-1");
    expect(text).toMatch(/vtep\s+weft\.1 0e:00:00:00:00:01 \(device\) mtu 1450 10\.244\.1\.0\/32/);
    expect(text).toMatch(/READY\s+SOURCE SYNCED\s+OVERLAY\s+MASQ\s+CNI CONFIG\s+OWN RECORD\nyes\s+yes\s+yes\s+yes\s+yes\s+yes/);
    expect(text).not.toContain("own record:"); // the file source keeps no record of this node in the cluster
    expect(text).toMatch(/node-2\s+programmed\s+10\.244\.2\.0\/24\s+192\.168\.1\.12\s+0e:00:00:00:00:02\s+0\.25 ms\s+10%/);
    expect(text).toContain("pod CIDR 10.9.0.0/24 is outside the network");
    expect(text).toContain("error t: Cannot replace-route: EINVAL");
  });

  it("shows this node's own record: its problem, and the repairs made with the last one", async () => {
    const state = sampleState();
    state.source = { ...state.source, kind: "kube", localRecord: { problem: "this node's Node object node-1 is gone", repairs: { annotations: 2 }, lastRepair: { at: "t2", what: "annotations", detail: 'weft.dev/vtep-mac: missing → "0e:00:00:00:00:01"' } } };
    state.readiness = { ...state.readiness, ready: false, localRecord: false, problem: "this node's Node object node-1 is gone" };
    const text = renderStatus(state);
    expect(text).toMatch(/READY\s+SOURCE SYNCED\s+OVERLAY\s+MASQ\s+CNI CONFIG\s+OWN RECORD\nNO\s+yes\s+yes\s+yes\s+yes\s+NO/);
    expect(text).toContain('own record: PROBLEM: this node\'s Node object node-1 is gone; repairs: 2 annotations (last t2: annotations, weft.dev/vtep-mac: missing → "0e:00:00:00:00:01")');
    const metrics = await renderMetrics(state);
    expect(metrics).toMatch(/^weft_local_record_ok\{source="kube"\} 0$/m);
    expect(metrics).toMatch(/^weft_local_record_repairs_total\{what="annotations"\} 2$/m);
    expect(metrics).toMatch(/^weft_local_record_repairs_total\{what="condition"\} 0$/m);
  });

  it("aligns columns", () => {
    expect(table(["A", "LONGER"], [["xxxx", "y"]])).toBe("A     LONGER\nxxxx  y");
  });
});

describe("renderStatus: the datapath", () => {
  it("says how the eBPF programs are attached, and why", () => {
    const state = sampleState();
    state.datapath = { mode: "ebpf", reason: "auto: this node has what the eBPF datapath needs", tcAttach: { kind: "clsact", reason: "auto: Linux 6.1.0-28-amd64 has no tcx (6.6)" }, problems: [] };
    expect(renderStatus(state)).toContain("datapath: ebpf (auto: this node has what the eBPF datapath needs); programs attached with clsact (auto: Linux 6.1.0-28-amd64 has no tcx (6.6))\n");
  });
});

describe("--tc-attach", () => {
  it("defaults to auto, reads WEFT_TC_ATTACH, and lets the flag win", () => {
    expect(parseArgs(["--node-name", "n1"], {}).values["tc-attach"]).toBe("auto");
    expect(parseArgs(["--node-name", "n1"], { WEFT_TC_ATTACH: "clsact" }).values["tc-attach"]).toBe("clsact");
    expect(parseArgs(["--node-name", "n1", "--tc-attach", "tcx"], { WEFT_TC_ATTACH: "clsact" }).values["tc-attach"]).toBe("tcx");
    expect(() => parseArgs(["status", "--tc-attach", "tcx"], {})).toThrow('Flag --tc-attach does not apply to "status"');
  });
});
