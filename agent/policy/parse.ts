// The edge between Kubernetes objects (as the API server sends them, or as kubectl writes them into a file) and
// the policy model: a NetworkPolicy validated as the API server validates networking.k8s.io/v1 and defaulted as
// it defaults it; Namespaces and Pods cut down to what policy reads. Everything wrong with an object is named in
// one line: "NetworkPolicy x/deny-all: spec.ingress[0].from[1].ipBlock.except[0] 10.9.0.0/16 is not inside 10.0.0.0/16".
import { canonicalAddress, cidrInside, parseCidr } from "../../native/addresses";
import {
  describeProblems, isRecord, readList, readObject, readObjectName, readStringMap, type Problems,
} from "./fields";
import { isPortName } from "./names";
import { parseLabelSelector } from "./selector";
import type {
  NetworkPolicyModel, PodPort, PolicyNamespace, PolicyPeer, PolicyPod, PolicyPortSpec, PolicyProtocol, PolicyRule,
} from "./types";

export type Parsed<T> = { error: string } | T;

const PROTOCOLS: readonly PolicyProtocol[] = ["TCP", "UDP", "SCTP"];
const POLICY_API = "networking.k8s.io/v1";
/** The label the API server puts on every Namespace (since Kubernetes 1.21), so that selectors can name one. */
export const NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name";

/**
 * A networking.k8s.io/v1 NetworkPolicy, validated and defaulted. policyTypes, when absent or empty, default as
 * the API server defaults them: Ingress always, and Egress when `egress` has at least one rule (`egress: []`
 * alone does not make a policy an egress policy). A direction the policy types leave out is null, whatever rules
 * it lists (the API server keeps them, and they have no effect).
 */
export function parseNetworkPolicy(object: unknown): Parsed<{ policy: NetworkPolicyModel }> {
  const named = readObjectName(object, true);
  if ("problem" in named) return { error: `NetworkPolicy ${named.problem}` };
  const what = `NetworkPolicy ${named.namespace}/${named.name}`;
  const problems: Problems = [];
  const { kind, apiVersion, spec: rawSpec } = object as Record<string, unknown>;
  if (kind !== undefined && kind !== "NetworkPolicy") problems.push(`kind ${JSON.stringify(kind)} is not NetworkPolicy`);
  if (apiVersion !== undefined && apiVersion !== POLICY_API) problems.push(`apiVersion ${JSON.stringify(apiVersion)} is not ${POLICY_API}`);
  const spec = readObject(rawSpec, "spec", problems) ?? {};
  const podSelector = parseLabelSelector(spec.podSelector, "spec.podSelector", problems);
  const ingress = readList(spec.ingress, "spec.ingress", problems).map((rule, i) => parseRule(rule, `spec.ingress[${i}]`, "from", problems));
  const egress = readList(spec.egress, "spec.egress", problems).map((rule, i) => parseRule(rule, `spec.egress[${i}]`, "to", problems));
  const types = parsePolicyTypes(spec.policyTypes, egress.length > 0, problems);
  if (problems.length > 0) return { error: describeProblems(what, problems) };
  return {
    policy: {
      namespace: named.namespace, name: named.name, podSelector,
      ingress: types.has("Ingress") ? ingress : null,
      egress: types.has("Egress") ? egress : null,
    },
  };
}

function parsePolicyTypes(value: unknown, hasEgressRules: boolean, problems: Problems): Set<string> {
  const listed = readList(value, "spec.policyTypes", problems);
  if (listed.length === 0) return new Set(hasEgressRules ? ["Ingress", "Egress"] : ["Ingress"]);
  if (listed.length > 2) problems.push(`spec.policyTypes has ${listed.length} entries: at most Ingress and Egress`);
  listed.forEach((type, i) => {
    if (type !== "Ingress" && type !== "Egress") problems.push(`spec.policyTypes[${i}] ${JSON.stringify(type)} is not Ingress or Egress`);
  });
  return new Set(listed as string[]);
}

function parseRule(value: unknown, path: string, peersField: "from" | "to", problems: Problems): PolicyRule {
  const rule = readObject(value, path, problems) ?? {};
  const peers = readList(rule[peersField], `${path}.${peersField}`, problems)
    .map((peer, i) => parsePeer(peer, `${path}.${peersField}[${i}]`, problems))
    .filter((peer) => peer !== undefined);
  const ports = readList(rule.ports, `${path}.ports`, problems)
    .map((port, i) => parsePort(port, `${path}.ports[${i}]`, problems))
    .filter((port) => port !== undefined);
  return { peers, ports };
}

function parsePeer(value: unknown, path: string, problems: Problems): PolicyPeer | undefined {
  const peer = readObject(value, path, problems);
  if (!peer) return undefined;
  const has = (field: string) => peer[field] !== undefined && peer[field] !== null;
  if (has("ipBlock")) {
    const selectors = ["podSelector", "namespaceSelector"].filter(has);
    if (selectors.length > 0) {
      problems.push(`${path} has ipBlock with ${selectors.join(" and ")}: an ipBlock peer cannot have a selector`);
      return undefined;
    }
    const ipBlock = parseIpBlock(peer.ipBlock, `${path}.ipBlock`, problems);
    return ipBlock && { ipBlock };
  }
  if (!has("podSelector") && !has("namespaceSelector")) {
    problems.push(`${path} names no peer: podSelector, namespaceSelector or ipBlock`);
    return undefined;
  }
  const selectors: { podSelector?: ReturnType<typeof parseLabelSelector>; namespaceSelector?: ReturnType<typeof parseLabelSelector> } = {};
  if (has("podSelector")) selectors.podSelector = parseLabelSelector(peer.podSelector, `${path}.podSelector`, problems);
  if (has("namespaceSelector")) selectors.namespaceSelector = parseLabelSelector(peer.namespaceSelector, `${path}.namespaceSelector`, problems);
  return selectors;
}

/**
 * An ipBlock: cidr and every except in canonical network form ("10.0.0.1/8" reads as 10.0.0.0/8, as the API server's
 * reading does), each except strictly inside the cidr (the API server refuses an except equal to the cidr).
 */
function parseIpBlock(value: unknown, path: string, problems: Problems): { cidr: string; except: string[] } | undefined {
  const block = readObject(value, path, problems);
  if (!block) return undefined;
  const cidr = typeof block.cidr === "string" ? parseCidr(block.cidr) : undefined;
  if (!cidr) {
    problems.push(block.cidr === undefined ? `${path}.cidr is missing` : `${path}.cidr ${JSON.stringify(block.cidr)} is not a CIDR`);
    return undefined;
  }
  const except: string[] = [];
  readList(block.except, `${path}.except`, problems).forEach((text, i) => {
    const exceptPath = `${path}.except[${i}]`;
    const inner = typeof text === "string" ? parseCidr(text) : undefined;
    if (!inner) problems.push(`${exceptPath} ${JSON.stringify(text ?? null)} is not a CIDR`);
    else if (!cidrInside(inner, cidr)) problems.push(`${exceptPath} ${text} is not inside ${block.cidr}`);
    else if (inner.prefixLength <= cidr.prefixLength) problems.push(`${exceptPath} ${text} is not strictly inside ${block.cidr}: it excepts all of it`);
    else except.push(inner.network);
  });
  return { cidr: cidr.network, except };
}

/** One entry of a rule's ports: protocol (default TCP), port (number 1-65535 or a port name), endPort. */
function parsePort(value: unknown, path: string, problems: Problems): PolicyPortSpec | undefined {
  const entry = readObject(value, path, problems);
  if (!entry) return undefined;
  const before = problems.length;
  const protocol = entry.protocol ?? "TCP";
  if (!PROTOCOLS.includes(protocol as PolicyProtocol)) problems.push(`${path}.protocol ${JSON.stringify(protocol)} is not TCP, UDP or SCTP`);
  const spec: PolicyPortSpec = { protocol: protocol as PolicyProtocol };
  const { port, endPort } = entry;
  if (typeof port === "number") {
    if (!isPortNumber(port)) problems.push(`${path}.port ${port} is not a port number (1-65535)`);
    spec.port = port;
  } else if (typeof port === "string") {
    if (!isPortName(port)) problems.push(`${path}.port ${JSON.stringify(port)} is not a port name (1-15 of a-z, 0-9 and "-", with a letter)`);
    spec.port = port;
  } else if (port !== undefined && port !== null) {
    problems.push(`${path}.port ${JSON.stringify(port)} is neither a port number nor a port name`);
  }
  if (endPort !== undefined && endPort !== null) {
    if (typeof endPort !== "number" || !isPortNumber(endPort)) problems.push(`${path}.endPort ${JSON.stringify(endPort)} is not a port number (1-65535)`);
    else if (spec.port === undefined) problems.push(`${path}.endPort ${endPort} needs a port`);
    else if (typeof spec.port === "string") problems.push(`${path}.endPort ${endPort} needs a numeric port, not ${JSON.stringify(spec.port)}`);
    else if (endPort < spec.port) problems.push(`${path}.endPort ${endPort} is less than port ${spec.port}`);
    else spec.endPort = endPort;
  }
  return problems.length === before ? spec : undefined;
}

function isPortNumber(value: number): boolean {
  return Number.isInteger(value) && value >= 1 && value <= 65535;
}

/**
 * A core/v1 Namespace: its name and labels. The label kubernetes.io/metadata.name is set to the name, as the API
 * server sets it on every Namespace, so that documents written by hand select the same way.
 */
export function parseNamespace(object: unknown): Parsed<{ namespace: PolicyNamespace }> {
  const named = readObjectName(object, false);
  if ("problem" in named) return { error: `Namespace ${named.problem}` };
  const problems: Problems = [];
  const metadata = (object as { metadata: Record<string, unknown> }).metadata;
  const labels = readStringMap(metadata.labels, "metadata.labels", problems);
  if (problems.length > 0) return { error: describeProblems(`Namespace ${named.name}`, problems) };
  return { namespace: { name: named.name, labels: { ...labels, [NAMESPACE_NAME_LABEL]: named.name } } };
}

/**
 * A core/v1 Pod, cut down to what policy reads: its IPs (status.podIPs, else status.podIP; canonical), labels, the
 * ports its containers declare (also those of sidecars: init containers with restartPolicy Always, which keep
 * running), its node and whether it uses the host's network. A pod that has finished (phase Succeeded or Failed)
 * gets no IPs: the kubelet has released them, and another pod may already have one.
 */
export function parsePod(object: unknown): Parsed<{ pod: PolicyPod }> {
  const named = readObjectName(object, true);
  if ("problem" in named) return { error: `Pod ${named.problem}` };
  const problems: Problems = [];
  const { metadata, spec: rawSpec, status: rawStatus } = object as Record<string, unknown>;
  const labels = readStringMap((metadata as Record<string, unknown>).labels, "metadata.labels", problems);
  const spec = readObject(rawSpec, "spec", problems) ?? {};
  const status = readObject(rawStatus, "status", problems) ?? {};
  const ports = podPorts(spec, problems);
  const finished = status.phase === "Succeeded" || status.phase === "Failed";
  const ips = finished ? [] : podIps(status, problems);
  if (spec.nodeName !== undefined && spec.nodeName !== null && typeof spec.nodeName !== "string") problems.push("spec.nodeName is not a string");
  if (problems.length > 0) return { error: describeProblems(`Pod ${named.namespace}/${named.name}`, problems) };
  const pod: PolicyPod = { namespace: named.namespace, name: named.name, ips, labels, ports };
  if (typeof spec.nodeName === "string" && spec.nodeName !== "") pod.nodeName = spec.nodeName;
  if (spec.hostNetwork === true) pod.hostNetwork = true;
  return { pod };
}

function podIps(status: Record<string, unknown>, problems: Problems): string[] {
  const listed = readList(status.podIPs, "status.podIPs", problems);
  const texts: [unknown, string][] = listed.length > 0
    ? listed.map((entry, i) => [isRecord(entry) ? entry.ip : entry, `status.podIPs[${i}].ip`])
    : status.podIP !== undefined && status.podIP !== null && status.podIP !== "" ? [[status.podIP, "status.podIP"]] : [];
  const ips: string[] = [];
  for (const [text, path] of texts) {
    const ip = typeof text === "string" ? canonicalAddress(text) : undefined;
    if (ip === undefined) problems.push(`${path} ${JSON.stringify(text ?? null)} is not an IP address`);
    else if (!ips.includes(ip)) ips.push(ip);
  }
  return ips;
}

function podPorts(spec: Record<string, unknown>, problems: Problems): PodPort[] {
  const ports: PodPort[] = [];
  const read = (field: "containers" | "initContainers") => {
    readList(spec[field], `spec.${field}`, problems).forEach((container, c) => {
      if (!isRecord(container)) return;
      if (field === "initContainers" && container.restartPolicy !== "Always") return;
      readList(container.ports, `spec.${field}[${c}].ports`, problems).forEach((entry, p) => {
        const port = parseContainerPort(entry, `spec.${field}[${c}].ports[${p}]`, problems);
        if (port) ports.push(port);
      });
    });
  };
  read("containers");
  read("initContainers");
  return ports;
}

function parseContainerPort(value: unknown, path: string, problems: Problems): PodPort | undefined {
  const entry = readObject(value, path, problems);
  if (!entry) return undefined;
  const protocol = entry.protocol ?? "TCP";
  if (typeof entry.containerPort !== "number" || !isPortNumber(entry.containerPort)) {
    problems.push(`${path}.containerPort ${JSON.stringify(entry.containerPort ?? null)} is not a port number (1-65535)`);
    return undefined;
  }
  if (!PROTOCOLS.includes(protocol as PolicyProtocol)) {
    problems.push(`${path}.protocol ${JSON.stringify(protocol)} is not TCP, UDP or SCTP`);
    return undefined;
  }
  const port: PodPort = { port: entry.containerPort, protocol: protocol as PolicyProtocol };
  if (typeof entry.name === "string" && entry.name !== "") port.name = entry.name;
  return port;
}
