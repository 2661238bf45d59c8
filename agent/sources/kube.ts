// The kube source: Nodes through @kubernetes/client-node's informer (ListWatch), turned into records at the edge
// (./kube-node.ts).
//
// What client-node 2.0.1's ListWatch does (dist/cache.js, dist/watch.js), and what this source adds:
//   - It lists, then watches from the list's resourceVersion, and follows ADDED/MODIFIED/DELETED; BOOKMARK
//     events only advance its resourceVersion. It never asks for bookmarks itself, so the path carries
//     ?allowWatchBookmarks=true (Watch appends its own parameters to the path's).
//   - 410 Gone, as an ERROR watch event (it clears the resourceVersion, the stream then ends) or as an HTTP 410
//     on the watch request, makes it relist; the relist reports deletes for objects missing from the new list
//     and adds/updates for the rest, so nodes present throughout are never removed.
//   - A stream that ends normally is resumed from the last resourceVersion, after a delay that grows while no
//     event arrives (bookmarks reset it).
//   - Any other failure (list error, connection refused, reset stream) calls the "error" handlers and STOPS.
//     This source records the error in the snapshot and calls start() again after a backoff; start() resumes
//     the watch from the last resourceVersion (or relists after a 410). The cache, and so the snapshot, keeps
//     its nodes meanwhile.
//   - stop() while a list is in flight would still start a watch afterwards: the Watch below refuses to start
//     once the source is closed.
//   - A relist that returns no nodes at all while nodes are known is refused (the list function throws): an API
//     answering "no nodes" right after failing is more likely broken than the cluster empty.
//
// claimLocal: polls this node's Node until spec.podCIDR is set (kube-controller-manager assigns it), checks it
// against the network and merge-patches the annotations that differ. From then on a KubeNodeKeeper
// (./kube-keeper.ts) keeps them so, and keeps NetworkUnavailable=False while the agent is ready (keeper.setReady):
// the watch shows every change of this node's Node, including its deletion and re-creation.

import { CoreV1Api, KubeConfig, ListWatch, PatchStrategy, Watch, setHeaderOptions, type V1Node } from "@kubernetes/client-node";
import { log as rootLog, type Logger } from "../log";
import type { LocalAnnouncement, LocalHints, LocalRecordKeeper, NetworkConfig, NodeSnapshot, NodeSource, PeerNode } from "../model";
import { SourceError, describeError } from "../errors";
import {
  DEFAULT_ANNOTATION_PREFIX, internalIp, localAnnotations, nodeToRecord, podCidrsOf, weftAnnotations,
  type NodeReadOptions, type WeftAnnotations,
} from "./kube-node";
import { KubeNodeKeeper } from "./kube-keeper";
import { checkAnnouncement } from "./local";
import type { RepairGuardOptions } from "./repair-guard";
import { NodeTable } from "./node-table";
import { Backoff, eitherSignal, sleep } from "./retry";
import { checkNode, parseClusterNetworks, parsePublicIp } from "./validate";

export interface KubeSourceOptions {
  /** The cluster network: pod CIDRs outside it are rejected. */
  network: NetworkConfig;
  /** Default: KubeConfig.loadFromDefault() (in-cluster service account, else $KUBECONFIG or ~/.kube/config). */
  kubeConfig?: KubeConfig;
  /** weft's annotations are <prefix>/public-ip, /vtep-mac, /backend-type. Default "weft.dev". */
  annotationPrefix?: string;
  /** Also publish, and read, flannel's annotations (mixed clusters during a migration). Default false. */
  flannelCompat?: boolean;
  /** Keep the NetworkUnavailable condition False while the agent is ready. Default true. */
  setNetworkUnavailable?: boolean;
  /** First delay before retrying after an error. Default 1,000 ms; doubles up to `maxRetryDelayMs`. */
  retryDelayMs?: number;
  /** Default 30,000 ms. */
  maxRetryDelayMs?: number;
  /** claimLocal: how often to re-read this node while it has no pod CIDR yet. Default 2,000 ms. */
  pollIntervalMs?: number;
  /** How often this node's own Node may be repaired before another writer is assumed (./repair-guard.ts). */
  repairGuard?: RepairGuardOptions;
  /** Default: the agent's logger with {source: "kube"}. */
  logger?: Logger;
}

const NODES_PATH = "/api/v1/nodes?allowWatchBookmarks=true";
/** Nodes per list request. */
const LIST_PAGE = 500;

/**
 * A Node cut down to what the agent reads (name, uid, resourceVersion, annotations; pod CIDRs; addresses and
 * conditions) before the informer caches it: a real Node also carries its image list and field managers
 * (status.images, metadata.managedFields), kilobytes that the informer would keep for every node of the cluster.
 */
export function slimNode(node: V1Node): V1Node {
  const { name, uid, resourceVersion, annotations, labels } = node.metadata ?? {};
  return {
    apiVersion: node.apiVersion, kind: node.kind,
    metadata: { name, uid, resourceVersion, annotations, labels },
    spec: { podCIDR: node.spec?.podCIDR, podCIDRs: node.spec?.podCIDRs },
    status: { addresses: node.status?.addresses, conditions: node.status?.conditions },
  };
}

const NODE_EVENTS = new Set(["ADDED", "MODIFIED", "DELETED"]);

/** A Watch that reports when a watch request was accepted, starts none once the source is closed, and slims Nodes. */
class TrackingWatch extends Watch {
  readonly #hooks: { established(): void; closed(): boolean };

  constructor(config: KubeConfig, hooks: { established(): void; closed(): boolean }) {
    super(config);
    this.#hooks = hooks;
  }

  override async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    if (this.#hooks.closed()) return new AbortController();
    let failed = false;
    const slim = (phase: string, apiObj: unknown, watchObj?: unknown): void => callback(phase, NODE_EVENTS.has(phase) ? slimNode(apiObj as V1Node) : apiObj, watchObj);
    const controller = await super.watch(path, queryParams, slim, (err) => {
      if (err) failed = true;
      done(err);
    });
    // super.watch resolves once the response headers arrived, or after calling done(err).
    if (!failed) this.#hooks.established();
    return controller;
  }
}

export class KubeSource implements NodeSource {
  readonly #network: NetworkConfig;
  readonly #api: CoreV1Api;
  readonly #informer: ListWatch<V1Node>;
  readonly #annotations: WeftAnnotations;
  readonly #flannelCompat: boolean;
  readonly #setNetworkUnavailable: boolean;
  readonly #retry: { initialMs: number; maxMs: number };
  readonly #pollIntervalMs: number;
  readonly #readOptions: NodeReadOptions;
  readonly #log: Logger;
  readonly #table: NodeTable;
  readonly #lifetime = new AbortController();
  readonly #backoff: Backoff;
  #retryTimer: NodeJS.Timeout | undefined;
  #starting: Promise<void> | undefined;
  readonly #repairGuard: RepairGuardOptions | undefined;
  #keeper: KubeNodeKeeper | undefined;
  /** The agent's readiness as last told (keeper.setReady), for a keeper made by a later claim. */
  #ready = false;

  constructor(options: KubeSourceOptions) {
    this.#network = options.network;
    this.#annotations = weftAnnotations(options.annotationPrefix ?? DEFAULT_ANNOTATION_PREFIX);
    this.#flannelCompat = options.flannelCompat ?? false;
    this.#setNetworkUnavailable = options.setNetworkUnavailable ?? true;
    this.#retry = { initialMs: options.retryDelayMs ?? 1_000, maxMs: options.maxRetryDelayMs ?? 30_000 };
    this.#backoff = new Backoff(this.#retry);
    this.#pollIntervalMs = options.pollIntervalMs ?? 2_000;
    this.#repairGuard = options.repairGuard;
    this.#log = options.logger ?? rootLog.with({ source: "kube" });
    this.#table = new NodeTable(options.network, this.#log);
    this.#readOptions = {
      annotations: this.#annotations,
      flannelCompat: this.#flannelCompat,
      family: parseClusterNetworks(options.network)[4] ? 4 : 6,
    };

    let config = options.kubeConfig;
    if (!config) {
      config = new KubeConfig();
      config.loadFromDefault();
    }
    this.#api = config.makeApiClient(CoreV1Api);
    const watch = new TrackingWatch(config, {
      established: () => this.#healthy(),
      closed: () => this.#lifetime.signal.aborted,
    });
    const delayFn = (ms: number): Promise<void> => sleep(ms, this.#lifetime.signal).catch(() => undefined);
    this.#informer = new ListWatch<V1Node>(NODES_PATH, watch, () => this.#list(), false, undefined, undefined, { delayFn });
    this.#informer.on("add", (node) => this.#upsert(node));
    this.#informer.on("update", (node) => this.#upsert(node));
    this.#informer.on("delete", (node) => {
      if (node.metadata?.name === undefined) return;
      this.#table.delete(node.metadata.name);
      if (node.metadata.name === this.#keeper?.name) this.#keeper.gone();
    });
    this.#informer.on("error", (error) => this.#failed(error));
  }

  /** Starts the informer; resolves after the first list and watch attempt (synced, or its error in the snapshot). */
  async start(onChange: (snapshot: NodeSnapshot) => void, signal?: AbortSignal): Promise<void> {
    this.#throwIfClosed();
    signal?.addEventListener("abort", () => void this.close(), { once: true, signal: this.#lifetime.signal });
    this.#table.listen(onChange);
    this.#starting ??= this.#informer.start().catch((error: unknown) => this.#failed(error));
    return this.#starting;
  }

  /**
   * Waits for this node's Node and its spec.podCIDR, announces with its InternalIP (of the cluster network's
   * family) as the hint, and merge-patches the annotations that differ.
   */
  async claimLocal(name: string, announce: (hints: LocalHints) => LocalAnnouncement, signal?: AbortSignal): Promise<PeerNode> {
    this.#throwIfClosed();
    const abort = eitherSignal(this.#lifetime.signal, signal);
    const node = await this.#waitForPodCidr(name, abort);
    const address = parsePublicIp(internalIp(node, this.#readOptions.family));
    const local = checkAnnouncement(announce(address === undefined ? {} : { address }), name);
    const check = checkNode({ name: local.name, podCidrs: podCidrsOf(node) as string[], publicIp: local.publicIp, vtepMac: local.vtepMac }, parseClusterNetworks(this.#network));
    if (!check.ok) throw new SourceError("ERR_LOCAL_NODE", `Cannot use this node's pod CIDR: ${check.reason}`);

    const wanted = localAnnotations(local, { annotations: this.#annotations, flannelCompat: this.#flannelCompat, vni: this.#network.backend.vni });
    const current: Record<string, string> = node.metadata?.annotations ?? {};
    const changed = Object.fromEntries(Object.entries(wanted).filter(([key, value]) => current[key] !== value));
    let published = node;
    if (Object.keys(changed).length > 0) {
      published = await this.#retrying("Cannot annotate this node", abort, () =>
        this.#api.patchNode({ name: local.name, body: { metadata: { annotations: changed } } }, setHeaderOptions("Content-Type", PatchStrategy.MergePatch)));
      this.#log.info("Annotated this node", { node: local.name, annotations: Object.keys(changed) });
    }
    this.#keeper?.close();
    this.#keeper = new KubeNodeKeeper({
      api: this.#api, name: local.name, annotations: wanted, podCidrs: check.node.podCidrs,
      setNetworkUnavailable: this.#setNetworkUnavailable, retry: this.#retry, ...(this.#repairGuard ? { guard: this.#repairGuard } : {}),
      logger: this.#log, signal: this.#lifetime.signal, describe: describeKubeError,
    }, published);
    if (this.#ready) this.#keeper.setReady(true);
    return check.node;
  }

  /** This node's Node kept as claimed (kube-keeper.ts); NetworkUnavailable=False while the agent is ready. */
  readonly keeper: LocalRecordKeeper = {
    setReady: (ready) => {
      this.#ready = ready;
      this.#keeper?.setReady(ready);
    },
    status: () => this.#keeper?.status() ?? { repairs: {} },
  };

  snapshot(): NodeSnapshot {
    return this.#table.snapshot();
  }

  async close(): Promise<void> {
    if (this.#lifetime.signal.aborted) return;
    this.#lifetime.abort(new SourceError("ERR_SOURCE_CLOSED", "Node source closed"));
    clearTimeout(this.#retryTimer);
    this.#keeper?.close();
    await this.#informer.stop();
    this.#table.close();
    await this.#starting?.catch(() => undefined);
  }

  /** The informer's list function: one list, refused when empty while nodes are known. */
  async #list(): Promise<{ items: V1Node[]; metadata?: { resourceVersion?: string } }> {
    this.#throwIfClosed();
    // The informer lists until its first list succeeds (the table is synced after it), then only after a 410 Gone
    // (its resourceVersion left the server's window).
    if (this.#table.synced) this.#log.info("Watch expired (410 Gone): listing the nodes again", { nodes: this.#table.size });
    // In pages, each cut down before the next arrives: a 5,000-node list parsed whole peaks at tens of MB that
    // the process keeps long after (docs/benchmarks.md, agent scale with the real API server).
    const items: V1Node[] = [];
    let page: Awaited<ReturnType<CoreV1Api["listNode"]>>;
    let token: string | undefined;
    do {
      page = await this.#api.listNode({ limit: LIST_PAGE, ...(token ? { _continue: token } : {}) });
      for (const node of page.items) items.push(slimNode(node));
      token = page.metadata?._continue || undefined;
    } while (token);
    const list = { ...page, items };
    if (list.items.length === 0 && this.#table.size > 0) {
      throw new Error(`Refusing an empty node list after an interruption; keeping ${this.#table.size} nodes`);
    }
    // The informer applies the items right after this resolves, in the same task: mark synced after that.
    setImmediate(() => {
      if (this.#lifetime.signal.aborted) return;
      this.#table.markSynced();
      this.#healthy();
    });
    return list;
  }

  #upsert(node: V1Node): void {
    if (node.metadata?.name !== undefined && node.metadata.name === this.#keeper?.name) this.#keeper.observe(node);
    const record = nodeToRecord(node, this.#readOptions);
    this.#table.set(record.name === "(no name)" ? `(no name ${node.metadata?.uid ?? ""})` : record.name, record);
  }

  #healthy(): void {
    this.#backoff.reset();
    this.#table.setError(undefined);
  }

  /** The informer stopped on an error: report it, keep the nodes, start it again after a backoff. */
  #failed(error: unknown): void {
    if (this.#lifetime.signal.aborted) return;
    this.#table.setError(new Error(describeKubeError(error)));
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => {
      if (!this.#lifetime.signal.aborted) this.#informer.start().catch((e: unknown) => this.#failed(e));
    }, this.#backoff.next());
  }

  async #waitForPodCidr(name: string, abort: AbortSignal): Promise<V1Node> {
    const backoff = new Backoff(this.#retry);
    let waiting = "";
    for (;;) {
      abort.throwIfAborted();
      let node: V1Node | undefined;
      try {
        node = await raceAbort(this.#api.readNode({ name }), abort);
      } catch (error) {
        if (abort.aborted) throw abort.reason;
        if (statusCode(error) !== 404) {
          this.#log.warn("Cannot read this node; retrying", { node: name, error: describeKubeError(error) });
          this.#table.setError(new Error(`Cannot read this node: ${describeKubeError(error)}`));
          await sleep(backoff.next(), abort);
          continue;
        }
      }
      backoff.reset();
      if (node && podCidrsOf(node).length > 0) return node;
      const now = node ? "Waiting for this node's spec.podCIDR (kube-controller-manager --allocate-node-cidrs)" : "Waiting for this node's Node object";
      if (now !== waiting) this.#log.info(now, { node: name });
      waiting = now;
      await sleep(this.#pollIntervalMs, abort);
    }
  }

  async #retrying<T>(what: string, abort: AbortSignal, call: () => Promise<T>): Promise<T> {
    const backoff = new Backoff(this.#retry);
    for (;;) {
      abort.throwIfAborted();
      try {
        return await raceAbort(call(), abort);
      } catch (error) {
        if (abort.aborted) throw abort.reason;
        this.#log.warn(`${what}; retrying`, { error: describeKubeError(error) });
        // Shown in status and /readyz while claiming (an RBAC rule missing, say), cleared by the first good list.
        this.#table.setError(new Error(`${what}: ${describeKubeError(error)}`));
        await sleep(backoff.next(), abort);
      }
    }
  }

  #throwIfClosed(): void {
    if (this.#lifetime.signal.aborted) throw new SourceError("ERR_SOURCE_CLOSED", "Node source closed");
  }
}

function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** The HTTP status of an API error (ApiException.code) or a watch error (statusCode). */
function statusCode(error: unknown): number | undefined {
  const e = error as { code?: unknown; statusCode?: unknown } | undefined;
  if (typeof e?.code === "number") return e.code;
  if (typeof e?.statusCode === "number") return e.statusCode;
  return undefined;
}

/** "Kubernetes API: HTTP 403: nodes is forbidden: …", "fetch failed: connect ECONNREFUSED …", … */
function describeKubeError(error: unknown): string {
  const code = statusCode(error);
  if (code !== undefined) {
    const body = (error as { body?: unknown }).body;
    let message: unknown = (body as { message?: unknown } | undefined)?.message;
    if (message === undefined && typeof body === "string") {
      try {
        message = (JSON.parse(body) as { message?: unknown }).message;
      } catch {
        message = body.slice(0, 200);
      }
    }
    // A refused watch carries no body (client-node keeps only the status line): "Internal Server Error".
    if (message === undefined && error instanceof Error && error.message) message = error.message;
    return `Kubernetes API: HTTP ${code}${message ? `: ${String(message)}` : ""}`;
  }
  const cause = (error as { cause?: unknown } | undefined)?.cause;
  return cause instanceof Error ? `${describeError(error)}: ${describeError(cause)}` : describeError(error);
}
