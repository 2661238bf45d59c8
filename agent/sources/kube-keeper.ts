// Keeps this node's Node object as the agent claimed it, for as long as the agent runs. The kube source's watch
// sees its own Node like any other; each version of it is compared with what this agent publishes:
//   - the annotations (weft's, and flannel's with flannelCompat) → merge-patched back when one differs or is gone;
//   - while the agent is ready, NetworkUnavailable=False → strategic-merge-patched back when missing or not False;
//   - deleted → a problem ("gone") until it is re-created, then everything is published again;
//   - spec.podCIDR no longer the one this agent runs with → a problem (its pods use the old subnet: restart).
// Repairs start on the watch event (well within a second), retry with backoff on errors, and are bounded by a
// RepairGuard so that two writers never patch each other forever. Each repair is logged with what differed.

import { PatchStrategy, setHeaderOptions, type CoreV1Api, type V1Node } from "@kubernetes/client-node";
import type { Logger } from "../log";
import type { LocalRecordKeeper, LocalRecordStatus } from "../model";
import { Backoff } from "./retry";
import { contestedProblem, RepairGuard, type RepairGuardOptions } from "./repair-guard";
import { podCidrsOf } from "./kube-node";

export interface KubeNodeKeeperOptions {
  api: CoreV1Api;
  name: string;
  /** The annotations this agent publishes. */
  annotations: Record<string, string>;
  /** The pod CIDRs this agent claimed and runs with. */
  podCidrs: readonly string[];
  /** Keep NetworkUnavailable=False while ready. */
  setNetworkUnavailable: boolean;
  retry: { initialMs: number; maxMs: number };
  guard?: RepairGuardOptions;
  logger: Logger;
  /** Aborted when the source closes. */
  signal: AbortSignal;
  /** Describes an API error for logs and status. */
  describe(error: unknown): string;
}

type RepairKind = "annotations" | "condition";

/** What differs on the Node now: annotation → [found, wanted]; the condition as found ("missing", "True", …). */
interface Differences {
  annotations: Record<string, [string | undefined, string]>;
  condition?: string;
}

export class KubeNodeKeeper implements LocalRecordKeeper {
  readonly #o: KubeNodeKeeperOptions;
  readonly #guard: RepairGuard;
  readonly #backoff: Backoff;
  readonly #repairs: Record<string, number> = {};
  #lastRepair: LocalRecordStatus["lastRepair"];
  /** The latest version of the Node seen (watch or a patch's answer); null once deleted. */
  #node: V1Node | null | undefined;
  /** The resourceVersion of our last patch's answer: watch events older than it are stale. */
  #patchedVersion: bigint | undefined;
  #ready = false;
  #repairing = false;
  #again = false;
  #timer: NodeJS.Timeout | undefined;
  #error: string | undefined;
  #contested: string | undefined;
  #podCidrProblem: string | undefined;
  #closed = false;
  /** NetworkUnavailable=False was set once: setting it again is a repair (the first time is the announcement). */
  #conditionSet = false;

  constructor(options: KubeNodeKeeperOptions, claimed: V1Node) {
    this.#o = options;
    this.#guard = new RepairGuard(options.guard);
    this.#backoff = new Backoff(options.retry);
    this.#node = claimed;
    options.signal.addEventListener("abort", () => this.close(), { once: true });
  }

  get name(): string {
    return this.#o.name;
  }

  /** Stops repairing (the source closed, or a new claim replaced this keeper). */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }

  /** A version of this node's Node from the watch (added or modified). */
  observe(node: V1Node): void {
    const version = resourceVersion(node);
    if (version !== undefined && this.#patchedVersion !== undefined && version < this.#patchedVersion && node.metadata?.uid === this.#node?.metadata?.uid) return;
    const previous = this.#node;
    if (previous === null || (previous?.metadata?.uid !== undefined && node.metadata?.uid !== previous.metadata.uid)) {
      this.#o.logger.warn("This node's Node object was re-created; publishing this node's annotations again", { node: this.#o.name });
      this.#guard.reset();
      this.#patchedVersion = undefined;
    }
    this.#node = node;
    this.#check();
  }

  /** This node's Node was deleted. The datapath stays; the problem shows until it is re-created. */
  gone(): void {
    if (this.#node === null) return;
    this.#node = null;
    this.#o.logger.warn("This node's Node object was deleted; keeping the datapath until it is re-created", { node: this.#o.name });
  }

  setReady(ready: boolean): void {
    if (ready === this.#ready) return;
    this.#ready = ready;
    if (ready) this.#check();
  }

  status(): LocalRecordStatus {
    const problem = this.#node === null
      ? `this node's Node object ${this.#o.name} is gone (deleted, not re-created yet); the datapath is kept`
      : [this.#podCidrProblem, this.#contested, this.#error].filter((p) => p !== undefined).join("; ") || undefined;
    return {
      ...(problem === undefined ? {} : { problem }),
      repairs: { ...this.#repairs },
      ...(this.#lastRepair === undefined ? {} : { lastRepair: this.#lastRepair }),
    };
  }

  #differences(node: V1Node): Differences {
    const current = node.metadata?.annotations ?? {};
    const annotations: Differences["annotations"] = {};
    for (const [key, wanted] of Object.entries(this.#o.annotations)) {
      if (current[key] !== wanted) annotations[key] = [current[key], wanted];
    }
    const differences: Differences = { annotations };
    if (this.#ready && this.#o.setNetworkUnavailable) {
      const condition = node.status?.conditions?.find((c) => c.type === "NetworkUnavailable");
      if (condition?.status !== "False") differences.condition = condition ? `status ${condition.status}` : "missing";
      else this.#conditionSet = true;
    }
    return differences;
  }

  /** Compares the latest Node with what we publish; starts a repair when something differs. */
  #check(): void {
    if (this.#closed) return;
    const node = this.#node;
    if (!node) return;
    const cidrs = podCidrsOf(node);
    this.#podCidrProblem = cidrs.length > 0 && cidrs.join(",") !== this.#o.podCidrs.join(",")
      ? `this node's spec.podCIDR is now ${cidrs.join(",")}, but this agent runs with ${this.#o.podCidrs.join(",")}: restart the agent`
      : undefined;
    const differences = this.#differences(node);
    if (this.#due(differences).length === 0) {
      this.#error = undefined;
      if (this.#contested !== undefined && this.#dueKinds(differences).length === 0) this.#contested = undefined;
      return;
    }
    if (this.#repairing) {
      this.#again = true;
      return;
    }
    void this.#repair();
  }

  /** The kinds that differ, contested or not. */
  #dueKinds(differences: Differences): RepairKind[] {
    const kinds: RepairKind[] = [];
    if (Object.keys(differences.annotations).length > 0) kinds.push("annotations");
    if (differences.condition !== undefined) kinds.push("condition");
    return kinds;
  }

  /** The kinds that differ and may be repaired now; contested ones wait (a timer checks again after the pause). */
  #due(differences: Differences): RepairKind[] {
    const due: RepairKind[] = [];
    for (const kind of this.#dueKinds(differences)) {
      const wait = this.#guard.waitMs(kind);
      if (wait === 0) {
        due.push(kind);
        continue;
      }
      this.#contested = contestedProblem(describeKind(kind, differences), wait);
      this.#later(wait);
    }
    return due;
  }

  async #repair(): Promise<void> {
    this.#repairing = true;
    try {
      const node = this.#node;
      if (!node) return;
      const differences = this.#differences(node);
      for (const kind of this.#due(differences)) {
        if (this.#closed) return;
        // Decided before the patch: the watch may show our own write (and so set #conditionSet) before its answer.
        const announcing = kind === "condition" && !this.#conditionSet;
        const answer = kind === "annotations" ? await this.#patchAnnotations(differences) : await this.#patchCondition();
        this.#accept(answer);
        if (announcing) {
          this.#conditionSet = true;
          this.#o.logger.info("Set this node's NetworkUnavailable condition to False", { node: this.#o.name });
          continue;
        }
        const detail = kind === "annotations"
          ? Object.entries(differences.annotations).map(([key, [found, wanted]]) => `${key}: ${found === undefined ? "missing" : JSON.stringify(found)} → ${JSON.stringify(wanted)}`).join(", ")
          : `NetworkUnavailable ${differences.condition} → False`;
        this.#repairs[kind] = (this.#repairs[kind] ?? 0) + 1;
        this.#lastRepair = { at: new Date().toISOString(), what: kind, detail };
        this.#o.logger.warn(`Repaired this node's ${kind === "annotations" ? "annotations" : "NetworkUnavailable condition"}`, { node: this.#o.name, differed: detail });
        if (this.#guard.record(kind)) {
          const wait = this.#guard.waitMs(kind);
          this.#contested = contestedProblem(describeKind(kind, differences), wait);
          this.#o.logger.error("Another writer keeps changing this node's record; pausing repairs instead of fighting it", { node: this.#o.name, what: kind, pauseMs: wait });
        }
      }
      this.#error = undefined;
      this.#backoff.reset();
    } catch (error) {
      if (this.#closed) return;
      const message = this.#o.describe(error);
      this.#error = `cannot repair this node's Node: ${message}`;
      this.#o.logger.warn("Cannot repair this node's Node; retrying", { node: this.#o.name, error: message });
      this.#later(this.#backoff.next());
    } finally {
      this.#repairing = false;
      if (this.#again) {
        this.#again = false;
        this.#check();
      }
    }
  }

  #patchAnnotations(differences: Differences): Promise<V1Node> {
    const body = { metadata: { annotations: Object.fromEntries(Object.entries(differences.annotations).map(([key, [, wanted]]) => [key, wanted])) } };
    return this.#o.api.patchNode({ name: this.#o.name, body }, setHeaderOptions("Content-Type", PatchStrategy.MergePatch));
  }

  #patchCondition(): Promise<V1Node> {
    const now = new Date().toISOString();
    const condition = { type: "NetworkUnavailable", status: "False", reason: "WeftIsUp", message: "weft is running on this node", lastTransitionTime: now, lastHeartbeatTime: now };
    // Strategic merge: conditions merge by type (a merge patch would replace the whole list).
    return this.#o.api.patchNodeStatus({ name: this.#o.name, body: { status: { conditions: [condition] } } }, setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch));
  }

  /** A patch's answer is the newest version we know: watch events older than it are ignored. */
  #accept(node: V1Node): void {
    if (this.#node === null) return; // deleted meanwhile: wait for the watch to show it again
    this.#node = node;
    this.#patchedVersion = resourceVersion(node);
  }

  #later(ms: number): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#check(), ms);
  }
}

function describeKind(kind: RepairKind, differences: Differences): string {
  return kind === "annotations" ? `annotations (${Object.keys(differences.annotations).join(", ")})` : "NetworkUnavailable condition";
}

function resourceVersion(node: V1Node): bigint | undefined {
  const text = node.metadata?.resourceVersion;
  return text !== undefined && /^\d+$/.test(text) ? BigInt(text) : undefined;
}
