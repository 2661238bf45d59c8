// apply(sock, ops): executes a plan in OP_ORDER (see state.ts for why that order), one netlink request per
// operation. A failed operation does not stop the others: it is returned with its error, and the next resync
// plans it again. Deleting something that is already gone counts as done. The remote nodes' objects (all but a
// handful of a plan's operations) go through the socket's batch(): the kernel runs them in the same order, one by
// one, but a few system calls carry thousands of them.
import {
  addAddress, createExternalVxlan, createVxlan, deleteAddress, deleteFdb, deleteLink, deleteNeighbour, deleteRoute, getLink, NetlinkError,
  replaceFdb, replaceNeighbour, replaceRoute, RT_TABLE_MAIN, setLink, type NetlinkSocket,
} from "../../native/netlink";
import { WEFT_ROUTE_PROTOCOL } from "../../native/marks";
import { sortOps, type Op } from "./state";
import { ApplyError } from "../errors";

export interface ApplyResult {
  /** The operations that succeeded, in the order they ran. */
  applied: Op[];
  errors: ApplyError[];
}

class MissingDeviceError extends Error {
  constructor(name: string) {
    super(`device ${name} does not exist`);
    this.name = "MissingDeviceError";
  }
}

/** The errno names that mean "already gone" for each kind of deletion. */
const ALREADY_GONE = new Set(["ENOENT", "ESRCH", "ENODEV", "EADDRNOTAVAIL"]);

export function apply(sock: NetlinkSocket, ops: readonly Op[]): ApplyResult {
  const result: ApplyResult = { applied: [], errors: [] };
  const indexes = new Map<string, number>();
  const indexOf = (name: string): number => {
    let index = indexes.get(name);
    if (index === undefined) {
      index = getLink(sock, name)?.index;
      if (index === undefined) throw new MissingDeviceError(name);
      indexes.set(name, index);
    }
    return index;
  };

  const done = (op: Op, error: unknown): void => {
    if (error === undefined) {
      result.applied.push(op);
      return;
    }
    const gone =
      op.kind.startsWith("delete-") &&
      ((error instanceof NetlinkError && ALREADY_GONE.has(error.code)) || error instanceof MissingDeviceError);
    if (gone) result.applied.push(op);
    else result.errors.push(new ApplyError(op, error));
  };
  const runOne = (op: Op): void => {
    try {
      run(sock, op, indexOf, indexes);
      done(op, undefined);
    } catch (error) {
      done(op, error);
    }
  };

  const sorted = sortOps(ops);
  let i = 0;
  for (; i < sorted.length && !BATCHED.has(sorted[i]!.kind); i++) runOne(sorted[i]!);
  // The remote nodes' objects, contiguous in OP_ORDER: each makes exactly one request, queued in the batch.
  const batched: { op: Op; request: number; error?: unknown }[] = [];
  const outcomes = sock.batch(() => {
    for (; i < sorted.length && BATCHED.has(sorted[i]!.kind); i++) {
      const op = sorted[i]!;
      const request = sock.queued;
      try {
        run(sock, op, indexOf, indexes);
        batched.push({ op, request });
      } catch (error) {
        batched.push({ op, request: -1, error }); // refused before reaching the kernel (e.g. no such device)
      }
    }
  });
  for (const { op, request, error } of batched) done(op, request < 0 ? error : outcomes[request]);
  for (; i < sorted.length; i++) runOne(sorted[i]!);
  return result;
}

/** The kinds of operation that make one request each and are batched. */
const BATCHED = new Set<Op["kind"]>(["replace-neighbour", "replace-fdb", "replace-route", "delete-route", "delete-fdb", "delete-neighbour"]);

function run(sock: NetlinkSocket, op: Op, indexOf: (name: string) => number, indexes: Map<string, number>): void {
  switch (op.kind) {
    case "recreate-vtep":
    case "create-vtep": {
      const s = op.spec;
      indexes.delete(s.name);
      if (op.kind === "recreate-vtep") {
        try {
          deleteLink(sock, s.name);
        } catch (error) {
          if (!(error instanceof NetlinkError && error.code === "ENODEV")) throw error;
        }
      }
      if (s.external) createExternalVxlan(sock, { name: s.name, port: s.port, mtu: s.mtu, mac: s.mac });
      else createVxlan(sock, { name: s.name, vni: s.vni, port: s.port, local: s.local, underlayIndex: s.underlayIndex, learning: false, mtu: s.mtu, mac: s.mac });
      return;
    }
    case "set-link":
      setLink(sock, indexOf(op.name), op.changes);
      return;
    case "add-address":
      addAddress(sock, indexOf(op.device), op.cidr, { replace: true, noDad: op.cidr.includes(":") });
      return;
    case "delete-address":
      deleteAddress(sock, indexOf(op.device), op.cidr);
      return;
    case "replace-neighbour": {
      const n = op.neighbour;
      replaceNeighbour(sock, { index: indexOf(n.device), ip: n.ip, mac: n.mac });
      return;
    }
    case "replace-fdb": {
      const f = op.fdb;
      replaceFdb(sock, { index: indexOf(f.device), mac: f.mac, dst: f.dst });
      return;
    }
    case "replace-route": {
      const r = op.route;
      replaceRoute(sock, {
        dst: r.dst, family: r.family, gateway: r.gateway, index: indexOf(r.device), onlink: r.onlink, protocol: WEFT_ROUTE_PROTOCOL,
        table: RT_TABLE_MAIN,
      });
      return;
    }
    case "delete-route":
      // With the protocol, the kernel deletes only a route of ours, whatever else has this destination.
      deleteRoute(sock, { dst: op.route.dst, family: op.route.family, protocol: WEFT_ROUTE_PROTOCOL, table: RT_TABLE_MAIN });
      return;
    case "delete-fdb":
      deleteFdb(sock, { index: indexOf(op.device), mac: op.mac, dst: op.dst });
      return;
    case "delete-neighbour":
      deleteNeighbour(sock, { index: indexOf(op.device), ip: op.ip });
      return;
    case "delete-link":
      indexes.delete(op.name);
      deleteLink(sock, op.name);
      return;
  }
}
