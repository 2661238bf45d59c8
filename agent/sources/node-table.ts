// The state every source keeps: the current records by key (node name, etcd key), each checked once when it
// arrives (a record equal to the one already held keeps its check: a relist or a re-read of 5,000 unchanged
// nodes checks none of them again), and the snapshot derived from them. Changes are coalesced: a relist of 5,000
// nodes becomes one snapshot and one onChange call, made after the current task, and only when the snapshot
// actually differs.
// Rejections and errors are logged when they appear, change or go away, not on every recomputation.

import type { Logger } from "../log";
import type { NetworkConfig, NodeSnapshot } from "../model";
import { describeError } from "../errors";
import {
  checkNode, displayName, parseClusterNetworks, resolveConflicts,
  type ClusterNetworks, type NodeCheck, type NodeRecord, type NodeRejection,
} from "./validate";

export type SnapshotListener = (snapshot: NodeSnapshot) => void;

interface Entry {
  record: NodeRecord | NodeRejection;
  check: NodeCheck;
}

/** Freezes a snapshot and everything in it (the nodes are shared by the snapshots that contain them). */
function deepFreeze(snapshot: NodeSnapshot): NodeSnapshot {
  for (const node of snapshot.nodes) {
    Object.freeze(node.podCidrs);
    Object.freeze(node);
  }
  for (const rejection of snapshot.rejected) Object.freeze(rejection);
  Object.freeze(snapshot.nodes);
  Object.freeze(snapshot.rejected);
  return Object.freeze(snapshot);
}

/** Whether two records as read are the same (so the check of one holds for the other). */
function sameRecord(a: NodeRecord | NodeRejection, b: NodeRecord | NodeRejection): boolean {
  if (a.name !== b.name) return false;
  if ("reason" in a || "reason" in b) return "reason" in a && "reason" in b && a.reason === b.reason;
  if (a.publicIp !== b.publicIp || a.vtepMac !== b.vtepMac) return false;
  return Array.isArray(a.podCidrs) && Array.isArray(b.podCidrs) && sameStrings(a.podCidrs, b.podCidrs);
}

/**
 * Whether two snapshots say the same. Nodes are compared by identity first: the table keeps the record of an
 * unchanged node, so a re-read of 5,000 unchanged nodes compares 5,000 pointers.
 */
function sameSnapshot(a: NodeSnapshot, b: NodeSnapshot): boolean {
  if (a === b) return true;
  if (a.synced !== b.synced || a.error !== b.error || a.nodes.length !== b.nodes.length || a.rejected.length !== b.rejected.length) return false;
  for (let i = 0; i < a.nodes.length; i++) {
    const x = a.nodes[i]!;
    const y = b.nodes[i]!;
    if (x !== y && !sameRecord(x, y)) return false;
  }
  for (let i = 0; i < a.rejected.length; i++) {
    if (a.rejected[i]!.name !== b.rejected[i]!.name || a.rejected[i]!.reason !== b.rejected[i]!.reason) return false;
  }
  return true;
}

function sameStrings(x: readonly string[], y: readonly string[]): boolean {
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

export class NodeTable {
  readonly #networks: ClusterNetworks;
  readonly #log: Logger;
  #entries = new Map<string, Entry>();
  readonly #waiters = new Set<() => void>();
  #listener: SnapshotListener | undefined;
  #synced = false;
  #error: string | undefined;
  #localProblem: string | undefined;
  #dirty = true;
  #current: NodeSnapshot = deepFreeze({ synced: false, nodes: [], rejected: [] });
  /** What the listener last saw; the empty unsynced snapshot is not worth a call. */
  #published: NodeSnapshot = this.#current;
  #scheduled: NodeJS.Immediate | undefined;
  #loggedRejections = new Map<string, string>();
  #closed = false;

  constructor(network: NetworkConfig, logger: Logger) {
    this.#networks = parseClusterNetworks(network);
    this.#log = logger;
  }

  /** How many records (accepted or not) the table holds. */
  get size(): number {
    return this.#entries.size;
  }

  get synced(): boolean {
    return this.#synced;
  }

  /** Sets the one listener (the source's onChange). */
  listen(listener: SnapshotListener): void {
    this.#listener = listener;
    this.#schedule();
  }

  set(key: string, record: NodeRecord | NodeRejection): void {
    const held = this.#entries.get(key);
    if (held && sameRecord(held.record, record)) return;
    this.#entries.set(key, this.#entry(record));
    this.#changed();
  }

  delete(key: string): void {
    if (this.#entries.delete(key)) this.#changed();
  }

  /**
   * Replaces every record with a complete list and marks the table synced. An empty list never replaces a
   * non-empty one when `afterInterruption` (a relist after an error, a compaction, a watch expiry): an API that
   * answers "no nodes at all" right after failing is more likely broken than the cluster empty. Returns false,
   * and sets the error, when it refuses.
   */
  replaceAll(records: Iterable<readonly [string, NodeRecord | NodeRejection]>, options: { afterInterruption: boolean }): boolean {
    const entries = [...records];
    if (entries.length === 0 && this.#entries.size > 0 && options.afterInterruption) {
      this.setError(new Error(`Refusing an empty node list after an interruption; keeping ${this.#entries.size} nodes`));
      return false;
    }
    const previous = this.#entries;
    const next = new Map<string, Entry>();
    let changed = false;
    for (const [key, record] of entries) {
      const held = previous.get(key);
      if (held && sameRecord(held.record, record)) {
        next.set(key, held);
      } else {
        next.set(key, this.#entry(record));
        changed = true;
      }
    }
    // Every key of `next` held before with an equal record, and as many keys: the same set.
    if (next.size !== previous.size) changed = true;
    this.#entries = next;
    this.markSynced();
    if (changed) this.#changed();
    return true;
  }

  /** The first complete list has been applied: from now on the snapshot may be programmed. */
  markSynced(): void {
    if (this.#synced) return;
    this.#synced = true;
    this.#changed();
  }

  /** Records the current failure talking to the source (undefined: it works again). State is kept either way. */
  setError(error: unknown): void {
    const message = error === undefined ? undefined : describeError(error);
    if (message === this.#error) return;
    if (message === undefined) this.#log.info("Node source recovered", { nodes: this.#entries.size });
    else this.#log.warn("Node source failing; keeping the last known nodes", { error: message, nodes: this.#entries.size });
    this.#error = message;
    this.#changed();
  }

  get error(): string | undefined {
    return this.#error;
  }

  /**
   * Records a problem with this node's own claim (etcd: its lease was lost and its subnet taken). Shown in the
   * snapshot's error next to the source's, and not cleared when the source itself recovers.
   */
  setLocalProblem(problem: string | undefined): void {
    if (problem === this.#localProblem) return;
    this.#localProblem = problem;
    this.#changed();
  }

  snapshot(): NodeSnapshot {
    if (this.#dirty) {
      const { nodes, rejected } = resolveConflicts(Array.from(this.#entries.values(), (entry) => entry.check));
      const error = [this.#error, this.#localProblem].filter((e) => e !== undefined).join("; ");
      this.#current = deepFreeze({ synced: this.#synced, nodes, rejected, ...(error === "" ? {} : { error }) });
      this.#dirty = false;
      this.#logRejections();
    }
    // Frozen and shared rather than cloned: callers cannot change the table through it, and a caller may tell an
    // unchanged snapshot by identity (the agent skips a reconcile of the very snapshot it has just run).
    return this.#current;
  }

  /** Resolves with the first snapshot (now or later) that satisfies `predicate`. */
  waitFor(predicate: (snapshot: NodeSnapshot) => boolean, signal?: AbortSignal): Promise<NodeSnapshot> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (signal?.aborted) return finish(() => reject(signal.reason));
        if (this.#closed) return finish(() => reject(new Error("Node source closed")));
        const snapshot = this.snapshot();
        if (predicate(snapshot)) finish(() => resolve(snapshot));
      };
      const finish = (settle: () => void): void => {
        this.#waiters.delete(check);
        signal?.removeEventListener("abort", check);
        settle();
      };
      this.#waiters.add(check);
      signal?.addEventListener("abort", check, { once: true });
      check();
    });
  }

  /** Stops notifications and fails pending waits. Safe twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#scheduled) clearImmediate(this.#scheduled);
    this.#scheduled = undefined;
    this.#listener = undefined;
    for (const waiter of [...this.#waiters]) waiter();
  }

  #entry(record: NodeRecord | NodeRejection): Entry {
    const check: NodeCheck = "reason" in record ? { ok: false, name: displayName(record.name), reason: record.reason } : checkNode(record, this.#networks);
    return { record, check };
  }

  #changed(): void {
    this.#dirty = true;
    this.#schedule();
  }

  #schedule(): void {
    if (this.#closed || this.#scheduled) return;
    this.#scheduled = setImmediate(() => {
      this.#scheduled = undefined;
      this.#publish();
    });
  }

  #publish(): void {
    const snapshot = this.snapshot();
    for (const waiter of [...this.#waiters]) waiter();
    if (!this.#listener || sameSnapshot(snapshot, this.#published)) return;
    this.#published = snapshot;
    try {
      this.#listener(snapshot);
    } catch (error) {
      this.#log.error("Node source listener failed", { error });
    }
  }

  #logRejections(): void {
    const now = new Map(this.#current.rejected.map((r) => [r.name, r.reason]));
    for (const [name, reason] of now) {
      if (this.#loggedRejections.get(name) !== reason) this.#log.warn("Rejecting node", { node: name, reason });
    }
    for (const name of this.#loggedRejections.keys()) {
      if (!now.has(name)) this.#log.info("Node no longer rejected", { node: name });
    }
    this.#loggedRejections = now;
  }
}
