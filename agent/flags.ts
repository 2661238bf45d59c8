// weft-agent's command line: subcommands, flags, and the environment variables that stand in for them.
//
//   weft-agent [run] --node-name n1 --source kube
//   weft-agent status | uninstall | install-cni | version | help
//
// Every flag is `--name value` or `--name=value`; booleans also take the bare `--name`, and `--name=false` or
// `--name false`. `--help` (-h) may come anywhere, `--version` (-v) only first. util.parseArgs splits the words.
// A flag given on the command line wins over its environment variable, which wins over the default. The table
// below is the single description of each: the help text, docs/configuration.md and the manifest's test read it.

import { parseArgs as parseArgv, type ParseArgsOptionsConfig } from "node:util";
import { FlagError } from "./errors";

export type Command = "run" | "status" | "policy" | "uninstall" | "install-cni" | "version" | "help";
export const COMMANDS: readonly Command[] = ["run", "status", "policy", "uninstall", "install-cni", "version", "help"];

type Kind = "string" | "boolean" | "duration" | "integer";

export interface FlagSpec {
  name: string;
  env?: string;
  kind: Kind;
  default?: string;
  /** The subcommands that read it. */
  commands: readonly Command[];
  help: string;
}

const RUN: readonly Command[] = ["run"];
const RUN_UNINSTALL: readonly Command[] = ["run", "uninstall"];
const RUN_STATUS: readonly Command[] = ["run", "status", "policy"];
const POLICY: readonly Command[] = ["policy"];

export const FLAGS: readonly FlagSpec[] = [
  { name: "node-name", env: "NODE_NAME", kind: "string", commands: RUN, help: "this node's name (required; the Node object's, the file entry's, or the etcd lease's)" },
  { name: "source", env: "WEFT_SOURCE", kind: "string", default: "kube", commands: RUN, help: "where the node list comes from: kube, etcd or file" },
  { name: "net-conf", env: "WEFT_NET_CONF", kind: "string", default: "/etc/weft/net-conf.json", commands: RUN, help: "the network config (flannel's net-conf.json shape)" },
  { name: "node-file", env: "WEFT_NODE_FILE", kind: "string", commands: RUN, help: "file source: the JSON node list" },
  { name: "kubeconfig", env: "KUBECONFIG", kind: "string", commands: RUN, help: "kube source: a kubeconfig; default the in-cluster service account" },
  { name: "etcd-endpoints", env: "WEFT_ETCD_ENDPOINTS", kind: "string", default: "http://127.0.0.1:2379", commands: RUN, help: "etcd source: comma-separated client URLs" },
  { name: "etcd-prefix", env: "WEFT_ETCD_PREFIX", kind: "string", default: "/coreos.com/network", commands: RUN, help: "etcd source: the key prefix (flannel's --etcd-prefix)" },
  { name: "etcd-cafile", env: "WEFT_ETCD_CAFILE", kind: "string", commands: RUN, help: "etcd source: CA bundle for TLS" },
  { name: "etcd-certfile", env: "WEFT_ETCD_CERTFILE", kind: "string", commands: RUN, help: "etcd source: client certificate" },
  { name: "etcd-keyfile", env: "WEFT_ETCD_KEYFILE", kind: "string", commands: RUN, help: "etcd source: client key" },
  { name: "etcd-lease-ttl", env: "WEFT_ETCD_LEASE_TTL", kind: "duration", default: "24h", commands: RUN, help: "etcd source: TTL of this node's subnet lease" },
  { name: "public-ip", env: "WEFT_PUBLIC_IP", kind: "string", commands: RUN, help: "the address other nodes reach this one at; default the node IP (kube: InternalIP; file: its entry), else the default route's" },
  { name: "iface", env: "WEFT_IFACE", kind: "string", commands: RUN, help: "the underlay interface, by name or address; its first global address is the public IP" },
  { name: "flannel-compat", env: "WEFT_FLANNEL_COMPAT", kind: "boolean", default: "false", commands: RUN, help: "kube source: also publish and read flannel's node annotations (migrations)" },
  { name: "annotation-prefix", env: "WEFT_ANNOTATION_PREFIX", kind: "string", default: "weft.dev", commands: RUN, help: "kube source: prefix of weft's node annotations" },
  { name: "datapath", env: "WEFT_DATAPATH", kind: "string", default: "auto", commands: RUN, help: "kernel (flannel's path), ebpf (tc programs on pod veths and the VTEP; vxlan only) or auto (ebpf where this node has what it needs)" },
  { name: "bpf-dir", env: "WEFT_BPF_DIR", kind: "string", default: "/sys/fs/bpf/weft", commands: RUN_UNINSTALL, help: "eBPF datapath: where its programs, maps and links are pinned (a bpffs, mounted if needed)" },
  { name: "tc-attach", env: "WEFT_TC_ATTACH", kind: "string", default: "auto", commands: RUN, help: "eBPF programs: how they are attached to devices: tcx (Linux 6.6+), clsact (a cls_bpf filter on a clsact qdisc, Linux 4.5+; beside other tc users) or auto (tcx where the kernel has it, else clsact)" },
  { name: "policy-source", env: "WEFT_POLICY_SOURCE", kind: "string", default: "off", commands: RUN, help: "NetworkPolicy: kube (NetworkPolicies, Namespaces and Pods from the API), dir (documents in --policy-dir) or off; enforced by the eBPF programs in either datapath mode" },
  { name: "policy-dir", env: "WEFT_POLICY_DIR", kind: "string", commands: RUN, help: "policy source dir: a directory of NetworkPolicy, Namespace and Pod documents (YAML or JSON, as kubectl writes them)" },
  { name: "from", kind: "string", commands: POLICY, help: "policy explain: the client pod, namespace/name" },
  { name: "to", kind: "string", commands: POLICY, help: "policy explain: the server, a pod (namespace/name) or an IP address" },
  { name: "port", kind: "string", commands: POLICY, help: "policy explain: port/protocol, e.g. 80/TCP (TCP, UDP, SCTP; ICMP without a port)" },
  { name: "ip-masq", env: "WEFT_IP_MASQ", kind: "boolean", default: "true", commands: RUN, help: "masquerade pod traffic leaving the cluster network (nftables table inet weft)" },
  { name: "debug-addr", env: "WEFT_DEBUG_ADDR", kind: "string", default: "127.0.0.1:9476", commands: RUN_STATUS, help: "the debug endpoint: /healthz /readyz /metrics /debug/state; empty to disable" },
  { name: "resync-interval", env: "WEFT_RESYNC_INTERVAL", kind: "duration", default: "10s", commands: RUN, help: "full reconcile of the kernel state this often (restores what was removed by hand)" },
  { name: "probe-interval", env: "WEFT_PROBE_INTERVAL", kind: "duration", default: "5s", commands: RUN, help: "ICMP echo to every remote VTEP this often (vxlan); 0 disables" },
  { name: "probe-timeout", env: "WEFT_PROBE_TIMEOUT", kind: "duration", default: "1s", commands: RUN, help: "a probe without a reply after this long counts as lost" },
  { name: "bridge", env: "WEFT_BRIDGE", kind: "string", default: "cni0", commands: RUN_UNINSTALL, help: "the CNI bridge (its MTU is kept at the backend's)" },
  { name: "cni-conf-dir", env: "WEFT_CNI_CONF_DIR", kind: "string", default: "/etc/cni/net.d", commands: RUN_UNINSTALL, help: "where 10-weft.conflist is written" },
  { name: "cni-bin-dir", env: "WEFT_CNI_BIN_DIR", kind: "string", default: "/opt/cni/bin", commands: ["install-cni", "uninstall"], help: "where the weft plugin is installed" },
  { name: "cni-source", env: "WEFT_CNI_SOURCE", kind: "string", default: "/opt/weft/bin/weft", commands: ["install-cni"], help: "install-cni: the plugin executable to copy" },
  { name: "subnet-file", env: "WEFT_SUBNET_FILE", kind: "string", default: "/run/weft/subnet.env", commands: RUN_UNINSTALL, help: "this node's subnet file, read by the plugin" },
  { name: "state-dir", env: "WEFT_STATE_DIR", kind: "string", default: "/run/weft", commands: RUN_UNINSTALL, help: "the agent's own state (VTEP MAC) and the plugin's addon cache" },
  { name: "ipam-data-dir", env: "WEFT_IPAM_DATA_DIR", kind: "string", default: "/var/lib/cni/networks", commands: RUN_UNINSTALL, help: "host-local's data directory, written into the conflist (uninstall removes weft's network directory in it)" },
  { name: "log-level", env: "WEFT_LOG_LEVEL", kind: "string", default: "info", commands: RUN, help: "debug, info, warn or error" },
  { name: "json", kind: "boolean", default: "false", commands: ["status"], help: "status: print the raw /debug/state JSON" },
];

export interface ParsedArgs {
  command: Command;
  /** Every flag of FLAGS, resolved: given, or from its env var, or its default; absent when none. */
  values: Record<string, string | boolean | number | undefined>;
  /** Where each value came from, for the start-up log line. */
  origins: Record<string, "flag" | "env" | "default">;
}

/** util.parseArgs' view of FLAGS: which flags take the next word as their value. */
const OPTIONS: ParseArgsOptionsConfig = Object.fromEntries(FLAGS.map((f) => [f.name, { type: f.kind === "boolean" ? "boolean" : "string" }]));

/** Parses `argv` (without node and the script) with `env` as the fallback. Throws FlagError naming the flag. */
export function parseArgs(argv: readonly string[], env: Record<string, string | undefined> = process.env): ParsedArgs {
  const args = [...argv];
  let command: Command = "run";
  if (args[0] === "--version" || args[0] === "-v") return { command: "version", values: {}, origins: {} };
  if (args[0] !== undefined && !args[0].startsWith("-")) {
    const word = args.shift()!;
    if (!(COMMANDS as readonly string[]).includes(word)) throw new FlagError(`Unknown command "${word}"; expected one of ${COMMANDS.join(", ")}`);
    command = word as Command;
    // `policy` has one subcommand today: `policy explain`.
    if (command === "policy" && args.shift() !== "explain") throw new FlagError('Unknown policy command; expected "weft-agent policy explain --from NS/POD --to NS/POD --port 80/TCP"');
  }
  // Lenient (strict: false), util.parseArgs refuses nothing: the checks below are weft's, with its messages, in the order
  // of the command line, so that the first problem there is the one reported.
  const { tokens } = parseArgv({ args, options: OPTIONS, strict: false, tokens: true });
  const given = new Map<string, string>();
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    const word = args[token.index]!;
    if (word === "--help" || word === "-h") return { command: "help", values: {}, origins: {} };
    if (!word.startsWith("--")) throw new FlagError(`Unexpected argument "${word}": flags are --name value or --name=value`);
    const spec = token.kind === "option" ? FLAGS.find((f) => f.name === token.name) : undefined; // `--` is a token of its own
    if (token.kind !== "option" || !spec) throw new FlagError(`Unknown flag ${word.split("=", 1)[0]} (weft-agent help lists them)`);
    if (!spec.commands.includes(command)) throw new FlagError(`Flag --${spec.name} does not apply to "${command}"`);
    let value = token.value;
    const next = tokens[i + 1];
    // util.parseArgs never gives a boolean the next word; weft does when it is `true` or `false` (`--ip-masq false`).
    if (spec.kind === "boolean" && value === undefined && next?.kind === "positional" && /^(true|false)$/.test(next.value)) {
      value = next.value;
      i++;
    }
    if (value === undefined && spec.kind !== "boolean") throw new FlagError(`Flag --${spec.name} needs a value`);
    given.set(spec.name, value ?? "true");
  }
  const values: ParsedArgs["values"] = {};
  const origins: ParsedArgs["origins"] = {};
  for (const spec of FLAGS) {
    let text: string | undefined;
    if (given.has(spec.name)) {
      text = given.get(spec.name);
      origins[spec.name] = "flag";
    } else if (spec.env !== undefined && env[spec.env] !== undefined && env[spec.env] !== "" && spec.commands.includes(command)) {
      text = env[spec.env];
      origins[spec.name] = "env";
    } else if (spec.default !== undefined) {
      text = spec.default;
      origins[spec.name] = "default";
    }
    if (text === undefined) continue;
    values[spec.name] = convert(spec, text, origins[spec.name] === "env" ? `${spec.env} (--${spec.name})` : `--${spec.name}`);
  }
  return { command, values, origins };
}

function convert(spec: FlagSpec, text: string, label: string): string | boolean | number {
  switch (spec.kind) {
    case "string":
      return text;
    case "boolean":
      if (/^(true|1|yes)$/i.test(text)) return true;
      if (/^(false|0|no)$/i.test(text)) return false;
      throw new FlagError(`Invalid ${label}: "${text}" is not true or false`);
    case "integer": {
      if (!/^\d+$/.test(text)) throw new FlagError(`Invalid ${label}: "${text}" is not a non-negative integer`);
      return Number(text);
    }
    case "duration": {
      const ms = parseDuration(text);
      if (ms === undefined) throw new FlagError(`Invalid ${label}: "${text}" is not a duration (e.g. 500ms, 10s, 5m, 24h)`);
      return ms;
    }
  }
}

const UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/** "500ms", "10s", "1.5m", "24h", "0" → milliseconds; undefined when malformed. */
export function parseDuration(text: string): number | undefined {
  if (text === "0") return 0;
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text.trim());
  if (!match) return undefined;
  const ms = Number(match[1]) * UNITS[match[2]!]!;
  return Number.isFinite(ms) && ms <= 365 * 24 * 3_600_000 ? Math.round(ms) : undefined;
}

export function renderHelp(version: string): string {
  const lines = [
    `weft-agent ${version}: weft's per-node agent (overlay, ip-masq, CNI config, debug endpoint)`,
    "",
    "Usage: weft-agent [command] [flags]",
    "",
    "Commands:",
    "  run           run the agent (default)",
    "  status        print the running agent's state (from its debug endpoint) as tables",
    "  policy explain --from NS/POD --to NS/POD|IP --port 80/TCP",
    "                whether the running agent's NetworkPolicy model allows a connection, and which rules decide",
    "  uninstall     remove every kernel object and file weft created on this node",
    "  install-cni   copy the weft plugin into the CNI bin dir atomically (temp name, then rename)",
    "  version       print the version",
    "",
    "Flags (environment variable; default):",
  ];
  for (const spec of FLAGS) {
    const meta = [spec.env, spec.default === undefined ? undefined : `default ${spec.default === "" ? '""' : spec.default}`].filter(Boolean).join("; ");
    lines.push(`  --${spec.name}${spec.kind === "boolean" ? "" : ` <${spec.kind}>`}`, `      ${spec.help}${meta ? ` (${meta})` : ""} [${spec.commands.join(", ")}]`);
  }
  return `${lines.join("\n")}\n`;
}
