// /metrics: Prometheus' text format through prom-client (the field's exposition library, with Node's default
// process metrics). A scrape reads counters and counts (MetricsView): it never builds or sorts the whole state,
// so at 5,000 nodes it costs what the probe results cost, not the peer list.
import { Counter, Gauge, Registry, collectDefaultMetrics, type Histogram } from "prom-client";
import type { LocalRecordStatus } from "../model";
import type { ProbeResult } from "./probe";
import type { AgentState, DatapathState } from "./state";

/** What one scrape reads: counts and counters, no per-peer list except the probe results. */
export interface MetricsView {
  version: string;
  backend: string;
  sourceKind: string;
  readiness: AgentState["readiness"];
  sourceSynced: boolean;
  sourceError: boolean;
  /** Remote nodes by status (as in /debug/state's peers). */
  nodes: { programmed: number; skipped: number; rejected: number };
  objects: { route: number; neighbour: number; fdb: number };
  reconcile: { runs: number; fullRuns: number; runsWithErrors: number; opsApplied: Record<string, number> };
  localRecord: LocalRecordStatus | undefined;
  probes: readonly ProbeResult[];
  datapath: DatapathState;
}

export interface MetricsSource {
  metricsView(): MetricsView;
  /** Observed by the loop after each run. */
  readonly durations: Histogram;
}

export class AgentMetrics {
  readonly #registry = new Registry();
  /** The view of the scrape in progress: read once, used by every family's collect(). */
  #view: MetricsView | undefined;

  constructor(source: MetricsSource) {
    const registers = [this.#registry];
    const view = (): MetricsView => (this.#view ??= source.metricsView());
    const bool = (v: boolean): number => (v ? 1 : 0);
    const gauge = (name: string, help: string, read: (v: MetricsView) => number): void => {
      new Gauge({ name, help, registers, collect() { this.set(read(view())); } });
    };
    /** A counter whose total the agent keeps: set from the view at each scrape. */
    const counter = (name: string, help: string, labelNames: string[], read: (v: MetricsView) => { labels?: Record<string, string>; value: number }[]): void => {
      new Counter({
        name, help, labelNames, registers,
        collect() {
          this.reset();
          for (const { labels, value } of read(view())) {
            if (labels) this.inc(labels, value);
            else this.inc(value);
          }
        },
      });
    };
    /** A gauge with labels, its samples replaced at each scrape. */
    const labelled = (name: string, help: string, labelNames: string[], read: (v: MetricsView) => { labels: Record<string, string>; value: number }[]): void => {
      new Gauge({
        name, help, labelNames, registers,
        collect() {
          this.reset();
          for (const { labels, value } of read(view())) this.set(labels, value);
        },
      });
    };

    labelled("weft_build_info", "weft-agent's version and backend.", ["version", "backend", "source"], (v) => [{ labels: { version: v.version, backend: v.backend, source: v.sourceKind }, value: 1 }]);
    gauge("weft_ready", "1 when the overlay, the masquerade rules and the CNI config are in place, and this node's own record is as claimed.", (v) => bool(v.readiness.ready));
    gauge("weft_source_synced", "1 once the node source has listed every node.", (v) => bool(v.sourceSynced));
    gauge("weft_source_error", "1 while the node source is failing (state is kept meanwhile).", (v) => bool(v.sourceError));
    labelled("weft_local_record_ok", "1 while this node's own record (kube: its Node; etcd: its lease) is as claimed; absent with the file source.", ["source"],
      (v) => (v.localRecord ? [{ labels: { source: v.sourceKind }, value: bool(v.readiness.localRecord) }] : []));
    counter("weft_local_record_repairs_total", "Repairs of this node's own record since start: annotations, condition (kube), lease (etcd).", ["what"], (v) => {
      if (!v.localRecord) return [];
      const repairs = v.localRecord.repairs;
      const kinds = new Set([...(v.sourceKind === "etcd" ? ["lease"] : ["annotations", "condition"]), ...Object.keys(repairs)]);
      return [...kinds].map((what) => ({ labels: { what }, value: repairs[what] ?? 0 }));
    });
    labelled("weft_nodes_known", "Remote nodes by status: programmed, skipped (accepted, not programmable yet: conflict, unreachable), rejected by the source (bad data).", ["status"],
      (v) => (["programmed", "skipped", "rejected"] as const).map((status) => ({ labels: { status }, value: v.nodes[status] })));
    counter("weft_reconcile_runs_total", "Reconcile runs since start.", [], (v) => [{ value: v.reconcile.runs }]);
    counter("weft_reconcile_full_runs_total", "Reconcile runs that read and compared the whole kernel state (start, resyncs, after an error).", [], (v) => [{ value: v.reconcile.fullRuns }]);
    counter("weft_reconcile_errors_total", "Reconcile runs in which at least one operation failed.", [], (v) => [{ value: v.reconcile.runsWithErrors }]);
    counter("weft_reconcile_operations_total", "Kernel operations applied, by kind.", ["kind"], (v) => Object.entries(v.reconcile.opsApplied).map(([kind, value]) => ({ labels: { kind }, value })));
    this.#registry.registerMetric(source.durations);
    labelled("weft_objects_programmed", "Kernel objects weft keeps for remote nodes, by kind.", ["kind"],
      (v) => (["route", "neighbour", "fdb"] as const).map((kind) => ({ labels: { kind }, value: v.objects[kind] })));
    gauge("weft_masq_in_place", "1 when table inet weft holds the expected rules (or masquerade is off).", (v) => bool(v.readiness.masq));
    const probeLabels = ["node", "address"];
    const ofProbe = (p: ProbeResult): Record<string, string> => ({ node: p.node, address: p.address });
    labelled("weft_probe_rtt_seconds", "Last overlay probe round trip to the node's VTEP address.", probeLabels,
      (v) => v.probes.filter((p) => p.rttMs !== undefined).map((p) => ({ labels: ofProbe(p), value: p.rttMs! / 1000 })));
    labelled("weft_probe_loss_ratio", "Share of the last 20 overlay probes without a reply.", probeLabels, (v) => v.probes.map((p) => ({ labels: ofProbe(p), value: p.loss })));
    counter("weft_probe_sent_total", "Overlay probes sent.", probeLabels, (v) => v.probes.map((p) => ({ labels: ofProbe(p), value: p.sent })));
    counter("weft_probe_received_total", "Overlay probe replies received in time.", probeLabels, (v) => v.probes.map((p) => ({ labels: ofProbe(p), value: p.received })));
    labelled("weft_datapath_info", "The datapath mode (kernel, ebpf) and why it was chosen.", ["mode", "reason"], (v) => [{ labels: { mode: v.datapath.mode, reason: v.datapath.reason }, value: 1 }]);
    counter("weft_datapath_packets_total", "eBPF datapath: packets by program and verdict (local, remote: the fast path; pass_*: the kernel path and why; drop_*).",
      ["program", "verdict"], (v) => Object.entries(v.datapath.ebpf?.counters ?? {}).map(([name, value]) => {
        const [, program, verdict] = /^(from_pod|from_tunnel|to_tunnel|to_pod|policy)_(.+)$/.exec(name)!;
        return { labels: { program: program!, verdict: verdict! }, value: value ?? 0 };
      }));
    labelled("weft_datapath_endpoints", "eBPF datapath: this node's pods by where their traffic goes (fast path, kernel path).", ["path"],
      (v) => (v.datapath.ebpf ? [{ labels: { path: "fast" }, value: v.datapath.ebpf.endpoints.attached }, { labels: { path: "kernel" }, value: v.datapath.ebpf.endpoints.onKernelPath.length }] : []));
    labelled("weft_datapath_map_entries", "eBPF datapath: entries of its maps, beside their capacity.", ["map", "of"], (v) => {
      const ebpf = v.datapath.ebpf;
      if (!ebpf) return [];
      return [
        { labels: { map: "weft_endpoints", of: "entries" }, value: ebpf.endpoints.entries }, { labels: { map: "weft_endpoints", of: "capacity" }, value: ebpf.endpoints.capacity },
        { labels: { map: "weft_nodes", of: "entries" }, value: ebpf.nodes.entries }, { labels: { map: "weft_nodes", of: "capacity" }, value: ebpf.nodes.capacity },
      ];
    });
    counter("weft_policy_packets_total", "NetworkPolicy: packets of this node's isolated pods by direction and verdict, with the policies that select the pod.",
      ["pod", "direction", "verdict", "policies"], (v) => (v.datapath.ebpf?.policy.endpoints ?? []).flatMap((e) => (["ingress", "egress"] as const).flatMap((direction) => [
        { labels: { pod: e.pod, direction, verdict: "allowed", policies: e.policies.join(",") }, value: e[direction].allowed },
        { labels: { pod: e.pod, direction, verdict: "denied", policies: e.policies.join(",") }, value: e[direction].denied },
      ])));
    labelled("weft_policy_isolated_pods", "NetworkPolicy: this node's pods selected by some policy.", [], (v) => (v.datapath.ebpf ? [{ labels: {}, value: v.datapath.ebpf.policy.endpoints.length }] : []));
    // process_resident_memory_bytes, process_cpu_seconds_total, nodejs_heap_size_used_bytes, event loop lag, GC, …
    collectDefaultMetrics({ register: this.#registry });
  }

  get contentType(): string {
    return this.#registry.contentType;
  }

  async render(): Promise<string> {
    this.#view = undefined;
    try {
      return await this.#registry.metrics();
    } finally {
      this.#view = undefined;
    }
  }
}
