// The files the agent writes for the CNI plugin and the runtime (ARCHITECTURE.md "Files written by the agent"):
//
//   /etc/cni/net.d/10-weft.conflist   weft (bridge cni0, default gateway, IPAM from the subnet file) + portmap
//   /run/weft/subnet.env              flannel's subnet file format (cni/subnet-file.ts parses it)
//
// Both are written to a temp file in the same directory and renamed over the old one, so that a reader (the
// runtime scanning net.d, the plugin reading the subnet file) sees the old file or the new one, never a part;
// and only when the content changes, so that a runtime watching net.d is not woken every resync. The temp
// name starts with "." and does not end in .conf/.conflist/.json: libcni never loads it.
import fs from "node:fs";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { DEFAULT_BRIDGE } from "../cni/config";
import { firstHost, parseCidr } from "../native/addresses";
import { DEFAULT_SUBNET_FILE } from "../cni/subnet-file";
import type { Logger } from "./log";
import type { NetworkConfig, PeerNode } from "./model";

export { DEFAULT_SUBNET_FILE };
export const CNI_NETWORK_NAME = "weft";
export const CNI_CONFLIST_NAME = "10-weft.conflist";

export interface CniConfListOptions {
  /** Default "cni0". */
  bridge?: string;
  /** Default DEFAULT_SUBNET_FILE. */
  subnetFile?: string;
  /** host-local's data directory; absent: the plugin's default (/var/lib/cni/networks, shared with host-local). */
  ipamDataDir?: string;
}

/** The conflist's JSON text: weft then portmap, for runtimes speaking CNI 1.0.0 or 1.1.0. */
export function renderCniConfList(options: CniConfListOptions = {}): string {
  const ipam: Record<string, string> = {};
  if (options.ipamDataDir !== undefined) ipam.dataDir = options.ipamDataDir;
  const conflist = {
    cniVersion: "1.0.0",
    cniVersions: ["1.0.0", "1.1.0"],
    name: CNI_NETWORK_NAME,
    plugins: [
      {
        type: "weft",
        bridge: options.bridge ?? DEFAULT_BRIDGE,
        isDefaultGateway: true,
        subnetFile: options.subnetFile ?? DEFAULT_SUBNET_FILE,
        ipam,
      },
      { type: "portmap", capabilities: { portMappings: true }, snat: true },
    ],
  };
  return `${JSON.stringify(conflist, null, 2)}\n`;
}

/** What the subnet file says: the cluster networks, this node's subnets, and the pods' MTU. */
export interface SubnetFileContent {
  network: string;
  subnet?: string;
  ipv6Network?: string;
  ipv6Subnet?: string;
  mtu: number;
  /** FLANNEL_IPMASQ; weft's agent masquerades, so default true. */
  ipMasq?: boolean;
  /** weft's own lines, after flannel's (the eBPF datapath: WEFT_DATAPATH, WEFT_BPF_DIR, WEFT_ENDPOINTS_DIR). */
  weft?: Record<string, string>;
}

/** The subnet file's content for this node: its pod CIDRs of each family the network config has. */
export function subnetFileContent(config: NetworkConfig, node: Pick<PeerNode, "podCidrs">, mtu: number): SubnetFileContent {
  const content: SubnetFileContent = { network: config.network, mtu, ipMasq: true };
  for (const text of node.podCidrs) {
    const cidr = parseCidr(text);
    if (cidr?.family === 4) content.subnet = cidr.network;
    else if (cidr?.family === 6 && config.ipv6Network !== undefined) {
      content.ipv6Network = config.ipv6Network;
      content.ipv6Subnet = cidr.network;
    }
  }
  return content;
}

/**
 * flannel's format: the subnet is written as its first host address (the bridge's gateway) with the subnet's
 * prefix length, e.g. FLANNEL_SUBNET=10.244.1.1/24. A family without a node subnet is left out.
 */
export function renderSubnetFile(content: SubnetFileContent): string {
  const lines: string[] = [];
  const gatewayCidr = (text: string, key: string): string => {
    const cidr = parseCidr(text);
    if (!cidr) throw new Error(`Cannot render the subnet file: ${key} ${JSON.stringify(text)} is not a CIDR`);
    return `${firstHost(cidr)}/${cidr.prefixLength}`;
  };
  if (content.subnet !== undefined) {
    lines.push(`FLANNEL_NETWORK=${content.network}`, `FLANNEL_SUBNET=${gatewayCidr(content.subnet, "subnet")}`);
  }
  if (content.ipv6Network !== undefined && content.ipv6Subnet !== undefined) {
    lines.push(`FLANNEL_IPV6_NETWORK=${content.ipv6Network}`, `FLANNEL_IPV6_SUBNET=${gatewayCidr(content.ipv6Subnet, "ipv6Subnet")}`);
  }
  lines.push(`FLANNEL_MTU=${content.mtu}`, `FLANNEL_IPMASQ=${content.ipMasq ?? true}`);
  for (const [key, value] of Object.entries(content.weft ?? {})) lines.push(`${key}=${value}`);
  return `${lines.join("\n")}\n`;
}

/** Writes the conflist when its content differs from the file's; returns whether it wrote. */
export function writeCniConfList(options: CniConfListOptions & { path?: string } = {}): boolean {
  return writeFileIfChanged(options.path ?? path.join("/etc/cni/net.d", CNI_CONFLIST_NAME), renderCniConfList(options));
}

/** Writes the subnet file when its content differs from the file's; returns whether it wrote. */
export function writeSubnetFile(content: SubnetFileContent, options: { path?: string } = {}): boolean {
  return writeFileIfChanged(options.path ?? DEFAULT_SUBNET_FILE, renderSubnetFile(content));
}

/**
 * Replaces `file` with `content` atomically (temp file in the same directory, fsync, rename), creating the
 * directory if needed, unless the file already holds exactly `content`. Returns whether it wrote.
 */
export function writeFileIfChanged(file: string, content: string, mode = 0o644): boolean {
  try {
    if (fs.readFileSync(file, "utf8") === content) return false;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true });
  const temp = path.join(dir, `.${path.basename(file)}.${process.pid}-${randomBytes(4).toString("hex")}.tmp`);
  try {
    const fd = fs.openSync(temp, "wx", mode);
    try {
      fs.writeFileSync(fd, content);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(temp, file);
  } catch (error) {
    fs.rmSync(temp, { force: true });
    throw error;
  }
  return true;
}

export interface CniFilesStatus {
  cniConfList: string;
  subnetFile: string;
  written: boolean;
  error?: string;
  /** The conflist's content as the agent writes it. */
  conflist: string;
}

export interface CniFilesOptions {
  network: NetworkConfig;
  cniConfDir: string;
  bridge: string;
  subnetFile: string;
  ipamDataDir: string;
  logger: Logger;
  onError(message: string): void;
  /** Extra lines of the subnet file, asked at each write (the datapath's: none once it fell back to the kernel path). */
  subnetFileEntries?: () => Record<string, string> | undefined;
}

/**
 * The agent's two files for the plugin: written after every run (a no-op unless something changed: the node's
 * pod CIDRs, the backend's MTU). Errors are kept in the status (and reported through `onError`), never thrown.
 */
export class CniFiles {
  readonly #o: CniFilesOptions;
  #written = false;
  #error: string | undefined;

  constructor(options: CniFilesOptions) {
    this.#o = options;
  }

  get conflistPath(): string {
    return path.join(this.#o.cniConfDir, CNI_CONFLIST_NAME);
  }

  get written(): boolean {
    return this.#written;
  }


  write(node: PeerNode, mtu: number): void {
    const o = this.#o;
    try {
      const weft = o.subnetFileEntries?.();
      const content = { ...subnetFileContent(o.network, node, mtu), ...(weft ? { weft } : {}) };
      if (writeSubnetFile(content, { path: o.subnetFile })) o.logger.info("Wrote the subnet file", { path: o.subnetFile, mtu });
      if (writeCniConfList({ path: this.conflistPath, bridge: o.bridge, subnetFile: o.subnetFile, ipamDataDir: o.ipamDataDir })) o.logger.info("Wrote the CNI config", { path: this.conflistPath });
      this.#written = true;
      this.#error = undefined;
    } catch (error) {
      this.#written = false;
      this.#error = error instanceof Error ? error.message : String(error);
      o.onError(`cannot write files: ${this.#error}`);
      o.logger.error("Cannot write the CNI files", { error });
    }
  }

  status(): CniFilesStatus {
    const o = this.#o;
    return {
      cniConfList: this.conflistPath, subnetFile: o.subnetFile, written: this.#written, ...(this.#error === undefined ? {} : { error: this.#error }),
      conflist: renderCniConfList({ bridge: o.bridge, subnetFile: o.subnetFile, ipamDataDir: o.ipamDataDir }),
    };
  }
}
