// `weft-agent status`: the running agent's /debug/state as readable tables. Exit status 0 when the agent is
// ready, 1 when it answers but is not ready, 2 when it cannot be reached.
import type * as Http from "node:http";
import { parseListenAddress } from "./debug/server";
import type { AgentState } from "./debug/state";
import { StatusError } from "./errors";

// Not `import … from "node:http"`: the ESM facade of node:http reads every export, which loads undici (fetch,
// WebSocket) and costs ~50 ms of the agent's start-up. The CommonJS module object does not.
const http = process.getBuiltinModule("node:http") as typeof Http;

/** GETs /debug/state from the agent listening on `debugAddr`. */
export function fetchState(debugAddr: string, timeoutMs = 5_000): Promise<AgentState> {
  return fetchJson<AgentState>(debugAddr, "/debug/state", "the agent's state", timeoutMs);
}

/** GETs a JSON document from the agent's debug endpoint; a non-200 answer's text becomes the error. */
export function fetchJson<T>(debugAddr: string, urlPath: string, what: string, timeoutMs = 5_000): Promise<T> {
  const { host, port } = parseListenAddress(debugAddr);
  const target = host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "::1" : host;
  return new Promise((resolve, reject) => {
    const request = http.get({ host: target, port, path: urlPath, timeout: timeoutMs }, (response) => {
      let body = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => (body += chunk));
      response.on("end", () => {
        if (response.statusCode !== 200) return reject(new StatusError(`Cannot read ${what}: HTTP ${response.statusCode} from ${debugAddr}${body.trim() ? `: ${body.trim()}` : ""}`));
        try {
          resolve(JSON.parse(body) as T);
        } catch (error) {
          reject(new StatusError(`Cannot read ${what}: not JSON from ${debugAddr}`, { cause: error }));
        }
      });
    });
    request.on("timeout", () => request.destroy(new Error(`no answer in ${timeoutMs} ms`)));
    request.on("error", (error) => reject(new StatusError(`Cannot reach weft-agent's debug endpoint at ${debugAddr}: ${error.message} (is the agent running? --debug-addr)`, { cause: error })));
  });
}

/** Left-aligned columns separated by two spaces. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join("  ").trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

const yesNo = (ok: boolean) => (ok ? "yes" : "NO");

export function renderStatus(state: AgentState): string {
  const n = state.node;
  const out: string[] = [];
  out.push(`weft-agent ${state.version} on ${n.name}, up since ${state.startedAt}`);
  out.push("");
  out.push(table(["NODE", "VALUE"], [
    ["pod CIDRs", n.podCidrs.join(", ") || "(none yet)"],
    ["public IP", `${n.publicIp} (${n.publicIpFrom})`],
    ["underlay", n.underlay ? `${n.underlay.name} mtu ${n.underlay.mtu}` : "(unknown)"],
    ["backend", `${n.backend.type}${n.backend.type === "vxlan" ? ` vni ${n.backend.vni} port ${n.backend.port}` : ""}`],
    ...(n.vtep ? [["vtep", `${n.vtep.name} ${n.vtep.mac} (${n.vtep.macFrom}) mtu ${n.vtep.mtu} ${n.vtep.addresses.join(" ")}`]] : []),
    ["pod MTU", n.podMtu === undefined ? "(unknown)" : String(n.podMtu)],
    ["network", [state.network.network, state.network.ipv6Network].filter(Boolean).join(", ")],
  ]));
  out.push("");
  const r = state.readiness;
  out.push(table(["READY", "SOURCE SYNCED", "OVERLAY", "MASQ", "CNI CONFIG", "OWN RECORD"], [[yesNo(r.ready), yesNo(r.sourceSynced), yesNo(r.overlay), yesNo(r.masq), yesNo(r.cniConfig), yesNo(r.localRecord)]]));
  out.push("");
  const s = state.source;
  out.push(`source: ${s.kind}, ${s.synced ? "synced" : "NOT SYNCED"}, ${s.nodes} nodes, ${s.rejected} rejected${s.error ? `, ERROR: ${s.error}` : ""}`);
  if (s.localRecord) {
    const l = s.localRecord;
    const repairs = Object.entries(l.repairs).map(([what, count]) => `${count} ${what}`).join(", ") || "none";
    out.push(`own record: ${l.problem === undefined ? "as claimed" : `PROBLEM: ${l.problem}`}; repairs: ${repairs}${l.lastRepair ? ` (last ${l.lastRepair.at}: ${l.lastRepair.what}, ${l.lastRepair.detail})` : ""}`);
  }
  out.push("");
  const rows = state.peers.map((p) => {
    const probe = p.probes[0];
    return [
      p.name,
      p.status,
      p.podCidrs.join(",") || "-",
      p.publicIp || "-",
      p.vtepMac ?? "-",
      probe ? (probe.rttMs === undefined ? "-" : `${probe.rttMs.toFixed(2)} ms`) : "-",
      probe ? `${Math.round(probe.loss * 100)}%` : "-",
      p.reason ?? (p.lastChange ? `changed ${p.lastChange}` : ""),
    ];
  });
  out.push(rows.length === 0 ? "peers: none" : table(["PEER", "STATUS", "POD CIDRS", "PUBLIC IP", "VTEP MAC", "RTT", "LOSS", "NOTE"], rows));
  out.push("");
  const rc = state.reconcile;
  out.push(`reconcile: ${rc.runs} runs (${rc.fullRuns} full), ${rc.runsWithErrors} with errors; objects: ${state.kernel.routes} routes, ${state.kernel.neighbours} neighbours, ${state.kernel.fdb} fdb`);
  if (rc.lastRun) {
    out.push(`last run: ${rc.lastRun.at} (${rc.lastRun.trigger}, ${rc.lastRun.mode}, ${rc.lastRun.durationMs} ms): ${rc.lastRun.operations} operations, ${rc.lastRun.failed} errors`);
    for (const op of rc.lastRun.planned.slice(0, 20)) out.push(`  ${op}`);
    if (rc.lastRun.operations > 20) out.push(`  … ${rc.lastRun.operations - 20} more`);
  }
  for (const e of rc.recentErrors.slice(-5)) out.push(`error ${e.at}: ${e.error}`);
  out.push("");
  const m = state.masq;
  const d = state.datapath;
  if (d) {
    const e = d.ebpf;
    const c = e?.counters ?? {};
    const attach = d.tcAttach ? `; programs attached with ${d.tcAttach.kind} (${d.tcAttach.reason})` : "";
    out.push(`datapath: ${d.mode} (${d.reason})${attach}${d.problems.length > 0 ? `, PROBLEMS: ${d.problems.join("; ")}` : ""}`);
    if (e) {
      out.push(`  pods: ${e.endpoints.attached} on the fast path, ${e.endpoints.onKernelPath.length} on the kernel path; maps: weft_endpoints ${e.endpoints.entries}/${e.endpoints.capacity}, weft_nodes ${e.nodes.entries}/${e.nodes.capacity}; VTEP programs: ingress ${e.vtep.ingress ? "attached" : "NOT ATTACHED"}, egress ${e.vtep.egress ? "attached" : "NOT ATTACHED"}`);
      out.push(`  packets from pods: ${c.from_pod_local ?? 0} to local pods, ${c.from_pod_remote ?? 0} tunnelled, to the kernel: ${c.from_pod_pass_miss ?? 0} not a pod, ${c.from_pod_pass_nat ?? 0} NATed, ${c.from_pod_pass_mtu ?? 0} too big, ${c.from_pod_pass_not_ip ?? 0} not IP`);
      out.push(`  packets from the tunnel: ${c.from_tunnel_local ?? 0} to local pods, to the kernel: ${c.from_tunnel_pass_miss ?? 0} not a pod, ${c.from_tunnel_pass_nat ?? 0} NATed; into the tunnel by the kernel: ${c.to_tunnel_keyed ?? 0}, dropped ${(c.to_tunnel_drop_miss ?? 0) + (c.to_tunnel_drop_not_ip ?? 0) + (c.to_tunnel_drop_error ?? 0)}`);
      for (const pod of e.endpoints.onKernelPath.slice(0, 10)) out.push(`  on the kernel path: ${pod}`);
    }
    const p = d.policy;
    if (p) {
      const enforced = p.enforced ? "enforced" : `NOT ENFORCED: ${p.notEnforced ?? ""}`;
      const synced = p.synced ? "synced" : "NOT SYNCED";
      out.push(`policy: source ${p.source} (${synced}${p.sourceError ? `, error: ${p.sourceError}` : ""}), ${enforced}; ${p.policies} policies, ${p.isolatedPods} pods of this node isolated${p.errors.length > 0 ? `, ${p.errors.length} objects REJECTED` : ""}`);
      if (p.lastApply) out.push(`  last applied ${p.lastApply.at} in ${p.lastApply.ms.toFixed(1)} ms${p.lastApply.error ? `, FAILED: ${p.lastApply.error}` : ""}`);
      for (const pod of e?.policy.endpoints.slice(0, 20) ?? []) {
        out.push(`  ${pod.pod} (${pod.policies.join(", ")}): ingress ${pod.ingressSet ? `${pod.ingress.allowed} allowed, ${pod.ingress.denied} denied` : "open"}; egress ${pod.egressSet ? `${pod.egress.allowed} allowed, ${pod.egress.denied} denied` : "open"}`);
      }
      for (const problem of e?.policy.problems ?? []) out.push(`  PROBLEM: ${problem}`);
      for (const error of p.errors.slice(0, 10)) out.push(`  rejected ${error.object}: ${error.error}`);
    }
  }
  out.push(`masq: ${m.enabled ? `table ${m.table}, ${m.inPlace ? "in place" : `NOT IN PLACE: ${m.problems.join("; ")}`}` : "off (--ip-masq=false)"}`);
  out.push(`files: ${state.files.cniConfList}, ${state.files.subnetFile}${state.files.written ? "" : ` NOT WRITTEN: ${state.files.error ?? ""}`}`);
  return `${out.join("\n")}\n`;
}

/** `weft-agent policy explain`'s answer, as the agent's model gives it. */
export interface PolicyExplanation {
  allowed: boolean;
  reason: string;
  egress: { isolated: boolean; policies: string[]; allowedBy: { policy: string; direction: string; index: number }[] };
  ingress: { isolated: boolean; policies: string[]; allowedBy: { policy: string; direction: string; index: number }[] };
  ownNode: boolean;
}

export function renderExplanation(e: PolicyExplanation): string {
  const side = (name: string, d: PolicyExplanation["egress"]): string => {
    if (!d.isolated) return `  ${name}: not isolated (no policy selects the pod for ${name})`;
    const rules = d.allowedBy.map((r) => `${r.policy} ${r.direction}[${r.index}]`);
    return `  ${name}: isolated by ${d.policies.join(", ")}; ${rules.length > 0 ? `allowed by ${rules.join(", ")}` : "no rule allows it"}`;
  };
  return `${e.allowed ? "ALLOWED" : "DENIED"}: ${e.reason}\n${side("egress", e.egress)}\n${side("ingress", e.ingress)}\n${e.ownNode ? "  between a pod and its own node: always allowed\n" : ""}`;
}
