import { describe, expect, test } from "vitest";
import { compileEndpoints } from "../../agent/policy/compile";
import { explainConnection, type ConnectionExplanation, type ExplainProtocol } from "../../agent/policy/explain";
import { lookupEntries } from "../../agent/policy/lookup";
import { parseNamespace, parseNetworkPolicy, parsePod } from "../../agent/policy/parse";
import type { PolicyWorld } from "../../agent/policy/types";

function build(objects: unknown[]): PolicyWorld {
  const world: PolicyWorld = { policies: [], namespaces: [], pods: [] };
  for (const object of objects) {
    const kind = (object as { kind: string }).kind;
    const parsed = kind === "NetworkPolicy" ? parseNetworkPolicy(object) : kind === "Namespace" ? parseNamespace(object) : parsePod(object);
    if ("error" in parsed) throw new Error(parsed.error);
    if ("policy" in parsed) world.policies.push(parsed.policy);
    else if ("namespace" in parsed) world.namespaces.push(parsed.namespace);
    else world.pods.push(parsed.pod);
  }
  return world;
}

function podObject(
  ns: string, name: string, ips: string[], labels: Record<string, string>, node: string,
  extra: { ports?: { name?: string; containerPort: number; protocol?: string }[]; hostNetwork?: boolean } = {},
) {
  return {
    kind: "Pod", metadata: { name, namespace: ns, labels },
    spec: { nodeName: node, hostNetwork: extra.hostNetwork, containers: [{ name: "c", ports: extra.ports ?? [] }] },
    status: { podIPs: ips.map((ip) => ({ ip })) },
  };
}

function explained(world: PolicyWorld, from: string, to: string, port: number, protocol: ExplainProtocol): ConnectionExplanation {
  const result = explainConnection(world, from, to, port, protocol);
  if ("error" in result) throw new Error(result.error);
  return result;
}

describe("explainConnection", () => {
  const world = build([
    { kind: "Namespace", metadata: { name: "x", labels: { team: "a" } } },
    { kind: "Namespace", metadata: { name: "y", labels: { team: "b" } } },
    podObject("x", "web", ["10.0.0.2", "fd00::2"], { app: "web" }, "n1"),
    podObject("x", "db", ["10.0.0.3", "fd00::3"], { app: "db" }, "n1", { ports: [{ name: "sql", containerPort: 5432 }] }),
    podObject("y", "client", ["10.0.1.2"], { app: "client" }, "n2"),
    podObject("kube-system", "node-agent", ["192.168.0.1"], {}, "n1", { hostNetwork: true }),
    { kind: "NetworkPolicy", metadata: { name: "db", namespace: "x" }, spec: { podSelector: { matchLabels: { app: "db" } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: "web" } } }], ports: [{ port: "sql" }] }] } },
    { kind: "NetworkPolicy", metadata: { name: "egress", namespace: "y" }, spec: { podSelector: {}, policyTypes: ["Egress"], egress: [{ to: [{ namespaceSelector: { matchLabels: { team: "a" } } }] }] } },
  ]);

  test("allowed, with the rule that allowed it", () => {
    const result = explained(world, "x/web", "x/db", 5432, "TCP");
    expect(result).toEqual({
      allowed: true, source: "10.0.0.2", destination: "10.0.0.3", ownNode: false,
      egress: { isolated: false, policies: [], allowedBy: [] },
      ingress: { isolated: true, policies: ["x/db"], allowedBy: [{ policy: "x/db", direction: "ingress", index: 0 }] },
      reason: "allowed: TCP 5432 from x/web (10.0.0.2) to x/db (10.0.0.3): no policy isolates its egress; ingress allowed by x/db ingress[0]",
    });
  });

  test("denied, naming the policies that isolate the pod", () => {
    const result = explained(world, "y/client", "x/db", 5432, "TCP");
    expect(result.allowed).toBe(false);
    expect(result.egress.allowedBy).toEqual([{ policy: "y/egress", direction: "egress", index: 0 }]);
    expect(result.reason).toBe("denied: TCP 5432 from y/client (10.0.1.2) to x/db (10.0.0.3): ingress is isolated by x/db and no rule allows it");
    expect(explained(world, "y/client", "8.8.8.8", 53, "UDP").reason)
      .toBe("denied: UDP 53 from y/client (10.0.1.2) to 8.8.8.8: egress is isolated by y/egress and no rule allows it");
  });

  test("an address of a pod is that pod; the source's address of the destination's family is used", () => {
    expect(explained(world, "x/web", "fd00::3", 5432, "TCP")).toMatchObject({ allowed: true, source: "fd00::2", destination: "fd00::3" });
    expect(explained(world, "x/web", "10.0.0.3", 5433, "TCP").allowed).toBe(false);
  });

  test("traffic between a pod and its own node is allowed whatever the policies", () => {
    expect(explained(world, "kube-system/node-agent", "x/db", 8080, "TCP")).toMatchObject({ allowed: true, ownNode: true });
  });

  test("unknown pods and addresses are errors", () => {
    expect(explainConnection(world, "x/nope", "x/db", 80, "TCP")).toEqual({ error: "Cannot explain: no pod x/nope" });
    expect(explainConnection(world, "x/web", "10.0.0", 80, "TCP")).toEqual({ error: "Cannot explain: 10.0.0 is neither a pod (namespace/name) nor an IP address" });
    expect(explainConnection(world, "y/client", "fd00::3", 80, "TCP")).toEqual({ error: "Cannot explain: y/client has no IPv6 address" });
  });
});

// Random worlds: the model's answer (explainConnection, from the policies) and the compiled entries' answer
// (lookupEntries, as the datapath's LPM map gives it) must agree for every probe.
describe("explainConnection and the compiled entries agree", () => {
  test("on random worlds and probes", () => {
    const random = mulberry32(20261203);
    let probes = 0;
    let isolatedAllowed = 0;
    let isolatedDenied = 0;
    for (let round = 0; round < 150; round++) {
      const world = randomWorld(random);
      const endpoints = new Map(["n1", "n2"].flatMap((node) => compileEndpoints(world, node)).map((e) => [e.pod, e]));
      const unpruned = new Map(["n1", "n2"].flatMap((node) => compileEndpoints(world, node, { keepRedundant: true })).map((e) => [e.pod, e]));
      const destinations = [...world.pods.map((p) => `${p.namespace}/${p.name}`), "10.0.0.200", "10.0.1.9", "172.16.0.1", "fd00::99"];
      for (const source of world.pods) {
        for (const to of destinations) {
          for (const [protocol, port] of PROBES) {
            const from = `${source.namespace}/${source.name}`;
            const result = explainConnection(world, from, to, port, protocol);
            if ("error" in result || result.ownNode) continue;
            probes++;
            const context = `${from} → ${to} ${protocol}/${port} in ${JSON.stringify(world)}`;
            const egress = endpoints.get(from);
            const egressEntries = egress ? egress.egress : null;
            expect(egressEntries !== null, context).toBe(result.egress.isolated);
            const egressLookup = lookupEntries(egressEntries, result.destination, port, protocol);
            expect(egressLookup.allowed, context).toBe(!result.egress.isolated || result.egress.allowedBy.length > 0);
            expect(lookupEntries(unpruned.get(from)?.egress ?? null, result.destination, port, protocol).allowed, context).toBe(egressLookup.allowed);

            const destinationPod = world.pods.find((p) => !p.hostNetwork && (`${p.namespace}/${p.name}` === to || p.ips.includes(result.destination)));
            const ingress = destinationPod && endpoints.get(`${destinationPod.namespace}/${destinationPod.name}`);
            const ingressEntries = ingress ? ingress.ingress : null;
            expect(ingressEntries !== null, context).toBe(result.ingress.isolated);
            expect(lookupEntries(ingressEntries, result.source, port, protocol).allowed, context).toBe(!result.ingress.isolated || result.ingress.allowedBy.length > 0);
            // Without pruning, the entry's rules are every rule that allows the peer some traffic: a superset of those allowing this probe.
            const full = lookupEntries(ingress ? unpruned.get(ingress.pod)!.ingress : null, result.source, port, protocol);
            for (const rule of result.ingress.allowedBy) expect(full.entry?.rules, context).toContainEqual(rule);
            if (result.egress.isolated || result.ingress.isolated) {
              if (result.allowed) isolatedAllowed++;
              else isolatedDenied++;
            }
          }
        }
      }
    }
    // The worlds must exercise isolated pods both allowed and denied, or the comparison proves little.
    expect(probes).toBeGreaterThan(30_000);
    expect(isolatedAllowed / probes).toBeGreaterThan(0.1);
    expect(isolatedDenied / probes).toBeGreaterThan(0.2);
  });
});

const PROBES: [ExplainProtocol, number][] = [
  ["TCP", 80], ["TCP", 81], ["TCP", 8080], ["UDP", 53], ["UDP", 80], ["SCTP", 80], ["ICMP", 0],
];

function mulberry32(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomWorld(random: () => number): PolicyWorld {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const chance = (p: number) => random() < p;
  const some = <T>(items: readonly T[], max: number): T[] => Array.from({ length: Math.floor(random() * (max + 1)) }, () => pick(items));
  const labels = (choices: Record<string, string[]>) =>
    Object.fromEntries(Object.entries(choices).filter(() => chance(0.6)).map(([key, values]) => [key, pick(values)]));
  const podLabels = { app: ["web", "db", "cache"], tier: ["front", "back"] };
  const namespaceLabels = { team: ["a", "b"], env: ["prod", "dev"] };
  const selector = (choices: Record<string, string[]>) => {
    if (chance(0.3)) return {};
    const key = pick(Object.keys(choices));
    if (chance(0.5)) return { matchLabels: { [key]: pick(choices[key]!) } };
    const operator = pick(["In", "NotIn", "Exists", "DoesNotExist"] as const);
    return { matchExpressions: [{ key, operator, ...(operator === "In" || operator === "NotIn" ? { values: some(choices[key]!, 2).concat(pick(choices[key]!)) } : {}) }] };
  };
  const blocks: [string, string[]][] = [
    ["10.0.0.0/16", ["10.0.0.0/24", "10.0.1.0/28", "10.0.0.2/32"]], ["10.0.0.0/24", ["10.0.0.0/30", "10.0.0.3/32"]], ["10.0.1.0/24", []],
    ["0.0.0.0/0", ["10.0.0.0/8", "10.0.1.0/24"]], ["fd00::/64", ["fd00::/126", "fd00::99/128"]], ["::/0", ["fd00::/64"]], ["10.0.0.2/32", []],
  ];
  const peer = () => {
    const kind = pick(["pod", "namespace", "both", "ipBlock"]);
    if (kind === "ipBlock") {
      const [cidr, excepts] = pick(blocks);
      return { ipBlock: { cidr, except: excepts.length > 0 ? [...new Set(some(excepts, 2))] : [] } };
    }
    return {
      ...(kind !== "namespace" && { podSelector: selector(podLabels) }),
      ...(kind !== "pod" && { namespaceSelector: selector(namespaceLabels) }),
    };
  };
  const portSpec = () => {
    const protocol = chance(0.2) ? undefined : pick(["TCP", "UDP", "SCTP"]);
    const shape = pick(["none", "number", "range", "named", "named"]);
    if (shape === "none") return { protocol: protocol ?? "UDP" };
    if (shape === "named") return { protocol, port: pick(["http", "dns", "metrics"]) };
    const port = pick([53, 80, 81, 8080]);
    return shape === "range" ? { protocol, port, endPort: port + pick([0, 1, 10]) } : { protocol, port };
  };
  const rule = (peersField: "from" | "to") => ({
    ...(chance(0.8) && { [peersField]: some([0, 1, 2, 3], 2).map(peer) }),
    ...(chance(0.8) && { ports: some([0, 1, 2], 2).map(portSpec) }),
  });
  const objects: unknown[] = ["x", "y", "z"].map((name) => ({ kind: "Namespace", metadata: { name, labels: labels(namespaceLabels) } }));
  let host = 1;
  const podCount = 3 + Math.floor(random() * 5);
  for (let i = 0; i < podCount; i++) {
    const hostNetwork = chance(0.1);
    const v4 = hostNetwork ? `192.168.0.${host++}` : `10.0.${pick([0, 1])}.${i + 1}`;
    const ips = !hostNetwork && chance(0.3) ? [v4, `fd00::${i + 1}`] : chance(0.05) ? [] : [v4];
    const ports = some([0, 1, 2], 2).map(() => ({ name: chance(0.8) ? pick(["http", "dns", "metrics"]) : undefined, containerPort: pick([53, 80, 81, 8080]), protocol: pick(["TCP", "UDP", "SCTP"]) }));
    objects.push(podObject(pick(["x", "y", "z"]), `p${i}`, ips, labels(podLabels), pick(["n1", "n2"]), { ports, hostNetwork }));
  }
  const policyCount = 1 + Math.floor(random() * 5);
  for (let i = 0; i < policyCount; i++) {
    const types = pick([undefined, ["Ingress"], ["Egress"], ["Ingress", "Egress"]]);
    objects.push({
      kind: "NetworkPolicy", metadata: { name: `np${i}`, namespace: pick(["x", "y", "z"]) },
      spec: {
        podSelector: selector(podLabels),
        ...(types && { policyTypes: types }),
        ...(chance(0.8) && { ingress: some([0, 1, 2], 3).map(() => rule("from")) }),
        ...(chance(0.6) && { egress: some([0, 1, 2], 3).map(() => rule("to")) }),
      },
    });
  }
  return build(objects);
}
