// The shape of /debug/state (and of `weft-agent status`): what an operator needs first — this node, whether it
// is ready and why not, every remote node with its objects and probe results, the last plan and its errors.
import type { LocalRecordStatus } from "../model";
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
  masq: { enabled: boolean; inPlace: boolean; problems: string[]; applied: number; table: string };
  files: { cniConfList: string; subnetFile: string; written: boolean; error?: string; conflist: string };
}
