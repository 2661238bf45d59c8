// The file source: a static node list in JSON, re-read when it changes.
//
//   {
//     "nodes": [
//       { "name": "node-a", "podCidrs": ["10.244.1.0/24"], "publicIp": "192.168.50.11", "vtepMac": "0e:5f:11:22:33:44" },
//       { "name": "node-b", "podCidrs": ["10.244.2.0/24", "fd00:10:244:2::/64"], "publicIp": "192.168.50.12" }
//     ]
//   }
//
// Unknown keys are ignored. The file is watched through its directory (so that an in-place write, the usual
// write-to-temp-and-rename and a ConfigMap volume's update are all seen) and also re-read every `pollIntervalMs`,
// because inotify misses changes on some filesystems (NFS). A file that is missing or not valid JSON
// is an error: the last good list is kept. This node's entry gives its pod CIDRs; publishing is a no-op. An entry without
// vtepMac gets one derived from its name (derivedVtepMac), which its own agent uses too.

import { createHash } from "node:crypto";
import { existsSync, watch, type FSWatcher } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { log as rootLog, type Logger } from "../log";
import type { LocalAnnouncement, LocalHints, NetworkConfig, NodeSnapshot, NodeSource, PeerNode } from "../model";
import { SourceError, describeError } from "../errors";
import { checkAnnouncement } from "./local";
import { NodeTable } from "./node-table";
import { eitherSignal } from "./retry";
import { quote, type NodeRecord, type NodeRejection } from "./validate";
import { NodeFileError } from "../errors";

/**
 * The VTEP MAC of a node whose entry names none: derived from its name and the VNI, so that every agent computes
 * the same one for it (its own agent included) and a node file needs no MACs. Locally administered, unicast.
 */
export function derivedVtepMac(name: string, vni: number): string {
  const bytes = createHash("sha256").update(`weft-vtep/${vni}/${name}`).digest().subarray(0, 6);
  bytes[0] = (bytes[0]! & 0xfe) | 0x02;
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join(":");
}

/**
 * The record with its derived VTEP MAC when it names none: taken from `previous` (the last read's) when there,
 * and recorded in `next` either way.
 */
function withDerivedMac(
  record: NodeRecord | NodeRejection, vni: number, previous: Map<string, string>, next: Map<string, string>,
): NodeRecord | NodeRejection {
  if ("reason" in record || record.vtepMac !== undefined) return record;
  const vtepMac = previous.get(record.name) ?? derivedVtepMac(record.name, vni);
  next.set(record.name, vtepMac);
  return { ...record, vtepMac };
}

/**
 * Keys the entries by node name (a repeated name gets "#2", "#3", … so that the table still sees, and rejects,
 * the duplicate), so that an entry keeps its key, and its check, when others are added or removed before it.
 */
function keyedByName(records: (NodeRecord | NodeRejection)[]): [string, NodeRecord | NodeRejection][] {
  const seen = new Map<string, number>();
  return records.map((record) => {
    const name = String(record.name);
    const count = (seen.get(name) ?? 0) + 1;
    seen.set(name, count);
    return [count === 1 ? name : `${name}#${count}`, record];
  });
}

const PARSE_RETRY_MS = 200;
/**
 * A ConfigMap volume replaces its files by pointing the `..data` link at a new directory: the file's own name sees
 * no event, `..data` does.
 */
const CONFIGMAP_DATA = "..data";

export interface FileSourceOptions {
  /** The cluster network: pod CIDRs outside it are rejected. */
  network: NetworkConfig;
  /** The node list. */
  path: string;
  /** Re-read this often even without a change notification. Default 10,000 ms. */
  pollIntervalMs?: number;
  /**
   * Wait this long after a change notification before reading, so that a burst of writes is read once. Default
   * 10 ms. A file renamed into place is read at once. A file that is not valid JSON right after a change is read
   * again PARSE_RETRY_MS later before it counts as an error (an in-place write caught half-way).
   */
  debounceMs?: number;
  /** Default: the agent's logger with {source: "file"}. */
  logger?: Logger;
}

/**
 * Parses the node file. Throws NodeFileError when the document itself is unusable; an unusable entry becomes a
 * rejection (named after its index when it has no usable name) and the others are kept.
 */
export function parseNodeFile(text: string): (NodeRecord | NodeRejection)[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (error) {
    throw new NodeFileError(`Invalid node file: not JSON: ${describeError(error)}`, { cause: error });
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) throw new NodeFileError('Invalid node file: expected an object {"nodes": [...]}');
  const nodes = (doc as { nodes?: unknown }).nodes;
  if (!Array.isArray(nodes)) throw new NodeFileError('Invalid node file: "nodes" must be an array');
  return nodes.map((entry: unknown, index): NodeRecord | NodeRejection => {
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) return { name: `nodes[${index}]`, reason: "entry is not an object" };
    const { name, podCidrs, publicIp, vtepMac } = entry as Record<string, unknown>;
    if (typeof name !== "string" || name === "") return { name: `nodes[${index}]`, reason: "entry has no name" };
    if (podCidrs !== undefined && (!Array.isArray(podCidrs) || !podCidrs.every((c) => typeof c === "string"))) {
      return { name, reason: `podCidrs must be an array of CIDR strings, got ${quote(podCidrs)}` };
    }
    if (publicIp !== undefined && typeof publicIp !== "string") return { name, reason: `publicIp must be a string, got ${quote(publicIp)}` };
    if (vtepMac !== undefined && typeof vtepMac !== "string") return { name, reason: `vtepMac must be a string, got ${quote(vtepMac)}` };
    return { name, podCidrs: (podCidrs as string[] | undefined) ?? [], publicIp, vtepMac };
  });
}

export class FileSource implements NodeSource {
  readonly #path: string;
  readonly #vni: number;
  readonly #pollIntervalMs: number;
  readonly #debounceMs: number;
  readonly #log: Logger;
  readonly #table: NodeTable;
  readonly #lifetime = new AbortController();
  #watcher: FSWatcher | undefined;
  #poll: NodeJS.Timeout | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #parseRetry: NodeJS.Timeout | undefined;
  /** When the file was first read as invalid JSON since it was last valid. */
  #invalidSince: number | undefined;
  #reading: Promise<void> | undefined;
  #readAgain = false;
  #lastText: string | undefined;
  #failedSinceRead = false;
  #firstRead: Promise<void> | undefined;
  /** Derived VTEP MACs of the nodes in the last read file (a SHA-256 each: not worth redoing for 5,000 nodes). */
  #derivedMacs = new Map<string, string>();

  constructor(options: FileSourceOptions) {
    if (typeof options.path !== "string" || options.path === "") throw new SourceError("ERR_SOURCE_OPTIONS", "Invalid file source: path is required");
    this.#path = path.resolve(options.path);
    this.#vni = options.network.backend.vni;
    this.#pollIntervalMs = options.pollIntervalMs ?? 10_000;
    this.#debounceMs = options.debounceMs ?? 10;
    this.#log = options.logger ?? rootLog.with({ source: "file", path: this.#path });
    this.#table = new NodeTable(options.network, this.#log);
  }

  async start(onChange: (snapshot: NodeSnapshot) => void, signal?: AbortSignal): Promise<void> {
    this.#throwIfClosed();
    signal?.addEventListener("abort", () => void this.close(), { once: true, signal: this.#lifetime.signal });
    this.#table.listen(onChange);
    await this.#watch();
  }

  /**
   * Waits for this node's entry; its publicIp is the hint for the address, and its VTEP MAC (given, or derived from
   * its name) is dictated: peers program what the file says.
   */
  async claimLocal(name: string, announce: (hints: LocalHints) => LocalAnnouncement, signal?: AbortSignal): Promise<PeerNode> {
    this.#throwIfClosed();
    const entry = await this.#waitForEntry(name, signal);
    const local = checkAnnouncement(announce({ address: entry.publicIp, ...(entry.vtepMac === undefined ? {} : { vtepMac: entry.vtepMac }) }), name);
    if (entry.publicIp !== local.publicIp) {
      this.#log.warn("This node's publicIp in the node file differs from its own address", { file: entry.publicIp, own: local.publicIp });
    }
    const claimed: PeerNode = { name: local.name, podCidrs: entry.podCidrs, publicIp: local.publicIp };
    if (local.vtepMac !== undefined) claimed.vtepMac = local.vtepMac;
    return claimed;
  }

  snapshot(): NodeSnapshot {
    return this.#table.snapshot();
  }

  async close(): Promise<void> {
    if (this.#lifetime.signal.aborted) return;
    this.#lifetime.abort(new SourceError("ERR_SOURCE_CLOSED", "Node source closed"));
    this.#watcher?.close();
    clearInterval(this.#poll);
    clearTimeout(this.#debounce);
    clearTimeout(this.#parseRetry);
    this.#table.close();
    await this.#reading?.catch(() => undefined);
  }

  /** This node's accepted entry, once the file has been read and lists it. */
  async #waitForEntry(name: string, signal: AbortSignal | undefined): Promise<PeerNode> {
    this.#throwIfClosed();
    await this.#watch();
    const has = (s: NodeSnapshot): boolean => s.synced && s.nodes.some((n) => n.name === name);
    if (!has(this.#table.snapshot())) this.#log.info("Waiting for this node's entry in the node file", { node: name });
    const snapshot = await this.#table.waitFor(has, eitherSignal(this.#lifetime.signal, signal));
    return snapshot.nodes.find((n) => n.name === name)!;
  }

  /** Starts watching once (start and claimLocal both need it); resolves after the first read. */
  #watch(): Promise<void> {
    this.#firstRead ??= this.#startWatching();
    return this.#firstRead;
  }

  async #startWatching(): Promise<void> {
    const directory = path.dirname(this.#path);
    const name = path.basename(this.#path);
    try {
      this.#watcher = watch(directory, { persistent: false }, (event, changed) => {
        if (changed !== null && changed !== name && changed !== CONFIGMAP_DATA) return;
        // A file renamed into place is complete (the atomic way to replace it): read it now. A write in place is
        // a burst of "change" events, and so may be a delete-and-create: read once they stop.
        if (event === "rename" && changed === name && existsSync(this.#path)) void this.#read();
        else this.#scheduleRead();
      });
      this.#watcher.on("error", (error) => {
        this.#log.warn("Cannot watch the node file's directory; polling only", { error });
        this.#watcher?.close();
      });
    } catch (error) {
      this.#log.warn("Cannot watch the node file's directory; polling only", { error });
    }
    this.#poll = setInterval(() => this.#read(), this.#pollIntervalMs);
    await this.#read();
  }

  #scheduleRead(): void {
    if (this.#lifetime.signal.aborted) return;
    clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => void this.#read(), this.#debounceMs);
  }

  /** Reads and applies the file; reads never overlap (a change during a read causes one more). */
  #read(): Promise<void> {
    if (this.#reading) {
      this.#readAgain = true;
      return this.#reading;
    }
    this.#reading = (async () => {
      do {
        this.#readAgain = false;
        await this.#readOnce();
      } while (this.#readAgain && !this.#lifetime.signal.aborted);
    })().finally(() => {
      this.#reading = undefined;
    });
    return this.#reading;
  }

  async #readOnce(): Promise<void> {
    if (this.#lifetime.signal.aborted) return;
    let text: string;
    try {
      text = await readFile(this.#path, "utf8");
    } catch (error) {
      this.#fail(new NodeFileError(`Cannot read node file ${this.#path}: ${describeError(error)}`, { cause: error }));
      return;
    }
    if (this.#lifetime.signal.aborted) return;
    if (text === this.#lastText && !this.#failedSinceRead) {
      this.#invalidSince = undefined;
      return;
    }
    let records: (NodeRecord | NodeRejection)[];
    try {
      records = parseNodeFile(text);
    } catch (error) {
      // Most likely an in-place write read half-way (the debounce is short): look again before calling it broken.
      this.#invalidSince ??= performance.now();
      if (!this.#failedSinceRead && performance.now() - this.#invalidSince < PARSE_RETRY_MS) {
        clearTimeout(this.#parseRetry);
        this.#parseRetry = setTimeout(() => void this.#read(), PARSE_RETRY_MS);
        return;
      }
      this.#fail(error);
      return;
    }
    this.#invalidSince = undefined;
    const derivedMacs = new Map<string, string>();
    const entries = keyedByName(records.map((record) => withDerivedMac(record, this.#vni, this.#derivedMacs, derivedMacs)));
    if (!this.#table.replaceAll(entries, { afterInterruption: this.#failedSinceRead })) return;
    this.#derivedMacs = derivedMacs;
    this.#failedSinceRead = false;
    this.#lastText = text;
    this.#table.setError(undefined);
  }

  #fail(error: unknown): void {
    this.#failedSinceRead = true;
    this.#table.setError(error);
  }

  #throwIfClosed(): void {
    if (this.#lifetime.signal.aborted) throw new SourceError("ERR_SOURCE_CLOSED", "Node source closed");
  }
}
