// The shape of /debug/state (and of `weft-agent status`): what an operator needs first — this node, whether it
// is ready and why not, every remote node with its objects and probe results, the last plan and its errors.
import type { CniFilesStatus } from "../cniconf";
import type { EbpfStatus } from "../datapath/ebpf";
import type { PolicyStatus } from "../policy/enforcer";
import type { MasqStatus } from "../masq";
import type { LocalRecordStatus, NetworkConfig, NodeSnapshot } from "../model";
import type { DesiredState, LocalNode } from "../reconcile";
import type { ProbeResult } from "./probe";

export interface PeerState {
  name: string;
  podCidrs: string[];
  publicIp: string;
  vtepMac?: string;
  /**
   * programmed: its objects are desired; skipped: accepted from the source but not programmable (yet): no VTEP MAC
   * published yet, a conflict, unreachable (reason); rejected: refused by the source as bad data (reason).
   */
  status: "programmed" | "skipped" | "rejected" | "pending";
  reason?: string;
  objects: { routes: string[]; neighbours: string[]; fdb: string[] };
  /** When an operation for this node last changed the kernel. */
  lastChange?: string;
  probes: ProbeResult[];
}

export interface ReconcileRun {
  at: string;
  trigger: string;
  /** full: the kernel was read (dumped) and compared; incremental: only the node list's change was applied. */
  mode: "full" | "incremental";
  durationMs: number;
  /** Where the run's time went: the desired state, the plan (with the kernel dump of a full run), applying it. */
  phasesMs: { desired: number; plan: number; apply: number };
  /** How many operations the run planned (0 when the kernel matched) and how many of them failed. */
  operations: number;
  failed: number;
  /** The plan, one line per operation, and the failures: the first MAX_LISTED of each (a cold start plans 3 per node). */
  planned: string[];
  errors: string[];
}

/** How many planned operations and errors of a run the state lists. */
export const MAX_LISTED = 100;

export interface AgentState {
  version: string;
  startedAt: string;
  node: {
    name: string;
    podCidrs: string[];
    publicIp: string;
    publicIpFrom: string;
    underlay: { name: string; mtu: number } | undefined;
    backend: { type: string; vni: number; port: number };
    vtep: { name: string; mac: string; macFrom: string; mtu: number; addresses: string[] } | undefined;
    podMtu: number | undefined;
  };
  network: { network: string; ipv6Network: string | undefined; subnetLen: number; nonMasqueradeCidrs: string[] };
  readiness: {
    ready: boolean;
    sourceSynced: boolean;
    overlay: boolean;
    masq: boolean;
    cniConfig: boolean;
    /** This node's own record in the cluster (kube: its Node; etcd: its lease) is as claimed. */
    localRecord: boolean;
    /** Why localRecord is false. */
    problem?: string;
  };
  source: {
    kind: string;
    synced: boolean;
    nodes: number;
    rejected: number;
    error?: string;
    /** kube and etcd: this node's own record, as the source keeps it (problem, repairs). */
    localRecord?: LocalRecordStatus;
  };
  peers: PeerState[];
  kernel: { routes: number; neighbours: number; fdb: number; vtep: string | undefined };
  reconcile: {
    runs: number;
    /** Runs that read the whole kernel state (start, resyncs, after an error); the others were incremental. */
    fullRuns: number;
    runsWithErrors: number;
    opsApplied: Record<string, number>;
    lastRun?: ReconcileRun;
    recentErrors: { at: string; error: string }[];
  };
  masq: MasqStatus & { table: string };
  files: CniFilesStatus;
  datapath: DatapathState;
}

export interface DatapathState {
  mode: "kernel" | "ebpf";
  /** Why this mode: the flag, or what auto found. */
  reason: string;
  ebpf?: EbpfStatus;
  /** How the eBPF programs are attached (tcx or clsact) and why, while they run (ebpf mode, or kernel mode with policy). */
  tcAttach?: { kind: "tcx" | "clsact"; reason: string };
  /** What the last run could not do in the datapath. */
  problems: string[];
  /** NetworkPolicy, when a policy source is configured. */
  policy?: PolicyStatus;
}

/** What the agent knows, handed to agentState() to build the view (only /debug/state and `status` pay for it). */
export interface StateParts {
  version: string;
  startedAt: string;
  nodeName: string;
  network: NetworkConfig;
  sourceKind: string;
  snapshot: NodeSnapshot;
  localRecord: LocalRecordStatus | undefined;
  local: LocalNode | undefined;
  publicIpFrom: string;
  vtepMacFrom: string;
  podMtu: number | undefined;
  desired: DesiredState | undefined;
  probes: readonly ProbeResult[];
  readiness: AgentState["readiness"];
  reconcile: AgentState["reconcile"];
  /** When a remote node's objects last changed. */
  lastChange(node: string): string | undefined;
  masq: MasqStatus;
  files: CniFilesStatus;
  datapath: DatapathState;
}

/** The whole view: this node, every peer with its objects and probes, sorted by name. */
export function agentState(parts: StateParts): AgentState {
  const { snapshot, desired, local } = parts;
  const probes = new Map<string, ProbeResult[]>();
  for (const result of parts.probes) probes.set(result.node, [...(probes.get(result.node) ?? []), result]);
  const skipped = new Map((desired?.skipped ?? []).map((s) => [s.name, s.reason]));
  const peers: PeerState[] = [];
  for (const peer of snapshot.nodes) {
    if (peer.name === parts.nodeName) continue;
    const objects = desired?.byNode.get(peer.name);
    const routes = objects?.routes ?? [];
    const state: PeerState = {
      name: peer.name, podCidrs: [...peer.podCidrs], publicIp: peer.publicIp,
      status: skipped.has(peer.name) && routes.length === 0 ? "skipped" : desired ? "programmed" : "pending",
      objects: {
        routes: routes.map((r) => `${r.dst} via ${r.gateway} dev ${r.device}${r.onlink ? " onlink" : ""}`),
        neighbours: (objects?.neighbours ?? []).map((n) => `${n.ip} lladdr ${n.mac} dev ${n.device}`),
        fdb: (objects?.fdb ?? []).map((f) => `${f.mac} dst ${f.dst} dev ${f.device}`),
      },
      probes: probes.get(peer.name) ?? [],
    };
    if (peer.vtepMac !== undefined) state.vtepMac = peer.vtepMac;
    if (skipped.has(peer.name)) state.reason = skipped.get(peer.name)!;
    const changed = parts.lastChange(peer.name);
    if (changed !== undefined) state.lastChange = changed;
    peers.push(state);
  }
  for (const { name, reason } of snapshot.rejected) peers.push({ name, podCidrs: [], publicIp: "", status: "rejected", reason, objects: { routes: [], neighbours: [], fdb: [] }, probes: [] });
  peers.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

  const backend = parts.network.backend;
  return {
    version: parts.version,
    startedAt: parts.startedAt,
    node: {
      name: parts.nodeName,
      podCidrs: local ? [...local.node.podCidrs] : [],
      publicIp: local?.node.publicIp ?? "",
      publicIpFrom: parts.publicIpFrom,
      underlay: local ? { name: local.underlay.name, mtu: local.underlay.mtu } : undefined,
      backend: { type: backend.type, vni: backend.vni, port: backend.port },
      vtep: desired?.vtep ? { name: desired.vtep.name, mac: desired.vtep.mac, macFrom: parts.vtepMacFrom, mtu: desired.vtep.mtu, addresses: desired.vtep.addresses } : undefined,
      podMtu: parts.podMtu,
    },
    network: { network: parts.network.network, ipv6Network: parts.network.ipv6Network, subnetLen: parts.network.subnetLen, nonMasqueradeCidrs: parts.network.nonMasqueradeCidrs },
    readiness: parts.readiness,
    source: {
      kind: parts.sourceKind, synced: snapshot.synced, nodes: snapshot.nodes.length, rejected: snapshot.rejected.length,
      ...(snapshot.error === undefined ? {} : { error: snapshot.error }),
      ...(parts.localRecord ? { localRecord: parts.localRecord } : {}),
    },
    peers,
    kernel: { routes: desired?.routes.length ?? 0, neighbours: desired?.neighbours.length ?? 0, fdb: desired?.fdb.length ?? 0, vtep: desired?.vtep?.name },
    reconcile: parts.reconcile,
    masq: { ...parts.masq, table: "inet weft" },
    files: parts.files,
    datapath: parts.datapath,
  };
}
