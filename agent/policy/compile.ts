// The policy model's output: for each pod of this node that weft connects (not on the host's network, with an
// address), what each direction allows, as LPM entries the datapath loads (lpm.ts says how they are built).
//
// Semantics, per networking.k8s.io/v1:
//   - a direction is isolated (non-null) when some policy selecting the pod has that policy type; then only the
//     union of the rules of all those policies is allowed (several policies = union);
//   - a rule's peers: podSelector / namespaceSelector pick pods anywhere in the cluster, which contribute their
//     /32 and /128; an ipBlock contributes its cidr less its excepts; no peers = 0.0.0.0/0 and ::/0;
//   - a rule's ports: none = every port and protocol; a named port resolves, for ingress, against the selected
//     pod's own container ports, and for egress against each destination pod's (so each pod's /32 gets its own
//     port). A name no container declares, with that protocol, allows nothing.
//   - An egress named port whose peer is an ipBlock allows nothing: an ipBlock names addresses, not pods, and the
//     datapath has no per-destination-pod answer for an address it reached through a CIDR. (A destination pod the
//     rule also selects by label, or with no `to` at all, still gets its resolved port on its own /32.)
// Traffic between a pod and its own node (kubelet probes) is allowed by the datapath itself, not by entries here.
import { parseCidr, type Cidr } from "../../native/addresses";
import { decomposeGrants, type DecomposeOptions, type Grant } from "./lpm";
import { hasNamedPort, resolveRulePorts } from "./ports";
import { WorldIndex, objectId, peerKey } from "./world-index";
import type {
  DirectionRules, EndpointPolicy, NetworkPolicyModel, PolicyEntry, PolicyPod, PolicyRule, PolicyWorld, PortRange, RuleRef,
} from "./types";

type Direction = "ingress" | "egress";

export interface CompileOptions extends DecomposeOptions {
  /** An index of the same world, when the caller already has one. */
  index?: WorldIndex;
}

/**
 * The policy of every endpoint on `nodeName`, sorted by "namespace/name". Endpoints whose directions compile from
 * the same policies (and, for ingress named ports, the same container ports) share one entries array: treat the
 * result as read-only.
 */
export function compileEndpoints(world: PolicyWorld, nodeName: string, options: CompileOptions = {}): EndpointPolicy[] {
  const compiler = new Compiler(options.index ?? new WorldIndex(world), options);
  const endpoints: EndpointPolicy[] = [];
  for (const pod of world.pods) {
    if (pod.nodeName !== nodeName || pod.hostNetwork || pod.ips.length === 0) continue;
    const selecting = compiler.index.policiesSelecting(pod).sort((a, b) => compareText(objectId(a), objectId(b)));
    endpoints.push({
      pod: objectId(pod),
      ips: [...pod.ips],
      ingress: compiler.direction(selecting, "ingress", pod),
      egress: compiler.direction(selecting, "egress", pod),
      policies: selecting.map(objectId),
    });
  }
  return endpoints.sort((a, b) => compareText(a.pod, b.pod));
}

/** One compilation's work, with what it remembers between endpoints. */
class Compiler {
  readonly index: WorldIndex;
  readonly #options: DecomposeOptions;
  /** Entries by the policies (and, where named ingress ports make it matter, the endpoint's ports) they come from. */
  readonly #entries = new Map<string, PolicyEntry[]>();
  /** Per-pod answers of a rule's named ports, by the pods and the ports' specs (equal across many policies). */
  readonly #resolved = new Map<string, { ports: PortRange[]; prefixes: Cidr[] }[]>();

  constructor(index: WorldIndex, options: DecomposeOptions) {
    this.index = index;
    this.#options = options;
  }

  direction(selecting: NetworkPolicyModel[], direction: Direction, pod: PolicyPod): DirectionRules {
    const policies = selecting.filter((policy) => policy[direction] !== null);
    if (policies.length === 0) return null;
    // Only ingress named ports depend on the endpoint itself; otherwise the policies alone decide the entries.
    const dependsOnPod = direction === "ingress" && policies.some((policy) => policy.ingress!.some((rule) => hasNamedPort(rule.ports)));
    const key = `${direction}|${policies.map(objectId).join(",")}${dependsOnPod ? `|${JSON.stringify(pod.ports)}` : ""}`;
    let entries = this.#entries.get(key);
    if (!entries) {
      const grants = policies.flatMap((policy) => policy[direction]!.flatMap((rule, i) => {
        const ref: RuleRef = { policy: objectId(policy), direction, index: i };
        return direction === "ingress" ? this.#ingressGrants(policy, rule, ref, pod) : this.#egressGrants(policy, rule, ref);
      }));
      entries = decomposeGrants(grants, this.#options);
      this.#entries.set(key, entries);
    }
    return entries;
  }

  /** An ingress rule allows the same ports (named ones resolved against the endpoint) from each of its peers. */
  #ingressGrants(policy: NetworkPolicyModel, rule: PolicyRule, ref: RuleRef, endpoint: PolicyPod): Grant[] {
    const ports = resolveRulePorts(rule.ports, endpoint.ports);
    if (ports.length === 0) return [];
    if (rule.peers.length === 0) return [everywhere(ports, ref)];
    return rule.peers.map((peer) => "ipBlock" in peer
      ? ipBlockGrant(peer.ipBlock, ports, ref)
      : { prefixes: this.index.prefixesOfPeer(policy.namespace, peer), except: NONE, ports, rule: ref });
  }

  /** An egress rule's named ports resolve per destination pod; its numeric ports are the same for every peer. */
  #egressGrants(policy: NetworkPolicyModel, rule: PolicyRule, ref: RuleRef): Grant[] {
    const named = hasNamedPort(rule.ports);
    const unnamed = resolveRulePorts(rule.ports, undefined); // named ports resolve to nothing without a pod
    const grants: Grant[] = [];
    if (rule.peers.length === 0) {
      if (unnamed.length > 0) grants.push(everywhere(unnamed, ref));
      if (named) {
        // Every destination pod that declares one of the names gets what the rule allows it on its own address.
        const names = [...new Set(rule.ports.flatMap((spec) => (typeof spec.port === "string" ? [spec.port] : [])))].sort();
        grants.push(...this.#grantsByResolvedPorts(`names:${names.join(",")}`, () => new Set(names.flatMap((name) => this.index.podsWithPortName(name))), rule, ref));
      }
      return grants;
    }
    for (const peer of rule.peers) {
      if ("ipBlock" in peer) grants.push(ipBlockGrant(peer.ipBlock, unnamed, ref));
      else if (named) grants.push(...this.#grantsByResolvedPorts(peerKey(policy.namespace, peer), () => this.index.podsOfPeer(policy.namespace, peer), rule, ref));
      else grants.push({ prefixes: this.index.prefixesOfPeer(policy.namespace, peer), except: NONE, ports: unnamed, rule: ref });
    }
    return grants;
  }

  /**
   * One grant per distinct answer of the rule's ports on the pods (most pods of a Deployment declare the same
   * ports), remembered by `podsKey` and the ports' specs, which many policies repeat.
   */
  #grantsByResolvedPorts(podsKey: string, pods: () => Iterable<PolicyPod>, rule: PolicyRule, ref: RuleRef): Grant[] {
    const key = `${podsKey}|${JSON.stringify(rule.ports)}`;
    let groups = this.#resolved.get(key);
    if (!groups) {
      const byPorts = new Map<string, { ports: PortRange[]; prefixes: Cidr[] }>();
      for (const pod of pods()) {
        const ports = resolveRulePorts(rule.ports, pod.ports);
        if (ports.length === 0) continue;
        const portsKey = ports.map((range) => `${range.protocol}:${range.first}-${range.last}`).join(",");
        let group = byPorts.get(portsKey);
        if (!group) {
          group = { ports, prefixes: [] };
          byPorts.set(portsKey, group);
        }
        group.prefixes.push(...this.index.podPrefixes(pod));
      }
      groups = [...byPorts.values()];
      this.#resolved.set(key, groups);
    }
    return groups.map(({ ports, prefixes }) => ({ prefixes, except: NONE, ports, rule: ref }));
  }
}

function ipBlockGrant(block: { cidr: string; except: string[] }, ports: PortRange[], rule: RuleRef): Grant {
  return { prefixes: [prefix(block.cidr)], except: block.except.map(prefix), ports, rule };
}

let allAddresses: Cidr[] | undefined;
function everywhere(ports: PortRange[], rule: RuleRef): Grant {
  allAddresses ??= [prefix("0.0.0.0/0"), prefix("::/0")];
  return { prefixes: allAddresses, except: NONE, ports, rule };
}

function prefix(text: string): Cidr {
  const cidr = parseCidr(text);
  if (!cidr) throw new RangeError(`${text} is not a CIDR`); // parseNetworkPolicy has checked it
  return cidr;
}

const NONE: readonly never[] = Object.freeze([]);

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
