import { describe, expect, test } from "vitest";
import { parseNamespace, parseNetworkPolicy, parsePod } from "../../agent/policy/parse";
import type { NetworkPolicyModel } from "../../agent/policy/types";

function networkPolicy(spec: unknown, name = "p", namespace = "x"): unknown {
  return { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name, namespace }, spec };
}

function parsed(spec: unknown): NetworkPolicyModel {
  const result = parseNetworkPolicy(networkPolicy(spec));
  if ("error" in result) throw new Error(result.error);
  return result.policy;
}

function errorOf(spec: unknown, name = "p"): string {
  const result = parseNetworkPolicy(networkPolicy(spec, name));
  if (!("error" in result)) throw new Error("expected an error");
  return result.error;
}

describe("parseNetworkPolicy: policyTypes, as the API server defaults them", () => {
  test("without policyTypes or rules: an ingress policy that allows nothing (default deny ingress)", () => {
    expect(parsed({ podSelector: {} })).toEqual({ namespace: "x", name: "p", podSelector: {}, ingress: [], egress: null });
  });

  test("without policyTypes, egress rules make it an egress policy too", () => {
    const policy = parsed({ podSelector: {}, egress: [{ ports: [{ port: 53, protocol: "UDP" }] }] });
    expect(policy.ingress).toEqual([]);
    expect(policy.egress).toEqual([{ peers: [], ports: [{ protocol: "UDP", port: 53 }] }]);
  });

  test("without policyTypes, `egress: []` alone does not make it an egress policy", () => {
    expect(parsed({ podSelector: {}, egress: [] }).egress).toBeNull();
  });

  test("policyTypes [Egress] only: ingress is not isolated, whatever ingress rules it lists", () => {
    const policy = parsed({ podSelector: {}, policyTypes: ["Egress"], ingress: [{}] });
    expect(policy.ingress).toBeNull();
    expect(policy.egress).toEqual([]);
  });

  test("policyTypes [Ingress, Egress] without rules: default deny both ways", () => {
    const policy = parsed({ podSelector: {}, policyTypes: ["Ingress", "Egress"] });
    expect(policy.ingress).toEqual([]);
    expect(policy.egress).toEqual([]);
  });

  test("an empty rule allows every peer on every port; an absent from or ports likewise", () => {
    expect(parsed({ podSelector: {}, ingress: [{}] }).ingress).toEqual([{ peers: [], ports: [] }]);
    expect(parsed({ podSelector: {}, ingress: [{ from: [], ports: [] }] }).ingress).toEqual([{ peers: [], ports: [] }]);
  });

  test("a missing namespace is default, as kubectl apply places the object", () => {
    const result = parseNetworkPolicy({ kind: "NetworkPolicy", metadata: { name: "p" }, spec: { podSelector: {} } });
    expect("policy" in result && result.policy.namespace).toBe("default");
  });
});

describe("parseNetworkPolicy: peers and ports", () => {
  test("ipBlock cidr and excepts are kept in canonical network form", () => {
    const policy = parsed({
      podSelector: {},
      ingress: [{ from: [{ ipBlock: { cidr: "10.0.3.7/16", except: ["10.0.5.9/24"] } }, { ipBlock: { cidr: "FD00:0::/48" } }] }],
    });
    expect(policy.ingress![0]!.peers).toEqual([
      { ipBlock: { cidr: "10.0.0.0/16", except: ["10.0.5.0/24"] } },
      { ipBlock: { cidr: "fd00::/48", except: [] } },
    ]);
  });

  test("a peer with both selectors is one peer (pods matching podSelector in namespaces matching namespaceSelector)", () => {
    const policy = parsed({
      podSelector: { matchLabels: { app: "db" } },
      ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: "a" } }, podSelector: { matchLabels: { app: "web" } } }] }],
    });
    expect(policy.ingress![0]!.peers).toEqual([{ namespaceSelector: { matchLabels: { team: "a" } }, podSelector: { matchLabels: { app: "web" } } }]);
  });

  test("ports: protocol defaults to TCP; named ports, endPort and SCTP are kept", () => {
    const policy = parsed({
      podSelector: {},
      ingress: [{ ports: [{ port: 80 }, { port: "http", protocol: "TCP" }, { port: 8000, endPort: 8080 }, { protocol: "SCTP", port: 9 }, { protocol: "UDP" }] }],
    });
    expect(policy.ingress![0]!.ports).toEqual([
      { protocol: "TCP", port: 80 },
      { protocol: "TCP", port: "http" },
      { protocol: "TCP", port: 8000, endPort: 8080 },
      { protocol: "SCTP", port: 9 },
      { protocol: "UDP" },
    ]);
  });
});

describe("parseNetworkPolicy: bad input, each named in one line", () => {
  const rule = (from: unknown[]) => ({ podSelector: {}, ingress: [{ from }] });

  test("an except outside the cidr", () => {
    expect(errorOf(rule([{ podSelector: {} }, { ipBlock: { cidr: "10.0.0.0/16", except: ["10.9.0.0/16"] } }]), "deny-all"))
      .toBe("NetworkPolicy x/deny-all: spec.ingress[0].from[1].ipBlock.except[0] 10.9.0.0/16 is not inside 10.0.0.0/16");
  });

  test("an except equal to the cidr, or of the other family", () => {
    expect(errorOf(rule([{ ipBlock: { cidr: "10.0.0.0/16", except: ["10.0.0.0/16"] } }])))
      .toBe("NetworkPolicy x/p: spec.ingress[0].from[0].ipBlock.except[0] 10.0.0.0/16 is not strictly inside 10.0.0.0/16: it excepts all of it");
    expect(errorOf(rule([{ ipBlock: { cidr: "10.0.0.0/16", except: ["fd00::/64"] } }])))
      .toBe("NetworkPolicy x/p: spec.ingress[0].from[0].ipBlock.except[0] fd00::/64 is not inside 10.0.0.0/16");
  });

  test("an ipBlock that is not a CIDR", () => {
    expect(errorOf(rule([{ ipBlock: { cidr: "10.0.0.0/33" } }])))
      .toBe('NetworkPolicy x/p: spec.ingress[0].from[0].ipBlock.cidr "10.0.0.0/33" is not a CIDR');
    expect(errorOf(rule([{ ipBlock: { cidr: "10.0.0.1" } }])))
      .toBe('NetworkPolicy x/p: spec.ingress[0].from[0].ipBlock.cidr "10.0.0.1" is not a CIDR');
    expect(errorOf(rule([{ ipBlock: { cidr: "10.0.0.0/8", except: ["garbage"] } }])))
      .toBe('NetworkPolicy x/p: spec.ingress[0].from[0].ipBlock.except[0] "garbage" is not a CIDR');
    expect(errorOf(rule([{ ipBlock: {} }]))).toBe("NetworkPolicy x/p: spec.ingress[0].from[0].ipBlock.cidr is missing");
  });

  test("an ipBlock together with a selector in one peer", () => {
    expect(errorOf({ podSelector: {}, egress: [{ to: [{ ipBlock: { cidr: "10.0.0.0/8" }, namespaceSelector: {} }] }] }))
      .toBe("NetworkPolicy x/p: spec.egress[0].to[0] has ipBlock with namespaceSelector: an ipBlock peer cannot have a selector");
  });

  test("a peer that names nothing", () => {
    expect(errorOf(rule([{}]))).toBe("NetworkPolicy x/p: spec.ingress[0].from[0] names no peer: podSelector, namespaceSelector or ipBlock");
  });

  const ports = (entry: unknown) => ({ podSelector: {}, ingress: [{ ports: [entry] }] });

  test("an unknown protocol", () => {
    expect(errorOf(ports({ protocol: "ICMP", port: 80 }))).toBe('NetworkPolicy x/p: spec.ingress[0].ports[0].protocol "ICMP" is not TCP, UDP or SCTP');
    expect(errorOf(ports({ protocol: "tcp", port: 80 }))).toBe('NetworkPolicy x/p: spec.ingress[0].ports[0].protocol "tcp" is not TCP, UDP or SCTP');
  });

  test("endPort without port, with a named port, or smaller than port", () => {
    expect(errorOf(ports({ endPort: 90 }))).toBe("NetworkPolicy x/p: spec.ingress[0].ports[0].endPort 90 needs a port");
    expect(errorOf(ports({ port: "http", endPort: 90 }))).toBe('NetworkPolicy x/p: spec.ingress[0].ports[0].endPort 90 needs a numeric port, not "http"');
    expect(errorOf(ports({ port: 80, endPort: 79 }))).toBe("NetworkPolicy x/p: spec.ingress[0].ports[0].endPort 79 is less than port 80");
  });

  test("a port out of range, and a port name the API refuses", () => {
    expect(errorOf(ports({ port: 70000 }))).toBe("NetworkPolicy x/p: spec.ingress[0].ports[0].port 70000 is not a port number (1-65535)");
    expect(errorOf(ports({ port: 0 }))).toBe("NetworkPolicy x/p: spec.ingress[0].ports[0].port 0 is not a port number (1-65535)");
    expect(errorOf(ports({ port: 80, endPort: 65536 }))).toBe("NetworkPolicy x/p: spec.ingress[0].ports[0].endPort 65536 is not a port number (1-65535)");
    expect(errorOf(ports({ port: "80" })))
      .toBe('NetworkPolicy x/p: spec.ingress[0].ports[0].port "80" is not a port name (1-15 of a-z, 0-9 and "-", with a letter)');
  });

  test("a selector with an invalid operator, In or NotIn without values, Exists with values", () => {
    const expression = (e: unknown) => ({ podSelector: { matchExpressions: [e] } });
    expect(errorOf(expression({ key: "app", operator: "Equals", values: ["a"] })))
      .toBe('NetworkPolicy x/p: spec.podSelector.matchExpressions[0].operator "Equals" is not In, NotIn, Exists or DoesNotExist');
    expect(errorOf(expression({ key: "app", operator: "In" })))
      .toBe("NetworkPolicy x/p: spec.podSelector.matchExpressions[0].values is empty: In needs values");
    expect(errorOf(expression({ key: "app", operator: "NotIn", values: [] })))
      .toBe("NetworkPolicy x/p: spec.podSelector.matchExpressions[0].values is empty: NotIn needs values");
    expect(errorOf(expression({ key: "app", operator: "Exists", values: ["a"] })))
      .toBe("NetworkPolicy x/p: spec.podSelector.matchExpressions[0].values must be empty for Exists");
    expect(errorOf(rule([{ namespaceSelector: { matchLabels: { "bad key": "v" } } }])))
      .toBe('NetworkPolicy x/p: spec.ingress[0].from[0].namespaceSelector.matchLabels key "bad key" is not a label key');
  });

  test("policyTypes that are not Ingress or Egress", () => {
    expect(errorOf({ podSelector: {}, policyTypes: ["Both"] })).toBe('NetworkPolicy x/p: spec.policyTypes[0] "Both" is not Ingress or Egress');
  });

  test("several problems are all named, in one line", () => {
    expect(errorOf({ podSelector: {}, ingress: [{ ports: [{ protocol: "ICMP" }, { port: 0 }] }] })).toBe(
      'NetworkPolicy x/p: spec.ingress[0].ports[0].protocol "ICMP" is not TCP, UDP or SCTP; spec.ingress[0].ports[1].port 0 is not a port number (1-65535)',
    );
  });

  test("an object without a name, or of another API version", () => {
    expect(parseNetworkPolicy({ kind: "NetworkPolicy", spec: {} })).toEqual({ error: "NetworkPolicy has no metadata.name" });
    expect(parseNetworkPolicy({ apiVersion: "extensions/v1beta1", kind: "NetworkPolicy", metadata: { name: "p", namespace: "x" }, spec: {} }))
      .toEqual({ error: 'NetworkPolicy x/p: apiVersion "extensions/v1beta1" is not networking.k8s.io/v1' });
  });
});

describe("parseNamespace and parsePod", () => {
  test("a Namespace gets the label the API server gives every namespace", () => {
    expect(parseNamespace({ kind: "Namespace", metadata: { name: "x", labels: { team: "a" } } }))
      .toEqual({ namespace: { name: "x", labels: { team: "a", "kubernetes.io/metadata.name": "x" } } });
  });

  const fullPod = {
    apiVersion: "v1", kind: "Pod",
    metadata: { name: "a", namespace: "x", labels: { app: "web" }, uid: "1234", annotations: { note: "dropped" } },
    spec: {
      nodeName: "node-1",
      containers: [
        { name: "web", image: "nginx", ports: [{ name: "http", containerPort: 80 }, { containerPort: 53, protocol: "UDP" }] },
        { name: "metrics", image: "m", ports: [{ name: "metrics", containerPort: 9090, protocol: "TCP" }] },
      ],
      initContainers: [
        { name: "setup", image: "s", ports: [{ name: "setup", containerPort: 1 }] },
        { name: "proxy", image: "p", restartPolicy: "Always", ports: [{ name: "proxy", containerPort: 15001, protocol: "SCTP" }] },
      ],
    },
    status: { phase: "Running", podIP: "10.244.1.5", podIPs: [{ ip: "10.244.1.5" }, { ip: "FD00:10:244:1:0::5" }] },
  };

  test("a Pod keeps its IPs (canonical), labels, every container port, node and hostNetwork only", () => {
    expect(parsePod(fullPod)).toEqual({
      pod: {
        namespace: "x", name: "a", ips: ["10.244.1.5", "fd00:10:244:1::5"], labels: { app: "web" }, nodeName: "node-1",
        ports: [
          { name: "http", port: 80, protocol: "TCP" },
          { port: 53, protocol: "UDP" },
          { name: "metrics", port: 9090, protocol: "TCP" },
          { name: "proxy", port: 15001, protocol: "SCTP" },
        ],
      },
    });
  });

  test("status.podIP when podIPs is absent; no IPs before the pod has one, and none once it has finished", () => {
    const withStatus = (status: unknown) => {
      const result = parsePod({ ...fullPod, status });
      return "pod" in result ? result.pod.ips : result.error;
    };
    expect(withStatus({ podIP: "10.244.1.6" })).toEqual(["10.244.1.6"]);
    expect(withStatus({ phase: "Pending" })).toEqual([]);
    expect(withStatus({ phase: "Succeeded", podIP: "10.244.1.6" })).toEqual([]);
    expect(withStatus({ podIPs: [{ ip: "10.244.1.300" }] })).toBe('Pod x/a: status.podIPs[0].ip "10.244.1.300" is not an IP address');
  });

  test("hostNetwork is kept", () => {
    const result = parsePod({ ...fullPod, spec: { ...fullPod.spec, hostNetwork: true } });
    expect("pod" in result && result.pod.hostNetwork).toBe(true);
  });
});
