import { describe, expect, test } from "vitest";
import { compileEndpoints } from "../../agent/policy/compile";
import { decomposeGrants, type Grant } from "../../agent/policy/lpm";
import { lookupEntries } from "../../agent/policy/lookup";
import { parseNamespace, parseNetworkPolicy, parsePod } from "../../agent/policy/parse";
import { PolicyStore } from "../../agent/policy/world";
import type { EndpointPolicy, PolicyWorld, PortRange, RuleRef } from "../../agent/policy/types";
import { parseCidr } from "../../native/addresses";

// Namespaces x (team a) and y (team b); pods x/a, x/b, y/a, y/b on node-1 and x/c on node-2.
const namespaces = [namespace("x", { team: "a" }), namespace("y", { team: "b" })];
const pods = [
  pod("x", "a", ["10.244.1.2", "fd00::1:2"], { app: "web" }, { ports: [{ name: "http", containerPort: 8080 }] }),
  pod("x", "b", ["10.244.1.3"], { app: "db" }, { ports: [{ name: "http", containerPort: 9090 }, { name: "sql", containerPort: 5432 }] }),
  pod("y", "a", ["10.244.1.4"], { app: "web" }),
  pod("y", "b", ["10.244.1.5"], { app: "db" }, { ports: [{ name: "http", containerPort: 8081, protocol: "UDP" }] }),
  pod("x", "c", ["10.244.2.2"], { app: "web" }, { node: "node-2", ports: [{ name: "http", containerPort: 7070 }] }),
];

function namespace(name: string, labels: Record<string, string>) {
  const parsed = parseNamespace({ kind: "Namespace", metadata: { name, labels } });
  if ("error" in parsed) throw new Error(parsed.error);
  return parsed.namespace;
}

function pod(
  ns: string, name: string, ips: string[], labels: Record<string, string>,
  options: { node?: string; ports?: unknown[]; hostNetwork?: boolean } = {},
) {
  const parsed = parsePod({
    kind: "Pod",
    metadata: { name, namespace: ns, labels },
    spec: { nodeName: options.node ?? "node-1", hostNetwork: options.hostNetwork, containers: [{ name: "c", ports: options.ports ?? [] }] },
    status: { podIPs: ips.map((ip) => ({ ip })) },
  });
  if ("error" in parsed) throw new Error(parsed.error);
  return parsed.pod;
}

function policy(ns: string, name: string, spec: unknown) {
  const parsed = parseNetworkPolicy({ apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name, namespace: ns }, spec });
  if ("error" in parsed) throw new Error(parsed.error);
  return parsed.policy;
}

function world(...policies: ReturnType<typeof policy>[]): PolicyWorld {
  return { policies, namespaces, pods };
}

function endpoint(w: PolicyWorld, id: string, node = "node-1"): EndpointPolicy {
  const found = compileEndpoints(w, node).find((e) => e.pod === id);
  if (!found) throw new Error(`no endpoint ${id}`);
  return found;
}

const ANY: PortRange[] = [{ protocol: "ANY", first: 0, last: 65535 }];
const tcp = (first: number, last = first): PortRange => ({ protocol: "TCP", first, last });
const ref = (policyId: string, direction: "ingress" | "egress", index = 0): RuleRef => ({ policy: policyId, direction, index });

describe("compileEndpoints: which pods, which directions", () => {
  test("without policies every local endpoint is open both ways; other nodes' and host-network pods are no endpoints", () => {
    const w: PolicyWorld = { policies: [], namespaces, pods: [...pods, pod("x", "host", ["192.168.1.1"], {}, { hostNetwork: true }), pod("x", "new", [], {})] };
    expect(compileEndpoints(w, "node-1")).toEqual([
      { pod: "x/a", ips: ["10.244.1.2", "fd00::1:2"], ingress: null, egress: null, policies: [] },
      { pod: "x/b", ips: ["10.244.1.3"], ingress: null, egress: null, policies: [] },
      { pod: "y/a", ips: ["10.244.1.4"], ingress: null, egress: null, policies: [] },
      { pod: "y/b", ips: ["10.244.1.5"], ingress: null, egress: null, policies: [] },
    ]);
    expect(compileEndpoints(w, "node-2").map((e) => e.pod)).toEqual(["x/c"]);
  });

  test("default deny ingress: every pod of the namespace is isolated for ingress with no entries; egress stays open", () => {
    const w = world(policy("x", "deny", { podSelector: {}, policyTypes: ["Ingress"] }));
    expect(endpoint(w, "x/a")).toEqual({ pod: "x/a", ips: ["10.244.1.2", "fd00::1:2"], ingress: [], egress: null, policies: ["x/deny"] });
    expect(endpoint(w, "y/a").ingress).toBeNull();
    expect(endpoint(w, "x/c", "node-2").ingress).toEqual([]);
  });

  test("default deny egress", () => {
    const w = world(policy("x", "deny", { podSelector: {}, policyTypes: ["Egress"] }));
    expect(endpoint(w, "x/b")).toMatchObject({ ingress: null, egress: [] });
  });

  test("allow all ingress: 0.0.0.0/0 and ::/0 with every port", () => {
    const w = world(policy("x", "all", { podSelector: {}, ingress: [{}] }));
    expect(endpoint(w, "x/a").ingress).toEqual([
      { cidr: "0.0.0.0/0", ports: ANY, rules: [ref("x/all", "ingress")] },
      { cidr: "::/0", ports: ANY, rules: [ref("x/all", "ingress")] },
    ]);
  });

  test("policyTypes inferred: egress rules isolate egress too", () => {
    const w = world(policy("x", "dns", { podSelector: { matchLabels: { app: "web" } }, egress: [{ ports: [{ protocol: "UDP", port: 53 }] }] }));
    const a = endpoint(w, "x/a");
    expect(a.ingress).toEqual([]);
    expect(a.egress).toEqual([
      { cidr: "0.0.0.0/0", ports: [{ protocol: "UDP", first: 53, last: 53 }], rules: [ref("x/dns", "egress")] },
      { cidr: "::/0", ports: [{ protocol: "UDP", first: 53, last: 53 }], rules: [ref("x/dns", "egress")] },
    ]);
    expect(endpoint(w, "x/b")).toMatchObject({ ingress: null, egress: null, policies: [] });
  });
});

describe("compileEndpoints: peers", () => {
  test("allow from the same namespace: its pods' /32 and /128, on every node", () => {
    const w = world(policy("x", "same", { podSelector: {}, ingress: [{ from: [{ podSelector: {} }] }] }));
    expect(endpoint(w, "x/b").ingress!.map((e) => e.cidr)).toEqual(["10.244.1.2/32", "10.244.1.3/32", "10.244.2.2/32", "fd00::1:2/128"]);
  });

  test("namespaceSelector: every pod of the namespaces it selects", () => {
    const w = world(policy("x", "from-b", { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: "b" } } }] }] }));
    expect(endpoint(w, "x/a").ingress).toEqual([
      { cidr: "10.244.1.4/32", ports: ANY, rules: [ref("x/from-b", "ingress")] },
      { cidr: "10.244.1.5/32", ports: ANY, rules: [ref("x/from-b", "ingress")] },
    ]);
  });

  test("namespaceSelector by the kubernetes.io/metadata.name label", () => {
    const w = world(policy("x", "from-y", { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "y" } } }] }] }));
    expect(endpoint(w, "x/a").ingress!.map((e) => e.cidr)).toEqual(["10.244.1.4/32", "10.244.1.5/32"]);
  });

  test("podSelector + namespaceSelector in one peer is their intersection; as two peers, their union", () => {
    const one = world(policy("x", "one", {
      podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: "b" } }, podSelector: { matchLabels: { app: "db" } } }] }],
    }));
    expect(endpoint(one, "x/a").ingress!.map((e) => e.cidr)).toEqual(["10.244.1.5/32"]);
    const two = world(policy("x", "two", {
      podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: "b" } } }, { podSelector: { matchLabels: { app: "db" } } }] }],
    }));
    expect(endpoint(two, "x/a").ingress!.map((e) => e.cidr)).toEqual(["10.244.1.3/32", "10.244.1.4/32", "10.244.1.5/32"]);
  });

  test("ipBlock with except: the except is an entry that denies; a pod inside it keeps what other rules give it", () => {
    const w = world(policy("x", "block", {
      podSelector: { matchLabels: { app: "db" } },
      ingress: [
        { from: [{ ipBlock: { cidr: "10.244.0.0/16", except: ["10.244.1.0/24"] } }], ports: [{ port: 80 }] },
        { from: [{ podSelector: { matchLabels: { app: "web" } } }], ports: [{ port: 443 }] },
      ],
    }));
    expect(endpoint(w, "x/b").ingress).toEqual([
      { cidr: "10.244.0.0/16", ports: [tcp(80)], rules: [ref("x/block", "ingress", 0)] },
      { cidr: "10.244.1.0/24", ports: [], rules: [] },
      { cidr: "10.244.1.2/32", ports: [tcp(443)], rules: [ref("x/block", "ingress", 1)] },
      { cidr: "10.244.2.2/32", ports: [tcp(80), tcp(443)], rules: [ref("x/block", "ingress", 0), ref("x/block", "ingress", 1)] },
      { cidr: "fd00::1:2/128", ports: [tcp(443)], rules: [ref("x/block", "ingress", 1)] },
    ]);
    const ingress = endpoint(w, "x/b").ingress;
    expect(lookupEntries(ingress, "10.244.3.1", 80, "TCP").allowed).toBe(true);
    expect(lookupEntries(ingress, "10.244.1.9", 80, "TCP").allowed).toBe(false);
    expect(lookupEntries(ingress, "10.244.1.2", 80, "TCP").allowed).toBe(false);
    expect(lookupEntries(ingress, "10.244.1.2", 443, "TCP").allowed).toBe(true);
    expect(lookupEntries(ingress, "10.245.0.1", 80, "TCP").allowed).toBe(false);
  });

  test("one ipBlock's except does not carve out what another peer of the same rule allows", () => {
    const w = world(policy("x", "two-blocks", {
      podSelector: { matchLabels: { app: "db" } },
      ingress: [{ from: [{ ipBlock: { cidr: "10.0.0.0/8", except: ["10.1.0.0/16"] } }, { ipBlock: { cidr: "10.1.0.0/17" } }] }],
    }));
    const ingress = endpoint(w, "x/b").ingress;
    expect(lookupEntries(ingress, "10.1.0.1", 1, "UDP").allowed).toBe(true);
    expect(lookupEntries(ingress, "10.1.200.1", 1, "UDP").allowed).toBe(false);
  });

  test("IPv6 ipBlocks and dual-stack pods", () => {
    const w = world(policy("x", "v6", { podSelector: { matchLabels: { app: "db" } }, ingress: [{ from: [{ ipBlock: { cidr: "fd00::/64", except: ["fd00::1:0/112"] } }] }] }));
    expect(endpoint(w, "x/b").ingress!.map((e) => [e.cidr, e.ports.length])).toEqual([["fd00::/64", 1], ["fd00::1:0/112", 0]]);
    expect(lookupEntries(endpoint(w, "x/b").ingress, "fd00::1:2", 80, "TCP").allowed).toBe(false);
    expect(lookupEntries(endpoint(w, "x/b").ingress, "fd00::2:2", 80, "TCP").allowed).toBe(true);
  });
});

describe("compileEndpoints: ports", () => {
  test("named ingress ports resolve against each selected pod's own container ports (protocol included)", () => {
    const w = world(
      policy("x", "http", { podSelector: {}, ingress: [{ ports: [{ port: "http" }] }] }),
      policy("y", "http", { podSelector: {}, ingress: [{ ports: [{ port: "http" }] }] }),
    );
    expect(endpoint(w, "x/a").ingress![0]!.ports).toEqual([tcp(8080)]);
    expect(endpoint(w, "x/b").ingress![0]!.ports).toEqual([tcp(9090)]);
    // y/b's "http" is UDP and y/a declares none: the rule allows them nothing.
    expect(endpoint(w, "y/b").ingress).toEqual([]);
    expect(endpoint(w, "y/a").ingress).toEqual([]);
  });

  test("named egress ports resolve per destination pod, each on its own /32", () => {
    const w = world(policy("x", "to-http", { podSelector: { matchLabels: { app: "web" } }, egress: [{ to: [{ podSelector: {} }], ports: [{ port: "http" }] }] }));
    expect(endpoint(w, "x/a").egress).toEqual([
      { cidr: "10.244.1.2/32", ports: [tcp(8080)], rules: [ref("x/to-http", "egress")] },
      { cidr: "10.244.1.3/32", ports: [tcp(9090)], rules: [ref("x/to-http", "egress")] },
      { cidr: "10.244.2.2/32", ports: [tcp(7070)], rules: [ref("x/to-http", "egress")] },
      { cidr: "fd00::1:2/128", ports: [tcp(8080)], rules: [ref("x/to-http", "egress")] },
    ]);
  });

  test("named egress ports without `to` reach every pod that declares the name; to an ipBlock they allow nothing", () => {
    const anywhere = world(policy("x", "any-http", { podSelector: { matchLabels: { app: "web" } }, egress: [{ ports: [{ port: "http" }, { port: 53, protocol: "UDP" }] }] }));
    const egress = endpoint(anywhere, "x/a").egress;
    expect(lookupEntries(egress, "10.244.1.3", 9090, "TCP").allowed).toBe(true);
    expect(lookupEntries(egress, "10.244.1.3", 8080, "TCP").allowed).toBe(false);
    expect(lookupEntries(egress, "10.244.1.5", 8081, "UDP").allowed).toBe(false); // its "http" is UDP
    expect(lookupEntries(egress, "8.8.8.8", 53, "UDP").allowed).toBe(true);
    const block = world(policy("x", "block-http", { podSelector: { matchLabels: { app: "web" } }, egress: [{ to: [{ ipBlock: { cidr: "10.0.0.0/8" } }], ports: [{ port: "http" }] }] }));
    expect(endpoint(block, "x/a").egress).toEqual([]);
  });

  test("endPort ranges, SCTP, UDP; adjacent and overlapping ranges merge", () => {
    const w = world(policy("x", "ranges", {
      podSelector: { matchLabels: { app: "db" } },
      ingress: [{ ports: [{ port: 8000, endPort: 8080 }, { port: 8081 }, { port: 8050, endPort: 8100 }, { protocol: "SCTP", port: 9 }, { protocol: "UDP" }] }],
    }));
    expect(endpoint(w, "x/b").ingress![0]!.ports).toEqual([tcp(8000, 8100), { protocol: "UDP", first: 0, last: 65535 }, { protocol: "SCTP", first: 9, last: 9 }]);
    const ingress = endpoint(w, "x/b").ingress;
    expect(lookupEntries(ingress, "1.2.3.4", 8100, "TCP").allowed).toBe(true);
    expect(lookupEntries(ingress, "1.2.3.4", 8101, "TCP").allowed).toBe(false);
    expect(lookupEntries(ingress, "1.2.3.4", 9, "SCTP").allowed).toBe(true);
    expect(lookupEntries(ingress, "1.2.3.4", 9, "TCP").allowed).toBe(false);
    expect(lookupEntries(ingress, "1.2.3.4", 0, "ICMP").allowed).toBe(false);
  });

  test("several policies are a union; a rule without ports subsumes the others' ranges", () => {
    const w = world(
      policy("x", "web", { podSelector: {}, ingress: [{ from: [{ podSelector: { matchLabels: { app: "web" } } }], ports: [{ port: 80 }] }] }),
      policy("x", "db", { podSelector: { matchLabels: { app: "db" } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: "web" } } }], ports: [{ port: 81 }] }, { from: [{ ipBlock: { cidr: "10.244.2.0/24" } }] }] }),
    );
    const b = endpoint(w, "x/b");
    expect(b.policies).toEqual(["x/db", "x/web"]);
    expect(b.ingress).toEqual([
      { cidr: "10.244.1.2/32", ports: [tcp(80, 81)], rules: [ref("x/db", "ingress", 0), ref("x/web", "ingress", 0)] },
      { cidr: "10.244.2.0/24", ports: ANY, rules: [ref("x/db", "ingress", 1)] },
      { cidr: "fd00::1:2/128", ports: [tcp(80, 81)], rules: [ref("x/db", "ingress", 0), ref("x/web", "ingress", 0)] },
    ]);
    expect(endpoint(w, "x/a").ingress![0]).toEqual({ cidr: "10.244.1.2/32", ports: [tcp(80)], rules: [ref("x/web", "ingress", 0)] });
  });

  test("endpoints compiled from the same policies share one entries array", () => {
    const w = world(policy("x", "deny", { podSelector: {}, ingress: [{ from: [{ podSelector: {} }] }] }));
    const [a, b] = compileEndpoints(w, "node-1");
    expect(a!.ingress).toBe(b!.ingress);
  });
});

describe("compileEndpoints follows the world", () => {
  test("a pod relabelled into and out of a peer selector", () => {
    const store = new PolicyStore();
    for (const object of [
      { kind: "Namespace", metadata: { name: "x" } },
      { kind: "NetworkPolicy", metadata: { name: "from-web", namespace: "x" }, spec: { podSelector: { matchLabels: { app: "db" } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: "web" } } }] }] } },
      { kind: "Pod", metadata: { name: "db", namespace: "x", labels: { app: "db" } }, spec: { nodeName: "n" }, status: { podIP: "10.0.0.1" } },
      { kind: "Pod", metadata: { name: "client", namespace: "x", labels: { app: "other" } }, spec: { nodeName: "n" }, status: { podIP: "10.0.0.2" } },
    ]) store.upsert(object.kind as "Pod", object);
    const dbIngress = () => compileEndpoints(store.world(), "n").find((e) => e.pod === "x/db")!.ingress!.map((e) => e.cidr);
    expect(dbIngress()).toEqual([]);
    store.upsert("Pod", { kind: "Pod", metadata: { name: "client", namespace: "x", labels: { app: "web" } }, spec: { nodeName: "n" }, status: { podIP: "10.0.0.2" } });
    expect(dbIngress()).toEqual(["10.0.0.2/32"]);
    store.upsert("Pod", { kind: "Pod", metadata: { name: "client", namespace: "x", labels: {} }, spec: { nodeName: "n" }, status: { podIP: "10.0.0.2" } });
    expect(dbIngress()).toEqual([]);
  });

  test("a pod relabelled out of a policy's podSelector is no longer isolated", () => {
    const deny = policy("x", "deny-db", { podSelector: { matchLabels: { app: "db" } } });
    expect(endpoint(world(deny), "x/b").ingress).toEqual([]);
    const relabelled = { policies: [deny], namespaces, pods: pods.map((p) => (p.name === "b" && p.namespace === "x" ? { ...p, labels: { app: "cache" } } : p)) };
    expect(endpoint(relabelled, "x/b")).toMatchObject({ ingress: null, policies: [] });
  });

  test("a namespace relabelled out of a namespaceSelector", () => {
    const from = policy("x", "from-team-b", { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: "b" } } }] }] });
    const relabelled = { policies: [from], pods, namespaces: [namespaces[0]!, namespace("y", { team: "c" })] };
    expect(endpoint(relabelled, "x/a").ingress).toEqual([]);
  });
});

describe("decomposeGrants: the LPM decomposition", () => {
  const r = (index: number) => ref("x/p", "ingress", index);
  const grant = (cidrs: string[], except: string[], ports: PortRange[], rule: RuleRef): Grant =>
    ({ prefixes: cidrs.map((c) => parseCidr(c)!), except: except.map((c) => parseCidr(c)!), ports, rule });
  const grants: Grant[] = [
    grant(["10.0.0.0/8"], ["10.1.0.0/16"], [tcp(80)], r(0)),
    grant(["10.1.2.3/32"], [], [tcp(80)], r(1)),
    grant(["10.2.0.0/16"], [], [tcp(80)], r(2)),
  ];

  test("every named prefix is an entry with the union of the grants covering it", () => {
    expect(decomposeGrants(grants, { keepRedundant: true })).toEqual([
      { cidr: "10.0.0.0/8", ports: [tcp(80)], rules: [r(0)] },
      { cidr: "10.1.0.0/16", ports: [], rules: [] },
      { cidr: "10.1.2.3/32", ports: [tcp(80)], rules: [r(1)] },
      { cidr: "10.2.0.0/16", ports: [tcp(80)], rules: [r(0), r(2)] },
    ]);
  });

  test("entries that repeat their parent's ports are dropped: the lookup answers the same", () => {
    expect(decomposeGrants(grants).map((e) => e.cidr)).toEqual(["10.0.0.0/8", "10.1.0.0/16", "10.1.2.3/32"]);
    expect(decomposeGrants([grant(["10.0.0.0/8"], ["10.1.0.0/16"], [], r(0))])).toEqual([]);
  });

  test("two spellings of one prefix are one entry", () => {
    const entries = decomposeGrants([grant(["fd00::5/128"], [], [tcp(1)], r(0)), grant(["fd00:0::0005/128"], [], [tcp(2)], r(1))]);
    expect(entries).toEqual([{ cidr: "fd00::5/128", ports: [tcp(1, 2)], rules: [r(0), r(1)] }]);
  });

  test("a grant of many prefixes (the pods a peer selects) gives each its entry", () => {
    expect(decomposeGrants([grant(["10.0.0.1/32", "fd00::1/128", "10.0.0.2/32"], [], [tcp(80)], r(0)), grant(["10.0.0.0/24"], [], [tcp(81)], r(1))])).toEqual([
      { cidr: "10.0.0.0/24", ports: [tcp(81)], rules: [r(1)] },
      { cidr: "10.0.0.1/32", ports: [tcp(80, 81)], rules: [r(0), r(1)] },
      { cidr: "10.0.0.2/32", ports: [tcp(80, 81)], rules: [r(0), r(1)] },
      { cidr: "fd00::1/128", ports: [tcp(80)], rules: [r(0)] },
    ]);
  });
});
