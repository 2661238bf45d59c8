// plan(desired, observed): pure. A fake kernel (applyToObserved) plays the operations back onto the observed
// state, so that "apply the plan, plan again → nothing" can be checked without root.
import { describe, expect, it } from "vitest";
import { HostGwBackend, VxlanBackend } from "../../agent/backends";
import type { PeerNode } from "../../agent/model";
import {
  describeOp, desiredState, PeerObjectsCache, plan, planChanges, sortOps, OP_ORDER, type DesiredState, type LocalNode, type ObservedState, type Op,
} from "../../agent/reconcile";
import { WEFT_ROUTE_PROTOCOL } from "../../native/marks";
import { NUD_PERMANENT, NTF_SELF, RTPROT_KERNEL, RTPROT_STATIC, RT_TABLE_MAIN, RTN_UNICAST } from "../../native/netlink";

const MAC_A = "02:aa:00:00:00:01";
const MAC_B = "02:bb:00:00:00:02";
const MAC_C = "02:cc:00:00:00:03";
const UNDERLAY_INDEX = 2;

const nodeA: PeerNode = { name: "node-a", podCidrs: ["10.244.1.0/24"], publicIp: "192.168.1.1", vtepMac: MAC_A };
const nodeB: PeerNode = { name: "node-b", podCidrs: ["10.244.2.0/24"], publicIp: "192.168.1.2", vtepMac: MAC_B };
const nodeC: PeerNode = { name: "node-c", podCidrs: ["10.244.3.0/24"], publicIp: "192.168.1.3", vtepMac: MAC_C };
const local: LocalNode = { node: nodeA, underlay: { index: UNDERLAY_INDEX, name: "eth0", mtu: 1500, subnets: ["192.168.1.0/24"] } };

const vxlan = new VxlanBackend({ mac: MAC_A });

function emptyObserved(): ObservedState {
  return {
    vteps: [],
    linkIndexes: { lo: 1, eth0: UNDERLAY_INDEX },
    neighbours: [],
    fdb: [],
    routes: [],
  };
}

/** A small model of the kernel: what each operation does to the weft-owned state. */
function applyToObserved(observed: ObservedState, ops: readonly Op[]): ObservedState {
  const state: ObservedState = structuredClone(observed);
  let nextIndex = Math.max(10, ...Object.values(state.linkIndexes)) + 1;
  const indexOf = (name: string) => {
    const index = state.linkIndexes[name];
    if (index === undefined) throw new Error(`fake kernel: no device ${name}`);
    return index;
  };
  const removeLink = (name: string) => {
    const index = state.linkIndexes[name];
    state.vteps = state.vteps.filter((l) => l.name !== name);
    delete state.linkIndexes[name];
    state.neighbours = state.neighbours.filter((n) => n.index !== index);
    state.fdb = state.fdb.filter((e) => e.index !== index);
    state.routes = state.routes.filter((r) => r.index !== index);
  };
  for (const op of ops) {
    switch (op.kind) {
      case "recreate-vtep":
      case "create-vtep": {
        if (op.kind === "recreate-vtep") removeLink(op.spec.name);
        const s = op.spec;
        const index = nextIndex++;
        state.linkIndexes[s.name] = index;
        state.vteps.push({
          index, name: s.name, kind: "vxlan", mtu: s.mtu, mac: s.mac, up: false, flags: 0, addresses: [],
          vxlan: s.external ? { vni: 0, port: s.port, learning: false, external: true } : { vni: s.vni, port: s.port, local: s.local, learning: false, underlayIndex: s.underlayIndex, external: false },
        });
        break;
      }
      case "set-link": {
        const link = state.vteps.find((l) => l.name === op.name) ?? (state.bridge?.name === op.name ? state.bridge : undefined);
        if (!link) throw new Error(`fake kernel: no device ${op.name}`);
        // As neigh_changeaddr: a new MAC flushes the device's neighbours, permanent ones included.
        if (op.changes.mac !== undefined && op.changes.mac !== link.mac) state.neighbours = state.neighbours.filter((n) => n.index !== link.index);
        Object.assign(link, op.changes);
        break;
      }
      case "add-address":
        state.vteps.find((l) => l.name === op.device)!.addresses.push(op.cidr);
        break;
      case "delete-address": {
        const link = state.vteps.find((l) => l.name === op.device)!;
        link.addresses = link.addresses.filter((a) => a !== op.cidr);
        break;
      }
      case "replace-neighbour": {
        const n = op.neighbour;
        const index = indexOf(n.device);
        state.neighbours = state.neighbours.filter((x) => !(x.index === index && x.ip === n.ip));
        state.neighbours.push({ index, family: n.ip.includes(":") ? 6 : 4, ip: n.ip, mac: n.mac, state: NUD_PERMANENT, flags: 0 });
        break;
      }
      case "replace-fdb": {
        const f = op.fdb;
        const index = indexOf(f.device);
        const existing = state.fdb.find((e) => e.index === index && e.mac === f.mac);
        if (existing) existing.dst = f.dst;
        else state.fdb.push({ index, mac: f.mac, dst: f.dst, state: NUD_PERMANENT, flags: NTF_SELF });
        break;
      }
      case "replace-route": {
        const r = op.route;
        state.routes = state.routes.filter((x) => !(x.family === r.family && x.dst === r.dst));
        state.routes.push({
          dst: r.dst, family: r.family, gateway: r.gateway, index: indexOf(r.device), ...(r.onlink ? { onlink: true } : {}),
          protocol: WEFT_ROUTE_PROTOCOL, table: RT_TABLE_MAIN, scope: 0, type: RTN_UNICAST,
        });
        break;
      }
      case "delete-route":
        state.routes = state.routes.filter((x) => !(x.family === op.route.family && x.dst === op.route.dst && x.protocol === WEFT_ROUTE_PROTOCOL));
        break;
      case "delete-fdb":
        state.fdb = state.fdb.filter((e) => !(e.index === state.linkIndexes[op.device] && e.mac === op.mac && e.dst === op.dst));
        break;
      case "delete-neighbour":
        state.neighbours = state.neighbours.filter((n) => !(n.index === state.linkIndexes[op.device] && n.ip === op.ip));
        break;
      case "delete-link":
        removeLink(op.name);
        break;
    }
  }
  return state;
}

function converged(desired: DesiredState, from: ObservedState = emptyObserved()): ObservedState {
  const observed = applyToObserved(from, plan(desired, from));
  expect(plan(desired, observed)).toEqual([]);
  return observed;
}

const kinds = (ops: Op[]) => ops.map((op) => op.kind);

describe("plan (vxlan)", () => {
  const desired = desiredState(vxlan, local, [nodeA, nodeB, nodeC]);

  it("programs everything from an empty kernel: device first, then neighbour → FDB → route", () => {
    const ops = plan(desired, emptyObserved());
    expect(kinds(ops)).toEqual([
      "create-vtep", "set-link", "add-address",
      "replace-neighbour", "replace-neighbour", "replace-fdb", "replace-fdb", "replace-route", "replace-route",
    ]);
    expect(ops[0]).toEqual({
      kind: "create-vtep",
      spec: { name: "weft.1", vni: 1, port: 8472, local: "192.168.1.1", underlayIndex: UNDERLAY_INDEX, mtu: 1450, mac: MAC_A, addresses: ["10.244.1.0/32"], external: false },
    });
    expect(ops[1]).toEqual({ kind: "set-link", name: "weft.1", changes: { up: true } });
    expect(ops[3]).toEqual({ kind: "replace-neighbour", neighbour: { node: "node-b", device: "weft.1", ip: "10.244.2.0", mac: MAC_B } });
    expect(ops[5]).toEqual({ kind: "replace-fdb", fdb: { node: "node-b", device: "weft.1", mac: MAC_B, dst: "192.168.1.2" } });
    expect(ops[7]).toEqual({
      kind: "replace-route",
      route: { node: "node-b", dst: "10.244.2.0/24", family: 4, gateway: "10.244.2.0", device: "weft.1", onlink: true },
    });
  });

  it("plans nothing once the kernel matches", () => {
    const observed = converged(desired);
    expect(observed.routes).toHaveLength(2);
    expect(plan(desired, observed)).toEqual([]);
  });

  it("replaces the neighbour and removes the old FDB entry when a node's VTEP MAC changes", () => {
    const observed = converged(desired);
    const newMac = "02:bb:00:00:00:99";
    const changed = desiredState(vxlan, local, [nodeB, { ...nodeC, vtepMac: newMac }]);
    const ops = plan(changed, observed);
    expect(ops).toEqual([
      { kind: "replace-neighbour", neighbour: { node: "node-c", device: "weft.1", ip: "10.244.3.0", mac: newMac } },
      { kind: "replace-fdb", fdb: { node: "node-c", device: "weft.1", mac: newMac, dst: "192.168.1.3" } },
      { kind: "delete-fdb", device: "weft.1", mac: MAC_C, dst: "192.168.1.3" },
    ]);
    converged(changed, applyToObserved(observed, ops));
  });

  it("points the FDB entry at a node's new public IP", () => {
    const observed = converged(desired);
    const moved = desiredState(vxlan, local, [nodeB, { ...nodeC, publicIp: "192.168.1.33" }]);
    const ops = plan(moved, observed);
    expect(ops).toEqual([
      { kind: "replace-fdb", fdb: { node: "node-c", device: "weft.1", mac: MAC_C, dst: "192.168.1.33" } },
      { kind: "delete-fdb", device: "weft.1", mac: MAC_C, dst: "192.168.1.3" },
    ]);
  });

  it("removes a departed node's route, FDB entry and neighbour, in that order", () => {
    const observed = converged(desired);
    const ops = plan(desiredState(vxlan, local, [nodeB]), observed);
    expect(ops).toEqual([
      { kind: "delete-route", route: { dst: "10.244.3.0/24", family: 4, gateway: "10.244.3.0", device: "weft.1" } },
      { kind: "delete-fdb", device: "weft.1", mac: MAC_C, dst: "192.168.1.3" },
      { kind: "delete-neighbour", device: "weft.1", ip: "10.244.3.0", mac: MAC_C },
    ]);
  });

  it("collects everything a previous run left when no node remains (start-up garbage collection)", () => {
    const observed = converged(desired);
    const ops = plan(desiredState(vxlan, local, []), observed);
    expect(kinds(ops)).toEqual(["delete-route", "delete-route", "delete-fdb", "delete-fdb", "delete-neighbour", "delete-neighbour"]);
  });

  it("restores only a route deleted by hand", () => {
    const observed = converged(desired);
    observed.routes = observed.routes.filter((r) => r.dst !== "10.244.2.0/24");
    expect(plan(desired, observed)).toEqual([
      {
        kind: "replace-route",
        route: { node: "node-b", dst: "10.244.2.0/24", family: 4, gateway: "10.244.2.0", device: "weft.1", onlink: true },
      },
    ]);
  });

  it("replaces a route of ours that was changed by hand (gateway, device, onlink)", () => {
    for (const change of [{ gateway: "10.244.2.9" }, { index: UNDERLAY_INDEX }, { onlink: undefined }]) {
      const observed = converged(desired);
      Object.assign(observed.routes.find((r) => r.dst === "10.244.2.0/24")!, change);
      expect(kinds(plan(desired, observed))).toEqual(["replace-route"]);
    }
  });

  it("ignores routes without weft's protocol, even for pod CIDRs nobody has", () => {
    const observed = converged(desired);
    observed.routes.push(
      { dst: "10.244.9.0/24", family: 4, gateway: "192.168.1.9", index: UNDERLAY_INDEX, protocol: RTPROT_STATIC, table: RT_TABLE_MAIN, scope: 0, type: RTN_UNICAST },
      { dst: "192.168.1.0/24", family: 4, index: UNDERLAY_INDEX, protocol: RTPROT_KERNEL, table: RT_TABLE_MAIN, scope: 253, type: RTN_UNICAST },
    );
    expect(plan(desired, observed)).toEqual([]);
  });

  it("replaces a neighbour that points elsewhere, or that observe() did not report (not permanent)", () => {
    const observed = converged(desired);
    observed.neighbours.find((n) => n.ip === "10.244.2.0")!.mac = "02:00:00:00:00:00";
    expect(kinds(plan(desired, observed))).toEqual(["replace-neighbour"]);
    const resolved = converged(desired);
    resolved.neighbours = resolved.neighbours.filter((n) => n.ip !== "10.244.2.0");
    expect(kinds(plan(desired, resolved))).toEqual(["replace-neighbour"]);
  });

  it("fixes the VTEP's MTU, MAC, state and addresses in place", () => {
    const observed = converged(desired);
    const vtep = observed.vteps[0]!;
    Object.assign(vtep, { mtu: 1400, up: false, mac: "02:00:00:00:00:01", addresses: ["10.244.1.0/32", "10.244.77.0/32"] });
    expect(plan(desired, observed)).toEqual([
      { kind: "set-link", name: "weft.1", changes: { mtu: 1450, mac: MAC_A, up: true } },
      { kind: "delete-address", device: "weft.1", cidr: "10.244.77.0/32" },
      // A new MAC makes the kernel flush the device's neighbours, permanent ones included: they are re-added.
      { kind: "replace-neighbour", neighbour: { node: "node-b", device: "weft.1", ip: "10.244.2.0", mac: MAC_B } },
      { kind: "replace-neighbour", neighbour: { node: "node-c", device: "weft.1", ip: "10.244.3.0", mac: MAC_C } },
    ]);
    converged(desired, applyToObserved(observed, plan(desired, observed)));
    Object.assign(observed.vteps[0]!, { mtu: 1400, mac: MAC_A, up: true, addresses: ["10.244.1.0/32"] });
    expect(plan(desired, observed)).toEqual([{ kind: "set-link", name: "weft.1", changes: { mtu: 1450 } }]);
  });

  it("recreates the VTEP when its tunnel parameters differ, and re-adds its objects without deleting them", () => {
    const observed = converged(desired);
    observed.vteps[0]!.vxlan!.port = 4789;
    const ops = plan(desired, observed);
    expect(kinds(ops)).toEqual([
      "recreate-vtep", "set-link", "add-address",
      "replace-neighbour", "replace-neighbour", "replace-fdb", "replace-fdb", "replace-route", "replace-route",
    ]);
    converged(desired, applyToObserved(observed, ops));
  });

  it("deletes a weft.* link that is not the VTEP (an old VNI) after moving its routes", () => {
    const observed = converged(desired);
    const otherVni = desiredState(new VxlanBackend({ vni: 2, mac: MAC_A }), local, [nodeB, nodeC]);
    const ops = plan(otherVni, observed);
    expect(ops[0]).toMatchObject({ kind: "create-vtep", spec: { name: "weft.2" } });
    expect(ops.at(-1)).toEqual({ kind: "delete-link", name: "weft.1" });
    expect(ops.filter((op) => op.kind.startsWith("delete-"))).toHaveLength(1);
    converged(otherVni, applyToObserved(observed, ops));
  });

  it("sets the CNI bridge's MTU only when the bridge exists", () => {
    const observed = converged(desired);
    expect(plan(desired, { ...observed, bridge: { index: 5, name: "cni0", mtu: 1500, mac: "", up: true, flags: 0 } })).toEqual([
      { kind: "set-link", name: "cni0", changes: { mtu: 1450 } },
    ]);
    expect(plan(desired, { ...observed, bridge: { index: 5, name: "cni0", mtu: 1450, mac: "", up: true, flags: 0 } })).toEqual([]);
  });

  it("handles a dual-stack node with one device, one FDB entry and a neighbour and route per family", () => {
    const dualLocal: LocalNode = { ...local, node: { ...nodeA, podCidrs: ["10.244.1.0/24", "fd00:10:244:1::/64"] } };
    const dualB: PeerNode = { ...nodeB, podCidrs: ["10.244.2.0/24", "fd00:10:244:2::/64"] };
    const dual = desiredState(vxlan, dualLocal, [dualB]);
    expect(dual.vtep?.addresses).toEqual(["10.244.1.0/32", "fd00:10:244:1::/128"]);
    expect(dual.fdb).toHaveLength(1);
    expect(dual.neighbours.map((n) => n.ip)).toEqual(["10.244.2.0", "fd00:10:244:2::"]);
    expect(dual.routes.map((r) => `${r.dst} via ${r.gateway}`)).toEqual(["10.244.2.0/24 via 10.244.2.0", "fd00:10:244:2::/64 via fd00:10:244:2::"]);
    converged(dual);
  });
});

describe("plan (vxlan, collect-metadata VTEP for the eBPF datapath)", () => {
  const external = new VxlanBackend({ mac: MAC_A, external: true });

  it("gives each peer its neighbour, route and a tunnel entry, and no FDB entry", () => {
    const desired = desiredState(external, local, [nodeA, nodeB, nodeC]);
    expect(desired.vtep).toMatchObject({ name: "weft.1", external: true, mac: MAC_A });
    expect(desired.fdb).toEqual([]);
    expect(desired.routes.map((r) => r.dst)).toEqual(["10.244.2.0/24", "10.244.3.0/24"]);
    expect(desired.byNode.get("node-b")?.tunnels).toEqual([{ node: "node-b", cidr: "10.244.2.0/24", remote: "192.168.1.2", vtepMac: MAC_B }]);
    const ops = plan(desired, emptyObserved());
    expect(ops.map((op) => op.kind).filter((kind) => kind.endsWith("fdb"))).toEqual([]);
    converged(desired);
  });

  it("recreates the VTEP when switching between a plain and an external device, both ways", () => {
    const plain = converged(desiredState(vxlan, local, [nodeB]));
    const toExternal = plan(desiredState(external, local, [nodeB]), plain);
    expect(toExternal[0]).toMatchObject({ kind: "recreate-vtep", spec: { external: true } });
    const afterExternal = converged(desiredState(external, local, [nodeB]), plain);
    expect(afterExternal.fdb).toEqual([]);
    const back = plan(desiredState(vxlan, local, [nodeB]), afterExternal);
    expect(back[0]).toMatchObject({ kind: "recreate-vtep", spec: { external: false } });
    expect(back.some((op) => op.kind === "replace-fdb")).toBe(true);
  });
});

describe("plan (host-gw)", () => {
  const hostGw = new HostGwBackend();
  const desired = desiredState(hostGw, local, [nodeB, nodeC]);

  it("routes each pod CIDR via the node's public IP on the underlay, and nothing else", () => {
    const ops = plan(desired, emptyObserved());
    expect(ops).toEqual([
      { kind: "replace-route", route: { node: "node-b", dst: "10.244.2.0/24", family: 4, gateway: "192.168.1.2", device: "eth0", onlink: false } },
      { kind: "replace-route", route: { node: "node-c", dst: "10.244.3.0/24", family: 4, gateway: "192.168.1.3", device: "eth0", onlink: false } },
    ]);
    converged(desired);
  });

  it("takes over from the vxlan backend: routes replaced in place, then the VTEP deleted", () => {
    const observed = converged(desiredState(vxlan, local, [nodeB, nodeC]));
    const ops = plan(desired, observed);
    expect(kinds(ops)).toEqual(["replace-route", "replace-route", "delete-link"]);
    converged(desired, applyToObserved(observed, ops));
  });
});

describe("sortOps", () => {
  it("orders any list by OP_ORDER and keeps the order within a kind", () => {
    const ops: Op[] = [
      { kind: "delete-neighbour", device: "weft.1", ip: "10.0.0.1" },
      { kind: "replace-route", route: { node: "x", dst: "10.0.1.0/24", family: 4, gateway: "10.0.1.0", device: "weft.1", onlink: true } },
      { kind: "delete-route", route: { dst: "10.0.2.0/24", family: 4 } },
      { kind: "replace-neighbour", neighbour: { node: "x", device: "weft.1", ip: "10.0.1.0", mac: MAC_B } },
      { kind: "delete-fdb", device: "weft.1", mac: MAC_C, dst: "192.168.1.3" },
      { kind: "replace-fdb", fdb: { node: "x", device: "weft.1", mac: MAC_B, dst: "192.168.1.2" } },
      { kind: "delete-route", route: { dst: "10.0.3.0/24", family: 4 } },
    ];
    const sorted = sortOps(ops);
    expect(kinds(sorted)).toEqual(["replace-neighbour", "replace-fdb", "replace-route", "delete-route", "delete-route", "delete-fdb", "delete-neighbour"]);
    expect(sorted.filter((op) => op.kind === "delete-route").map((op) => (op as Extract<Op, { kind: "delete-route" }>).route.dst)).toEqual([
      "10.0.2.0/24", "10.0.3.0/24",
    ]);
    expect(OP_ORDER.indexOf("replace-neighbour")).toBeLessThan(OP_ORDER.indexOf("replace-fdb"));
    expect(OP_ORDER.indexOf("replace-fdb")).toBeLessThan(OP_ORDER.indexOf("replace-route"));
    expect(OP_ORDER.indexOf("delete-route")).toBeLessThan(OP_ORDER.indexOf("delete-fdb"));
    expect(OP_ORDER.indexOf("delete-fdb")).toBeLessThan(OP_ORDER.indexOf("delete-neighbour"));
  });
});

describe("planChanges", () => {
  /** A small seeded generator (mulberry32): the random cases are the same on every run. */
  function random(seed: number): () => number {
    let a = seed >>> 0;
    return () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }
  const hex = (n: number) => n.toString(16).padStart(2, "0");
  const asSet = (ops: Op[]) => ops.map((op) => JSON.stringify(op)).sort();

  /**
   * A node list changed at random: nodes leave and join, change MAC, public IP or pod CIDR — to a free one, to
   * one a departed node had, or to an overlapping one (then desiredState skips it) — and unchanged nodes keep
   * their record, as the sources keep them.
   */
  function evolve(nodes: PeerNode[], next: () => number, serial: { n: number }): PeerNode[] {
    const out: PeerNode[] = [];
    const freed: string[] = [];
    for (const node of nodes) {
      const r = next();
      if (r < 0.1) freed.push(node.podCidrs[0]!);
      else if (r < 0.15) out.push({ ...node, vtepMac: `02:cc:00:00:${hex(serial.n >> 8)}:${hex(serial.n++ & 255)}` });
      else if (r < 0.2) out.push({ ...node, publicIp: `192.168.1.${1 + Math.floor(next() * 250)}` });
      else if (r < 0.22) out.push({ ...node, podCidrs: [`10.244.${200 + Math.floor(next() * 50)}.0/24`] });
      else out.push(node);
    }
    const joining = Math.floor(next() * 6);
    for (let i = 0; i < joining; i++) {
      const n = serial.n++;
      const cidr = freed.pop() ?? `10.244.${2 + Math.floor(next() * 190)}.0/${next() < 0.1 ? 23 : 24}`;
      out.push({ name: `node-${hex(n >> 8)}${hex(n & 255)}`, podCidrs: [cidr], publicIp: `192.168.1.${1 + Math.floor(next() * 250)}`, vtepMac: `02:dd:00:00:${hex(n >> 8)}:${hex(n & 255)}` });
    }
    return out.sort(() => next() - 0.5);
  }

  for (const [label, backend] of [["vxlan", vxlan], ["host-gw", new HostGwBackend()]] as const) {
    it(`gives the same operations as plan() against the kernel, over 200 random changes (${label})`, () => {
      const next = random(label === "vxlan" ? 7 : 11);
      const serial = { n: 0 };
      const cache = new PeerObjectsCache();
      let nodes = evolve([], next, serial);
      let previous = desiredState(backend, local, nodes, { cache });
      let observed = converged(previous);
      let changedSomething = 0;
      for (let step = 0; step < 200; step++) {
        nodes = evolve(nodes, next, serial);
        const desired = desiredState(backend, local, nodes, { cache });
        const ops = planChanges(previous, desired)!;
        expect(asSet(ops)).toEqual(asSet(plan(desired, observed)));
        expect(kinds(ops)).toEqual(kinds(sortOps(ops)));
        observed = applyToObserved(observed, ops);
        expect(plan(desired, observed)).toEqual([]);
        if (ops.length > 0) changedSomething++;
        previous = desired;
      }
      expect(changedSomething).toBeGreaterThan(150);
    });
  }

  it("looks only at nodes whose objects changed: the same records with a cache plan nothing", () => {
    const cache = new PeerObjectsCache();
    const nodes = [nodeB, nodeC];
    const previous = desiredState(vxlan, local, nodes, { cache });
    const desired = desiredState(vxlan, local, [...nodes], { cache });
    expect(desired.byNode.get("node-b")).toBe(previous.byNode.get("node-b"));
    expect(planChanges(previous, desired)).toEqual([]);
    // Without the cache every node looks changed, and the comparison by content still plans nothing.
    expect(planChanges(desiredState(vxlan, local, nodes), desiredState(vxlan, local, nodes))).toEqual([]);
  });

  it("hands a departed node's pod CIDR to a new node without deleting its route (the same route in the kernel)", () => {
    const cache = new PeerObjectsCache();
    const previous = desiredState(vxlan, local, [nodeB, nodeC], { cache });
    const heir: PeerNode = { name: "node-d", podCidrs: nodeC.podCidrs, publicIp: "192.168.1.4", vtepMac: "02:dd:00:00:00:04" };
    const ops = planChanges(previous, desiredState(vxlan, local, [nodeB, heir], { cache }))!;
    expect(ops.map((op) => describeOp(op))).toEqual([
      "replace-neighbour 10.244.3.0 lladdr 02:dd:00:00:00:04 dev weft.1 (node-d)",
      "replace-fdb 02:dd:00:00:00:04 dst 192.168.1.4 dev weft.1 (node-d)",
      `delete-fdb ${MAC_C} dst 192.168.1.3 dev weft.1`,
    ]);
  });

  it("declines when the local device or the bridge changed: that needs the kernel", () => {
    const previous = desiredState(vxlan, local, [nodeB]);
    expect(planChanges(previous, desiredState(new VxlanBackend({ mac: MAC_A, mtu: 1400 }), local, [nodeB]))).toBeUndefined();
    expect(planChanges(previous, desiredState(new VxlanBackend({ mac: "02:aa:00:00:00:09" }), local, [nodeB]))).toBeUndefined();
    expect(planChanges(previous, desiredState(vxlan, local, [nodeB], { bridge: "br-pods" }))).toBeUndefined();
  });
});
