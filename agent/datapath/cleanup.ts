// What an eBPF run leaves, removed: for kernel mode after ebpf (a mode switch across a restart) and for
// `weft-agent uninstall`. Links first (unpinning a link detaches its program at once), then programs and maps,
// then the endpoint records. Only weft's names under weft's pin root are touched.
import { existsSync, readdirSync, rmSync, rmdirSync } from "node:fs";
import path from "node:path";
import { PINS } from "../../native/bpf/maps";

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

/** Returns the pins it removed (paths), for the log. */
export function removeEbpfState(options: { bpfDir: string; endpointsDir: string }): string[] {
  const removed = removeLinkPins(options.bpfDir);
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
