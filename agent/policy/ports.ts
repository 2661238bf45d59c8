// Port ranges: what a rule's `ports` allow, with named ports resolved against a pod's container ports, and the
// union of several rules' ranges in the form the datapath stores (per protocol, sorted, overlapping and adjacent
// ranges merged; one "ANY" range when some rule allows every port and protocol, which subsumes the rest).
import type { PodPort, PolicyPortSpec, PolicyProtocol, PortRange } from "./types";

/** A rule without ports: every protocol, every port. */
export const ALL_TRAFFIC: Readonly<PortRange> = Object.freeze({ protocol: "ANY", first: 0, last: 65535 });

const PROTOCOL_ORDER: Record<PortRange["protocol"], number> = { ANY: 0, TCP: 1, UDP: 2, SCTP: 3 };

/**
 * The ranges one entry of a rule's `ports` allows. A named port resolves against `namedPorts` (the container
 * ports of the pod it names a port of: the policy's own pod for ingress, the destination pod for egress); the
 * name and the protocol must both match. Without `namedPorts`, or when no container port has the name, a named
 * port allows nothing, as the API documents.
 */
export function resolvePortSpec(spec: PolicyPortSpec, namedPorts: readonly PodPort[] | undefined): PortRange[] {
  if (spec.port === undefined) return [{ protocol: spec.protocol, first: 0, last: 65535 }];
  if (typeof spec.port === "number") return [{ protocol: spec.protocol, first: spec.port, last: spec.endPort ?? spec.port }];
  const resolved: PortRange[] = [];
  for (const port of namedPorts ?? []) {
    if (port.name === spec.port && port.protocol === spec.protocol) resolved.push({ protocol: port.protocol, first: port.port, last: port.port });
  }
  return resolved;
}

/** What a rule's `ports` allow, merged: every port and protocol when the list is empty. */
export function resolveRulePorts(specs: readonly PolicyPortSpec[], namedPorts: readonly PodPort[] | undefined): PortRange[] {
  if (specs.length === 0) return [{ ...ALL_TRAFFIC }];
  return mergePortRanges(specs.flatMap((spec) => resolvePortSpec(spec, namedPorts)));
}

/** Whether any spec of a rule's ports names a port (so that what it allows depends on a pod). */
export function hasNamedPort(specs: readonly PolicyPortSpec[]): boolean {
  return specs.some((spec) => typeof spec.port === "string");
}

/** The union of `ranges`: [ANY] when one is ANY, else per protocol sorted with overlapping and adjacent ones merged. */
export function mergePortRanges(ranges: readonly PortRange[]): PortRange[] {
  if (ranges.some((range) => range.protocol === "ANY")) return [{ ...ALL_TRAFFIC }];
  const sorted = [...ranges].sort((a, b) => PROTOCOL_ORDER[a.protocol] - PROTOCOL_ORDER[b.protocol] || a.first - b.first);
  const merged: PortRange[] = [];
  for (const range of sorted) {
    const last = merged[merged.length - 1];
    if (last && last.protocol === range.protocol && range.first <= last.last + 1) {
      last.last = Math.max(last.last, range.last);
    } else {
      merged.push({ ...range });
    }
  }
  return merged;
}

/** Whether two merged range lists are the same. */
export function samePortRanges(a: readonly PortRange[], b: readonly PortRange[]): boolean {
  if (a.length !== b.length) return false;
  return a.every((range, i) => range.protocol === b[i]!.protocol && range.first === b[i]!.first && range.last === b[i]!.last);
}

/**
 * Whether `ranges` allow this protocol and port, as the datapath reads them: ANY allows everything (also
 * protocols without ports, such as ICMP); a TCP, UDP or SCTP range allows its own protocol's ports.
 */
export function portRangesAllow(ranges: readonly PortRange[], protocol: PolicyProtocol | "ICMP", port: number): boolean {
  return ranges.some((range) => range.protocol === "ANY" || (range.protocol === protocol && port >= range.first && port <= range.last));
}

/** Whether one entry of a rule's ports allows this traffic, named ports resolved against `namedPorts`. */
export function portSpecAllows(
  spec: PolicyPortSpec, namedPorts: readonly PodPort[] | undefined, protocol: PolicyProtocol | "ICMP", port: number,
): boolean {
  if (spec.protocol !== protocol) return false;
  if (spec.port === undefined) return true;
  if (typeof spec.port === "number") return port >= spec.port && port <= (spec.endPort ?? spec.port);
  return (namedPorts ?? []).some((p) => p.name === spec.port && p.protocol === protocol && p.port === port);
}
