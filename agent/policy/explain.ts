// `weft-agent policy explain`: whether one connection is allowed and which rules allow it, read from the policies
// themselves rather than from the compiled entries, so that the two can be held against each other (the tests do,
// with lookupEntries). A connection needs both its source's egress and its destination's ingress to allow it.
import { canonicalAddress, parseCidr } from "../../native/addresses";
import { compareRules } from "./lpm";
import { portSpecAllows } from "./ports";
import { selectorMatches } from "./selector";
import { WorldIndex, isPeerPod, objectId } from "./world-index";
import type { NetworkPolicyModel, PodPort, PolicyPeer, PolicyPod, PolicyProtocol, PolicyRule, PolicyWorld, RuleRef } from "./types";

/** One direction's part: whether some policy isolates it, which policies, and the rules that allow the connection. */
export interface DirectionVerdict {
  isolated: boolean;
  /** The policies that isolate this direction ("namespace/name", sorted). */
  policies: string[];
  allowedBy: RuleRef[];
}

export interface ConnectionExplanation {
  allowed: boolean;
  /** The addresses the connection uses: the source pod's address of the destination's family. */
  source: string;
  destination: string;
  egress: DirectionVerdict;
  ingress: DirectionVerdict;
  /** Between a pod and a host-network pod of its own node: always allowed by the datapath (kubelet probes). */
  ownNode: boolean;
  reason: string;
}

export type ExplainProtocol = PolicyProtocol | "ICMP";

const OPEN: DirectionVerdict = Object.freeze({ isolated: false, policies: [], allowedBy: [] }) as DirectionVerdict;

/**
 * Explains a connection from pod `from` ("namespace/name") to `to` (a pod, "namespace/name", or an address) on
 * `port`/`protocol` (the port is ignored for ICMP). An address of a pod is that pod. When `to` is a pod with
 * several addresses, its first of a family the source also has is used.
 */
export function explainConnection(
  world: PolicyWorld, from: string, to: string, port: number, protocol: ExplainProtocol,
): ConnectionExplanation | { error: string } {
  const index = new WorldIndex(world);
  const source = findPod(world, from);
  if (!source) return { error: `Cannot explain: no pod ${from}` };
  let destinationPod: PolicyPod | undefined;
  let destination: string | undefined;
  if (to.includes("/")) {
    destinationPod = findPod(world, to);
    if (!destinationPod) return { error: `Cannot explain: no pod ${to}` };
    destination = destinationPod.ips.find((ip) => source.ips.some((own) => sameFamily(own, ip)));
    if (!destination) return { error: `Cannot explain: ${from} and ${to} have no address family in common` };
  } else {
    destination = canonicalAddress(to);
    if (!destination) return { error: `Cannot explain: ${to} is neither a pod (namespace/name) nor an IP address` };
    destinationPod = index.podByIp(destination) ?? world.pods.find((pod) => pod.ips.includes(destination!));
  }
  const sourceIp = source.ips.find((ip) => sameFamily(ip, destination!));
  if (!sourceIp) return { error: `Cannot explain: ${from} has no IPv${destination.includes(":") ? 6 : 4} address` };

  // Only pods weft connects are endpoints with policies, and only they are peers a selector can pick.
  const sourcePeer = isPeerPod(source) ? source : undefined;
  const destinationPeer = destinationPod && isPeerPod(destinationPod) ? destinationPod : undefined;
  const egress = sourcePeer
    ? verdict(index, sourcePeer, "egress", (policy, rule) => egressRuleAllows(index, policy, rule, destinationPeer, destination!, port, protocol))
    : OPEN;
  const ingress = destinationPeer
    ? verdict(index, destinationPeer, "ingress", (policy, rule) => ingressRuleAllows(index, policy, rule, sourcePeer, sourceIp, destinationPeer.ports, port, protocol))
    : OPEN;
  const ownNode = isOwnNodeTraffic(source, destinationPod);
  const passes = (d: DirectionVerdict) => !d.isolated || d.allowedBy.length > 0;
  const allowed = ownNode || (passes(egress) && passes(ingress));
  const what = `${protocol === "ICMP" ? "ICMP" : `${protocol} ${port}`} from ${from} (${sourceIp}) to ${to === destination ? to : `${to} (${destination})`}`;
  return { allowed, source: sourceIp, destination, egress, ingress, ownNode, reason: describe(allowed, ownNode, what, egress, ingress) };
}

function verdict(
  index: WorldIndex, pod: PolicyPod, direction: "ingress" | "egress", allows: (policy: NetworkPolicyModel, rule: PolicyRule) => boolean,
): DirectionVerdict {
  const policies = index.world.policies
    .filter((policy) => policy.namespace === pod.namespace && policy[direction] !== null && selectorMatches(policy.podSelector, pod.labels));
  const allowedBy: RuleRef[] = [];
  for (const policy of policies) {
    policy[direction]!.forEach((rule, i) => {
      if (allows(policy, rule)) allowedBy.push({ policy: objectId(policy), direction, index: i });
    });
  }
  return { isolated: policies.length > 0, policies: policies.map(objectId).sort(), allowedBy: allowedBy.sort(compareRules) };
}

/**
 * An egress rule allows the destination when a peer matches it and a port entry allows the traffic. Named ports
 * resolve against the destination pod only when a selector peer picked it (or the rule has no peers): an ipBlock
 * peer's named ports allow nothing (compile.ts says why).
 */
function egressRuleAllows(
  index: WorldIndex, policy: NetworkPolicyModel, rule: PolicyRule, destinationPod: PolicyPod | undefined, destination: string,
  port: number, protocol: ExplainProtocol,
): boolean {
  const portsAllow = (namedPorts: readonly PodPort[] | undefined) =>
    rule.ports.length === 0 || rule.ports.some((spec) => portSpecAllows(spec, namedPorts, protocol, port));
  if (rule.peers.length === 0) return portsAllow(destinationPod?.ports);
  const bySelector = rule.peers.some((peer) => selectorPeerMatches(index, policy, peer, destinationPod));
  const byBlock = rule.peers.some((peer) => ipBlockMatches(peer, destination));
  return (bySelector && portsAllow(destinationPod!.ports)) || (byBlock && portsAllow(undefined));
}

/** An ingress rule allows the source when a peer matches it; named ports resolve against the destination itself. */
function ingressRuleAllows(
  index: WorldIndex, policy: NetworkPolicyModel, rule: PolicyRule, sourcePod: PolicyPod | undefined, source: string,
  ownPorts: readonly PodPort[], port: number, protocol: ExplainProtocol,
): boolean {
  const peerMatches = rule.peers.length === 0
    || rule.peers.some((peer) => selectorPeerMatches(index, policy, peer, sourcePod) || ipBlockMatches(peer, source));
  return peerMatches && (rule.ports.length === 0 || rule.ports.some((spec) => portSpecAllows(spec, ownPorts, protocol, port)));
}

function selectorPeerMatches(index: WorldIndex, policy: NetworkPolicyModel, peer: PolicyPeer, pod: PolicyPod | undefined): boolean {
  if (!pod || "ipBlock" in peer) return false;
  const inNamespace = peer.namespaceSelector
    ? selectorMatches(peer.namespaceSelector, index.namespaceLabels(pod.namespace))
    : pod.namespace === policy.namespace;
  return inNamespace && selectorMatches(peer.podSelector ?? {}, pod.labels);
}

function ipBlockMatches(peer: PolicyPeer, ip: string): boolean {
  if (!("ipBlock" in peer)) return false;
  return cidrHolds(peer.ipBlock.cidr, ip) && !peer.ipBlock.except.some((except) => cidrHolds(except, ip));
}

function cidrHolds(cidr: string, ip: string): boolean {
  const block = parseCidr(cidr);
  const address = parseCidr(`${ip}/${ip.includes(":") ? 128 : 32}`);
  return !!block && !!address && block.family === address.family && block.first <= address.first && address.first <= block.last;
}

/** A pod and a host-network pod of its node: the node's own address, which the datapath always lets through. */
function isOwnNodeTraffic(source: PolicyPod, destination: PolicyPod | undefined): boolean {
  if (!destination || source.nodeName === undefined || source.nodeName !== destination.nodeName) return false;
  return !!source.hostNetwork !== !!destination.hostNetwork;
}

function describe(allowed: boolean, ownNode: boolean, what: string, egress: DirectionVerdict, ingress: DirectionVerdict): string {
  if (ownNode) return `allowed: ${what} is between a pod and its own node, which policy never blocks (kubelet probes)`;
  const part = (direction: "egress" | "ingress", d: DirectionVerdict) => {
    if (!d.isolated) return `no policy isolates its ${direction}`;
    if (d.allowedBy.length === 0) return `${direction} is isolated by ${d.policies.join(", ")} and no rule allows it`;
    return `${direction} allowed by ${d.allowedBy.map((r) => `${r.policy} ${r.direction}[${r.index}]`).join(", ")}`;
  };
  if (allowed) return `allowed: ${what}: ${part("egress", egress)}; ${part("ingress", ingress)}`;
  const failing = [["egress", egress], ["ingress", ingress]] as const;
  return `denied: ${what}: ${failing.filter(([, d]) => d.isolated && d.allowedBy.length === 0).map(([name, d]) => part(name, d)).join("; ")}`;
}

function findPod(world: PolicyWorld, id: string): PolicyPod | undefined {
  const slash = id.indexOf("/");
  const namespace = id.slice(0, slash);
  const name = id.slice(slash + 1);
  return slash > 0 ? world.pods.find((pod) => pod.namespace === namespace && pod.name === name) : undefined;
}

function sameFamily(a: string, b: string): boolean {
  return a.includes(":") === b.includes(":");
}
