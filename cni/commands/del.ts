// DEL: best effort and idempotent. The pod's namespace may be gone, the interface may be gone, DEL may come
// twice: each still succeeds and the addresses are released. The host veth is found by its derived name, so it
// goes even when the namespace cannot be entered.
import { deleteLinkIfExists, getLink, NetlinkSocket } from "../../native/netlink";
import { NetnsError, withNetns } from "../../native/netns";
import { parseNetConf } from "../config";
import type { CniEnv } from "../env";
import { hostVethName, isLeftoverOf } from "../host-veth";
import { release } from "../ipam";
import { detachEndpoint } from "../fast-path";
import { fastPathOf, ipamCall, openStore } from "../network";
import { checkCommandAllowed } from "../spec/version";

export function runDel(env: CniEnv, stdin: Buffer): unknown {
  const conf = parseNetConf(stdin);
  checkCommandAllowed("DEL", conf.cniVersion);
  const fastPath = fastPathOf(conf);
  if (fastPath) detachEndpoint(fastPath, hostVethName(env.containerId, env.ifname));
  if (env.netns) deletePodInterface(env.netns, env.ifname);
  deleteHostVeth(env);
  ipamCall(() => release(openStore(conf), { id: env.containerId, ifname: env.ifname }));
  return undefined;
}

function deletePodInterface(netns: string, ifname: string): void {
  try {
    withNetns(netns, () => {
      const sock = NetlinkSocket.open();
      try {
        const link = getLink(sock, ifname);
        if (link?.kind === "veth") deleteLinkIfExists(sock, link.index);
      } finally {
        sock.close();
      }
    });
  } catch (error) {
    // The namespace is gone (or was never one): its interfaces went with it.
    if (error instanceof NetnsError && (error.code === "ENOENT" || error.code === "ENOTNETNS")) return;
    throw error;
  }
}

function deleteHostVeth(env: CniEnv): void {
  const sock = NetlinkSocket.open();
  try {
    const link = getLink(sock, hostVethName(env.containerId, env.ifname));
    if (link && isLeftoverOf(link, env.containerId, env.ifname)) deleteLinkIfExists(sock, link.index);
  } finally {
    sock.close();
  }
}
