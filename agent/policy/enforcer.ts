// NetworkPolicy, from a source to the datapath: whenever the source's objects change, the model compiles this
// node's pods (./compile.ts) and the eBPF datapath writes them (agent/datapath/policy-maps.ts). Until the source has
// synced nothing is written, so a restarted agent keeps enforcing what the maps hold; a source that fails later
// keeps its last objects. An object the model rejects is named in the log and in status; the others stay enforced.
import { cidrInside, parseCidr, parseCidrs } from "../../native/addresses";
import { collectGarbageThrottled } from "../gc";
import type { Logger } from "../log";
import { compileEndpoints } from "./compile";
import { explainConnection, type ConnectionExplanation, type ExplainProtocol } from "./explain";
import type { EndpointPolicy, PolicyWorld } from "./types";
import type { PolicyObjectError } from "./world";

export type { PolicyObjectError } from "./world";

export interface PolicySnapshot {
  synced: boolean;
  world: PolicyWorld;
  errors: PolicyObjectError[];
  /** The source's own failure (API unreachable, directory unreadable); its last objects stay in force. */
  error?: string;
}

/** Where policies come from: the Kubernetes API (informers) or a directory of documents. */
export interface PolicySource {
  readonly kind: string;
  /** Starts watching; `onChange` after every change of the snapshot. */
  start(onChange: () => void, signal: AbortSignal): Promise<void>;
  snapshot(): PolicySnapshot;
  close(): Promise<void>;
}

/** What writes compiled policy into the datapath (EbpfDatapath). */
export interface PolicySink {
  applyPolicy(endpoints: readonly EndpointPolicy[], hostAddresses: readonly string[]): void;
}

export interface PolicyEnforcerOptions {
  source: PolicySource;
  /** Null: the datapath cannot enforce (say why in `notEnforced`): policies are read and reported, never applied. */
  sink: PolicySink | null;
  notEnforced?: string;
  nodeName: string;
  /** This node's pod CIDRs: a pod without spec.nodeName whose address is inside is this node's (file source). */
  podCidrs: readonly string[];
  /** This node's own addresses: always allowed to and from its pods (kubelet probes). */
  hostAddresses: () => string[];
  logger: Logger;
}

/** Worlds of at least this many pods and policies are followed by a (throttled) garbage collection. */
const LARGE_WORLD = 1_000;

export interface PolicyStatus {
  source: string;
  synced: boolean;
  enforced: boolean;
  /** Why policies are not enforced, when they are not. */
  notEnforced?: string;
  sourceError?: string;
  policies: number;
  /** This node's pods selected by a policy. */
  isolatedPods: number;
  errors: PolicyObjectError[];
  lastApply?: { at: string; ms: number; error?: string };
  applies: number;
}

export class PolicyEnforcer {
  readonly #o: PolicyEnforcerOptions;
  #scheduled: NodeJS.Immediate | undefined;
  #reported = new Set<string>();
  #status: Omit<PolicyStatus, "source" | "synced" | "enforced" | "notEnforced" | "sourceError" | "errors" | "policies"> = { isolatedPods: 0, applies: 0 };
  #closed = false;

  constructor(options: PolicyEnforcerOptions) {
    this.#o = options;
  }

  async start(signal: AbortSignal): Promise<void> {
    if (!this.#o.sink) this.#o.logger.error("NetworkPolicy is NOT enforced on this node", { reason: this.#o.notEnforced });
    await this.#o.source.start(() => this.schedule(), signal);
    this.applyNow();
  }

  /** Applies soon (changes in one burst of events are applied once). */
  schedule(): void {
    if (this.#closed || this.#scheduled) return;
    this.#scheduled = setImmediate(() => {
      this.#scheduled = undefined;
      this.applyNow();
    });
  }

  /** Compiles this node's pods and writes them; a no-op until the source has synced. */
  applyNow(): void {
    if (this.#closed) return;
    const snapshot = this.#o.source.snapshot();
    this.#reportErrors(snapshot);
    if (!snapshot.synced || !this.#o.sink) return;
    const started = performance.now();
    try {
      const endpoints = compileEndpoints(this.#localWorld(snapshot.world), this.#o.nodeName);
      this.#o.sink.applyPolicy(endpoints, this.#o.hostAddresses());
      const isolatedPods = endpoints.filter((e) => e.ingress !== null || e.egress !== null).length;
      if (isolatedPods !== this.#status.isolatedPods) this.#o.logger.info("NetworkPolicy applied", { isolatedPods, policies: snapshot.world.policies.length });
      this.#status = { isolatedPods, applies: this.#status.applies + 1, lastApply: { at: new Date().toISOString(), ms: performance.now() - started } };
      // The first apply of a large world follows its list (thousands of objects parsed): collect that garbage.
      if (snapshot.world.pods.length + snapshot.world.policies.length >= LARGE_WORLD) collectGarbageThrottled();
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.#o.logger.error("Cannot apply NetworkPolicy; the datapath keeps the last rules", { error: message });
      this.#status = { ...this.#status, lastApply: { at: new Date().toISOString(), ms: performance.now() - started, error: message } };
    }
  }

  /** The model's answer for one connection, from the policies as the source last gave them. */
  explain(from: string, to: string, portSpec: string): ConnectionExplanation | { error: string } {
    const match = /^(?:(\d{1,5})\/)?(TCP|UDP|SCTP|ICMP)$/i.exec(portSpec.trim());
    const protocol = match?.[2]?.toUpperCase() as ExplainProtocol | undefined;
    const port = Number(match?.[1] ?? 0);
    if (!match || !protocol || (protocol !== "ICMP" && (match[1] === undefined || port < 1 || port > 65535))) {
      return { error: `Invalid --port "${portSpec}": expected port/protocol, e.g. 80/TCP (TCP, UDP, SCTP) or ICMP` };
    }
    return explainConnection(this.#localWorld(this.#o.source.snapshot().world), from, to, port, protocol);
  }

  status(): PolicyStatus {
    const snapshot = this.#o.source.snapshot();
    return {
      source: this.#o.source.kind, synced: snapshot.synced, enforced: this.#o.sink !== null,
      ...(this.#o.sink ? {} : { notEnforced: this.#o.notEnforced ?? "no eBPF datapath" }),
      ...(snapshot.error === undefined ? {} : { sourceError: snapshot.error }),
      policies: snapshot.world.policies.length, errors: snapshot.errors, ...this.#status,
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#scheduled) clearImmediate(this.#scheduled);
    await this.#o.source.close();
  }

  /** Pods without spec.nodeName (documents written by hand) are this node's when their address is in its pod CIDRs. */
  #localWorld(world: PolicyWorld): PolicyWorld {
    const cidrs = parseCidrs(this.#o.podCidrs);
    const local = (ip: string): boolean => {
      const host = parseCidr(ip.includes(":") ? `${ip}/128` : `${ip}/32`);
      return host !== undefined && cidrs.some((cidr) => cidrInside(host, cidr));
    };
    const pods = world.pods.map((pod) => (pod.nodeName === undefined && pod.ips.some(local) ? { ...pod, nodeName: this.#o.nodeName } : pod));
    return { ...world, pods };
  }

  /** Each rejected object once in the log (status lists them all, for as long as they are wrong). */
  #reportErrors(snapshot: PolicySnapshot): void {
    const now = new Set(snapshot.errors.map((e) => `${e.object}: ${e.error}`));
    for (const line of now) if (!this.#reported.has(line)) this.#o.logger.warn("Rejecting a NetworkPolicy object", { problem: line });
    this.#reported = now;
  }
}
