// A PolicyWorld indexed for the questions the compiler asks many times: the pods of a namespace, the labels of a
// namespace, the policies of a namespace, and the pods a peer selects. What a selector matched is remembered by
// the selector's meaning (selectorKey), so that 10,000 policies over 10,000 pods cost one evaluation per distinct
// (namespace, selector), not one per policy and pod.
import { parseCidr, type Cidr } from "../../native/addresses";
import { NAMESPACE_NAME_LABEL } from "./parse";
import { compileSelector, selectorKey, type LabelMatcher } from "./selector";
import type { LabelSelector, NetworkPolicyModel, PolicyPeer, PolicyPod, PolicyWorld } from "./types";

export class WorldIndex {
  readonly world: PolicyWorld;
  readonly #podsByNamespace = new Map<string, PolicyPod[]>();
  readonly #namespaceLabels = new Map<string, Record<string, string>>();
  readonly #policiesByNamespace = new Map<string, NetworkPolicyModel[]>();
  readonly #matchers = new Map<string, LabelMatcher>();
  readonly #namespacesMatching = new Map<string, string[]>();
  readonly #podsMatching = new Map<string, PolicyPod[]>();
  readonly #prefixesMatching = new Map<string, Cidr[]>();
  readonly #podPrefixes = new WeakMap<PolicyPod, Cidr[]>();
  #podsByIp: Map<string, PolicyPod> | undefined;
  #podsByPortName: Map<string, PolicyPod[]> | undefined;

  constructor(world: PolicyWorld) {
    this.world = world;
    for (const namespace of world.namespaces) this.#namespaceLabels.set(namespace.name, namespace.labels);
    for (const pod of world.pods) {
      const pods = this.#podsByNamespace.get(pod.namespace);
      if (pods) pods.push(pod);
      else this.#podsByNamespace.set(pod.namespace, [pod]);
      // A namespace known only from its pods (a file without its Namespace document, or a Namespace the informer
      // has not delivered yet) has the one label the API server gives every namespace.
      if (!this.#namespaceLabels.has(pod.namespace)) this.#namespaceLabels.set(pod.namespace, { [NAMESPACE_NAME_LABEL]: pod.namespace });
    }
    for (const policy of world.policies) {
      const policies = this.#policiesByNamespace.get(policy.namespace);
      if (policies) policies.push(policy);
      else this.#policiesByNamespace.set(policy.namespace, [policy]);
    }
  }

  /** The labels of a namespace; an unknown one has only kubernetes.io/metadata.name. */
  namespaceLabels(name: string): Record<string, string> {
    return this.#namespaceLabels.get(name) ?? { [NAMESPACE_NAME_LABEL]: name };
  }

  podsIn(namespace: string): readonly PolicyPod[] {
    return this.#podsByNamespace.get(namespace) ?? [];
  }

  /** The policies whose podSelector selects `pod` (policies apply to pods of their own namespace only). */
  policiesSelecting(pod: PolicyPod): NetworkPolicyModel[] {
    if (pod.hostNetwork) return [];
    return (this.#policiesByNamespace.get(pod.namespace) ?? []).filter((policy) => this.matcher(policy.podSelector)(pod.labels));
  }

  /**
   * The pods a selector peer of a policy in `namespace` selects: podSelector alone = pods of the policy's namespace;
   * namespaceSelector alone = every pod of the namespaces it selects; both = the pods podSelector selects in those
   * namespaces. Only pods that can be peers: with IPs, not on the host's network. Empty for an ipBlock peer.
   */
  podsOfPeer(namespace: string, peer: PolicyPeer): readonly PolicyPod[] {
    if ("ipBlock" in peer) return [];
    const key = peerKey(namespace, peer);
    let pods = this.#podsMatching.get(key);
    if (!pods) {
      const matches = this.matcher(peer.podSelector ?? {});
      const namespaces = peer.namespaceSelector ? this.namespacesMatching(peer.namespaceSelector) : [namespace];
      pods = namespaces.flatMap((name) => this.podsIn(name).filter((pod) => isPeerPod(pod) && matches(pod.labels)));
      this.#podsMatching.set(key, pods);
    }
    return pods;
  }

  /** The /32 and /128 of every pod podsOfPeer gives. */
  prefixesOfPeer(namespace: string, peer: PolicyPeer): readonly Cidr[] {
    if ("ipBlock" in peer) return [];
    const key = peerKey(namespace, peer);
    let prefixes = this.#prefixesMatching.get(key);
    if (!prefixes) {
      prefixes = this.podsOfPeer(namespace, peer).flatMap((pod) => this.podPrefixes(pod));
      this.#prefixesMatching.set(key, prefixes);
    }
    return prefixes;
  }

  /** A pod's addresses as host prefixes (/32, /128). */
  podPrefixes(pod: PolicyPod): readonly Cidr[] {
    let prefixes = this.#podPrefixes.get(pod);
    if (!prefixes) {
      prefixes = pod.ips.map((ip) => {
        const prefix = parseCidr(`${ip}/${ip.includes(":") ? 128 : 32}`);
        if (!prefix) throw new RangeError(`Pod ${objectId(pod)}: ${ip} is not an IP address`);
        return prefix;
      });
      this.#podPrefixes.set(pod, prefixes);
    }
    return prefixes;
  }

  /** The names of the namespaces `selector` selects (namespaces known only from their pods included). */
  namespacesMatching(selector: LabelSelector): string[] {
    const key = selectorKey(selector);
    let names = this.#namespacesMatching.get(key);
    if (!names) {
      const matches = this.matcher(selector);
      names = [...this.#namespaceLabels].filter(([, labels]) => matches(labels)).map(([name]) => name);
      this.#namespacesMatching.set(key, names);
    }
    return names;
  }

  /** The peer pod that has `ip` (canonical), if any; the first in the world's order when two claim it. */
  podByIp(ip: string): PolicyPod | undefined {
    if (!this.#podsByIp) {
      this.#podsByIp = new Map();
      for (const pod of this.world.pods) {
        if (!isPeerPod(pod)) continue;
        for (const address of pod.ips) if (!this.#podsByIp.has(address)) this.#podsByIp.set(address, pod);
      }
    }
    return this.#podsByIp.get(ip);
  }

  /** The peer pods that declare a container port named `name` (any protocol). */
  podsWithPortName(name: string): readonly PolicyPod[] {
    if (!this.#podsByPortName) {
      this.#podsByPortName = new Map();
      for (const pod of this.world.pods) {
        if (!isPeerPod(pod)) continue;
        for (const portName of new Set(pod.ports.map((port) => port.name))) {
          if (portName === undefined) continue;
          const pods = this.#podsByPortName.get(portName);
          if (pods) pods.push(pod);
          else this.#podsByPortName.set(portName, [pod]);
        }
      }
    }
    return this.#podsByPortName.get(name) ?? [];
  }

  matcher(selector: LabelSelector): LabelMatcher {
    const key = selectorKey(selector);
    let matcher = this.#matchers.get(key);
    if (!matcher) {
      matcher = compileSelector(selector);
      this.#matchers.set(key, matcher);
    }
    return matcher;
  }
}

/** What a selector peer means, for a policy in `namespace`: equal for peers that select the same pods. */
export function peerKey(namespace: string, peer: { podSelector?: LabelSelector; namespaceSelector?: LabelSelector }): string {
  return `${peer.namespaceSelector ? selectorKey(peer.namespaceSelector) : `=${namespace}`}|${selectorKey(peer.podSelector ?? {})}`;
}

/** A pod selectors can pick as a peer: it has an address, and it is not the host's network (any pod's IP there). */
export function isPeerPod(pod: PolicyPod): boolean {
  return !pod.hostNetwork && pod.ips.length > 0;
}

/** "namespace/name" of a pod or a policy. */
export function objectId(object: { namespace: string; name: string }): string {
  return `${object.namespace}/${object.name}`;
}
