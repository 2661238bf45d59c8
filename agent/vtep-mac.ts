// The VTEP MAC survives agent restarts, so that the FDB and ARP entries peers hold for this node stay valid:
// the existing device's MAC first, then the one saved in the state directory (the device can be gone after
// `weft-agent uninstall` or a reboot while /run survives in a container), else a new random one, saved.
import fs from "node:fs";
import path from "node:path";
import { getLink, type NetlinkSocket } from "../native/netlink";
import { generateVtepMac, normalizeMac, vtepName } from "./backends";
import { writeFileIfChanged } from "./cniconf";

export interface VtepMacChoice {
  mac: string;
  from: "node source" | "device" | "state file" | "new";
}

function vtepMacFile(stateDir: string, vni: number): string {
  return path.join(stateDir, `vtep-mac.${vni}`);
}

/** `required`: a MAC the node source dictates (file source), used whatever the device has. */
export function chooseVtepMac(sock: NetlinkSocket, options: { vni: number; stateDir: string; required?: string }): VtepMacChoice {
  const file = vtepMacFile(options.stateDir, options.vni);
  const device = getLink(sock, vtepName(options.vni));
  let choice: VtepMacChoice | undefined;
  const required = options.required === undefined ? undefined : normalizeMac(options.required);
  if (required) choice = { mac: required, from: "node source" };
  const fromDevice = device?.kind === "vxlan" ? normalizeMac(device.mac) : undefined;
  if (fromDevice && !choice) choice = { mac: fromDevice, from: "device" };
  if (!choice) {
    let saved: string | undefined;
    try {
      saved = normalizeMac(fs.readFileSync(file, "utf8"));
    } catch {
      // not saved yet
    }
    if (saved) choice = { mac: saved, from: "state file" };
  }
  choice ??= { mac: generateVtepMac(), from: "new" };
  fs.mkdirSync(options.stateDir, { recursive: true });
  writeFileIfChanged(file, `${choice.mac}\n`);
  return choice;
}
