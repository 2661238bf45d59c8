// NetworkPolicy in the eBPF maps (native/bpf/lib/policy.h): the compiled rules of each local pod
// (agent/policy/compile.ts) written as rule sets, and the pods pointed at them.
//
// A rule set is immutable once a pod points at it. An update writes the new sets first, then points each pod at its
// new sets (one map update per address, atomic), then deletes the sets nobody points at: there is never a moment
// in which a pod is open (no entry) or dark (a half-written set). Sets are shared by content: pods with the same
// rules (a Deployment's replicas) share one. Set IDs are never reused while the maps live; a restarted agent
// continues after the highest ID it finds, and writes fresh sets before it removes the old ones.
import { closeSync } from "node:fs";
import path from "node:path";
import {
  decodeAddr, decodePolicyEndpoint, decodePolicyKey, decodeStatsKey, encodeAddr, encodePolicyEndpoint, encodePolicyKey, encodePolicyPorts,
  PINS, POLICY_MAX_PORTS, SIZES, sumPerCpuStats, type PortRangeEntry,
} from "../../native/bpf/maps";
import { mapDelete, mapKeys, mapLookup, mapUpdate, objGet, possibleCpus } from "../../native/bpf/syscall";
import type { EndpointPolicy, PolicyEntry } from "../policy/types";

export interface PolicyCounts {
  allowed: number;
  denied: number;
}

export interface EndpointPolicyStatus {
  pod: string;
  ips: string[];
  policies: string[];
  /** Rule sets in the maps; 0 = not isolated. */
  ingressSet: number;
  egressSet: number;
  ingress: PolicyCounts;
  egress: PolicyCounts;
}

export interface PolicyMapsStatus {
  /** Some local pod is isolated: the programs read the policy maps. */
  active: boolean;
  sets: number;
  entries: number;
  endpoints: EndpointPolicyStatus[];
  /** What could not be written as compiled (the pod fails closed there, and this says so). */
  problems: string[];
}

interface SetRecord {
  id: number;
  /** The CIDRs written under it, to delete it. */
  cidrs: string[];
}

export class PolicyMaps {
  readonly #bpfDir: string;
  /** Sets in the maps by content (their entries, serialised). */
  #byContent = new Map<string, SetRecord>();
  /** Sets found in the maps at start, written by an earlier run: removed once nothing points at them. */
  #inherited = new Map<number, string[]>();
  #nextSet = 1;
  /** weft_policy_endpoints as last written: address → "ingress/egress". */
  #pointed = new Map<string, string>();
  #endpoints: EndpointPolicy[] = [];
  #problems: string[] = [];
  #recovered = false;

  constructor(options: { bpfDir: string }) {
    this.#bpfDir = options.bpfDir;
  }

  /**
   * Writes `endpoints` (every local pod, isolated or not) and the node's own addresses (always allowed to and from
   * its pods). Returns true when some pod is isolated: the config's POLICY flag.
   */
  apply(endpoints: readonly EndpointPolicy[], hostAddresses: readonly string[]): boolean {
    if (!this.#recovered) this.#recover();
    const problems: string[] = [];
    const used = new Set<number>();
    const wanted = new Map<string, string>();
    this.#withMap(PINS.policy, (fd) => {
      for (const endpoint of endpoints) {
        const ingress = this.#setFor(fd, endpoint.ingress, `${endpoint.pod} ingress`, problems);
        const egress = this.#setFor(fd, endpoint.egress, `${endpoint.pod} egress`, problems);
        if (ingress) used.add(ingress);
        if (egress) used.add(egress);
        if (ingress === 0 && egress === 0) continue;
        for (const ip of endpoint.ips) wanted.set(ip, `${ingress}/${egress}`);
      }
    });
    this.#withMap(PINS.policyEndpoints, (fd) => {
      for (const [ip, sets] of wanted) {
        if (this.#pointed.get(ip) === sets) continue;
        const [ingressSet, egressSet] = sets.split("/").map(Number) as [number, number];
        mapUpdate(fd, encodeAddr(ip), encodePolicyEndpoint({ ingressSet, egressSet }));
        this.#pointed.set(ip, sets);
      }
      for (const ip of [...this.#pointed.keys()]) {
        if (wanted.has(ip)) continue;
        mapDelete(fd, encodeAddr(ip));
        this.#pointed.delete(ip);
      }
    });
    this.#withMap(PINS.policy, (fd) => {
      for (const [content, set] of this.#byContent) {
        if (used.has(set.id)) continue;
        for (const cidr of set.cidrs) mapDelete(fd, encodePolicyKey(set.id, cidr));
        this.#byContent.delete(content);
      }
      for (const [id, cidrs] of this.#inherited) {
        for (const cidr of cidrs) mapDelete(fd, encodePolicyKey(id, cidr));
      }
      this.#inherited.clear();
    });
    this.#syncHostAddresses(hostAddresses);
    this.#endpoints = [...endpoints];
    this.#problems = problems;
    return wanted.size > 0;
  }

  status(): PolicyMapsStatus {
    const counts = this.#readStats();
    const zero = (): PolicyCounts => ({ allowed: 0, denied: 0 });
    const endpoints = this.#endpoints.filter((e) => e.policies.length > 0).map((endpoint) => {
      const [ingressSet, egressSet] = (this.#pointed.get(endpoint.ips[0] ?? "") ?? "0/0").split("/").map(Number) as [number, number];
      const sum = (direction: "ingress" | "egress"): PolicyCounts => {
        const total = zero();
        for (const ip of endpoint.ips) {
          const c = counts.get(`${ip}/${direction}`);
          if (c) {
            total.allowed += c.allowed;
            total.denied += c.denied;
          }
        }
        return total;
      };
      return { pod: endpoint.pod, ips: endpoint.ips, policies: endpoint.policies, ingressSet, egressSet, ingress: sum("ingress"), egress: sum("egress") };
    });
    const entries = [...this.#byContent.values()].reduce((n, set) => n + set.cidrs.length, 0);
    return { active: this.#pointed.size > 0, sets: this.#byContent.size, entries, endpoints, problems: [...this.#problems] };
  }

  /** The set for one direction's rules (0: not isolated), written now if no set has this content. */
  #setFor(fd: number, rules: readonly PolicyEntry[] | null, what: string, problems: string[]): number {
    if (rules === null) return 0;
    const content = JSON.stringify(rules.map((entry) => [entry.cidr, entry.ports]));
    const have = this.#byContent.get(content);
    if (have) return have.id;
    const id = this.#nextSet++;
    const cidrs: string[] = [];
    for (const entry of rules) {
      let ranges: PortRangeEntry[] = entry.ports;
      if (ranges.length > POLICY_MAX_PORTS) {
        // Failing closed for this peer: it loses what the rules allow it, and status says so.
        problems.push(`${what}: ${entry.cidr} is allowed ${ranges.length} port ranges, more than the ${POLICY_MAX_PORTS} a policy entry holds: denied`);
        ranges = [];
      }
      mapUpdate(fd, encodePolicyKey(id, entry.cidr), encodePolicyPorts(ranges));
      cidrs.push(entry.cidr);
    }
    this.#byContent.set(content, { id, cidrs });
    return id;
  }

  /** An earlier run's state: what pods point at (kept until replaced) and its sets (removed after the swap). */
  #recover(): void {
    let highest = 0;
    this.#withMap(PINS.policy, (fd) => {
      for (const key of [...mapKeys(fd, SIZES.policyKey)]) {
        const { set, cidr } = decodePolicyKey(key);
        highest = Math.max(highest, set);
        const cidrs = this.#inherited.get(set) ?? [];
        cidrs.push(cidr);
        this.#inherited.set(set, cidrs);
      }
    });
    this.#withMap(PINS.policyEndpoints, (fd) => {
      for (const key of [...mapKeys(fd, SIZES.addr)]) {
        const value = mapLookup(fd, key, SIZES.policyEndpoint);
        if (!value) continue;
        const sets = decodePolicyEndpoint(value);
        highest = Math.max(highest, sets.ingressSet, sets.egressSet);
        this.#pointed.set(decodeAddr(key), `${sets.ingressSet}/${sets.egressSet}`);
      }
    });
    this.#nextSet = highest + 1;
    this.#recovered = true;
  }

  #syncHostAddresses(addresses: readonly string[]): void {
    this.#withMap(PINS.policyHost, (fd) => {
      const wanted = new Set(addresses.map((ip) => encodeAddr(ip).toString("hex")));
      for (const key of [...mapKeys(fd, SIZES.addr)]) if (!wanted.delete(key.toString("hex"))) mapDelete(fd, key);
      const one = Buffer.alloc(4);
      one.writeUInt32LE(1);
      for (const hex of wanted) mapUpdate(fd, Buffer.from(hex, "hex"), one);
    });
  }

  /** Allowed and denied packets by "address/direction", summed over the CPUs. */
  #readStats(): Map<string, PolicyCounts> {
    const counts = new Map<string, PolicyCounts>();
    try {
      this.#withMap(PINS.policyStats, (fd) => {
        const size = SIZES.stats * possibleCpus();
        for (const key of [...mapKeys(fd, SIZES.statsKey)]) {
          const value = mapLookup(fd, key, size);
          if (!value) continue;
          const { ip, direction } = decodeStatsKey(key);
          counts.set(`${ip}/${direction}`, sumPerCpuStats(value));
        }
      });
    } catch {
      // Pins gone (uninstalled under us): no counts.
    }
    return counts;
  }

  #withMap<T>(pin: string, fn: (fd: number) => T): T {
    const fd = objGet(path.join(this.#bpfDir, pin));
    try {
      return fn(fd);
    } finally {
      closeSync(fd);
    }
  }
}
