// What the debug view and /metrics report about reconcile runs: counts, the last run, recent errors, and when each
// peer's objects last changed. The agent records each run here; nothing in it steers the loop.
import type { Op, ReconcileResult } from "../reconcile";
import { describeOp } from "../reconcile";
import { Histogram } from "prom-client";
import { MAX_LISTED, type AgentState, type ReconcileRun } from "./state";

/** Reconcile duration buckets, seconds: a run is a few netlink dumps, from ~1 ms to seconds at 5,000 nodes. */
export const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The reconcile duration histogram: cumulative bucket counts, constant memory however long the agent runs. */
export function durationHistogram(): Histogram {
  return new Histogram({ name: "weft_reconcile_duration_seconds", help: "Duration of reconcile runs (observe, plan, apply).", buckets: DURATION_BUCKETS, registers: [] });
}

const KEEP_ERRORS = 20;

export interface RunRecord {
  trigger: string;
  mode: "full" | "incremental";
  result: ReconcileResult;
  /** The run's phases, ms: building the desired state, the plan (with a full run's kernel dump), applying it. */
  phasesMs: { desired: number; plan: number; apply: number };
  durationMs: number;
  /** The names of the nodes the run's list holds, to forget departed ones (full runs only). */
  nodeNames?: () => Iterable<string>;
}

export class RunStats {
  readonly durations = durationHistogram();
  #runs = 0;
  #fullRuns = 0;
  #runErrors = 0;
  #opsApplied: Record<string, number> = {};
  #lastRun: ReconcileRun | undefined;
  #recentErrors: { at: string; error: string }[] = [];
  #lastChange = new Map<string, string>();

  get lastRun(): ReconcileRun | undefined {
    return this.#lastRun;
  }

  /** A run that read the whole kernel state (start, resync, after an error). */
  countFullRun(): void {
    this.#fullRuns++;
  }

  record(run: RunRecord): ReconcileRun {
    const { result } = run;
    const at = new Date().toISOString();
    for (const op of result.applied) {
      this.#opsApplied[op.kind] = (this.#opsApplied[op.kind] ?? 0) + 1;
      const node = nodeOf(op);
      if (node !== undefined) this.#lastChange.set(node, at);
    }
    // Forget departed nodes (on full runs: the list of names may be long, and they happen every resync).
    if (run.mode === "full" && run.nodeNames) {
      const known = new Set(run.nodeNames());
      if (this.#lastChange.size > known.size) for (const name of this.#lastChange.keys()) if (!known.has(name)) this.#lastChange.delete(name);
    }
    this.#runs++;
    this.durations.observe(run.durationMs / 1000);
    if (result.errors.length > 0) {
      this.#runErrors++;
      for (const error of result.errors) this.noteError(error.message);
    }
    this.#lastRun = {
      at, trigger: run.trigger, mode: run.mode, durationMs: round(run.durationMs),
      phasesMs: { desired: round(run.phasesMs.desired), plan: round(run.phasesMs.plan), apply: round(run.phasesMs.apply) },
      operations: result.ops.length, failed: result.errors.length,
      planned: result.ops.slice(0, MAX_LISTED).map(describeOp), errors: result.errors.slice(0, MAX_LISTED).map((e) => e.message),
    };
    return this.#lastRun;
  }

  noteError(error: string): void {
    this.#recentErrors.push({ at: new Date().toISOString(), error });
    if (this.#recentErrors.length > KEEP_ERRORS) this.#recentErrors.shift();
  }

  lastChange(node: string): string | undefined {
    return this.#lastChange.get(node);
  }

  view(): AgentState["reconcile"] {
    return {
      runs: this.#runs, fullRuns: this.#fullRuns, runsWithErrors: this.#runErrors, opsApplied: { ...this.#opsApplied },
      ...(this.#lastRun === undefined ? {} : { lastRun: this.#lastRun }), recentErrors: [...this.#recentErrors],
    };
  }
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
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
