import { expect, test } from "vitest";
import { compileEndpoints } from "../../agent/policy/compile";
import { lookupEntries } from "../../agent/policy/lookup";
import { parseNetworkPolicy } from "../../agent/policy/parse";
import type { NetworkPolicyModel, PolicyNamespace, PolicyPod, PolicyWorld } from "../../agent/policy/types";

// 100 namespaces of 100 pods each on 100 nodes (a pod in every namespace on each node), and 100 policies per
// namespace: 10,000 of each. Every pod is selected by 10 policies whose peers reach from 10 pods to a few
// thousand. The scale, checked for shape here; the time it takes is measured, not asserted.
function bigWorld(): PolicyWorld {
  const namespaces: PolicyNamespace[] = [];
  const pods: PolicyPod[] = [];
  const policies: NetworkPolicyModel[] = [];
  for (let n = 0; n < 100; n++) {
    const ns = `ns-${n}`;
    namespaces.push({ name: ns, labels: { "kubernetes.io/metadata.name": ns, team: `t${n % 10}`, env: n % 2 ? "prod" : "dev" } });
    for (let p = 0; p < 100; p++) {
      const k = n * 100 + p;
      const ips = [`10.${1 + (k >> 8)}.${k & 255}.1`];
      if (p % 4 === 0) ips.push(`fd00::${k.toString(16)}:1`);
      pods.push({
        namespace: ns, name: `pod-${p}`, ips, nodeName: `node-${p}`, labels: { app: `app-${p % 10}`, tier: `${p % 3}` },
        ports: [{ name: "http", port: 8080, protocol: "TCP" }, { name: "metrics", port: 9090, protocol: "TCP" }],
      });
    }
    for (let q = 0; q < 100; q++) {
      const rules = [
        { from: [{ podSelector: { matchLabels: { app: `app-${(q + 1) % 10}` } } }], ports: [{ port: 80 }] },
        { from: [{ namespaceSelector: { matchLabels: { team: `t${q % 10}` } } }], ports: [{ port: "http" }] },
        { from: [{ namespaceSelector: { matchLabels: { env: "prod" } }, podSelector: { matchLabels: { tier: `${q % 3}` } } }], ports: [{ port: 8000, endPort: 8100 }] },
        { from: [{ ipBlock: { cidr: "10.0.0.0/8", except: [`10.${1 + (q % 40)}.0.0/16`] } }], ports: [{ port: 53, protocol: "UDP" }] },
      ];
      const kind = Math.floor(q / 10) % 5; // each app's 10 policies: two of each kind
      const spec = kind === 4
        ? { podSelector: { matchLabels: { app: `app-${q % 10}` } }, policyTypes: ["Ingress", "Egress"], egress: [{ to: [{ namespaceSelector: {}, podSelector: { matchLabels: { app: `app-${q % 10}` } } }], ports: [{ port: "metrics" }] }] }
        : { podSelector: { matchLabels: { app: `app-${q % 10}` } }, ingress: [rules[kind]] };
      const parsed = parseNetworkPolicy({ kind: "NetworkPolicy", metadata: { name: `policy-${q}`, namespace: ns }, spec });
      if ("error" in parsed) throw new Error(parsed.error);
      policies.push(parsed.policy);
    }
  }
  return { policies, namespaces, pods };
}

test("10,000 policies over 10,000 pods: the 100 endpoints of one node compile, each with its 10 policies", () => {
  const world = bigWorld();
  const endpoints = compileEndpoints(world, "node-7");
  expect(endpoints).toHaveLength(100);
  for (const endpoint of endpoints) {
    expect(endpoint.policies).toHaveLength(10);
    expect(endpoint.ingress!.length).toBeGreaterThan(1000);
    expect(endpoint.egress).toHaveLength(1000); // the app-7 pods of every namespace, each on its metrics port
  }
  const target = endpoints.find((e) => e.pod === "ns-3/pod-7")!;
  const ingress = (ip: string, port: number, protocol: "TCP" | "UDP" = "TCP") => lookupEntries(target.ingress, ip, port, protocol).allowed;
  expect(ingress("10.2.52.1", 80)).toBe(true); // ns-3/pod-8: app-8 of its own namespace
  expect(ingress("10.2.53.1", 80)).toBe(false); // ns-3/pod-9: app-9
  expect(ingress("10.7.167.1", 8080)).toBe(true); // ns-17/pod-3: a namespace of team t7, to the "http" port
  expect(ingress("10.5.179.1", 8080)).toBe(false); // ns-12/pod-3: team t2, env dev
  expect(ingress("10.6.23.1", 8080)).toBe(true); // ns-13/pod-3: env prod, tier 0, 8000-8100
  expect(ingress("10.38.0.5", 53, "UDP")).toBe(true); // one ipBlock's except is inside the other's cidr
  expect(ingress("11.0.0.1", 53, "UDP")).toBe(false);
  expect(lookupEntries(target.egress, "10.20.153.1", 9090, "TCP").allowed).toBe(true); // ns-50/pod-17, metrics
  expect(lookupEntries(target.egress, "10.20.153.1", 8080, "TCP").allowed).toBe(false);
});
