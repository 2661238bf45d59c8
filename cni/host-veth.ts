// The host end of a pod's veth. Its name is derived from the attachment (container ID + ifname), so DEL and GC
// find it even when the pod's namespace is gone, and a retried ADD replaces the leftover of a killed one. The
// alias marks it as weft's: GC only ever deletes veths that carry it.
export const HOST_VETH_ALIAS_PREFIX = "weft:";

/**
 * `veth` + 8 hex digits of FNV-1a over "<containerId>/<ifname>". Not a cryptographic hash on purpose: loading
 * node:crypto costs ~8 ms of the plugin's start-up. A collision with another attachment is detected by the
 * alias and refused, never resolved by deleting the other pod's link.
 */
export function hostVethName(containerId: string, ifname: string): string {
  const text = `${containerId}/${ifname}`;
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return `veth${hash.toString(16).padStart(8, "0")}`;
}

export function hostVethAlias(containerId: string, ifname: string): string {
  return `${HOST_VETH_ALIAS_PREFIX}${containerId}/${ifname}`;
}

/**
 * Whether a host link is this attachment's veth: marked with its alias, or, for an ADD killed between creating
 * the pair and setting the alias, an unmarked veth on no bridge carrying the name derived from it. (Another
 * plugin's random `veth%08x` name matching that derived name is a 1 in 2^32 chance, and it would be enslaved.)
 */
export function isLeftoverOf(link: { name: string; kind?: string; alias?: string; masterIndex?: number }, containerId: string, ifname: string): boolean {
  if (link.name !== hostVethName(containerId, ifname)) return false;
  if (link.alias === hostVethAlias(containerId, ifname)) return true;
  return link.alias === undefined && link.kind === "veth" && link.masterIndex === undefined;
}

/** The attachment a weft alias names, or undefined for a link that is not ours. */
export function parseHostVethAlias(alias: string | undefined): { containerId: string; ifname: string } | undefined {
  if (!alias?.startsWith(HOST_VETH_ALIAS_PREFIX)) return undefined;
  const rest = alias.slice(HOST_VETH_ALIAS_PREFIX.length);
  const slash = rest.lastIndexOf("/");
  if (slash <= 0) return undefined;
  return { containerId: rest.slice(0, slash), ifname: rest.slice(slash + 1) };
}
