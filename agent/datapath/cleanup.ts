// What an eBPF run leaves, removed: for kernel mode after ebpf (a mode switch across a restart) and for
// `weft-agent uninstall`. Attachments first (unpinning a tcx link detaches its program at once; weft's clsact
// filters are deleted from the devices), then programs and maps, then the endpoint records. Only weft's names
// under weft's pin root are touched, and only weft's filters (its priority, handle and program names).
import { existsSync, readdirSync, rmSync, rmdirSync } from "node:fs";
import path from "node:path";
import { removeWeftFilters } from "../../native/bpf/attach";
import { PINS } from "../../native/bpf/maps";
import type { NetlinkSocket } from "../../native/netlink";

const OURS: readonly string[] = Object.values(PINS).filter((name) => name !== PINS.links);

/** Unpins weft's tcx links (<device>-<direction>) that `which` picks, detaching their programs; returns their paths. */
export function removeLinkPins(bpfDir: string, which: (name: string) => boolean = () => true): string[] {
  const removed: string[] = [];
  const links = path.join(bpfDir, PINS.links);
  if (!existsSync(links)) return removed;
  for (const name of readdirSync(links)) {
    if (!/-(ingress|egress)$/.test(name) || !which(name)) continue;
    rmSync(path.join(links, name), { force: true });
    removed.push(path.join(links, name));
  }
  if (readdirSync(links).length === 0) rmdirSync(links);
  return removed;
}

/**
 * Returns what it removed, for the log: pins (paths) and clsact filters ("filter <device> <direction>"). `sock`: the
 * namespace whose devices may hold weft's filters.
 */
export function removeEbpfState(options: { bpfDir: string; endpointsDir: string; sock: NetlinkSocket }): string[] {
  const removed = [...removeLinkPins(options.bpfDir), ...removeWeftFilters(options.sock).map((where) => `filter ${where}`)];
  for (const name of OURS) {
    const pin = path.join(options.bpfDir, name);
    if (!existsSync(pin)) continue;
    rmSync(pin, { force: true });
    removed.push(pin);
  }
  if (existsSync(options.endpointsDir)) {
    for (const name of readdirSync(options.endpointsDir)) if (name.endsWith(".json")) rmSync(path.join(options.endpointsDir, name), { force: true });
  }
  return removed;
}
