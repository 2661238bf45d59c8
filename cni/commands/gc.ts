// GC (spec 1.1): the runtime names every attachment that is still valid; everything else of this network is
// released: IP reservations and host veths on our bridge (or on none). Only veths carrying weft's alias count.
import { deleteLinkIfExists, getLink, listLinks, NetlinkSocket } from "../../native/netlink";
import { parseNetConf } from "../config";
import type { CniEnv } from "../env";
import { hostVethName, isLeftoverOf, parseHostVethAlias } from "../host-veth";
import { listReservations, releaseIP } from "../ipam";
import { detachEndpoint } from "../fast-path";
import { fastPathOf, ipamCall, openStore } from "../network";
import { invalidField, isObject } from "../spec/fields";
import { checkCommandAllowed } from "../spec/version";

const VALID_ATTACHMENTS = "cni.dev/valid-attachments";

function parseValidAttachments(raw: Record<string, unknown>): Set<string> {
  // Absent is an error, not "nothing is valid": that reading would release every pod's address.
  const list = raw[VALID_ATTACHMENTS];
  if (!Array.isArray(list)) throw invalidField(VALID_ATTACHMENTS, "a list of {containerID, ifname}", list);
  const valid = new Set<string>();
  list.forEach((entry, index) => {
    const field = `${VALID_ATTACHMENTS}[${index}]`;
    if (!isObject(entry) || typeof entry.containerID !== "string" || typeof entry.ifname !== "string") {
      throw invalidField(field, "an object with string containerID and ifname", entry);
    }
    valid.add(`${entry.containerID}/${entry.ifname}`);
    valid.add(entry.containerID); // reservations written by old host-local hold only the container id
  });
  return valid;
}

export function runGc(_env: CniEnv, stdin: Buffer): unknown {
  const conf = parseNetConf(stdin);
  checkCommandAllowed("GC", conf.cniVersion);
  const valid = parseValidAttachments(conf.raw);

  const store = openStore(conf);
  const released = ipamCall(() =>
    listReservations(store).filter((reservation) => {
      const key = reservation.ifname === undefined ? reservation.id : `${reservation.id}/${reservation.ifname}`;
      return !valid.has(key) && releaseIP(store, reservation.ip, { owner: reservation });
    }),
  );

  const fastPath = fastPathOf(conf);
  const sock = NetlinkSocket.open();
  try {
    const bridge = getLink(sock, conf.bridge);
    // Unmarked leftovers of ADDs killed before the alias was set, found by the name derived from each
    // attachment whose address was just released (ADD reserves the address before creating the veth).
    for (const { id, ifname } of released) {
      if (ifname === undefined) continue;
      const link = getLink(sock, hostVethName(id, ifname));
      if (link && link.alias === undefined && isLeftoverOf(link, id, ifname)) deleteLinkIfExists(sock, link.index);
    }
    for (const link of listLinks(sock)) {
      const attachment = parseHostVethAlias(link.alias);
      // Ours, and on this network's bridge, or on none: an ADD killed before attaching it (the runtime does
      // not run GC while an ADD of the network is in flight, so no live ADD owns an unattached weft veth).
      if (!attachment || (link.masterIndex !== undefined && link.masterIndex !== bridge?.index)) continue;
      if (valid.has(`${attachment.containerId}/${attachment.ifname}`)) continue;
      if (fastPath) detachEndpoint(fastPath, link.name);
      deleteLinkIfExists(sock, link.index);
    }
  } finally {
    sock.close();
  }
  return undefined;
}
