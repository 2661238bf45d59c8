// The reconciler: desired state (from a Backend) vs the kernel's weft-owned state → minimal operations.
//
//   const desired = desiredState(backend, local, snapshot.nodes);
//   const { ops, errors } = reconcile(sock, desired);       // observe + plan + apply
//
// Run it on every change of the node list and on a ticker; at start-up the same call is the garbage collection
// of whatever a previous run (or flannel#2554-style departed nodes) left.
import type { NetlinkSocket } from "../../native/netlink";
import type { ApplyError } from "../errors";
import { apply } from "./apply";
import { observe, type ObserveOptions } from "./observe";
import { plan } from "./plan";
import type { DesiredState, Op } from "./state";

export { apply, type ApplyResult } from "./apply";
export type { Backend, LocalNode, PeerObjects, Underlay } from "./backend";
export { DEFAULT_BRIDGE, desiredState, PeerObjectsCache, type DesiredStateOptions } from "./desired";
export { observe, type ObserveOptions } from "./observe";
export { plan } from "./plan";
export { planChanges } from "./plan-changes";
export {
  describeOp, OP_ORDER, sortOps, type DesiredFdb, type DesiredNeighbour, type DesiredRoute, type DesiredState,
  type NodeObjects, type ObservedLink, type ObservedState, type Op, type OpKind, type SkippedNode, type VtepSpec,
} from "./state";
export { findUnderlay } from "./underlay";

export interface ReconcileResult {
  /** The plan that ran: empty when the kernel already matched. */
  ops: Op[];
  applied: Op[];
  errors: ApplyError[];
  /** How long observing and planning took, and applying. */
  planMs: number;
  applyMs: number;
}

/** Observes the socket's namespace, plans against `desired`, and applies the plan. */
export function reconcile(sock: NetlinkSocket, desired: DesiredState, options: ObserveOptions = {}): ReconcileResult {
  const started = performance.now();
  const ops = plan(desired, observe(sock, options));
  const planned = performance.now();
  const { applied, errors } = apply(sock, ops);
  return { ops, applied, errors, planMs: planned - started, applyMs: performance.now() - planned };
}
