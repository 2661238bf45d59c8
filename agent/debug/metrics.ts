// /metrics in Prometheus' text format (version 0.0.4), rendered from the agent's state on each scrape.
import type { AgentState } from "./state";

/** Reconcile duration buckets, seconds: a run is a few netlink dumps, from ~1 ms to seconds at 5,000 nodes. */
export const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Cumulative bucket counts of reconcile durations: constant memory, however long the agent runs. */
export class DurationHistogram {
  readonly counts: number[] = DURATION_BUCKETS.map(() => 0);
  count = 0;
  sum = 0;

  observe(seconds: number): void {
    DURATION_BUCKETS.forEach((le, i) => {
      if (seconds <= le) this.counts[i]!++;
    });
    this.count++;
    this.sum += seconds;
  }
}

interface Family {
  name: string;
  help: string;
  type: "gauge" | "counter" | "histogram";
  samples: { labels?: Record<string, string>; value: number; suffix?: string }[];
}

export function renderMetrics(state: AgentState, durations: DurationHistogram): string {
  const families: Family[] = [];
  const gauge = (name: string, help: string, samples: Family["samples"]) => families.push({ name, help, type: "gauge", samples });
  const counter = (name: string, help: string, samples: Family["samples"]) => families.push({ name, help, type: "counter", samples });
  const bool = (v: boolean) => (v ? 1 : 0);

  gauge("weft_build_info", "weft-agent's version and backend.", [{ labels: { version: state.version, backend: state.node.backend.type, source: state.source.kind }, value: 1 }]);
  gauge("weft_ready", "1 when the overlay, the masquerade rules and the CNI config are in place, and this node's own record is as claimed.", [{ value: bool(state.readiness.ready) }]);
  gauge("weft_source_synced", "1 once the node source has listed every node.", [{ value: bool(state.source.synced) }]);
  gauge("weft_source_error", "1 while the node source is failing (state is kept meanwhile).", [{ value: bool(state.source.error !== undefined) }]);
  if (state.source.localRecord) {
    gauge("weft_local_record_ok", "1 while this node's own record (kube: its Node; etcd: its lease) is as claimed.", [{ value: bool(state.readiness.localRecord) }]);
    const repairs = state.source.localRecord.repairs;
    const kinds = new Set([...(state.source.kind === "etcd" ? ["lease"] : ["annotations", "condition"]), ...Object.keys(repairs)]);
    counter("weft_local_record_repairs_total", "Repairs of this node's own record since start: annotations, condition (kube), lease (etcd).",
      [...kinds].map((what) => ({ labels: { what }, value: repairs[what] ?? 0 })));
  }
  const byStatus = (status: string) => state.peers.filter((p) => p.status === status).length;
  gauge("weft_nodes_known", "Remote nodes by status: programmed, skipped (conflict, unreachable), rejected by the source.", [
    { labels: { status: "programmed" }, value: byStatus("programmed") },
    { labels: { status: "skipped" }, value: byStatus("skipped") },
    { labels: { status: "rejected" }, value: byStatus("rejected") },
  ]);
  counter("weft_reconcile_runs_total", "Reconcile runs since start.", [{ value: state.reconcile.runs }]);
  counter("weft_reconcile_full_runs_total", "Reconcile runs that read and compared the whole kernel state (start, resyncs, after an error).", [{ value: state.reconcile.fullRuns }]);
  counter("weft_reconcile_errors_total", "Reconcile runs in which at least one operation failed.", [{ value: state.reconcile.runsWithErrors }]);
  counter("weft_reconcile_operations_total", "Kernel operations applied, by kind.", Object.entries(state.reconcile.opsApplied).map(([kind, value]) => ({ labels: { kind }, value })));
  const buckets = DURATION_BUCKETS.map((le, i) => ({ labels: { le: String(le) }, value: durations.counts[i]!, suffix: "_bucket" }));
  families.push({
    name: "weft_reconcile_duration_seconds", help: "Duration of reconcile runs (observe, plan, apply).", type: "histogram",
    samples: [...buckets, { labels: { le: "+Inf" }, value: durations.count, suffix: "_bucket" }, { value: durations.sum, suffix: "_sum" }, { value: durations.count, suffix: "_count" }],
  });
  gauge("weft_objects_programmed", "Kernel objects weft keeps for remote nodes, by kind.", [
    { labels: { kind: "route" }, value: state.kernel.routes },
    { labels: { kind: "neighbour" }, value: state.kernel.neighbours },
    { labels: { kind: "fdb" }, value: state.kernel.fdb },
  ]);
  gauge("weft_masq_in_place", "1 when table inet weft holds the expected rules (or masquerade is off).", [{ value: bool(state.readiness.masq) }]);
  const probes = state.peers.flatMap((peer) => peer.probes);
  gauge("weft_probe_rtt_seconds", "Last overlay probe round trip to the node's VTEP address.", probes.filter((p) => p.rttMs !== undefined).map((p) => ({ labels: { node: p.node, address: p.address }, value: p.rttMs! / 1000 })));
  gauge("weft_probe_loss_ratio", "Share of the last 20 overlay probes without a reply.", probes.map((p) => ({ labels: { node: p.node, address: p.address }, value: p.loss })));
  counter("weft_probe_sent_total", "Overlay probes sent.", probes.map((p) => ({ labels: { node: p.node, address: p.address }, value: p.sent })));
  counter("weft_probe_received_total", "Overlay probe replies received in time.", probes.map((p) => ({ labels: { node: p.node, address: p.address }, value: p.received })));

  const memory = process.memoryUsage();
  gauge("process_resident_memory_bytes", "Resident memory of the agent process.", [{ value: memory.rss }]);
  gauge("nodejs_heap_used_bytes", "V8 heap in use.", [{ value: memory.heapUsed }]);
  gauge("nodejs_heap_total_bytes", "V8 heap reserved.", [{ value: memory.heapTotal }]);
  gauge("nodejs_external_memory_bytes", "Memory of buffers and native objects held by JavaScript.", [{ value: memory.external + memory.arrayBuffers }]);

  const lines: string[] = [];
  for (const family of families) {
    lines.push(`# HELP ${family.name} ${family.help}`, `# TYPE ${family.name} ${family.type}`);
    for (const sample of family.samples) lines.push(`${family.name}${sample.suffix ?? ""}${formatLabels(sample.labels)} ${formatValue(sample.value)}`);
  }
  return `${lines.join("\n")}\n`;
}

function formatLabels(labels: Record<string, string> | undefined): string {
  if (!labels || Object.keys(labels).length === 0) return "";
  const escape = (v: string) => v.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
  return `{${Object.entries(labels).map(([k, v]) => `${k}="${escape(v)}"`).join(",")}}`;
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (!Number.isFinite(value)) return value > 0 ? "+Inf" : "-Inf";
  return String(value);
}
