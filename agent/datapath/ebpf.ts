// The eBPF datapath (ARCHITECTURE.md, "The eBPF datapath"): the agent's side. At start it loads the objects
// built by scripts/build-bpf.mjs with libbpf and pins programs and maps under the pin root; after every reconcile
// run it brings what the programs read in line with the desired state, like a route deleted by hand:
//   - weft_config: this node's VTEP (ifindex, VNI, MAC);
//   - the VTEP's two programs (from_tunnel on ingress, to_tunnel on egress): pinned tcx links, or weft's clsact
//     filters (--tc-attach, native/bpf/attach.ts);
//   - weft_nodes: each remote pod CIDR → that node's IP and VTEP MAC;
//   - the endpoints the plugin recorded: their entries in weft_endpoints and their programs, restored when
//     missing, removed when their veth is gone.
//   - NetworkPolicy: each local pod's compiled rules (./policy-maps.ts), applied when they change.
// Pins and clsact filters survive the agent (SIGKILL included): forwarding and policy never depend on the agent
// running. An earlier run's attachment of the other kind (tcx or clsact) on a device goes once this run's is there.
// In kernel mode with NetworkPolicy (`forward: false`) the same programs run on the pods' veths, configured to
// check policy and hand every packet to the kernel path; the VTEP and weft_nodes are left alone.
import { closeSync, existsSync, readdirSync, readFileSync, renameSync, rmSync, unlinkSync } from "node:fs";
import path from "node:path";
import { ensureBpffs } from "../../native/bpf/bpffs";
import { BpfObject, setLibbpfLogger } from "../../native/bpf/libbpf";
import {
  COUNTERS, decodeEndpoint, decodeLpmKey, encodeAddr, encodeConfig, encodeEndpoint, encodeLpmKey, encodeNode, MAPS_VERSION,
  PINS, SIZES, sumPerCpu, type CounterName,
} from "../../native/bpf/maps";
import { createTcAttacher, type TcAttacher, type TcAttachKind } from "../../native/bpf/attach";
import {
  mapDelete, mapKeys, mapLookup, mapUpdate, objGet, objInfo, possibleCpus, type ObjInfo, type TcxDirection,
} from "../../native/bpf/syscall";
import { isErrno } from "../../native/errors";
import { getLink, listLinks, type NetlinkSocket } from "../../native/netlink";
import type { EndpointRecord } from "../../cni/fast-path";
import { ENDPOINT_PROGRAMS, endpointLinkPin, readEndpointRecord } from "../../cni/fast-path";
import { parseHostVethAlias } from "../../cni/host-veth";
import { BpfPinConflictError } from "../errors";
import type { Logger } from "../log";
import type { DesiredState } from "../reconcile";
import type { EndpointPolicy } from "../policy/types";
import { PolicyMaps, type PolicyMapsStatus } from "./policy-maps";

/** The programs, by the object that holds them and the pin they get. */
const PROGRAMS = [
  { object: "from_pod.o", name: "weft_from_pod", pin: PINS.fromPod },
  { object: "vtep.o", name: "weft_from_tunnel", pin: PINS.fromTunnel },
  { object: "vtep.o", name: "weft_to_tunnel", pin: PINS.toTunnel },
  { object: "to_pod.o", name: "weft_to_pod", pin: PINS.toPod },
] as const;
const MAPS = [
  { pin: PINS.endpoints, keySize: SIZES.addr, valueSize: SIZES.endpoint },
  { pin: PINS.nodes, keySize: SIZES.lpmKey, valueSize: SIZES.node },
  { pin: PINS.config, keySize: 4, valueSize: SIZES.config },
  { pin: PINS.counters, keySize: 4, valueSize: 8 },
  { pin: PINS.policyEndpoints, keySize: SIZES.addr, valueSize: SIZES.policyEndpoint },
  { pin: PINS.policy, keySize: SIZES.policyKey, valueSize: SIZES.policyPorts },
  { pin: PINS.policyConnections, keySize: SIZES.ctKey, valueSize: SIZES.ctEntry },
  { pin: PINS.policyHost, keySize: SIZES.addr, valueSize: 4 },
  { pin: PINS.policyStats, keySize: SIZES.statsKey, valueSize: SIZES.stats },
  { pin: PINS.cluster, keySize: SIZES.lpmKey, valueSize: 4 },
] as const;


export interface EbpfDatapathOptions {
  /** Where programs, maps and links are pinned (a bpffs, mounted if needed). */
  bpfDir: string;
  /** Where the plugin records endpoints. */
  endpointsDir: string;
  /** Where the built objects are (from_pod.o, vtep.o). */
  objectsDir: string;
  vni: number;
  /** false: kernel mode with NetworkPolicy (the programs check policy only). Default true. */
  forward?: boolean;
  /** How the programs are attached to devices. Default tcx. */
  tcAttach?: TcAttachKind;
  /** The cluster networks (weft_cluster): egress denials beyond them may be Service traffic, checked after DNAT. */
  clusterCidrs: readonly string[];
  logger: Logger;
}

export interface EbpfStatus {
  bpfDir: string;
  tcAttach: TcAttachKind;
  programs: Record<string, number>;
  endpoints: { recorded: number; attached: number; entries: number; capacity: number; onKernelPath: string[] };
  nodes: { entries: number; capacity: number };
  vtep: { ingress: boolean; egress: boolean };
  counters: Partial<Record<CounterName, number>>;
  policy: PolicyMapsStatus;
}


export class EbpfDatapath {
  readonly #o: EbpfDatapathOptions;
  /** The loaded programs' IDs, by pin name: what an attachment must run. */
  #programIds = new Map<string, number>();
  /** weft_nodes as last written: CIDR → encoded value (hex), to apply only differences between full reads. */
  #nodes = new Map<string, string>();
  #vtep = { ingress: false, egress: false };
  /** As the last run found them; `entries`: weft_endpoints after its garbage collection. */
  #endpoints = { recorded: 0, attached: 0, entries: 0, onKernelPath: [] as string[] };
  /** The maps' max_entries, read once they are loaded. */
  #capacity = { endpoints: 0, nodes: 0 };
  readonly #policy: PolicyMaps;
  /** weft_config as last wanted, without the policy flag (which applyPolicy sets). */
  #config: Parameters<typeof encodeConfig>[0] | undefined;
  #policyActive = false;
  /** WEFT_CONFIG_DEFER_EGRESS: while the masquerade table's rule that backs it is in place (the agent says). */
  #deferEgress = false;
  /**
   * Whether a full run found every device free of an earlier run's clsact filters (tcx mode): then no later run
   * looks for them. clsact mode looks for tcx link pins on every run, which costs a stat.
   */
  #clsactChecked = false;

  constructor(options: EbpfDatapathOptions) {
    this.#o = options;
    this.#policy = new PolicyMaps({ bpfDir: options.bpfDir });
  }

  /** Forwards pods (ebpf mode), or only checks their policy (kernel mode). */
  get forwards(): boolean {
    return this.#o.forward !== false;
  }

  get bpfDir(): string {
    return this.#o.bpfDir;
  }

  get tcAttach(): TcAttachKind {
    return this.#o.tcAttach ?? "tcx";
  }

  /**
   * Mounts bpffs if needed, refuses pins that are not weft's, replaces maps of another layout, loads both objects
   * (maps pinned by name, reused when they match) and pins the programs, replacing older ones atomically (rename).
   */
  load(): void {
    const dir = this.#o.bpfDir;
    ensureBpffs(dir);
    this.#checkPins();
    setLibbpfLogger((level, message) => {
      if (level !== "debug") this.#o.logger.debug("libbpf", { level, message: message.trimEnd() });
    });
    try {
      const objects = new Map<string, BpfObject>();
      try {
        for (const file of new Set(PROGRAMS.map((p) => p.object))) {
          const bytes = readFileSync(path.join(this.#o.objectsDir, file));
          const object = BpfObject.open(bytes, { name: file.replace(/\.o$/, ""), pinRoot: dir });
          objects.set(file, object);
          object.load();
        }
        for (const program of PROGRAMS) {
          const object = objects.get(program.object)!;
          const pin = path.join(dir, program.pin);
          const fresh = `${pin}_new`; // bpffs refuses names with a dot
          rmSync(fresh, { force: true });
          object.pinProgram(program.name, fresh);
          renameSync(fresh, pin);
          this.#programIds.set(program.pin, programId(pin));
        }
      } finally {
        for (const object of objects.values()) object.close();
      }
    } finally {
      setLibbpfLogger(undefined);
    }
    const maxEntries = (pin: string): number => {
      const info = withFd(path.join(dir, pin), objInfo);
      return info.kind === "map" ? info.maxEntries : 0;
    };
    this.#capacity = { endpoints: maxEntries(PINS.endpoints), nodes: maxEntries(PINS.nodes) };
    this.#o.logger.info("Loaded the eBPF datapath", { bpfDir: dir, programs: Object.fromEntries(this.#programIds) });
  }

  /**
   * Brings maps and attachments in line with `desired`; returns what could not be done (errors of the run).
   * `deferEgress`: the nftables rule that drops deferred egress denials is in place (weft.h, WEFT_CONFIG_DEFER_EGRESS).
   */
  sync(sock: NetlinkSocket, desired: DesiredState, options: { full: boolean; deferEgress: boolean }): string[] {
    this.#deferEgress = options.deferEgress;
    const attachers: Attachers = {
      ours: createTcAttacher(this.tcAttach, { bpfDir: this.#o.bpfDir, sock }),
      other: this.tcAttach === "clsact" ? createTcAttacher("tcx", { bpfDir: this.#o.bpfDir }) : this.#clsactChecked ? undefined : createTcAttacher("clsact", { bpfDir: this.#o.bpfDir, sock }),
      replaced: [],
      failed: 0,
    };
    const problems: string[] = [];
    const attempt = (what: string, fn: () => void): void => {
      try {
        fn();
      } catch (error) {
        problems.push(`${what}: ${error instanceof Error ? error.message : String(error)}`);
      }
    };
    attempt("eBPF datapath: weft_cluster", () => this.#syncCluster());
    if (!this.forwards) {
      attempt("eBPF datapath: weft_config", () => this.#writeConfig({ vtepIfindex: 0, vni: 0, vtepMac: "00:00:00:00:00:00", zeroChecksum: false, policyOnly: true }));
      // Only to_tunnel, on the VTEP's egress: the deferred egress check of Service connections to other nodes.
      const vtep = desired.vtep ? getLink(sock, desired.vtep.name) : undefined;
      if (vtep) attempt("eBPF datapath: VTEP egress", () => (this.#vtep.egress = this.#ensureAttached(attachers, vtep.index, vtep.name, "egress", PINS.toTunnel)));
      // No tunnels in kernel mode: this empties what an earlier eBPF run left in weft_nodes.
      attempt("eBPF datapath: weft_nodes", () => this.#syncNodes(desired, options.full));
      attempt("eBPF datapath: endpoints", () => this.#syncEndpoints(sock, attachers));
    } else {
      const vtep = desired.vtep ? getLink(sock, desired.vtep.name) : undefined;
      if (desired.vtep && !vtep) problems.push(`eBPF datapath: the VTEP ${desired.vtep.name} does not exist`);
      if (vtep && desired.vtep) {
        const spec = desired.vtep;
        attempt("eBPF datapath: weft_config", () => this.#writeConfig({ vtepIfindex: vtep.index, vni: spec.vni, vtepMac: spec.mac, zeroChecksum: true }));
        attempt("eBPF datapath: VTEP ingress", () => (this.#vtep.ingress = this.#ensureAttached(attachers, vtep.index, vtep.name, "ingress", PINS.fromTunnel)));
        attempt("eBPF datapath: VTEP egress", () => (this.#vtep.egress = this.#ensureAttached(attachers, vtep.index, vtep.name, "egress", PINS.toTunnel)));
      }
      attempt("eBPF datapath: weft_nodes", () => this.#syncNodes(desired, options.full));
      attempt("eBPF datapath: endpoints", () => this.#syncEndpoints(sock, attachers));
    }
    if (attachers.replaced.length > 0) this.#o.logger.info("Replaced an earlier run's attachments of the other kind", { with: this.tcAttach, devices: attachers.replaced.slice(0, 20) });
    if (options.full && problems.length === 0 && attachers.failed === 0) this.#clsactChecked = true;
    return problems;
  }

  /**
   * NetworkPolicy: every local pod's compiled rules, and this node's own addresses (always allowed to and from
   * its pods). The programs read the policy maps only while some pod is isolated (the config's POLICY flag).
   */
  applyPolicy(endpoints: readonly EndpointPolicy[], hostAddresses: readonly string[]): void {
    this.#policyActive = this.#policy.apply(endpoints, hostAddresses);
    if (this.#config) this.#writeConfig(this.#config);
  }

  /** Lines for the subnet file: the plugin attaches the programs to new pods (and ebpf mode forwards them). */
  subnetFileEntries(): Record<string, string> {
    return { WEFT_DATAPATH: this.forwards ? "ebpf" : "kernel", WEFT_BPF_DIR: this.#o.bpfDir, WEFT_ENDPOINTS_DIR: this.#o.endpointsDir, WEFT_TC_ATTACH: this.tcAttach };
  }

  status(): EbpfStatus {
    const counters: Partial<Record<CounterName, number>> = {};
    try {
      withFd(path.join(this.#o.bpfDir, PINS.counters), (fd) => {
        const size = 8 * possibleCpus();
        COUNTERS.forEach((name, index) => {
          const key = Buffer.alloc(4);
          key.writeUInt32LE(index);
          const value = mapLookup(fd, key, size);
          counters[name] = value ? Number(sumPerCpu(value)) : 0;
        });
      });
    } catch {
      // Pins gone (uninstalled under us): the status says so through zero counts.
    }
    return {
      bpfDir: this.#o.bpfDir,
      tcAttach: this.tcAttach,
      programs: Object.fromEntries(this.#programIds),
      endpoints: { ...this.#endpoints, capacity: this.#capacity.endpoints },
      nodes: { entries: this.#nodes.size, capacity: this.#capacity.nodes },
      vtep: { ...this.#vtep },
      counters,
      policy: this.#policy.status(),
    };
  }

  /** A pin of ours that holds something else (another program's map or program) is refused, never replaced. */
  #checkPins(): void {
    const dir = this.#o.bpfDir;
    for (const map of MAPS) {
      const pin = path.join(dir, map.pin);
      const info = pinnedOurs(pin, "map", map.pin);
      if (info?.kind === "map" && (info.keySize !== map.keySize || info.valueSize !== map.valueSize)) {
        // An older agent's layout: new maps replace it; the programs and links keep the old ones until swapped.
        this.#o.logger.warn("Replacing a pinned map of another layout", { pin, keySize: info.keySize, valueSize: info.valueSize });
        unlinkSync(pin);
      }
    }
    for (const program of PROGRAMS) pinnedOurs(path.join(dir, program.pin), "prog", program.name);
    const config = path.join(dir, PINS.config);
    if (existsSync(config)) {
      const version = withFd(config, (fd) => mapLookup(fd, Buffer.alloc(4), SIZES.config)?.readUInt32LE(20) ?? 0);
      if (version !== 0 && version !== MAPS_VERSION) {
        this.#o.logger.warn("Replacing the maps of another datapath version", { version, ours: MAPS_VERSION });
        for (const map of MAPS) rmSync(path.join(dir, map.pin), { force: true });
      }
    }
  }

  #writeConfig(config: Parameters<typeof encodeConfig>[0]): void {
    this.#config = config;
    const value = encodeConfig({ ...config, policy: this.#policyActive, deferEgress: this.#deferEgress });
    withFd(path.join(this.#o.bpfDir, PINS.config), (fd) => {
      const key = Buffer.alloc(4);
      if (!mapLookup(fd, key, SIZES.config)?.equals(value)) mapUpdate(fd, key, value);
    });
  }

  /**
   * `program` on a device: kept when weft's attachment there runs it, swapped in place after an upgrade (a new
   * load), attached anew when missing or stale (tcx: a link whose device was recreated).
   */
  #ensureAttached(attachers: Attachers, ifindex: number, device: string, direction: TcxDirection, program: string): boolean {
    const { ours, other } = attachers;
    const target = { device, ifindex, direction };
    try {
      const current = ours.attachedProgram(target);
      if (current !== this.#programIds.get(program)) {
        ours.attach(target, path.join(this.#o.bpfDir, program));
        if (current === undefined) this.#o.logger.info("Attached an eBPF program", { device, direction, program, with: ours.kind });
      }
    } catch (error) {
      attachers.failed++;
      throw error;
    }
    // Ours is in place (no moment without a program): an earlier run's of the other kind goes. Only here, device by
    // device: a pod whose attachment failed keeps the old one, which runs the same programs.
    if (other?.detach(target)) attachers.replaced.push(`${device} ${direction}`);
    return true;
  }

  /** weft_cluster ← the cluster networks. */
  #syncCluster(): void {
    withFd(path.join(this.#o.bpfDir, PINS.cluster), (fd) => {
      const wanted = new Set(this.#o.clusterCidrs.map((cidr) => encodeLpmKey(cidr).toString("hex")));
      for (const key of [...mapKeys(fd, SIZES.lpmKey)]) if (!wanted.delete(key.toString("hex"))) mapDelete(fd, key);
      const one = Buffer.alloc(4);
      one.writeUInt32LE(1);
      for (const hex of wanted) mapUpdate(fd, Buffer.from(hex, "hex"), one);
    });
  }

  /** weft_nodes ← every programmed remote pod CIDR. Full runs read the map (hand edits); others use what we wrote. */
  #syncNodes(desired: DesiredState, full: boolean): void {
    const wanted = new Map<string, string>();
    for (const objects of desired.byNode.values()) {
      for (const tunnel of objects.tunnels ?? []) wanted.set(tunnel.cidr, encodeNode({ ip: tunnel.remote, vtepMac: tunnel.vtepMac }).toString("hex"));
    }
    withFd(path.join(this.#o.bpfDir, PINS.nodes), (fd) => {
      if (full) {
        this.#nodes.clear();
        for (const key of mapKeys(fd, SIZES.lpmKey)) {
          const value = mapLookup(fd, key, SIZES.node);
          if (value) this.#nodes.set(decodeLpmKey(key), value.toString("hex"));
        }
      }
      for (const [cidr, value] of wanted) {
        if (this.#nodes.get(cidr) === value) continue;
        mapUpdate(fd, encodeLpmKey(cidr), Buffer.from(value, "hex"));
        this.#nodes.set(cidr, value);
      }
      for (const cidr of [...this.#nodes.keys()]) {
        if (wanted.has(cidr)) continue;
        mapDelete(fd, encodeLpmKey(cidr));
        this.#nodes.delete(cidr);
      }
    });
  }

  /**
   * The endpoints the plugin recorded: a record whose veth is gone is removed with its entries and link; a live
   * one gets back a missing entry or link. Entries of veths without a record are removed.
   */
  #syncEndpoints(sock: NetlinkSocket, attachers: Attachers): void {
    const dir = this.#o.endpointsDir;
    const config = { bpfDir: this.#o.bpfDir, endpointsDir: dir };
    const links = new Map(listLinks(sock).map((link) => [link.name, link]));
    const live = new Map<number, EndpointRecord>();
    const onKernelPath: string[] = [];
    let recorded = 0;
    let attached = 0;
    let entries = 0;
    const names = existsSync(dir) ? readdirSync(dir).filter((name) => name.endsWith(".json")) : [];
    withFd(path.join(this.#o.bpfDir, PINS.endpoints), (endpoints) => {
      for (const name of names) {
        const hostVeth = name.slice(0, -".json".length);
        const record = readEndpointRecord(config, hostVeth);
        const link = links.get(hostVeth);
        if (!record || !link || link.index !== record.ifindex) {
          // The pod is gone (DEL never came, or the record is unreadable): forget it.
          rmSync(path.join(dir, name), { force: true });
          // tcx pins; clsact filters went with the veth.
          for (const { direction } of ENDPOINT_PROGRAMS) rmSync(endpointLinkPin(config, hostVeth, direction), { force: true });
          continue;
        }
        recorded++;
        live.set(record.ifindex, record);
        const value = encodeEndpoint({ ifindex: record.ifindex, mac: record.mac, gatewayMac: record.gatewayMac });
        try {
          for (const ip of record.ips) {
            const key = encodeAddr(ip);
            if (!mapLookup(endpoints, key, SIZES.endpoint)?.equals(value)) mapUpdate(endpoints, key, value);
          }
          for (const { direction, program } of ENDPOINT_PROGRAMS) this.#ensureAttached(attachers, record.ifindex, hostVeth, direction, program);
          attached++;
        } catch (error) {
          // The map full (E2BIG), or the veth going away: the pod keeps the kernel path, and status lists it.
          onKernelPath.push(`${record.containerId}/${record.ifname}: ${isErrno(error, "E2BIG") ? "endpoint map full" : (error as Error).message}`);
        }
      }
      // Pods of this node without a record: made before the programs ran (kernel mode without policy), or by an
      // ADD that could not write it. They are forwarded by the kernel path (say so), and get the programs all the
      // same, so that NetworkPolicy holds for them: their address is not needed for that (the packets carry it).
      const recordedVeths = new Set([...live.values()].map((r) => r.hostVeth));
      for (const link of links.values()) {
        const owner = parseHostVethAlias(link.alias);
        if (!owner || recordedVeths.has(link.name)) continue;
        onKernelPath.push(`${owner.containerId}/${owner.ifname}: no endpoint record (created before the eBPF datapath?)`);
        try {
          for (const { direction, program } of ENDPOINT_PROGRAMS) this.#ensureAttached(attachers, link.index, link.name, direction, program);
        } catch {
          // The veth going away: the next run removes its pins.
        }
      }
      // tcx links of host veths that are gone (their pods deleted without a DEL): unpin them.
      const pinned = path.join(this.#o.bpfDir, PINS.links);
      for (const name of existsSync(pinned) ? readdirSync(pinned) : []) {
        const device = name.replace(/-(ingress|egress)$/, "");
        if (device.startsWith("veth") && !links.has(device)) rmSync(path.join(pinned, name), { force: true });
      }
      for (const key of [...mapKeys(endpoints, SIZES.addr)]) {
        const value = mapLookup(endpoints, key, SIZES.endpoint);
        if (value && !live.has(decodeEndpoint(value).ifindex)) mapDelete(endpoints, key);
        else entries++;
      }
    });
    if (onKernelPath.length > this.#endpoints.onKernelPath.length) this.#o.logger.warn("Pods on the kernel path", { pods: onKernelPath.slice(0, 20) });
    this.#endpoints = { recorded, attached, entries, onKernelPath };
  }
}

/** This run's way of attaching, and the other way, whose attachments of an earlier run it replaces. */
interface Attachers {
  ours: TcAttacher;
  other: TcAttacher | undefined;
  /** "<device> <direction>" of each replaced, for the log. */
  replaced: string[];
  /** Attachments that failed in this run. */
  failed: number;
}

/**
 * What is pinned at `pin`, undefined when nothing is; a pin that holds something other than weft's `name` of this
 * kind (another program's map or program) is refused. The kernel keeps 15 bytes of a name: `name` starts with it.
 */
function pinnedOurs(pin: string, kind: "map" | "prog", name: string): ObjInfo | undefined {
  if (!existsSync(pin)) return undefined;
  const info = withFd(pin, objInfo);
  if (info.kind !== kind || !name.startsWith(info.name)) {
    const held = info.kind === kind ? `${kind === "map" ? "map" : "program"} "${info.name}"` : `a ${info.kind}`;
    throw new BpfPinConflictError(`Cannot load the eBPF datapath: ${pin} holds ${held}, not weft's ${name}; remove it if it is not in use`);
  }
  return info;
}

function withFd<T>(pin: string, fn: (fd: number) => T): T {
  const fd = objGet(pin);
  try {
    return fn(fd);
  } finally {
    closeSync(fd);
  }
}


function programId(pin: string): number {
  const info = withFd(pin, objInfo);
  return info.id;
}
