// The longest-prefix-match decomposition of one endpoint direction's rules. Each rule allows some ports to a set of
// prefixes, each prefix minus its ipBlock's excepts (a "grant"). Every prefix any grant names (cidrs, excepts, pod
// /32s and /128s) becomes an entry whose ports are the union of the grants that cover it: a grant covers prefix P
// when its cidr contains P and none of its own excepts contains P. Then, for any address, the entry of its longest
// matching prefix holds exactly the union of what the rules allow that address (empty = denied, as for an address
// carved out by an except). Proof sketch: the inserted prefixes that contain an address form a chain; the longest
// one, P, is contained in every other, so a grant's cidr or except contains the address exactly when it contains P.
//
// The walk: per family, prefixes sorted by first address then length are a pre-order of their containment tree; a
// stack gives each its parent. A node's ports are its parent's plus its own grants' (a union), except where a
// grant's except starts, where they are recomputed from the grants still in force. An entry whose ports equal its
// parent's is dropped (an address that matched it now matches the parent, with the same answer), as is an empty
// entry with no parent (no entry = denied anyway): with "allow all" rules beside pod selectors, most pod /32s go.
//
// It runs per endpoint direction over thousands of prefixes (a namespaceSelector picks every pod of several
// namespaces), so it allocates little: grants carry parsed prefixes, one grant stands for all the pods a peer
// selects, and port and rule lists are shared with the parent whenever a node adds nothing new. Entries share
// those lists: treat them as read-only.
import type { Cidr } from "../../native/addresses";
import { mergePortRanges, samePortRanges } from "./ports";
import type { PolicyEntry, PortRange, RuleRef } from "./types";

/** What one rule allows to some prefixes: its ports, for every address of `prefixes` outside `except`. */
export interface Grant {
  prefixes: readonly Cidr[];
  /** An ipBlock's excepts (only with one prefix, its cidr). */
  except: readonly Cidr[];
  /** Merged (mergePortRanges); empty = allows nothing. */
  ports: readonly PortRange[];
  rule: RuleRef;
}

interface Node {
  cidr: Cidr;
  grants: Grant[];
  /** Grants whose except is this prefix: out of force from here down. */
  revoked: Grant[] | undefined;
  parent: Node | undefined;
  ports: readonly PortRange[];
  rules: readonly RuleRef[] | undefined;
}

export interface DecomposeOptions {
  /** Keep entries that repeat their parent's ports (default false: they change no lookup's answer). */
  keepRedundant?: boolean;
}

const NONE: readonly never[] = Object.freeze([]);

/** The LPM entries for `grants`, IPv4 first, each family by address then prefix length. */
export function decomposeGrants(grants: readonly Grant[], options: DecomposeOptions = {}): PolicyEntry[] {
  // Keyed by the network, so that two spellings of one prefix (an ipBlock /32 and a pod's address) are one node.
  const nodes = new Map<string, Node>();
  const nodeOf = (cidr: Cidr): Node => {
    let node = nodes.get(cidr.network);
    if (!node) {
      node = { cidr, grants: [], revoked: undefined, parent: undefined, ports: NONE, rules: undefined };
      nodes.set(cidr.network, node);
    }
    return node;
  };
  for (const grant of grants) {
    if (grant.ports.length === 0) continue; // allows nothing: neither it nor its excepts change any answer
    for (const prefix of grant.prefixes) nodeOf(prefix).grants.push(grant);
    for (const except of grant.except) (nodeOf(except).revoked ??= []).push(grant);
  }
  const ordered = [...nodes.values()].sort(byAddress);
  const unions = new PortUnions();
  const ruleLists = new RuleLists();
  const entries: PolicyEntry[] = [];
  const stack: Node[] = [];
  for (const node of ordered) {
    while (stack.length > 0 && !contains(stack[stack.length - 1]!.cidr, node.cidr)) stack.pop();
    const parent = stack[stack.length - 1];
    node.parent = parent;
    stack.push(node);
    if (node.revoked) {
      node.ports = mergePortRanges(grantsInForce(node).flatMap((grant) => grant.ports));
    } else {
      let ports = parent?.ports ?? NONE;
      for (const grant of node.grants) ports = unions.of(ports, grant.ports);
      node.ports = ports;
    }
    const redundant = parent ? node.ports === parent.ports || samePortRanges(node.ports, parent.ports) : node.ports.length === 0;
    if (redundant && !options.keepRedundant) continue;
    entries.push({ cidr: node.cidr.network, ports: node.ports as PortRange[], rules: rulesOf(node, ruleLists) as RuleRef[] });
  }
  return entries;
}

function byAddress(a: Node, b: Node): number {
  return a.cidr.family - b.cidr.family || (a.cidr.first < b.cidr.first ? -1 : a.cidr.first > b.cidr.first ? 1 : 0) || a.cidr.prefixLength - b.cidr.prefixLength;
}

function contains(outer: Cidr, inner: Cidr): boolean {
  return outer.family === inner.family && outer.first <= inner.first && inner.last <= outer.last;
}

/**
 * Unions of merged port lists, remembered by the lists' identity: thousands of pod /32s under one ipBlock add the
 * same rule's ports to the same parent's, and get one shared list instead of thousands of equal ones.
 */
class PortUnions {
  readonly #known = new Map<readonly PortRange[], Map<readonly PortRange[], readonly PortRange[]>>();

  of(a: readonly PortRange[], b: readonly PortRange[]): readonly PortRange[] {
    if (a === b || b.length === 0 || a[0]?.protocol === "ANY") return a;
    if (a.length === 0 || b[0]?.protocol === "ANY") return b;
    let withA = this.#known.get(a);
    if (!withA) {
      withA = new Map();
      this.#known.set(a, withA);
    }
    let union = withA.get(b);
    if (!union) {
      union = mergePortRanges([...a, ...b]);
      // A list that adds nothing to `a` is `a`, so that equal unions stay one list further down.
      if (samePortRanges(union, a)) union = a;
      withA.set(b, union);
    }
    return union;
  }
}

/** The grants covering `node`: those of it and its ancestors, less those an except on the way has revoked. */
function grantsInForce(node: Node): Grant[] {
  const revoked = new Set<Grant>();
  const inForce: Grant[] = [];
  for (let at: Node | undefined = node; at; at = at.parent) {
    for (const grant of at.revoked ?? NONE) revoked.add(grant);
    for (const grant of at.grants) if (!revoked.has(grant)) inForce.push(grant);
  }
  return inForce;
}

/**
 * The rules whose grants cover `node`, sorted; computed once per node, from its parent's when nothing is revoked.
 * Lists are shared the same way as port lists: a pod /32 under a parent adds one rule to the parent's list.
 */
function rulesOf(node: Node, lists: RuleLists): readonly RuleRef[] {
  if (node.rules) return node.rules;
  let rules = node.revoked ? NONE : node.parent ? rulesOf(node.parent, lists) : NONE;
  for (const grant of node.revoked ? grantsInForce(node) : node.grants) rules = lists.with(rules, grant.rule);
  node.rules = rules;
  return rules;
}

class RuleLists {
  readonly #known = new Map<readonly RuleRef[], Map<RuleRef, readonly RuleRef[]>>();

  /** `rules` with `rule`, sorted; `rules` itself when it has it. */
  with(rules: readonly RuleRef[], rule: RuleRef): readonly RuleRef[] {
    let withRules = this.#known.get(rules);
    if (!withRules) {
      withRules = new Map();
      this.#known.set(rules, withRules);
    }
    let result = withRules.get(rule);
    if (!result) {
      result = rules.some((r) => r === rule || compareRules(r, rule) === 0) ? rules : [...rules, rule].sort(compareRules);
      withRules.set(rule, result);
    }
    return result;
  }
}

export function compareRules(a: RuleRef, b: RuleRef): number {
  return a.policy < b.policy ? -1 : a.policy > b.policy ? 1 : a.direction < b.direction ? -1 : a.direction > b.direction ? 1 : a.index - b.index;
}
