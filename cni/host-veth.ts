// The host end of a pod's veth. Its name is derived from the attachment (container ID + ifname), so DEL and GC
// find it even when the pod's namespace is gone, and a retried ADD replaces the leftover of a killed one. The
// alias marks it as weft's: GC only ever deletes veths that carry it.
import { createHash } from "node:crypto";

export const HOST_VETH_ALIAS_PREFIX = "weft:";

export function hostVethName(containerId: string, ifname: string): string {
  return `veth${createHash("sha256").update(`${containerId}/${ifname}`).digest("hex").slice(0, 8)}`;
}

export function hostVethAlias(containerId: string, ifname: string): string {
  return `${HOST_VETH_ALIAS_PREFIX}${containerId}/${ifname}`;
}

/** The attachment a weft alias names, or undefined for a link that is not ours. */
export function parseHostVethAlias(alias: string | undefined): { containerId: string; ifname: string } | undefined {
  if (!alias?.startsWith(HOST_VETH_ALIAS_PREFIX)) return undefined;
  const rest = alias.slice(HOST_VETH_ALIAS_PREFIX.length);
  const slash = rest.lastIndexOf("/");
  if (slash <= 0) return undefined;
  return { containerId: rest.slice(0, slash), ifname: rest.slice(slash + 1) };
}
