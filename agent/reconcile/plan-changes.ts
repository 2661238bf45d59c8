// planChanges(previous, next) → ops: the plan from one desired state to the next, for a kernel known to hold
// exactly `previous` — the last run applied it without an error, and nothing else has run since. Only the nodes
// whose objects changed are looked at (desiredState hands out the same NodeObjects for an unchanged node), so
// 10% churn of 5,000 nodes costs 500 nodes' work instead of a dump of 15,000 kernel objects and a plan over all
// of them. The result is the one plan(next, <the kernel holding previous>) gives, as a set; a unit test checks
// that on random changes. It is undefined when the local device or the bridge changed: those need plan() against
// the kernel. The agent runs it for node list changes only; every resync is a full observe and plan.
import type { DesiredFdb, DesiredNeighbour, DesiredRoute, DesiredState, NodeObjects, Op } from "./state";
import { sortOps } from "./state";

interface Objects {
  neighbours: Map<string, DesiredNeighbour>;
  fdb: Map<string, DesiredFdb>;
  routes: Map<string, DesiredRoute>;
}

// The kernel's identity of each object, as plan() keys them: a neighbour by address (on the one VTEP), an FDB
// entry by MAC and destination, a route of ours in the main table by family and destination.
const fdbKey = (f: DesiredFdb): string => `${f.mac}|${f.dst}`;
const routeKey = (r: DesiredRoute): string => `${r.family}|${r.dst}`;

function collect(into: Objects, objects: NodeObjects): void {
  for (const n of objects.neighbours) into.neighbours.set(n.ip, n);
  for (const f of objects.fdb) into.fdb.set(fdbKey(f), f);
  for (const r of objects.routes) into.routes.set(routeKey(r), r);
}

export function planChanges(previous: DesiredState, next: DesiredState): Op[] | undefined {
  if (!sameLocal(previous, next)) return undefined;
  const gone: Objects = { neighbours: new Map(), fdb: new Map(), routes: new Map() };
  const come: Objects = { neighbours: new Map(), fdb: new Map(), routes: new Map() };
  for (const [name, objects] of next.byNode) {
    const before = previous.byNode.get(name);
    if (before === objects) continue;
    if (before) collect(gone, before);
    collect(come, objects);
  }
  for (const [name, before] of previous.byNode) {
    if (!next.byNode.has(name)) collect(gone, before);
  }

  // An object of a changed node is either new, or takes the place of one with its key (whichever node had it:
  // a pod CIDR handed from a departed node to a new one is one replace, not an add and a delete of the same
  // route), or is unchanged. What is left of the old objects is deleted. Keys are unique within a desired state
  // (desiredState skips overlapping pod CIDRs and duplicate MACs), so an unchanged node holds none of these keys.
  const ops: Op[] = [];
  for (const [key, neighbour] of come.neighbours) {
    const old = gone.neighbours.get(key);
    gone.neighbours.delete(key);
    if (old?.mac !== neighbour.mac || old.device !== neighbour.device) ops.push({ kind: "replace-neighbour", neighbour });
  }
  for (const [key, fdb] of come.fdb) {
    const old = gone.fdb.get(key);
    gone.fdb.delete(key);
    if (old?.device !== fdb.device) ops.push({ kind: "replace-fdb", fdb });
  }
  for (const [key, route] of come.routes) {
    const old = gone.routes.get(key);
    gone.routes.delete(key);
    const same = old !== undefined && old.gateway === route.gateway && old.device === route.device && old.onlink === route.onlink;
    if (!same) ops.push({ kind: "replace-route", route });
  }
  for (const r of gone.routes.values()) {
    ops.push({ kind: "delete-route", route: { dst: r.dst, family: r.family, gateway: r.gateway, device: r.device } });
  }
  for (const f of gone.fdb.values()) ops.push({ kind: "delete-fdb", device: f.device, mac: f.mac, dst: f.dst });
  for (const n of gone.neighbours.values()) ops.push({ kind: "delete-neighbour", device: n.device, ip: n.ip, mac: n.mac });
  return sortOps(ops);
}

/** The local device and the bridge are the same: nothing but remote nodes' objects differs. */
function sameLocal(a: DesiredState, b: DesiredState): boolean {
  return JSON.stringify([a.vtep, a.bridge]) === JSON.stringify([b.vtep, b.bridge]);
}
