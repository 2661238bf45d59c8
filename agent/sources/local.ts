// This node's announcement, checked with the same rules as every other node's record before it is published.

import type { LocalAnnouncement } from "../model";
import { SourceError } from "../errors";
import { isValidNodeName, parseMac, parsePublicIp, quote } from "./validate";

/**
 * The announcement with its address and MAC in canonical form; throws SourceError(ERR_SOURCE_OPTIONS). `claimed`:
 * the name the source was asked to claim, which the announcement must carry.
 */
export function checkAnnouncement(announcement: LocalAnnouncement, claimed: string): LocalAnnouncement {
  const { name, publicIp, vtepMac, backendType } = announcement;
  if (!isValidNodeName(name)) throw invalid(`name ${quote(name)} is not a DNS-1123 subdomain`);
  if (name !== claimed) throw invalid(`name ${quote(name)} is not the node being claimed, ${quote(claimed)}`);
  const ip = parsePublicIp(publicIp);
  if (!ip) throw invalid(`publicIp ${quote(publicIp)} is not a unicast IP address`);
  if (backendType !== "vxlan" && backendType !== "host-gw") throw invalid(`backendType ${quote(backendType)} is not vxlan or host-gw`);
  const checked: LocalAnnouncement = { name, publicIp: ip, backendType };
  if (vtepMac !== undefined) {
    const mac = parseMac(vtepMac);
    if (!mac) throw invalid(`vtepMac ${quote(vtepMac)} is not a unicast MAC address`);
    checked.vtepMac = mac;
  }
  return checked;
}

function invalid(problem: string): SourceError {
  return new SourceError("ERR_SOURCE_OPTIONS", `Invalid local announcement: ${problem}`);
}
