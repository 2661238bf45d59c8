// A Kubernetes Node object → a node record, and the annotations the agent publishes on its own Node.
//
// Read from each Node:
//   pod CIDRs  spec.podCIDRs, or spec.podCIDR when that list is empty (kube-controller-manager's allocation)
//   public IP  the annotation <prefix>/public-ip; with flannelCompat, else flannel's public-ip (on nodes flannel
//              manages: flannel.alpha.coreos.com/kube-subnet-manager = "true"); else the first InternalIP in
//              status.addresses of the cluster network's family (else the first InternalIP)
//   VTEP MAC   the annotation <prefix>/vtep-mac; with flannelCompat, else flannel's backend-data
//              {"VNI":1,"VtepMAC":"…"} when its backend-type is "vxlan"
// An annotation that is present but garbage rejects the node (it is never silently replaced by a fallback).
//
// Published on this node (flannel's names and formats from pkg/subnet/kube/{annotations,kube}.go and
// pkg/backend/vxlan): <prefix>/{public-ip,vtep-mac,backend-type}; with flannelCompat also
// flannel.alpha.coreos.com/backend-type ("vxlan" | "host-gw"), backend-data ({"VNI":<vni>,"VtepMAC":"<mac>"} for
// vxlan, "null" for host-gw: Go's encoding of an empty json.RawMessage), public-ip, kube-subnet-manager "true".

import type { LocalAnnouncement } from "../model";
import { parseMac, parsePublicIp, quote, type NodeRecord, type NodeRejection } from "./validate";

export const DEFAULT_ANNOTATION_PREFIX = "weft.dev";
const FLANNEL_ANNOTATION_PREFIX = "flannel.alpha.coreos.com";

export const FLANNEL_ANNOTATIONS = {
  backendType: `${FLANNEL_ANNOTATION_PREFIX}/backend-type`,
  backendData: `${FLANNEL_ANNOTATION_PREFIX}/backend-data`,
  publicIp: `${FLANNEL_ANNOTATION_PREFIX}/public-ip`,
  kubeSubnetManager: `${FLANNEL_ANNOTATION_PREFIX}/kube-subnet-manager`,
} as const;

export interface WeftAnnotations {
  publicIp: string;
  vtepMac: string;
  backendType: string;
}

/** weft's annotation names under `prefix` (a DNS subdomain such as "weft.dev"). */
export function weftAnnotations(prefix: string): WeftAnnotations {
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(prefix) || prefix.length > 253) {
    throw new TypeError(`Invalid annotation prefix ${quote(prefix)}: must be a DNS subdomain such as "weft.dev"`);
  }
  return { publicIp: `${prefix}/public-ip`, vtepMac: `${prefix}/vtep-mac`, backendType: `${prefix}/backend-type` };
}

/** The parts of a Node the sources read: a deserialised V1Node and a raw watch object both fit. */
export interface KubeNode {
  metadata?: { name?: string; annotations?: Record<string, string> };
  spec?: { podCIDR?: string; podCIDRs?: string[] };
  status?: { addresses?: { type?: string; address?: string }[] };
}

export interface NodeReadOptions {
  annotations: WeftAnnotations;
  flannelCompat: boolean;
  /** The cluster network's family, preferred among InternalIPs. */
  family: 4 | 6;
}

/** The pod CIDRs a Node was assigned, as written (validated later). */
export function podCidrsOf(node: KubeNode): unknown[] {
  const list = node.spec?.podCIDRs;
  if (Array.isArray(list) && list.length > 0) return list;
  const single = node.spec?.podCIDR;
  return single === undefined || single === null || single === "" ? [] : [single];
}

export function nodeToRecord(node: KubeNode, options: NodeReadOptions): NodeRecord | NodeRejection {
  const name = node.metadata?.name;
  if (typeof name !== "string" || name === "") return { name: "(no name)", reason: "Node has no metadata.name" };
  const podCidrs = podCidrsOf(node);
  if (!podCidrs.every((c) => typeof c === "string")) return { name, reason: `spec.podCIDRs ${quote(podCidrs)} is not a list of strings` };
  const annotations: Record<string, unknown> = node.metadata?.annotations ?? {};
  const flannel = options.flannelCompat && annotations[FLANNEL_ANNOTATIONS.kubeSubnetManager] === "true";

  const record: NodeRecord = { name, podCidrs: podCidrs as string[] };
  const ipAnnotation = [options.annotations.publicIp, ...(flannel ? [FLANNEL_ANNOTATIONS.publicIp] : [])].find((key) => annotations[key] !== undefined);
  if (ipAnnotation !== undefined) {
    const publicIp = parsePublicIp(annotations[ipAnnotation]);
    if (!publicIp) return { name, reason: `annotation ${ipAnnotation} ${quote(annotations[ipAnnotation])} is not a unicast IP address` };
    record.publicIp = publicIp;
  } else {
    record.publicIp = internalIp(node, options.family);
    if (record.publicIp === undefined) return { name, reason: `no public IP: no ${options.annotations.publicIp} annotation and no InternalIP in status.addresses` };
  }

  const macAnnotation = annotations[options.annotations.vtepMac];
  if (macAnnotation !== undefined) {
    const mac = parseMac(macAnnotation);
    if (!mac) return { name, reason: `annotation ${options.annotations.vtepMac} ${quote(macAnnotation)} is not a unicast MAC address` };
    record.vtepMac = mac;
  } else if (flannel && annotations[FLANNEL_ANNOTATIONS.backendType] === "vxlan" && annotations[FLANNEL_ANNOTATIONS.backendData] !== undefined) {
    const mac = flannelVtepMac(annotations[FLANNEL_ANNOTATIONS.backendData]);
    if (!mac) return { name, reason: `annotation ${FLANNEL_ANNOTATIONS.backendData} ${quote(annotations[FLANNEL_ANNOTATIONS.backendData])} has no valid VtepMAC` };
    record.vtepMac = mac;
  }
  return record;
}

/** The VtepMAC of flannel's vxlan backend-data, or undefined when it is not {"VtepMAC": "<unicast MAC>", …}. */
export function flannelVtepMac(backendData: unknown): string | undefined {
  if (typeof backendData !== "string") return undefined;
  try {
    const data: unknown = JSON.parse(backendData);
    return typeof data === "object" && data !== null ? parseMac((data as Record<string, unknown>).VtepMAC) : undefined;
  } catch {
    return undefined;
  }
}

export function internalIp(node: KubeNode, family: 4 | 6): string | undefined {
  const addresses = Array.isArray(node.status?.addresses) ? node.status.addresses : [];
  const internal = addresses.filter((a) => a?.type === "InternalIP" && typeof a.address === "string").map((a) => a.address!);
  const preferred = internal.find((a) => (family === 4 ? a.includes(".") : a.includes(":"))) ?? internal[0];
  return preferred;
}

/** The annotations this node should carry, given the announcement. */
export function localAnnotations(local: LocalAnnouncement, options: { annotations: WeftAnnotations; flannelCompat: boolean; vni: number }): Record<string, string> {
  const wanted: Record<string, string> = {
    [options.annotations.publicIp]: local.publicIp,
    [options.annotations.backendType]: local.backendType,
  };
  if (local.vtepMac !== undefined) wanted[options.annotations.vtepMac] = local.vtepMac;
  if (options.flannelCompat) {
    wanted[FLANNEL_ANNOTATIONS.backendType] = local.backendType;
    wanted[FLANNEL_ANNOTATIONS.backendData] = local.backendType === "vxlan" && local.vtepMac !== undefined
      ? JSON.stringify({ VNI: options.vni, VtepMAC: local.vtepMac })
      : "null";
    wanted[FLANNEL_ANNOTATIONS.publicIp] = local.publicIp;
    wanted[FLANNEL_ANNOTATIONS.kubeSubnetManager] = "true";
  }
  return wanted;
}
