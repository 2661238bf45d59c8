// `weft-agent uninstall`: removes every kernel object and file weft created on this node, and nothing else.
// Run it after the DaemonSet is gone (a running agent would put it all back). Ownership by marks only:
//   links      weft.* (VTEPs; their neighbours and FDB entries go with them), host veths with a weft: alias,
//              the CNI bridge when it has no port left that is not weft's
//   routes     main table, protocol 87 (host-gw routes; the vxlan ones went with the VTEP)
//   nftables   table inet weft
//   eBPF       pins under the pin root; clsact filters with weft's priority, handle and program names (and a
//              clsact qdisc they leave empty)
//   files      10-weft.conflist, the subnet file, the agent's state (VTEP MAC, the plugin's addon cache),
//              host-local's weft network directory, the weft plugin in the CNI bin dir
import fs from "node:fs";
import path from "node:path";
import { deleteLinkIfExists, deleteRoute, listLinks, listRoutes, type NetlinkSocket } from "../native/netlink";
import { WEFT_ROUTE_PROTOCOL } from "../native/marks";
import { parseHostVethAlias } from "../cni/host-veth";
import { VTEP_PREFIX } from "./backends";
import { CNI_CONFLIST_NAME, CNI_NETWORK_NAME } from "./cniconf";
import { endpointsDirOf } from "./datapath";
import { removeEbpfState } from "./datapath/cleanup";
import { readMasq, removeMasq, type NftOptions } from "./masq";

export interface UninstallOptions {
  bridge: string;
  cniConfDir: string;
  cniBinDir: string;
  subnetFile: string;
  stateDir: string;
  ipamDataDir: string;
  /** The eBPF datapath's pin root. */
  bpfDir: string;
  nft?: NftOptions;
}

/** Removes weft's objects; returns one line per thing removed (or kept, and why). */
export async function uninstall(sock: NetlinkSocket, options: UninstallOptions): Promise<string[]> {
  const done: string[] = [];
  // The eBPF datapath first: unpinning its links and deleting its clsact filters detaches the programs from the
  // veths and the VTEP.
  for (const pin of removeEbpfState({ bpfDir: options.bpfDir, endpointsDir: endpointsDirOf(options.stateDir), sock })) done.push(`removed ${pin}`);
  for (const route of listRoutes(sock, { family: 4, protocol: WEFT_ROUTE_PROTOCOL }).concat(listRoutes(sock, { family: 6, protocol: WEFT_ROUTE_PROTOCOL }))) {
    if (route.protocol !== WEFT_ROUTE_PROTOCOL) continue;
    try {
      deleteRoute(sock, { dst: route.dst, family: route.family, protocol: WEFT_ROUTE_PROTOCOL, ...(route.gateway ? { gateway: route.gateway } : {}) });
      done.push(`removed route ${route.dst}${route.gateway ? ` via ${route.gateway}` : ""}`);
    } catch (error) {
      done.push(`cannot remove route ${route.dst}: ${(error as Error).message}`);
    }
  }
  const links = listLinks(sock);
  const bridge = links.find((l) => l.name === options.bridge && l.kind === "bridge");
  for (const link of links) {
    const ours = link.name.startsWith(VTEP_PREFIX) || (link.kind === "veth" && link.alias !== undefined && parseHostVethAlias(link.alias) !== undefined);
    if (!ours) continue;
    if (deleteLinkIfExists(sock, link.name)) done.push(`removed link ${link.name}${link.alias ? ` (${link.alias})` : ""}`);
  }
  if (bridge) {
    const others = listLinks(sock).filter((l) => l.masterIndex === bridge.index);
    if (others.length === 0) {
      if (deleteLinkIfExists(sock, bridge.name)) done.push(`removed bridge ${bridge.name}`);
    } else {
      done.push(`kept bridge ${bridge.name}: ports that are not weft's remain (${others.map((l) => l.name).join(", ")})`);
    }
  }
  if ((await readMasq(options.nft)) !== undefined) {
    await removeMasq(options.nft);
    done.push("removed nftables table inet weft");
  }
  const files = [
    path.join(options.cniConfDir, CNI_CONFLIST_NAME),
    options.subnetFile,
    path.join(options.cniBinDir, "weft"),
  ];
  for (const file of files) {
    if (removeIfExists(file)) done.push(`removed ${file}`);
  }
  for (const entry of safeReaddir(options.stateDir)) {
    const file = path.join(options.stateDir, entry);
    if (/^vtep-mac\.\d+$/.test(entry) || entry === "lib" || entry === "endpoints") {
      fs.rmSync(file, { recursive: true, force: true });
      done.push(`removed ${file}`);
    }
  }
  const ipamDir = path.join(options.ipamDataDir, CNI_NETWORK_NAME);
  if (fs.existsSync(ipamDir)) {
    fs.rmSync(ipamDir, { recursive: true, force: true });
    done.push(`removed ${ipamDir}`);
  }
  return done;
}

function removeIfExists(file: string): boolean {
  try {
    fs.unlinkSync(file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw error;
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}
