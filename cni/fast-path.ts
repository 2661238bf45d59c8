// A pod's place on the eBPF fast path (ARCHITECTURE.md, "The eBPF datapath"), for the plugin, which must run
// copied alone: no libbpf, only raw bpf() calls on what the agent pinned. The subnet file says whether the
// node's agent runs the eBPF datapath and where its pins are (WEFT_DATAPATH, WEFT_BPF_DIR, WEFT_ENDPOINTS_DIR).
//
// ADD: a record of the endpoint (so that the agent can attach it later, or restore it), then its entries in
// weft_endpoints (address → host veth, pod MAC, bridge MAC), the from_pod program on the host veth's ingress and
// to_pod on its egress (NetworkPolicy for what the kernel path delivers): tcx links, pinned so that they outlive
// the plugin. In kernel mode with NetworkPolicy the agent configures the same programs to forward nothing. Every step that fails leaves the pod on the kernel path,
// which always works: the ADD succeeds and says why in the result's log line (stderr). DEL removes all three.
import { closeSync, mkdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isErrno } from "../native/errors";
import { decodeEndpoint, encodeAddr, encodeEndpoint, linkPin, PINS, SIZES } from "../native/bpf/maps";
import { mapDelete, mapLookup, mapUpdate, objGet, pinNewTcxLink } from "../native/bpf/syscall";

export interface FastPathConfig {
  /** The agent's pin root (its programs and maps). */
  bpfDir: string;
  /** Where endpoint records go, for the agent. */
  endpointsDir: string;
}

export interface EndpointRecord {
  containerId: string;
  ifname: string;
  hostVeth: string;
  ifindex: number;
  /** The pod's eth0. */
  mac: string;
  /** Its bridge's. */
  gatewayMac: string;
  /** The pod's addresses, without prefix lengths. */
  ips: string[];
}

export type AttachOutcome = { attached: true } | { attached: false; reason: string };

/** The tcx links of a host veth, by direction, with the program each runs. */
export const ENDPOINT_LINKS = [
  { direction: "ingress", program: PINS.fromPod },
  { direction: "egress", program: PINS.toPod },
] as const;

/** A tcx link's pin: two per host veth. */
export function endpointLinkPin(config: FastPathConfig, hostVeth: string, direction: "ingress" | "egress"): string {
  return linkPin(config.bpfDir, hostVeth, direction);
}

function recordPath(config: FastPathConfig, hostVeth: string): string {
  return join(config.endpointsDir, `${hostVeth}.json`);
}

/** Records the endpoint, then puts it on the fast path. Throws only when the record cannot be written. */
export function attachEndpoint(config: FastPathConfig, record: EndpointRecord): AttachOutcome {
  mkdirSync(config.endpointsDir, { recursive: true, mode: 0o700 });
  const file = recordPath(config, record.hostVeth);
  writeFileSync(`${file}.tmp`, `${JSON.stringify(record)}\n`, { mode: 0o600 });
  renameSync(`${file}.tmp`, file);

  let endpoints: number;
  try {
    endpoints = objGet(join(config.bpfDir, PINS.endpoints));
  } catch (error) {
    return { attached: false, reason: isErrno(error, "ENOENT") ? "the agent has not loaded the eBPF datapath yet" : `cannot open ${PINS.endpoints}: ${(error as Error).message}` };
  }
  const written: Buffer[] = [];
  try {
    const value = encodeEndpoint({ ifindex: record.ifindex, mac: record.mac, gatewayMac: record.gatewayMac });
    for (const ip of record.ips) {
      const key = encodeAddr(ip);
      try {
        mapUpdate(endpoints, key, value);
      } catch (error) {
        // E2BIG: the map is full; the agent reports it (its fill level), the pod keeps the kernel path.
        for (const done of written) mapDelete(endpoints, done);
        return { attached: false, reason: isErrno(error, "E2BIG", "ENOSPC") ? "the endpoint map is full" : `cannot write its endpoint entry: ${(error as Error).message}` };
      }
      written.push(key);
    }
    for (const link of ENDPOINT_LINKS) {
      pinNewTcxLink(join(config.bpfDir, link.program), record.ifindex, link.direction, endpointLinkPin(config, record.hostVeth, link.direction));
    }
    return { attached: true };
  } catch (error) {
    for (const done of written) mapDelete(endpoints, done);
    for (const link of ENDPOINT_LINKS) rmSync(endpointLinkPin(config, record.hostVeth, link.direction), { force: true });
    return { attached: false, reason: `cannot attach the fast path: ${(error as Error).message}` };
  } finally {
    closeSync(endpoints);
  }
}

/** The endpoint's record, or undefined when there is none (or it is unreadable: then there is nothing to trust). */
export function readEndpointRecord(config: FastPathConfig, hostVeth: string): EndpointRecord | undefined {
  try {
    const record = JSON.parse(readFileSync(recordPath(config, hostVeth), "utf8")) as EndpointRecord;
    return typeof record.ifindex === "number" && Array.isArray(record.ips) ? record : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Takes the endpoint off the fast path and forgets it: its links' pins, then the entries of its addresses that
 * still point at its veth (an address given to another pod since is left alone), then its record. Safe when any
 * part is missing, or called twice.
 */
export function detachEndpoint(config: FastPathConfig, hostVeth: string): void {
  for (const link of ENDPOINT_LINKS) {
    try {
      unlinkSync(endpointLinkPin(config, hostVeth, link.direction));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    }
  }
  const record = readEndpointRecord(config, hostVeth);
  if (record && record.ips.length > 0) {
    let endpoints: number | undefined;
    try {
      endpoints = objGet(join(config.bpfDir, PINS.endpoints));
    } catch (error) {
      if (!isErrno(error, "ENOENT")) throw error;
    }
    if (endpoints !== undefined) {
      try {
        for (const ip of record.ips) {
          const key = encodeAddr(ip);
          const value = mapLookup(endpoints, key, SIZES.endpoint);
          if (value && decodeEndpoint(value).ifindex === record.ifindex) mapDelete(endpoints, key);
        }
      } finally {
        closeSync(endpoints);
      }
    }
  }
  rmSync(recordPath(config, hostVeth), { force: true });
}
