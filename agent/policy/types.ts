// The NetworkPolicy model's inputs and outputs: what the sources hand in (slim copies of NetworkPolicies,
// Namespaces and Pods: only what policy needs) and what the datapath encodes (per local endpoint and direction,
// peer prefixes with the ports they may use). Pure data; the model's functions live beside this file.

export type PolicyProtocol = "TCP" | "UDP" | "SCTP";

/** A container port a pod declares; named ones are what `ports[].port: "http"` resolves against. */
export interface PodPort {
  name?: string;
  port: number;
  protocol: PolicyProtocol;
}

/** A pod as policy sees it (every node's pods: selectors pick peers anywhere). */
export interface PolicyPod {
  namespace: string;
  name: string;
  /** Its pod IPs (status.podIPs); none yet = matches no peer rule and has no endpoint. */
  ips: string[];
  labels: Record<string, string>;
  ports: PodPort[];
  /** spec.nodeName: the agent compiles rules only for pods of its own node. */
  nodeName?: string;
  /** hostNetwork pods are neither selected (not weft's endpoints) nor peers by selector. */
  hostNetwork?: boolean;
}

export interface PolicyNamespace {
  name: string;
  labels: Record<string, string>;
}

export type LabelOperator = "In" | "NotIn" | "Exists" | "DoesNotExist";

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: LabelOperator; values?: string[] }[];
}

/** One peer of a rule (networking.k8s.io/v1 NetworkPolicyPeer), validated. */
export type PolicyPeer =
  | { podSelector?: LabelSelector; namespaceSelector?: LabelSelector }
  | { ipBlock: { cidr: string; except: string[] } };

/** One entry of a rule's ports, validated: `port` absent = every port of the protocol. */
export interface PolicyPortSpec {
  protocol: PolicyProtocol;
  port?: number | string;
  endPort?: number;
}

/** One ingress or egress rule: `peers` empty = every peer; `ports` empty = every port and protocol. */
export interface PolicyRule {
  peers: PolicyPeer[];
  ports: PolicyPortSpec[];
}

/** A NetworkPolicy after validation (parsePolicy): what the model compiles. */
export interface NetworkPolicyModel {
  namespace: string;
  name: string;
  podSelector: LabelSelector;
  /** policyTypes, explicit or inferred (Ingress always unless only Egress is listed; Egress when egress rules exist). */
  ingress: PolicyRule[] | null;
  egress: PolicyRule[] | null;
}

/** Everything the model reads, as the sources last saw it. */
export interface PolicyWorld {
  policies: NetworkPolicyModel[];
  namespaces: PolicyNamespace[];
  pods: PolicyPod[];
}

/** A port range a peer may use: protocol "ANY" with 0–65535 = all traffic (a rule without ports). */
export interface PortRange {
  protocol: PolicyProtocol | "ANY";
  first: number;
  last: number;
}

/** Which rule allowed something: for `policy explain` and status. */
export interface RuleRef {
  policy: string; // "namespace/name"
  direction: "ingress" | "egress";
  index: number; // the rule's index in the policy's ingress or egress list
}

/**
 * One LPM entry of an endpoint's direction: the peer prefix (canonical CIDR, /32 or /128 for a pod) and the port
 * ranges allowed to or from the addresses whose longest matching entry it is. An entry with no ranges denies
 * (an ipBlock's `except` carved out of a wider allowed prefix).
 */
export interface PolicyEntry {
  cidr: string;
  ports: PortRange[];
  rules: RuleRef[];
}

/** One direction of one endpoint: null = not isolated (every peer allowed), else only what `entries` allow. */
export type DirectionRules = PolicyEntry[] | null;

export interface EndpointPolicy {
  /** "namespace/name" of the pod. */
  pod: string;
  ips: string[];
  ingress: DirectionRules;
  egress: DirectionRules;
  /** The policies selecting the pod, "namespace/name", sorted. */
  policies: string[];
}
