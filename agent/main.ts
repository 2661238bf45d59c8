// weft-agent's entry: parse the command line, run the subcommand, turn errors into one clear line and an exit
// status. The only place in agent/ that calls process.exit.
//   exit 0: done / stopped by SIGTERM or SIGINT;  1: runtime failure (or `status`: not ready);
//   2: bad flags or config, or `status` could not reach the agent.
import { readFileSync } from "node:fs";
import { NetlinkSocket } from "../native/netlink";
import { chooseDatapath, chooseTcAttach, defaultObjectsDir, type DatapathChoice, type DatapathFlag, type TcAttachFlag } from "./datapath";
import { DebugServer } from "./debug/server";
import { DatapathError, FlagError, NetworkConfigError, UsageError } from "./errors";
import { FLAGS, parseArgs, renderHelp, type ParsedArgs } from "./flags";
import { installCni } from "./install-cni";
import { log, setLogLevel, type LogLevel } from "./log";
import { parseNetworkConfig } from "./network-config";
import type { NetworkConfig } from "./model";
import { createNodeSource, type NodeSourceOptions } from "./sources";
import { fetchJson, fetchState, renderExplanation, renderStatus, type PolicyExplanation } from "./status";
import { uninstall } from "./uninstall";

declare const WEFT_VERSION: string | undefined;
const VERSION = typeof WEFT_VERSION === "string" ? WEFT_VERSION : "dev";

/** Writes to stdout and waits until it is flushed: process.exit right after a large write would cut a pipe short. */
function print(text: string): Promise<void> {
  return new Promise((resolve) => process.stdout.write(text, () => resolve()));
}

function str(args: ParsedArgs, name: string): string | undefined {
  const value = args.values[name];
  return typeof value === "string" && value !== "" ? value : undefined;
}

function required(args: ParsedArgs, name: string): string {
  const value = str(args, name);
  if (value === undefined) {
    const spec = FLAGS.find((f) => f.name === name);
    throw new UsageError(`Missing --${name}${spec?.env ? ` (or ${spec.env})` : ""}: ${spec?.help ?? ""}`);
  }
  return value;
}

function readNetworkConfig(file: string): NetworkConfig {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new UsageError(`Cannot read the network config ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message} (--net-conf)`);
  }
  try {
    return parseNetworkConfig(text);
  } catch (error) {
    if (error instanceof NetworkConfigError) throw new UsageError(`${file}: ${error.message}`);
    throw error;
  }
}

function sourceOptions(args: ParsedArgs, network: NetworkConfig): NodeSourceOptions {
  const kind = str(args, "source");
  switch (kind) {
    case "file":
      return { kind, network, path: required(args, "node-file") };
    case "etcd": {
      const endpoints = required(args, "etcd-endpoints").split(",").map((s) => s.trim()).filter(Boolean);
      const credentials: Record<string, Buffer> = {};
      const read = (flag: string) => {
        const file = str(args, flag);
        if (file === undefined) return undefined;
        try {
          return readFileSync(file);
        } catch (error) {
          throw new UsageError(`Cannot read --${flag} ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
        }
      };
      const ca = read("etcd-cafile");
      const cert = read("etcd-certfile");
      const key = read("etcd-keyfile");
      if (ca) credentials.rootCertificate = ca;
      if (cert) credentials.certChain = cert;
      if (key) credentials.privateKey = key;
      const ttlMs = args.values["etcd-lease-ttl"] as number;
      return {
        kind, network, prefix: required(args, "etcd-prefix"), leaseTtlSeconds: Math.max(2, Math.round(ttlMs / 1000)),
        etcd: { hosts: endpoints, ...(Object.keys(credentials).length > 0 ? { credentials: credentials as never } : {}) },
      };
    }
    case "kube": {
      const options: NodeSourceOptions = { kind, network, flannelCompat: args.values["flannel-compat"] === true, annotationPrefix: required(args, "annotation-prefix") };
      const kubeconfig = str(args, "kubeconfig");
      if (kubeconfig !== undefined) process.env.KUBECONFIG = kubeconfig;
      return options;
    }
    default:
      throw new UsageError(`Invalid --source "${kind}": expected kube, etcd or file`);
  }
}

async function run(args: ParsedArgs): Promise<number> {
  const level = str(args, "log-level") ?? "info";
  if (!["debug", "info", "warn", "error"].includes(level)) throw new UsageError(`Invalid --log-level "${level}": expected debug, info, warn or error`);
  setLogLevel(level as LogLevel);
  const nodeName = required(args, "node-name");
  const netConf = required(args, "net-conf");
  const network = readNetworkConfig(netConf);
  const resyncMs = args.values["resync-interval"] as number;
  if (resyncMs < 100) throw new UsageError(`Invalid --resync-interval: at least 100ms, got ${resyncMs}ms`);
  const debugAddr = str(args, "debug-addr");
  const options = sourceOptions(args, network);
  log.info("Starting weft-agent", { version: VERSION, node: nodeName, source: options.kind, backend: network.backend.type, network: network.network, netConf });

  const datapathFlag = str(args, "datapath") ?? "auto";
  if (!["kernel", "ebpf", "auto"].includes(datapathFlag)) throw new UsageError(`Invalid --datapath "${datapathFlag}": expected kernel, ebpf or auto`);
  const tcAttachFlag = str(args, "tc-attach") ?? "auto";
  if (!["auto", "tcx", "clsact"].includes(tcAttachFlag)) throw new UsageError(`Invalid --tc-attach "${tcAttachFlag}": expected auto, tcx or clsact`);
  let datapath: DatapathChoice;
  try {
    datapath = chooseDatapath(datapathFlag as DatapathFlag, { backend: network.backend.type, objectsDir: defaultObjectsDir(), tcAttach: tcAttachFlag as TcAttachFlag });
  } catch (error) {
    if (error instanceof DatapathError) throw new UsageError(error.message);
    throw error;
  }
  const tcAttach = chooseTcAttach(tcAttachFlag as TcAttachFlag);
  log.info("Datapath", { mode: datapath.mode, reason: datapath.reason, tcAttach: tcAttach.kind, tcAttachReason: tcAttach.reason });

  const policySource = str(args, "policy-source") ?? "off";
  if (!["off", "kube", "dir"].includes(policySource)) throw new UsageError(`Invalid --policy-source "${policySource}": expected kube, dir or off`);
  if (policySource === "dir" && str(args, "policy-dir") === undefined) throw new UsageError("--policy-source dir needs --policy-dir");
  if (policySource === "kube" && str(args, "kubeconfig") !== undefined) process.env.KUBECONFIG = str(args, "kubeconfig");

  const source = await createNodeSource(options);
  // Loaded for `run` only: the loop, prom-client and the eBPF loader cost `status`, `version` and `uninstall`
  // ~20 ms of start-up they have no use for.
  const [{ Agent }, { AgentMetrics }] = await Promise.all([import("./daemon"), import("./debug/metrics")]);
  const policyLog = log.with({ component: "policy" });
  const policy = policySource === "kube"
    ? new (await import("./policy/kube-source")).KubePolicySource({ logger: policyLog })
    : policySource === "dir" ? new (await import("./policy/dir-source")).PolicyDirSource({ dir: str(args, "policy-dir")!, logger: policyLog }) : undefined;
  const agent = new Agent({
    ...(policy ? { policy } : {}),
    datapath: { ...datapath, bpfDir: required(args, "bpf-dir"), objectsDir: defaultObjectsDir(), tcAttach },
    nodeName, network, source, sourceKind: options.kind,
    ...(str(args, "public-ip") === undefined ? {} : { publicIp: str(args, "public-ip")! }),
    ...(str(args, "iface") === undefined ? {} : { iface: str(args, "iface")! }),
    ipMasq: args.values["ip-masq"] === true,
    bridge: required(args, "bridge"),
    cniConfDir: required(args, "cni-conf-dir"),
    subnetFile: required(args, "subnet-file"),
    stateDir: required(args, "state-dir"),
    ipamDataDir: required(args, "ipam-data-dir"),
    resyncIntervalMs: resyncMs,
    probeIntervalMs: args.values["probe-interval"] as number,
    probeTimeoutMs: args.values["probe-timeout"] as number,
    logger: log,
    version: VERSION,
  });
  const server = debugAddr === undefined ? undefined : new DebugServer(agent, new AgentMetrics(agent));

  let stopping: Promise<void> | undefined;
  const stop = (signal: string) => {
    stopping ??= (async () => {
      log.info("Stopping; kernel state is left in place", { signal });
      await server?.close();
      await agent.close();
    })();
    return stopping;
  };
  const done = new Promise<number>((resolve) => {
    for (const signal of ["SIGTERM", "SIGINT"] as const) process.once(signal, () => void stop(signal).then(() => resolve(0)));
  });

  if (server) {
    const address = await server.listen(debugAddr!);
    log.info("Debug endpoint listening", { address: `${address.address}:${address.port}`, paths: ["/healthz", "/readyz", "/metrics", "/debug/state"] });
  }
  try {
    await agent.start();
  } catch (error) {
    if (stopping) return done;
    await server?.close();
    await agent.close();
    throw error;
  }
  log.info("weft-agent running", { ready: agent.readiness().ready });
  return done;
}

async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  switch (args.command) {
    case "version":
      await print(`weft-agent ${VERSION}\n`);
      return 0;
    case "help":
      await print(renderHelp(VERSION));
      return 0;
    case "install-cni": {
      const from = required(args, "cni-source");
      const binDir = required(args, "cni-bin-dir");
      const result = installCni(from, binDir);
      await print(`${result === "installed" ? "installed" : "already up to date:"} ${binDir}/weft\n`);
      return 0;
    }
    case "status": {
      let state;
      try {
        state = await fetchState(required(args, "debug-addr"));
      } catch (error) {
        process.stderr.write(`weft-agent status: ${(error as Error).message}\n`);
        return 2;
      }
      await print(args.values.json === true ? `${JSON.stringify(state, null, 2)}\n` : renderStatus(state));
      return state.readiness.ready ? 0 : 1;
    }
    case "policy": {
      const query = new URLSearchParams({ from: required(args, "from"), to: required(args, "to"), port: required(args, "port") });
      let explanation;
      try {
        explanation = await fetchJson<PolicyExplanation>(required(args, "debug-addr"), `/debug/policy/explain?${query.toString()}`, "the policy explanation");
      } catch (error) {
        process.stderr.write(`weft-agent policy explain: ${(error as Error).message}\n`);
        return 2;
      }
      await print(renderExplanation(explanation));
      return 0;
    }
    case "uninstall": {
      const sock = NetlinkSocket.open();
      try {
        const lines = await uninstall(sock, {
          bridge: required(args, "bridge"), cniConfDir: required(args, "cni-conf-dir"), cniBinDir: required(args, "cni-bin-dir"),
          subnetFile: required(args, "subnet-file"), stateDir: required(args, "state-dir"), ipamDataDir: required(args, "ipam-data-dir"),
          bpfDir: required(args, "bpf-dir"),
        });
        await print(lines.length === 0 ? "nothing of weft's found on this node\n" : `${lines.join("\n")}\n`);
      } finally {
        sock.close();
      }
      return 0;
    }
    case "run":
      return run(args);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof FlagError || error instanceof UsageError) {
      process.stderr.write(`weft-agent: ${error.message}\n`);
      process.exit(2);
    }
    const code = (error as { code?: unknown }).code;
    log.error("weft-agent failed", { error: error instanceof Error ? error.message : String(error), ...(typeof code === "string" ? { code } : {}) });
    if (process.env.WEFT_DEBUG === "1" && error instanceof Error) process.stderr.write(`${error.stack}\n`);
    process.exit(1);
  },
);
