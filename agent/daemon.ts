// The agent's main loop (kindnet's shape): claim this node, then reconcile the whole desired state on every
// change of the node list and on a ticker. Each run: underlay → desired state → observe/plan/apply → files →
// masq check. Nothing is programmed before the source has synced; a source error keeps the last node list, so
// an outage never removes state. close() leaves every kernel object in place: a restarted agent finds them
// matching and changes nothing, so traffic never stops.
import { NetlinkSocket } from "../native/netlink";
import { createBackend, VxlanBackend } from "./backends";
import { renderCniConfList, subnetFileContent, writeCniConfList, writeSubnetFile } from "./cniconf";
import { DurationHistogram } from "./debug/metrics";
import { OverlayProber, type ProbeResult } from "./debug/probe";
import { MAX_LISTED, type AgentState, type PeerState, type ReconcileRun } from "./debug/state";
import type { Logger } from "./log";
import { applyMasq, checkMasq, readMasq, removeMasq, type NftOptions } from "./masq";
import type { NetworkConfig, NodeSnapshot, NodeSource, PeerNode } from "./model";
import { choosePublicIp } from "./public-ip";
import {
  apply, desiredState, describeOp, findUnderlay, PeerObjectsCache, planChanges, reconcile, type Backend, type DesiredState,
  type LocalNode, type Op, type ReconcileResult,
} from "./reconcile";
import { chooseVtepMac } from "./vtep-mac";
import path from "node:path";

export interface AgentOptions {
  nodeName: string;
  network: NetworkConfig;
  source: NodeSource;
  sourceKind: string;
  publicIp?: string;
  iface?: string;
  ipMasq: boolean;
  bridge: string;
  cniConfDir: string;
  subnetFile: string;
  stateDir: string;
  ipamDataDir: string;
  resyncIntervalMs: number;
  probeIntervalMs: number;
  probeTimeoutMs: number;
  logger: Logger;
  /** nft's argv (tests run it in a namespace); default ["nft"]. */
  nft?: string[];
  version: string;
}

export const CNI_CONFLIST_NAME = "10-weft.conflist";
/** Kinds of operation on this node's own device: an error in one of them makes the agent not ready. */
const LOCAL_OPS = new Set<Op["kind"]>(["recreate-vtep", "create-vtep", "set-link", "add-address", "delete-address"]);
const KEEP_ERRORS = 20;
/** Runs over at least this many nodes or operations are followed by a garbage collection (collectGarbage). */
const LARGE_RUN = 1_000;
/** The trigger of a run for a new node list: the one kind of run planned from the change alone (planChanges). */
const NODE_LIST_CHANGED = "node list changed";

export class Agent {
  readonly #o: AgentOptions;
  readonly #log: Logger;
  readonly #lifetime = new AbortController();
  #sock: NetlinkSocket | undefined;
  #backend: Backend | undefined;
  #local: LocalNode | undefined;
  #publicIpFrom = "";
  #vtepMacFrom = "";
  #prober: OverlayProber | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again: string | undefined;
  #desired: DesiredState | undefined;
  readonly #peerObjects = new PeerObjectsCache();
  /** What the kernel holds: the desired state of the last run, when it was applied without an error. */
  #kernelHolds: { desired: DesiredState; underlay: string } | undefined;
  #fullRuns = 0;
  #snapshot: NodeSnapshot = { synced: false, nodes: [], rejected: [] };
  /** The snapshot the last (or current) run took from the source. */
  #reconciled: NodeSnapshot | undefined;
  #startRunBegun = false;
  #lastChange = new Map<string, string>();
  #runs = 0;
  #runErrors = 0;
  #opsApplied: Record<string, number> = {};
  readonly #durations = new DurationHistogram();
  #lastRun: ReconcileRun | undefined;
  #recentErrors: { at: string; error: string }[] = [];
  #masq = { enabled: false, inPlace: false, problems: [] as string[], applied: 0 };
  #files = { written: false, error: undefined as string | undefined };
  #overlayOk = false;
  #startedAt = new Date().toISOString();
  #lastFinished: number | undefined;
  #reportedReady = false;

  constructor(options: AgentOptions) {
    this.#o = options;
    this.#log = options.logger;
  }

  get conflistPath(): string {
    return path.join(this.#o.cniConfDir, CNI_CONFLIST_NAME);
  }

  /** Claims this node and starts the loops; resolves once the first reconcile has run (or the source failed to sync). */
  async start(): Promise<void> {
    const signal = this.#lifetime.signal;
    const o = this.#o;
    this.#sock = NetlinkSocket.open();
    const family = o.network.network.includes(":") ? 6 : 4;
    const hints = (await o.source.localHints?.(o.nodeName, signal)) ?? {};
    const nodeAddress = hints.address;
    const chosen = choosePublicIp(this.#sock, {
      ...(o.publicIp === undefined ? {} : { publicIp: o.publicIp }),
      ...(o.iface === undefined ? {} : { iface: o.iface }),
      ...(nodeAddress === undefined ? {} : { nodeAddress }),
      family,
    });
    this.#publicIpFrom = chosen.from;
    const underlay = findUnderlay(this.#sock, chosen.publicIp);

    let vtepMac: string | undefined;
    if (o.network.backend.type === "vxlan") {
      const mac = chooseVtepMac(this.#sock, { vni: o.network.backend.vni, stateDir: o.stateDir, ...(hints.vtepMac === undefined ? {} : { required: hints.vtepMac }) });
      vtepMac = mac.mac;
      this.#vtepMacFrom = mac.from;
    }
    this.#backend = createBackend(o.network, vtepMac === undefined ? {} : { vtepMac });
    this.#log.info("Claiming this node", { node: o.nodeName, publicIp: chosen.publicIp, publicIpFrom: chosen.from, underlay: underlay.name, vtepMac, vtepMacFrom: this.#vtepMacFrom });
    const announcement = { name: o.nodeName, publicIp: chosen.publicIp, backendType: o.network.backend.type, ...(vtepMac === undefined ? {} : { vtepMac }) };
    const node: PeerNode = await o.source.claimLocal(announcement, signal);
    this.#local = { node, underlay };
    this.#log.info("Claimed this node", { node: node.name, podCidrs: node.podCidrs });

    this.#writeFiles();
    this.#masq.enabled = o.ipMasq;
    // nft runs in a process of its own: let it work while the start-up run programs the overlay.
    const masqSynced = this.#syncMasq();

    if (o.network.backend.type === "vxlan" && o.probeIntervalMs > 0) {
      this.#prober = new OverlayProber({ intervalMs: o.probeIntervalMs, timeoutMs: o.probeTimeoutMs, logger: this.#log.with({ component: "probe" }) });
    }
    await o.source.start((snapshot) => {
      this.#snapshot = snapshot;
      // Before the start-up run, that run will take the latest list anyway. After it, snapshots are shared until
      // the list changes: the one a run has already taken (the source's first publish, which often arrives
      // right after the start-up run read it) needs no second run.
      if (!this.#startRunBegun || snapshot === this.#reconciled) return;
      this.schedule(NODE_LIST_CHANGED);
    }, signal);
    this.#snapshot = o.source.snapshot();
    this.#startRunBegun = true;
    await this.#runNow("start");
    await masqSynced;
    this.#reportReadiness();
    this.#timer = setInterval(() => this.schedule("resync"), o.resyncIntervalMs);
    this.#prober?.start();
  }

  /** Runs a reconcile soon; runs never overlap, and requests during a run coalesce into one more run. */
  schedule(trigger: string): void {
    if (this.#lifetime.signal.aborted || !this.#local) return;
    if (this.#running) {
      this.#again = trigger;
      return;
    }
    void this.#runNow(trigger);
  }

  async #runNow(trigger: string): Promise<void> {
    if (this.#running) {
      this.#again = trigger;
      return this.#running;
    }
    this.#running = (async () => {
      try {
        await this.#reconcileOnce(trigger);
      } catch (error) {
        this.#noteError(`reconcile failed: ${error instanceof Error ? error.message : String(error)}`);
        this.#log.error("Reconcile failed", { trigger, error });
      }
    })();
    await this.#running;
    this.#running = undefined;
    this.#lastFinished = performance.now();
    const again = this.#again;
    this.#again = undefined;
    if (again !== undefined && !this.#lifetime.signal.aborted) void this.#runNow(again);
  }

  async #reconcileOnce(trigger: string): Promise<void> {
    const sock = this.#sock!;
    const backend = this.#backend!;
    const local = this.#local!;
    const snapshot = this.#o.source.snapshot();
    this.#snapshot = snapshot;
    this.#reconciled = snapshot;
    if (!snapshot.synced) {
      this.#log.debug("Not reconciling: the node source has not synced yet", { trigger });
      return;
    }
    this.#followSourceMac(snapshot);
    const started = performance.now();
    // The underlay's MTU or addresses may change under us (DHCP, a NIC replaced): read them every run.
    local.underlay = findUnderlay(sock, local.node.publicIp);
    const desired = desiredState(backend, local, snapshot.nodes, { bridge: this.#o.bridge, cache: this.#peerObjects });
    this.#desired = desired;
    const desiredMs = performance.now() - started;
    const result = this.#converge(trigger, desired);
    const durationMs = performance.now() - started;
    const round = (ms: number) => Math.round(ms * 1000) / 1000;
    const phasesMs = { desired: round(desiredMs), plan: round(result.planMs), apply: round(result.applyMs) };
    const at = new Date().toISOString();
    for (const op of result.applied) {
      this.#opsApplied[op.kind] = (this.#opsApplied[op.kind] ?? 0) + 1;
      const node = nodeOf(op);
      if (node !== undefined) this.#lastChange.set(node, at);
    }
    // Forget departed nodes (on full runs: the list of names may be long, and they happen every resync).
    if (result.mode === "full" && this.#lastChange.size > snapshot.nodes.length) {
      const known = new Set(snapshot.nodes.map((node) => node.name));
      for (const name of this.#lastChange.keys()) if (!known.has(name)) this.#lastChange.delete(name);
    }
    this.#runs++;
    this.#durations.observe(durationMs / 1000);
    if (result.errors.length > 0) {
      this.#runErrors++;
      for (const error of result.errors) this.#noteError(error.message);
    }
    this.#overlayOk = !result.errors.some((error) => LOCAL_OPS.has(error.op.kind));
    this.#lastRun = {
      at, trigger, mode: result.mode, durationMs: round(durationMs), phasesMs,
      operations: result.ops.length, failed: result.errors.length,
      planned: result.ops.slice(0, MAX_LISTED).map(describeOp), errors: result.errors.slice(0, MAX_LISTED).map((e) => e.message),
    };
    if (result.ops.length === 0 && result.errors.length === 0) {
      this.#log.debug("Reconciled: nothing to do", { trigger, ms: this.#lastRun.durationMs });
    } else {
      this.#log.info("Reconciled", { trigger, mode: result.mode, planned: result.ops.length, applied: result.applied.length, errors: this.#lastRun.errors.slice(0, 10), ms: this.#lastRun.durationMs, phasesMs });
    }
    if (desired.byNode.size >= LARGE_RUN || result.ops.length >= LARGE_RUN) collectGarbage();
    for (const skipped of desired.skipped) this.#log.debug("Node skipped", { node: skipped.name, reason: skipped.reason });
    this.#writeFiles();
    if (trigger === "resync") await this.#syncMasq();
    this.#prober?.setTargets(this.#probeTargets(desired));
    this.#reportReadiness();
  }

  /** Tells the source's keeper the agent's readiness (kube: NetworkUnavailable=False while ready), on each change. */
  #reportReadiness(): void {
    const ready = this.#datapathReady();
    if (ready === this.#reportedReady) return;
    this.#reportedReady = ready;
    this.#o.source.keeper?.setReady(ready);
  }

  /**
   * Brings the kernel to `desired`. A node list change, when the last run left the kernel as it wanted it (no
   * error) and the underlay is the same, is planned from the difference of the two desired states: no kernel dump.
   * Every other run — start, resync, after an error, a changed local device — and an incremental run with an
   * error observes the kernel and plans against it. Changes made by hand are thus found at the next resync.
   */
  #converge(trigger: string, desired: DesiredState): ReconcileResult & { mode: "full" | "incremental" } {
    const sock = this.#sock!;
    const underlay = JSON.stringify(this.#local!.underlay);
    const held = this.#kernelHolds;
    this.#kernelHolds = undefined;
    let before: ReconcileResult | undefined;
    const started = performance.now();
    const ops = trigger === NODE_LIST_CHANGED && held?.underlay === underlay ? planChanges(held.desired, desired) : undefined;
    if (ops) {
      const planned = performance.now();
      const result = { ops, ...apply(sock, ops), planMs: planned - started, applyMs: performance.now() - planned };
      if (result.errors.length === 0) {
        this.#kernelHolds = { desired, underlay };
        return { ...result, mode: "incremental" };
      }
      // Something changed under us (the VTEP deleted by hand?): find out what.
      this.#log.info("An incremental reconcile failed; observing the kernel", { errors: result.errors.slice(0, 3).map((e) => e.message) });
      before = result;
    }
    this.#fullRuns++;
    const result = reconcile(sock, desired, { bridge: this.#o.bridge });
    if (result.errors.length === 0) this.#kernelHolds = { desired, underlay };
    if (!before) return { ...result, mode: "full" };
    return {
      ...result, applied: [...before.applied, ...result.applied], planMs: before.planMs + result.planMs, applyMs: before.applyMs + result.applyMs, mode: "full",
    };
  }

  /**
   * The file source dictates this node's VTEP MAC (its entry's, or one derived from its name), and peers program
   * what the file says: when the entry's MAC changes, the local VTEP follows (a set-link, not a new device).
   */
  #followSourceMac(snapshot: NodeSnapshot): void {
    if (this.#o.sourceKind !== "file" || !(this.#backend instanceof VxlanBackend)) return;
    const wanted = snapshot.nodes.find((n) => n.name === this.#o.nodeName)?.vtepMac;
    if (wanted === undefined || wanted === this.#backend.mac) return;
    this.#log.info("This node's VTEP MAC changed in the node file; following it", { from: this.#backend.mac, to: wanted });
    this.#backend = createBackend(this.#o.network, { vtepMac: wanted });
    chooseVtepMac(this.#sock!, { vni: this.#o.network.backend.vni, stateDir: this.#o.stateDir, required: wanted });
    this.#local!.node.vtepMac = wanted;
  }

  #writeFiles(): void {
    const o = this.#o;
    try {
      const mtu = this.#backend!.mtu(this.#local!);
      if (writeSubnetFile(subnetFileContent(o.network, this.#local!.node, mtu), { path: o.subnetFile })) this.#log.info("Wrote the subnet file", { path: o.subnetFile, mtu });
      if (writeCniConfList({ path: this.conflistPath, bridge: o.bridge, subnetFile: o.subnetFile, ipamDataDir: o.ipamDataDir })) this.#log.info("Wrote the CNI config", { path: this.conflistPath });
      this.#files = { written: true, error: undefined };
    } catch (error) {
      this.#files = { written: false, error: error instanceof Error ? error.message : String(error) };
      this.#noteError(`cannot write files: ${this.#files.error}`);
      this.#log.error("Cannot write the CNI files", { error });
    }
  }

  /** Applies the masq table when it is not in place (at start, and on resyncs); removes ours when masq is off. */
  async #syncMasq(): Promise<void> {
    const nft: NftOptions = { signal: this.#lifetime.signal, ...(this.#o.nft ? { nft: this.#o.nft } : {}) };
    try {
      if (!this.#o.ipMasq) {
        if ((await readMasq(nft)) !== undefined) await removeMasq(nft);
        this.#masq = { enabled: false, inPlace: true, problems: [], applied: this.#masq.applied };
        return;
      }
      const check = await checkMasq(this.#o.network, nft);
      if (!check.inPlace) {
        this.#log.info("Applying the masquerade rules", { problems: check.problems });
        await applyMasq(this.#o.network, nft);
        this.#masq.applied++;
        const after = await checkMasq(this.#o.network, nft);
        this.#masq = { enabled: true, inPlace: after.inPlace, problems: after.problems, applied: this.#masq.applied };
      } else {
        this.#masq = { enabled: true, inPlace: true, problems: [], applied: this.#masq.applied };
      }
    } catch (error) {
      if (this.#lifetime.signal.aborted) return;
      const message = error instanceof Error ? error.message : String(error);
      this.#masq = { enabled: this.#o.ipMasq, inPlace: false, problems: [message], applied: this.#masq.applied };
      this.#noteError(`masq: ${message}`);
      this.#log.error("Cannot apply the masquerade rules", { error });
    }
  }

  #probeTargets(desired: DesiredState): { node: string; address: string }[] {
    // The neighbours are the remote VTEP addresses, one per node and family.
    return desired.neighbours.map((n) => ({ node: n.node, address: n.ip }));
  }

  #noteError(error: string): void {
    this.#recentErrors.push({ at: new Date().toISOString(), error });
    if (this.#recentErrors.length > KEEP_ERRORS) this.#recentErrors.shift();
  }

  /** The datapath's part of readiness: the source synced, the overlay device programmed, masq in place, files written. */
  #datapathReady(): boolean {
    return this.#snapshot.synced && this.#lastRun !== undefined && this.#overlayOk && this.#files.written && (!this.#masq.enabled || this.#masq.inPlace);
  }

  /** Ready: the datapath is, and this node's own record in the cluster is as claimed (its keeper has no problem). */
  readiness(): AgentState["readiness"] {
    const synced = this.#snapshot.synced && this.#lastRun !== undefined;
    const problem = this.#o.source.keeper?.status().problem;
    return {
      ready: this.#datapathReady() && problem === undefined,
      sourceSynced: synced,
      overlay: this.#overlayOk,
      masq: !this.#masq.enabled || this.#masq.inPlace,
      cniConfig: this.#files.written,
      localRecord: problem === undefined,
      ...(problem === undefined ? {} : { problem }),
    };
  }

  /** Alive: not closed, and a reconcile finished within three resync intervals (or none was due yet). */
  alive(): boolean {
    if (this.#lifetime.signal.aborted) return false;
    if (this.#lastFinished === undefined) return true;
    return performance.now() - this.#lastFinished < 3 * this.#o.resyncIntervalMs + 10_000;
  }

  /** Reconcile durations since start, for the /metrics histogram. */
  durations(): DurationHistogram {
    return this.#durations;
  }

  state(): AgentState {
    const o = this.#o;
    const local = this.#local;
    const desired = this.#desired;
    const probes = new Map<string, ProbeResult[]>();
    for (const result of this.#prober?.results() ?? []) probes.set(result.node, [...(probes.get(result.node) ?? []), result]);
    const skipped = new Map((desired?.skipped ?? []).map((s) => [s.name, s.reason]));
    const rejected = new Map(this.#snapshot.rejected.map((r) => [r.name, r.reason]));
    const peers: PeerState[] = [];
    for (const peer of this.#snapshot.nodes) {
      if (peer.name === o.nodeName) continue;
      const objects = desired?.byNode.get(peer.name);
      const routes = objects?.routes ?? [];
      const state: PeerState = {
        name: peer.name, podCidrs: peer.podCidrs, publicIp: peer.publicIp,
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
      const changed = this.#lastChange.get(peer.name);
      if (changed !== undefined) state.lastChange = changed;
      peers.push(state);
    }
    for (const [name, reason] of rejected) peers.push({ name, podCidrs: [], publicIp: "", status: "rejected", reason, objects: { routes: [], neighbours: [], fdb: [] }, probes: [] });
    peers.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

    const state: AgentState = {
      version: o.version,
      startedAt: this.#startedAt,
      node: {
        name: o.nodeName,
        podCidrs: local?.node.podCidrs ?? [],
        publicIp: local?.node.publicIp ?? "",
        publicIpFrom: this.#publicIpFrom,
        underlay: local ? { name: local.underlay.name, mtu: local.underlay.mtu } : undefined,
        backend: { type: o.network.backend.type, vni: o.network.backend.vni, port: o.network.backend.port },
        vtep: desired?.vtep ? { name: desired.vtep.name, mac: desired.vtep.mac, macFrom: this.#vtepMacFrom, mtu: desired.vtep.mtu, addresses: desired.vtep.addresses } : undefined,
        podMtu: local && this.#backend ? this.#backend.mtu(local) : undefined,
      },
      network: { network: o.network.network, ipv6Network: o.network.ipv6Network, subnetLen: o.network.subnetLen, nonMasqueradeCidrs: o.network.nonMasqueradeCidrs },
      readiness: this.readiness(),
      source: {
        kind: o.sourceKind, synced: this.#snapshot.synced, nodes: this.#snapshot.nodes.length,
        rejected: this.#snapshot.rejected.length, ...(this.#snapshot.error === undefined ? {} : { error: this.#snapshot.error }),
        ...(o.source.keeper ? { localRecord: o.source.keeper.status() } : {}),
      },
      peers,
      kernel: {
        routes: desired?.routes.length ?? 0, neighbours: desired?.neighbours.length ?? 0, fdb: desired?.fdb.length ?? 0,
        vtep: desired?.vtep?.name,
      },
      reconcile: {
        runs: this.#runs, fullRuns: this.#fullRuns, runsWithErrors: this.#runErrors, opsApplied: { ...this.#opsApplied },
        ...(this.#lastRun === undefined ? {} : { lastRun: this.#lastRun }), recentErrors: [...this.#recentErrors],
      },
      masq: { ...this.#masq, table: "inet weft" },
      files: { cniConfList: this.conflistPath, subnetFile: o.subnetFile, written: this.#files.written, ...(this.#files.error === undefined ? {} : { error: this.#files.error }), conflist: renderCniConfList({ bridge: o.bridge, subnetFile: o.subnetFile, ipamDataDir: o.ipamDataDir }) },
    };
    return state;
  }

  /** Stops the loops and the source; leaves every kernel object and file in place. Safe to call twice. */
  async close(): Promise<void> {
    if (this.#lifetime.signal.aborted) return;
    this.#lifetime.abort();
    clearInterval(this.#timer);
    await this.#prober?.close();
    await this.#running?.catch(() => undefined);
    await this.#o.source.close();
    this.#sock?.close();
  }
}

/**
 * A full garbage collection once the current task is done, when the launcher exposes it (--expose-gc). A run over
 * thousands of nodes leaves megabytes of garbage (the node file parsed, the desired state it replaces, kernel
 * dumps); V8 lets its heap grow to about twice the live size before collecting, so RSS would climb by tens of MB
 * between collections. Collecting after large runs keeps it near the live size (docs/benchmarks.md, agent scale)
 * for ~10 ms of CPU per run at 5,000 nodes, after the run has converged.
 */
function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) setImmediate(gc).unref();
}

function nodeOf(op: Op): string | undefined {
  switch (op.kind) {
    case "replace-neighbour":
      return op.neighbour.node;
    case "replace-fdb":
      return op.fdb.node;
    case "replace-route":
      return op.route.node;
    default:
      return undefined;
  }
}
