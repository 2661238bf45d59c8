// A pod's place on the eBPF fast path (ARCHITECTURE.md, "The eBPF datapath"), for the plugin, which must run
// copied alone: no libbpf, only raw bpf() calls on what the agent pinned, and rtnetlink. The subnet file says
// whether the node's agent runs the eBPF datapath, where its pins are and how it attaches programs
// (WEFT_DATAPATH, WEFT_BPF_DIR, WEFT_ENDPOINTS_DIR, WEFT_TC_ATTACH).
//
// ADD: a record of the endpoint (so that the agent can attach it later, or restore it), then its entries in
// weft_endpoints (address → host veth, pod MAC, bridge MAC), the from_pod program on the host veth's ingress and
// to_pod on its egress (NetworkPolicy for what the kernel path delivers): pinned tcx links, or weft's clsact
// filters (native/bpf/attach.ts), either way outliving the plugin. In kernel mode with NetworkPolicy the agent
// configures the same programs to forward nothing. Every step that fails leaves the pod on the kernel path,
// which always works: the ADD succeeds and says why in the result's log line (stderr). DEL removes all three.
import { closeSync, mkdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isErrno } from "../native/errors";
import { createTcAttacher, type TcAttacher, type TcAttachKind } from "../native/bpf/attach";
import { decodeEndpoint, encodeAddr, encodeEndpoint, linkPin, PINS, SIZES } from "../native/bpf/maps";
import { mapDelete, mapLookup, mapUpdate, objGet } from "../native/bpf/syscall";
import { getLink, NetlinkSocket } from "../native/netlink";

export interface FastPathConfig {
  /** The agent's pin root (its programs and maps). */
  bpfDir: string;
  /** Where endpoint records go, for the agent. */
  endpointsDir: string;
  /** How the agent attaches programs; absent (an older agent's subnet file): tcx. */
  tcAttach?: TcAttachKind;
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

/** The programs on a host veth, by direction. */
export const ENDPOINT_PROGRAMS = [
  { direction: "ingress", program: PINS.fromPod },
  { direction: "egress", program: PINS.toPod },
] as const;

/** A tcx link's pin: two per host veth (none with clsact). */
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
    withAttacher(config, (attacher) => {
      for (const { direction, program } of ENDPOINT_PROGRAMS) attacher.attach({ device: record.hostVeth, ifindex: record.ifindex, direction }, join(config.bpfDir, program));
    });
    return { attached: true };
  } catch (error) {
    for (const done of written) mapDelete(endpoints, done);
    try {
      withAttacher(config, (attacher) => {
        for (const { direction } of ENDPOINT_PROGRAMS) attacher.detach({ device: record.hostVeth, ifindex: record.ifindex, direction });
      });
    } catch {
      // The veth going away: its attachments go with it.
    }
    return { attached: false, reason: `cannot attach the fast path: ${(error as Error).message}` };
  } finally {
    closeSync(endpoints);
  }
}

/**
 * Runs `fn` with the node's attacher. clsact's is given a netlink socket in this namespace (the host's, where the
 * host veths are), passed to `fn` too and closed after.
 */
function withAttacher<T>(config: FastPathConfig, fn: (attacher: TcAttacher, sock?: NetlinkSocket) => T): T {
  if ((config.tcAttach ?? "tcx") === "tcx") return fn(createTcAttacher("tcx", { bpfDir: config.bpfDir }));
  const sock = NetlinkSocket.open();
  try {
    return fn(createTcAttacher("clsact", { bpfDir: config.bpfDir, sock }), sock);
  } finally {
    sock.close();
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
 * Takes the endpoint off the fast path and forgets it: its programs (tcx link pins, and with clsact weft's filters
 * while the veth is there), then the entries of its addresses that still point at its veth (an address given to
 * another pod since is left alone), then its record. Safe when any part is missing, or called twice.
 */
export function detachEndpoint(config: FastPathConfig, hostVeth: string): void {
  // Pins also with clsact: a pod attached under an earlier tcx run of the agent has them.
  for (const { direction } of ENDPOINT_PROGRAMS) {
    try {
      unlinkSync(endpointLinkPin(config, hostVeth, direction));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    }
  }
  if (config.tcAttach === "clsact") {
    withAttacher(config, (attacher, sock) => {
      const link = getLink(sock!, hostVeth);
      if (link) for (const { direction } of ENDPOINT_PROGRAMS) attacher.detach({ device: hostVeth, ifindex: link.index, direction });
    });
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
