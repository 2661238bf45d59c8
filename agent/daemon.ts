// The agent's main loop (kindnet's shape): claim this node, then reconcile the whole desired state on every
// change of the node list and on a ticker. Each run: underlay → desired state → observe/plan/apply → files →
// masq check. Nothing is programmed before the source has synced; a source error keeps the last node list, so
// an outage never removes state. close() leaves every kernel object in place: a restarted agent finds them
// matching and changes nothing, so traffic never stops.
//
// The loop owns the schedule and the kernel socket; its collaborators own their state and report it: the node
// source (and its keeper of this node's record), the backend, the CNI files (cniconf.ts), the masquerade
// (masq.ts), the overlay prober and the run statistics (debug/). A datapath mode plugs in the same way.
import type { Histogram } from "prom-client";
import { removeWeftFilters } from "../native/bpf/attach";
import { NetlinkSocket } from "../native/netlink";
import { createBackend } from "./backends";
import { CniFiles } from "./cniconf";
import { chooseTcAttach, endpointsDirOf, type DatapathChoice, type TcAttachChoice } from "./datapath";
import { DatapathError } from "./errors";
import { removeEbpfState, removeLinkPins } from "./datapath/cleanup";
import { EbpfDatapath } from "./datapath/ebpf";
import { OverlayProber } from "./debug/probe";
import type { MetricsView } from "./debug/metrics";
import { RunStats } from "./debug/run-stats";
import { agentState, type AgentState } from "./debug/state";
import { collectGarbage } from "./gc";
import type { Logger } from "./log";
import { MasqSync } from "./masq";
import { PolicyEnforcer, type PolicySource } from "./policy/enforcer";
import { firstHost, networkAddress, parseCidrs } from "../native/addresses";
import type { LocalAnnouncement, LocalHints, NetworkConfig, NodeSnapshot, NodeSource } from "./model";
import { choosePublicIp } from "./public-ip";
import {
  apply, desiredState, findUnderlay, PeerObjectsCache, planChanges, reconcile, type Backend, type DesiredState,
  type LocalNode, type Op, type ReconcileResult, type Underlay,
} from "./reconcile";
import { chooseVtepMac } from "./vtep-mac";

export { CNI_CONFLIST_NAME } from "./cniconf";

export interface AgentOptions {
  nodeName: string;
  /**
   * The datapath mode chosen (./datapath): where its pins go, where its objects are and how its programs are
   * attached (default: auto's choice for this kernel). Default kernel.
   */
  datapath?: DatapathChoice & { bpfDir: string; objectsDir: string; tcAttach?: TcAttachChoice };
  network: NetworkConfig;
  source: NodeSource;
  /** Shown in the debug view and metrics ("kube", "etcd", "file"). */
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
  /**
   * NetworkPolicy's source: the policies are enforced by the eBPF programs, in either mode (kernel mode runs them to
   * check policy only). Absent: no policy is read.
   */
  policy?: PolicySource;
  /** nft's argv (tests run it in a namespace); default ["nft"]. */
  nft?: string[];
  version: string;
}

/** Kinds of operation on this node's own device: an error in one of them makes the agent not ready. */
const LOCAL_OPS = new Set<Op["kind"]>(["recreate-vtep", "create-vtep", "set-link", "add-address", "delete-address"]);
/** Runs over at least this many nodes or operations are followed by a garbage collection (collectGarbage). */
const LARGE_RUN = 1_000;
/** The trigger of a run for a new node list: the one kind of run planned from the change alone (planChanges). */
const NODE_LIST_CHANGED = "node list changed";

export class Agent {
  readonly #o: AgentOptions;
  readonly #log: Logger;
  readonly #lifetime = new AbortController();
  readonly #startedAt = new Date().toISOString();
  readonly #stats = new RunStats();
  readonly #files: CniFiles;
  readonly #masq: MasqSync;
  #sock: NetlinkSocket | undefined;
  #backend: Backend | undefined;
  #local: LocalNode | undefined;
  /** Where this node's public IP and VTEP MAC came from, and whether the source dictates the MAC (file source). */
  #claim = { publicIpFrom: "", vtepMacFrom: "", macFromSource: false };
  #prober: OverlayProber | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again: string | undefined;
  #desired: DesiredState | undefined;
  readonly #peerObjects = new PeerObjectsCache();
  /** What the kernel holds: the desired state of the last run, when it was applied without an error. */
  #kernelHolds: { desired: DesiredState; underlay: string } | undefined;
  #snapshot: NodeSnapshot = { synced: false, nodes: [], rejected: [] };
  /** The snapshot the last (or current) run took from the source. */
  #reconciled: NodeSnapshot | undefined;
  #startRunBegun = false;
  #overlayOk = false;
  #lastFinished: number | undefined;
  #reportedReady = false;
  /** The datapath: its mode and why, and the eBPF datapath when in that mode. */
  #datapath: DatapathChoice;
  #tcAttach: TcAttachChoice;
  #ebpf: EbpfDatapath | undefined;
  #datapathProblems: string[] = [];
  #policy: PolicyEnforcer | undefined;
  /** Why NetworkPolicy cannot be enforced here (the programs could not be loaded). */
  #policyNotEnforced: string | undefined;

  constructor(options: AgentOptions) {
    this.#o = options;
    this.#log = options.logger;
    const onError = (message: string): void => this.#stats.noteError(message);
    this.#datapath = options.datapath ? { mode: options.datapath.mode, reason: options.datapath.reason } : { mode: "kernel", reason: "default" };
    this.#tcAttach = options.datapath?.tcAttach ?? chooseTcAttach("auto");
    // ebpf mode forwards pods with the programs; kernel mode with NetworkPolicy runs them to check policy only.
    if (options.datapath && (options.datapath.mode === "ebpf" || options.policy)) {
      this.#ebpf = new EbpfDatapath({
        bpfDir: options.datapath.bpfDir, endpointsDir: endpointsDirOf(options.stateDir), objectsDir: options.datapath.objectsDir,
        vni: options.network.backend.vni, forward: options.datapath.mode === "ebpf", tcAttach: this.#tcAttach.kind, logger: options.logger.with({ component: "ebpf" }),
        clusterCidrs: [options.network.network, options.network.ipv6Network].filter((cidr) => cidr !== undefined),
      });
    }
    this.#files = new CniFiles({
      network: options.network, cniConfDir: options.cniConfDir, bridge: options.bridge, subnetFile: options.subnetFile,
      ipamDataDir: options.ipamDataDir, logger: options.logger, onError,
      subnetFileEntries: () => this.#ebpf?.subnetFileEntries(),
    });
    this.#masq = new MasqSync({ network: options.network, enabled: options.ipMasq, ...(options.nft ? { nft: options.nft } : {}), signal: this.#lifetime.signal, logger: options.logger, onError });
  }

  get conflistPath(): string {
    return this.#files.conflistPath;
  }

  /** Claims this node and starts the loops; resolves once the first reconcile has run (or the source failed to sync). */
  async start(): Promise<void> {
    const signal = this.#lifetime.signal;
    const o = this.#o;
    this.#sock = NetlinkSocket.open();
    this.#startDatapath();
    let underlay: Underlay | undefined;
    const node = await o.source.claimLocal(o.nodeName, (hints) => {
      const announced = this.#announcement(hints);
      underlay = announced.underlay;
      return announced.announcement;
    }, signal);
    this.#local = { node, underlay: underlay! };
    this.#log.info("Claimed this node", { node: node.name, podCidrs: node.podCidrs });

    this.#files.write(node, this.#backend!.mtu(this.#local));
    // nft runs in a process of its own: let it work while the start-up run programs the overlay.
    const masqSynced = this.#masq.sync();

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
    if (o.policy) {
      this.#policy = new PolicyEnforcer({
        source: o.policy, sink: this.#ebpf ?? null, ...(this.#policyNotEnforced === undefined ? {} : { notEnforced: this.#policyNotEnforced }),
        nodeName: node.name, podCidrs: node.podCidrs, hostAddresses: () => this.#hostAddresses(), logger: this.#log.with({ component: "policy" }),
      });
      await this.#policy.start(signal);
    }
    await masqSynced;
    this.#reportReadiness();
    this.#timer = setInterval(() => this.schedule("resync"), o.resyncIntervalMs);
    this.#prober?.start();
  }

  /**
   * eBPF: loads and pins the programs before anything can ask for them (the subnet file tells the plugin to).
   * With auto, a load that fails falls back to the kernel path, saying why; with --datapath ebpf it is fatal.
   * Kernel: removes what an earlier eBPF run pinned (a mode switch), so nothing is left attached.
   */
  #startDatapath(): void {
    const o = this.#o;
    if (this.#ebpf) {
      const forwards = this.#ebpf.forwards;
      try {
        this.#ebpf.load();
        if (forwards) return;
        // Kernel mode with NetworkPolicy: an earlier eBPF run's VTEP ingress program goes (the VTEP is recreated
        // plain; its egress keeps to_tunnel, for the deferred egress check).
        const removed = [
          ...removeLinkPins(this.#ebpf.bpfDir, (name) => !name.startsWith("veth") && name.endsWith("-ingress")),
          ...removeWeftFilters(this.#sock!, (device, direction) => !device.startsWith("veth") && direction === "ingress"),
        ];
        if (removed.length > 0) this.#log.info("Removed the eBPF forwarding of an earlier run", { pins: removed });
        return;
      } catch (error) {
        const reason = (error as Error).message.split("\n")[0];
        if (forwards && !this.#datapath.reason.startsWith("auto")) throw new DatapathError(`Cannot load the eBPF datapath: ${(error as Error).message}`, { cause: error });
        if (forwards) {
          this.#log.warn("Cannot load the eBPF datapath; using the kernel path", { error });
          this.#datapath = { mode: "kernel", reason: `auto: loading the eBPF datapath failed: ${reason}` };
        }
        this.#policyNotEnforced = `cannot load the eBPF programs: ${reason}`;
        this.#ebpf = undefined;
      }
    }
    if (o.datapath) {
      const removed = removeEbpfState({ bpfDir: o.datapath.bpfDir, endpointsDir: endpointsDirOf(o.stateDir), sock: this.#sock! });
      if (removed.length > 0) this.#log.info("Removed the eBPF datapath of an earlier run", { pins: removed });
    }
  }

  /**
   * What this node announces, from the source's hints: its public IP (--public-ip, --iface, the address the
   * cluster knows it by, else the default route's) and, for vxlan, its VTEP MAC (the source's if it dictates one,
   * else the device's, the saved one, or a new one). Creates the backend for that MAC.
   */
  #announcement(hints: LocalHints): { announcement: LocalAnnouncement; underlay: Underlay } {
    const o = this.#o;
    const sock = this.#sock!;
    const chosen = choosePublicIp(sock, {
      ...(o.publicIp === undefined ? {} : { publicIp: o.publicIp }),
      ...(o.iface === undefined ? {} : { iface: o.iface }),
      ...(hints.address === undefined ? {} : { nodeAddress: hints.address }),
      family: o.network.network.includes(":") ? 6 : 4,
    });
    const underlay = findUnderlay(sock, chosen.publicIp);
    let vtepMac: string | undefined;
    let vtepMacFrom = "";
    if (o.network.backend.type === "vxlan") {
      const mac = chooseVtepMac(sock, { vni: o.network.backend.vni, stateDir: o.stateDir, ...(hints.vtepMac === undefined ? {} : { required: hints.vtepMac }) });
      vtepMac = mac.mac;
      vtepMacFrom = mac.from;
    }
    this.#claim = { publicIpFrom: chosen.from, vtepMacFrom, macFromSource: hints.vtepMac !== undefined };
    this.#backend = createBackend(o.network, { ...(vtepMac === undefined ? {} : { vtepMac }), externalVtep: this.#ebpf?.forwards === true });
    this.#log.info("Claiming this node", { node: o.nodeName, publicIp: chosen.publicIp, publicIpFrom: chosen.from, underlay: underlay.name, vtepMac, vtepMacFrom });
    const announcement: LocalAnnouncement = { name: o.nodeName, publicIp: chosen.publicIp, backendType: o.network.backend.type, ...(vtepMac === undefined ? {} : { vtepMac }) };
    return { announcement, underlay };
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
        this.#stats.noteError(`reconcile failed: ${error instanceof Error ? error.message : String(error)}`);
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
    const local = this.#local!;
    const snapshot = this.#o.source.snapshot();
    this.#snapshot = snapshot;
    this.#reconciled = snapshot;
    if (!snapshot.synced) {
      this.#log.debug("Not reconciling: the node source has not synced yet", { trigger });
      return;
    }
    this.#followSourceMac(snapshot);
    const backend = this.#backend!;
    const started = performance.now();
    // The underlay's MTU or addresses may change under us (DHCP, a NIC replaced): read them every run.
    local.underlay = findUnderlay(sock, local.node.publicIp);
    const desired = desiredState(backend, local, snapshot.nodes, { bridge: this.#o.bridge, cache: this.#peerObjects });
    this.#desired = desired;
    const desiredMs = performance.now() - started;
    const result = this.#converge(trigger, desired);
    if (this.#ebpf) {
      // Deferred egress denials need the masquerade table's drop rule, and a VTEP to check them at (vxlan).
      const masq = this.#masq.status();
      const deferEgress = masq.enabled && masq.inPlace && this.#o.network.backend.type === "vxlan";
      const problems = this.#ebpf.sync(sock, desired, { full: result.mode === "full", deferEgress });
      for (const problem of problems) if (!this.#datapathProblems.includes(problem)) this.#log.error("eBPF datapath", { problem });
      for (const problem of problems) this.#stats.noteError(problem);
      this.#datapathProblems = problems;
    }
    const run = this.#stats.record({
      trigger, mode: result.mode, result, durationMs: performance.now() - started,
      phasesMs: { desired: desiredMs, plan: result.planMs, apply: result.applyMs },
      nodeNames: () => snapshot.nodes.map((node) => node.name),
    });
    this.#overlayOk = !result.errors.some((error) => LOCAL_OPS.has(error.op.kind)) && this.#datapathProblems.length === 0;
    if (result.ops.length === 0 && result.errors.length === 0) {
      this.#log.debug("Reconciled: nothing to do", { trigger, ms: run.durationMs });
    } else {
      this.#log.info("Reconciled", { trigger, mode: result.mode, planned: result.ops.length, applied: result.applied.length, errors: run.errors.slice(0, 10), ms: run.durationMs, phasesMs: run.phasesMs });
    }
    if (desired.byNode.size >= LARGE_RUN || result.ops.length >= LARGE_RUN) collectGarbage();
    for (const skipped of desired.skipped) this.#log.debug("Node skipped", { node: skipped.name, reason: skipped.reason });
    this.#files.write(local.node, backend.mtu(local));
    if (trigger === "resync") await this.#masq.sync();
    // The neighbours are the remote VTEP addresses, one per node and family.
    this.#prober?.setTargets(desired.neighbours.map((n) => ({ node: n.node, address: n.ip })));
    // New pods, and pods gone, change which addresses the policy maps must cover: check them every resync.
    if (trigger === "resync") this.#policy?.schedule();
    this.#reportReadiness();
  }

  /** This node's own addresses, always allowed to and from its pods: its public IP, its bridges' gateways and VTEP addresses. */
  #hostAddresses(): string[] {
    const local = this.#local;
    if (!local) return [];
    const addresses = new Set([local.node.publicIp]);
    for (const cidr of parseCidrs(local.node.podCidrs)) {
      addresses.add(firstHost(cidr));
      addresses.add(networkAddress(cidr));
    }
    return [...addresses];
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
    this.#stats.countFullRun();
    const result = reconcile(sock, desired, { bridge: this.#o.bridge });
    if (result.errors.length === 0) this.#kernelHolds = { desired, underlay };
    if (!before) return { ...result, mode: "full" };
    return {
      ...result, applied: [...before.applied, ...result.applied], planMs: before.planMs + result.planMs, applyMs: before.applyMs + result.applyMs, mode: "full",
    };
  }

  /**
   * A source that dictates this node's VTEP MAC (the file source: its entry's, or one derived from its name) is
   * followed when the MAC changes there: peers program what the source says. The local VTEP follows (a set-link,
   * not a new device).
   */
  #followSourceMac(snapshot: NodeSnapshot): void {
    const local = this.#local!;
    if (!this.#claim.macFromSource || local.node.vtepMac === undefined) return;
    const wanted = snapshot.nodes.find((n) => n.name === this.#o.nodeName)?.vtepMac;
    if (wanted === undefined || wanted === local.node.vtepMac) return;
    this.#log.info("This node's VTEP MAC changed in the node source; following it", { from: local.node.vtepMac, to: wanted });
    this.#backend = createBackend(this.#o.network, { vtepMac: wanted, externalVtep: this.#ebpf?.forwards === true });
    chooseVtepMac(this.#sock!, { vni: this.#o.network.backend.vni, stateDir: this.#o.stateDir, required: wanted });
    local.node = { ...local.node, vtepMac: wanted };
  }

  /** The datapath's part of readiness: the source synced, the overlay device programmed, masq in place, files written. */
  #datapathReady(): boolean {
    return this.#snapshot.synced && this.#stats.lastRun !== undefined && this.#overlayOk && this.#files.written && this.#masq.ok;
  }

  /** Ready: the datapath is, and this node's own record in the cluster is as claimed (its keeper has no problem). */
  readiness(): AgentState["readiness"] {
    const problem = this.#o.source.keeper?.status().problem;
    // Before the source has synced, its error (a refused call while claiming this node) says why.
    const sourceProblem = this.#snapshot.synced ? undefined : this.#o.source.snapshot().error;
    return {
      ready: this.#datapathReady() && problem === undefined,
      sourceSynced: this.#snapshot.synced && this.#stats.lastRun !== undefined,
      overlay: this.#overlayOk,
      masq: this.#masq.ok,
      cniConfig: this.#files.written,
      localRecord: problem === undefined,
      ...(problem === undefined ? (sourceProblem === undefined ? {} : { problem: sourceProblem }) : { problem }),
    };
  }

  /** Alive: not closed, and a reconcile finished within three resync intervals (or none was due yet). */
  alive(): boolean {
    if (this.#lifetime.signal.aborted) return false;
    if (this.#lastFinished === undefined) return true;
    return performance.now() - this.#lastFinished < 3 * this.#o.resyncIntervalMs + 10_000;
  }

  /** The reconcile duration histogram, for /metrics. */
  get durations(): Histogram {
    return this.#stats.durations;
  }

  /** What /metrics reads: counts and counters (the peers are counted, not listed, sorted or described). */
  metricsView(): MetricsView {
    const o = this.#o;
    const snapshot = this.#snapshot;
    const desired = this.#desired;
    const reconcile = this.#stats.view();
    let skipped = 0;
    if (desired) {
      const counted = new Set<string>();
      for (const { name } of desired.skipped) {
        if (name !== o.nodeName && !desired.byNode.has(name) && !counted.has(name)) counted.add(name);
      }
      skipped = counted.size;
    }
    const remote = snapshot.nodes.length - (snapshot.nodes.some((n) => n.name === o.nodeName) ? 1 : 0);
    return {
      version: o.version, backend: o.network.backend.type, sourceKind: o.sourceKind, readiness: this.readiness(),
      sourceSynced: snapshot.synced, sourceError: snapshot.error !== undefined,
      nodes: { programmed: desired ? remote - skipped : 0, skipped, rejected: snapshot.rejected.length },
      objects: { route: desired?.routes.length ?? 0, neighbour: desired?.neighbours.length ?? 0, fdb: desired?.fdb.length ?? 0 },
      reconcile: { runs: reconcile.runs, fullRuns: reconcile.fullRuns, runsWithErrors: reconcile.runsWithErrors, opsApplied: reconcile.opsApplied },
      localRecord: o.source.keeper?.status(), probes: this.#prober?.results() ?? [], datapath: this.#datapathState(),
    };
  }

  #datapathState(): AgentState["datapath"] {
    return {
      ...this.#datapath, ...(this.#ebpf ? { ebpf: this.#ebpf.status(), tcAttach: { ...this.#tcAttach } } : {}), problems: [...this.#datapathProblems],
      ...(this.#policy ? { policy: this.#policy.status() } : {}),
    };
  }

  /** `weft-agent policy explain`, from the model the policies are compiled with. */
  explainPolicy(query: URLSearchParams): unknown {
    if (!this.#policy) return { error: "NetworkPolicy is off on this agent (--policy-source off)" };
    const [from, to, port] = ["from", "to", "port"].map((name) => query.get(name) ?? "");
    if (!from || !to || !port) return { error: "Cannot explain: from, to and port are required" };
    return this.#policy.explain(from, to, port);
  }

  /** The whole view (/debug/state, `status`). */
  state(): AgentState {
    const o = this.#o;
    const local = this.#local;
    return agentState({
      version: o.version, startedAt: this.#startedAt, nodeName: o.nodeName, network: o.network, sourceKind: o.sourceKind,
      snapshot: this.#snapshot, localRecord: o.source.keeper?.status(), local,
      publicIpFrom: this.#claim.publicIpFrom, vtepMacFrom: this.#claim.vtepMacFrom,
      podMtu: local && this.#backend ? this.#backend.mtu(local) : undefined,
      desired: this.#desired, probes: this.#prober?.results() ?? [], readiness: this.readiness(),
      reconcile: this.#stats.view(), lastChange: (node) => this.#stats.lastChange(node),
      masq: this.#masq.status(), files: this.#files.status(),
      datapath: this.#datapathState(),
    });
  }

  /** Stops the loops and the source; leaves every kernel object and file in place. Safe to call twice. */
  async close(): Promise<void> {
    if (this.#lifetime.signal.aborted) return;
    this.#lifetime.abort();
    clearInterval(this.#timer);
    await this.#prober?.close();
    await this.#policy?.close();
    await this.#running?.catch(() => undefined);
    await this.#o.source.close();
    this.#sock?.close();
  }
}
