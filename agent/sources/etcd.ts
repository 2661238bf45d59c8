// The etcd source: flannel's etcd subnet manager, with the etcd3 client (layout and formats: ./etcd-layout.ts).
//
// Watching: list `<prefix>/subnets/` at revision R, then watch the prefix from R+1. The client resumes a broken
// watch stream by itself (the snapshot reports the error meanwhile); when etcd cancels the watch because the
// revision it needs has been compacted, or for any other reason, the source relists and watches again from the
// new revision, the way flannel's watchSubnets recovers. A relist replaces the whole state, except that an empty
// list never replaces a non-empty one after an interruption; a failure never removes state.
//
// Claiming (flannel's LocalManager.tryAcquireLease): make sure the network config key exists and agrees with
// ours; then reuse this node's lease if one exists (found by its WeftNodeName, or, for a lease written by
// flannel, by PublicIP) and still fits the config, else the `previousPodCidrs` if free, else a random free
// subnet among the first 100; create the key in a transaction (only if absent, or only if unchanged when
// reusing) attached to a new lease of `leaseTtlSeconds`; retry when another agent won the race. The client
// keeps the lease alive (every TTL/3). close() stops renewing without revoking, so an agent restarted within
// the TTL finds and reuses its subnet; a lease that is not renewed expires and frees the subnet. While running,
// the source keeps this node's key (its `keeper`): a lease lost or a key deleted (etcd unreachable for longer than
// the TTL, or by hand) is re-created for the same subnet if the key is still absent; a key overwritten with a value
// that is still this node's is put back; a key taken by another node, or held by another lease, is left alone and
// reported (keeper.status(), so `status` and /readyz). Repairs are logged, counted and bounded (./repair-guard.ts).

import { Etcd3, type IKeyValue, type IOptions, type Lease, type Watcher } from "etcd3";
import { parseCidr } from "../../native/addresses";
import { log as rootLog, type Logger } from "../log";
import type { LocalAnnouncement, LocalHints, LocalRecordKeeper, LocalRecordStatus, NetworkConfig, NodeSnapshot, NodeSource, PeerNode } from "../model";
import { parseNetworkConfig } from "../network-config";
import { NetworkConfigError, SourceError, describeError } from "../errors";
import {
  DEFAULT_ETCD_PREFIX, DEFAULT_LEASE_TTL_SECONDS, decodeLeaseAttrs, encodeLeaseAttrs, encodeNetworkConfig, etcdKeys,
  isSubnetCompatible, leaseToRecord, makeSubnetKey, networkConfigDifferences, parseSubnetKey, pickFreeSubnet, rangesOf,
  type LeaseAttrs,
} from "./etcd-layout";
import { checkAnnouncement } from "./local";
import { NodeTable } from "./node-table";
import { contestedProblem, RepairGuard, type RepairGuardOptions } from "./repair-guard";
import { Backoff, eitherSignal, sleep } from "./retry";

export interface EtcdSourceOptions {
  /** The cluster network: subnets are allocated in it, and leases outside it are rejected. */
  network: NetworkConfig;
  /** etcd3 client options (hosts, TLS credentials, auth). Default { hosts: "http://127.0.0.1:2379" }. */
  etcd?: Partial<IOptions>;
  /** The key prefix, flannel's --etcd-prefix. Default "/coreos.com/network". */
  prefix?: string;
  /** TTL of this node's lease. Default 86,400 s (flannel's 24 h); renewed every third of it. */
  leaseTtlSeconds?: number;
  /** This node's pod CIDRs from an earlier run (its subnet file), reused when free and still fitting. Default none. */
  previousPodCidrs?: string[];
  /** Create the network config key from `network` when it is absent. Default true. */
  writeNetworkConfig?: boolean;
  /** First delay before retrying after an error. Default 1,000 ms; doubles up to `maxRetryDelayMs`. */
  retryDelayMs?: number;
  /** Default 30,000 ms. */
  maxRetryDelayMs?: number;
  /** How often this node's lease may be repaired before another writer is assumed (./repair-guard.ts). */
  repairGuard?: RepairGuardOptions;
  /** Default: the agent's logger with {source: "etcd"}. */
  logger?: Logger;
}

/** flannel's raceRetries. */
const RACE_RETRIES = 10;
/** A watch that fails sooner than this after being created is retried after a backoff, not at once. */
const SHORT_WATCH_MS = 1_000;

interface StoredLease {
  key: string;
  podCidrs: string[] | undefined;
  attrs: LeaseAttrs | undefined;
  modRevision: string;
  leaseId: string;
}

interface LocalLease {
  key: string;
  value: string;
  podCidrs: string[];
  lease: Lease;
  /** The etcd lease ID the key is attached to, as etcd writes it in a key's `lease`. */
  leaseId: string;
  /** This node's name and public IP: a lease naming another node (or, unnamed, another IP) is not ours. */
  name: string;
  publicIp: string;
}

export class EtcdSource implements NodeSource {
  readonly #network: NetworkConfig;
  readonly #client: Etcd3;
  readonly #keys: { config: string; subnets: string };
  readonly #ttl: number;
  readonly #previous: string[] | undefined;
  readonly #writeConfig: boolean;
  readonly #retry: { initialMs: number; maxMs: number };
  readonly #log: Logger;
  readonly #table: NodeTable;
  readonly #lifetime = new AbortController();
  #syncing: Promise<void> | undefined;
  #firstAttempt: Promise<void> | undefined;
  #local: LocalLease | undefined;
  #recreating = false;
  readonly #guard: RepairGuard;
  readonly #repairs: Record<string, number> = {};
  #lastRepair: LocalRecordStatus["lastRepair"];
  /** What is wrong with this node's lease now (taken by another node, contested, cannot be repaired). */
  #problem: string | undefined;

  constructor(options: EtcdSourceOptions) {
    this.#network = options.network;
    this.#keys = etcdKeys(options.prefix ?? DEFAULT_ETCD_PREFIX);
    this.#ttl = options.leaseTtlSeconds ?? DEFAULT_LEASE_TTL_SECONDS;
    if (!Number.isInteger(this.#ttl) || this.#ttl < 2) throw new SourceError("ERR_SOURCE_OPTIONS", `Invalid etcd source: leaseTtlSeconds must be an integer ≥ 2, got ${this.#ttl}`);
    this.#previous = options.previousPodCidrs;
    this.#writeConfig = options.writeNetworkConfig ?? true;
    this.#retry = { initialMs: options.retryDelayMs ?? 1_000, maxMs: options.maxRetryDelayMs ?? 30_000 };
    this.#log = options.logger ?? rootLog.with({ source: "etcd" });
    this.#table = new NodeTable(options.network, this.#log);
    this.#client = new Etcd3({ hosts: "http://127.0.0.1:2379", ...options.etcd });
    this.#guard = new RepairGuard(options.repairGuard);
  }

  /** This node's lease key kept as claimed: re-created when deleted or lost, put back when overwritten. */
  readonly keeper: LocalRecordKeeper = {
    setReady: () => undefined, // nothing in flannel's etcd layout tells readiness
    status: () => ({
      ...(this.#problem === undefined ? {} : { problem: this.#problem }),
      repairs: { ...this.#repairs },
      ...(this.#lastRepair === undefined ? {} : { lastRepair: this.#lastRepair }),
    }),
  };

  /** Starts list+watch; resolves after the first list attempt (synced, or its error in the snapshot). */
  async start(onChange: (snapshot: NodeSnapshot) => void, signal?: AbortSignal): Promise<void> {
    this.#throwIfClosed();
    signal?.addEventListener("abort", () => void this.close(), { once: true, signal: this.#lifetime.signal });
    this.#table.listen(onChange);
    if (!this.#firstAttempt) {
      let attempted!: () => void;
      this.#firstAttempt = new Promise((resolve) => (attempted = resolve));
      this.#syncing = this.#syncLoop(attempted);
    }
    return this.#firstAttempt;
  }

  /** etcd knows nothing of this node before it is claimed: no hints. */
  async claimLocal(name: string, announce: (hints: LocalHints) => LocalAnnouncement, signal?: AbortSignal): Promise<PeerNode> {
    this.#throwIfClosed();
    const local = checkAnnouncement(announce({}), name);
    if (!local.publicIp.includes(".")) {
      throw new SourceError("ERR_SOURCE_OPTIONS", `Invalid local announcement: etcd leases need an IPv4 public IP (flannel's PublicIP), got ${local.publicIp}`);
    }
    const abort = eitherSignal(this.#lifetime.signal, signal);
    const backoff = new Backoff(this.#retry);
    for (;;) {
      abort.throwIfAborted();
      try {
        return await this.#claimOnce(local, abort);
      } catch (error) {
        if (abort.aborted) throw abort.reason;
        if (error instanceof SourceError) throw error;
        this.#log.warn("Cannot claim a subnet in etcd; retrying", { error });
        await sleep(backoff.next(), abort);
      }
    }
  }

  snapshot(): NodeSnapshot {
    return this.#table.snapshot();
  }

  async close(): Promise<void> {
    if (this.#lifetime.signal.aborted) return;
    this.#lifetime.abort(new SourceError("ERR_SOURCE_CLOSED", "Node source closed"));
    // Not revoked: a restarted agent reuses the subnet; if none comes back, the lease expires and frees it.
    this.#local?.lease.release();
    this.#table.close();
    await this.#syncing?.catch(() => undefined);
    this.#client.close();
  }

  // ---- watching ----

  async #syncLoop(attempted: () => void): Promise<void> {
    const backoff = new Backoff(this.#retry);
    let listed = false;
    while (!this.#lifetime.signal.aborted) {
      try {
        const revision = await this.#list(listed);
        listed = true;
        this.#table.setError(undefined);
        attempted();
        const started = Date.now();
        await this.#watchFrom(revision + 1n);
        if (Date.now() - started > SHORT_WATCH_MS) backoff.reset();
        else await sleep(backoff.next(), this.#lifetime.signal);
      } catch (error) {
        if (this.#lifetime.signal.aborted) break;
        this.#table.setError(error);
        attempted();
        await sleep(backoff.next(), this.#lifetime.signal).catch(() => undefined);
      }
    }
    attempted();
  }

  /** Lists every lease into the table; returns the revision of the list. */
  async #list(afterInterruption: boolean): Promise<bigint> {
    const response = await this.#client.getAll().prefix(this.#keys.subnets).exec();
    const entries = response.kvs.map((kv) => {
      const key = kv.key.toString();
      return [key, leaseToRecord(key.slice(this.#keys.subnets.length), kv.value.toString())] as const;
    });
    if (!this.#table.replaceAll(entries, { afterInterruption })) throw new Error(this.#table.error);
    if (afterInterruption) this.#log.info("Relisted the subnet leases", { leases: entries.length, revision: response.header.revision });
    return BigInt(response.header.revision);
  }

  /** Watches from `revision` until etcd cancels the watch (compaction, …) or the source closes. */
  #watchFrom(revision: bigint): Promise<void> {
    return new Promise((resolve) => {
      // watcher() attaches our listeners before the first event can arrive (create() resolves a tick late).
      const watcher: Watcher = this.#client.watch().prefix(this.#keys.subnets).startRevision(revision.toString()).watcher();
      const subnets = this.#keys.subnets;
      const onPut = (kv: IKeyValue): void => {
        const key = kv.key.toString();
        this.#table.set(key, leaseToRecord(key.slice(subnets.length), kv.value.toString()));
        if (this.#local?.key === key) this.#checkLocal(this.#local, kv);
      };
      const onDelete = (kv: IKeyValue): void => {
        const key = kv.key.toString();
        this.#table.delete(key);
        if (this.#local?.key === key) void this.#repairLocal(this.#local, "This node's subnet key was deleted");
      };
      const onConnected = (): void => this.#table.setError(undefined);
      const onDisconnected = (error: unknown): void => this.#table.setError(new Error(`etcd watch disconnected: ${describeError(error)}`));
      const onError = (error: unknown): void => {
        // Canceled by etcd: the watcher has already left the client's stream, cancel() would wait forever.
        this.#log.warn("etcd canceled the watch (its revision may have been compacted); relisting", { error });
        finish(false);
      };
      const onAbort = (): void => finish(true);
      const finish = (cancel: boolean): void => {
        watcher.off("put", onPut).off("delete", onDelete).off("connected", onConnected).off("disconnected", onDisconnected);
        watcher.off("error", onError).on("error", () => undefined);
        this.#lifetime.signal.removeEventListener("abort", onAbort);
        if (cancel) void Promise.race([watcher.cancel(), sleep(1_000)]).catch(() => undefined).then(() => resolve());
        else resolve();
      };
      watcher.on("put", onPut).on("delete", onDelete).on("connected", onConnected).on("disconnected", onDisconnected).on("error", onError);
      if (this.#lifetime.signal.aborted) return onAbort();
      this.#lifetime.signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  // ---- claiming ----

  async #claimOnce(local: LocalAnnouncement, signal: AbortSignal): Promise<PeerNode> {
    await this.#ensureNetworkConfig();
    const value = encodeLeaseAttrs(local, this.#network.backend.vni);
    for (let attempt = 0; attempt < RACE_RETRIES; attempt++) {
      signal.throwIfAborted();
      const leases = await this.#readLeases();
      const own = leases.find((l) => l.attrs?.nodeName === local.name)
        ?? leases.find((l) => l.attrs !== undefined && l.attrs.nodeName === undefined && l.attrs.publicIp === local.publicIp);
      if (own?.podCidrs && isSubnetCompatible(own.podCidrs, this.#network)) {
        const lease = await this.#putWithLease(own.key, value, { modRevision: own.modRevision });
        if (!lease) continue;
        this.#log.info("Reusing this node's subnet lease", { key: own.key });
        if (own.leaseId !== "0") this.#revokeQuietly(own.leaseId);
        return this.#claimed({ key: own.key, value, podCidrs: own.podCidrs, lease, leaseId: await lease.grant(), name: local.name, publicIp: local.publicIp }, local);
      }
      if (own) {
        this.#log.info("Deleting this node's lease: its subnet no longer fits the network config", { key: own.key });
        await this.#client.if(own.key, "Mod", "==", own.modRevision).then(this.#client.delete().key(own.key)).commit();
        continue;
      }
      const podCidrs = this.#chooseSubnet(leases);
      const key = this.#keys.subnets + makeSubnetKey(podCidrs);
      const lease = await this.#putWithLease(key, value, { create: true });
      if (!lease) continue;
      this.#log.info("Allocated a subnet lease", { key, podCidrs });
      return this.#claimed({ key, value, podCidrs, lease, leaseId: await lease.grant(), name: local.name, publicIp: local.publicIp }, local);
    }
    throw new SourceError("ERR_SUBNET_RACE", `Cannot allocate a subnet: lost the race for one ${RACE_RETRIES} times`);
  }

  #claimed(claim: LocalLease, local: LocalAnnouncement): PeerNode {
    const previous = this.#local;
    this.#local = claim;
    this.#problem = undefined;
    if (previous && previous.lease !== claim.lease) previous.lease.release();
    claim.lease.on("lost", (error) => void this.#repairLocal(claim, `Lost this node's etcd lease (${describeError(error)})`));
    const node: PeerNode = { name: local.name, podCidrs: claim.podCidrs, publicIp: local.publicIp };
    if (local.vtepMac !== undefined) node.vtepMac = local.vtepMac;
    return node;
  }

  /** previousPodCidrs when free and fitting, else flannel's random pick (IPv4, and IPv6 in dual stack). */
  #chooseSubnet(leases: StoredLease[]): string[] {
    const taken = rangesOf(leases.flatMap((l) => l.podCidrs ?? []));
    const previous = this.#previous;
    if (previous && previous.length > 0 && isSubnetCompatible(previous, this.#network)) {
      const wanted = rangesOf(previous);
      const free = ([4, 6] as const).every((family) => wanted[family].every((w) => !taken[family].some((t) => t.first <= w.last && t.last >= w.first)));
      if (free) return previous.map((cidr) => parseCidr(cidr)!.network);
    }
    const v4 = pickFreeSubnet(this.#network.network, this.#network.subnetLen, taken[4]);
    const v6 = this.#network.ipv6Network === undefined ? undefined : pickFreeSubnet(this.#network.ipv6Network, this.#network.ipv6SubnetLen!, taken[6]);
    if (!v4 || (this.#network.ipv6Network !== undefined && !v6)) {
      throw new SourceError("ERR_SUBNETS_EXHAUSTED", `Cannot allocate a subnet: every /${this.#network.subnetLen} of ${this.#network.network} is leased`);
    }
    return v6 ? [v4, v6] : [v4];
  }

  async #readLeases(): Promise<StoredLease[]> {
    const response = await this.#client.getAll().prefix(this.#keys.subnets).exec();
    return response.kvs.map((kv) => {
      const key = kv.key.toString();
      return {
        key,
        podCidrs: parseSubnetKey(key.slice(this.#keys.subnets.length)),
        attrs: decodeLeaseAttrs(kv.value.toString()),
        modRevision: kv.mod_revision,
        leaseId: kv.lease,
      };
    });
  }

  /**
   * Puts `value` at `key` attached to a new lease, in a transaction: only if the key is absent (`create`), or
   * only if it is unchanged (`modRevision`). Returns the lease, or undefined (lease revoked) when the condition
   * failed.
   */
  async #putWithLease(key: string, value: string, condition: { create: true } | { modRevision: string }): Promise<Lease | undefined> {
    const lease = this.#client.lease(this.#ttl);
    lease.on("lost", () => undefined); // until claimed; a failed grant also rejects grant() below
    const id = await lease.grant();
    const txn = "create" in condition ? this.#client.if(key, "Version", "==", 0) : this.#client.if(key, "Mod", "==", condition.modRevision);
    try {
      const result = await txn.then(this.#client.put(key).value(value).lease(id)).commit();
      if (result.succeeded) return lease;
    } catch (error) {
      await lease.revoke().catch(() => undefined);
      throw error;
    }
    await lease.revoke().catch(() => undefined);
    return undefined;
  }

  #revokeQuietly(leaseId: string): void {
    this.#client.leaseClient.leaseRevoke({ ID: leaseId }).catch(() => undefined);
  }

  /**
   * A put on this node's key. Our own write (our value on our lease) is fine. A value that still names this node
   * (overwritten by hand, or detached from our lease) is put back; a value naming another node means the subnet
   * was taken: say so and leave it (the other node's record overlaps this node's subnet, so it is not programmed).
   */
  #checkLocal(claim: LocalLease, kv: IKeyValue): void {
    const value = kv.value.toString();
    if (value === claim.value && kv.lease === claim.leaseId) {
      if (this.#problem !== undefined && !this.#guard.contested("lease")) this.#problem = undefined;
      return;
    }
    const attrs = decodeLeaseAttrs(value);
    const owner = attrs?.nodeName ?? (attrs?.publicIp !== undefined && attrs.publicIp !== claim.publicIp ? `with public IP ${attrs.publicIp}` : undefined);
    if (owner !== undefined && owner !== claim.name) {
      this.#problem = `this node's subnet ${claim.podCidrs.join(", ")} was taken by node ${owner} (its key ${claim.key} was overwritten); that node is not programmed here, and this node keeps its pods on the subnet: restart this agent to claim a free one`;
      this.#log.error("This node's subnet lease was taken by another node; not fighting it", { key: claim.key, owner });
      return;
    }
    const detail = value === claim.value ? `key detached from this node's lease (lease ${kv.lease})` : `value ${JSON.stringify(value.slice(0, 200))}`;
    void this.#repairLocal(claim, `This node's subnet key was overwritten (${detail})`, { modRevision: kv.mod_revision });
  }

  /**
   * Puts this node's key back, for the same subnet, after its lease was lost, the key deleted (an etcd outage
   * longer than the TTL, or by hand) or overwritten with a value that is still this node's: a deleted key only if
   * it is still absent, an overwritten one only if unchanged since, so that an agent that took over (a restarted
   * one, or another node after the subnet expired) keeps it. Bounded by the repair guard.
   */
  async #repairLocal(claim: LocalLease, why: string, condition: { create: true } | { modRevision: string } = { create: true }): Promise<void> {
    if (this.#lifetime.signal.aborted || this.#local !== claim || this.#recreating) return;
    const wait = this.#guard.waitMs("lease");
    if (wait > 0) {
      this.#problem = contestedProblem(`lease key ${claim.key}`, wait);
      setTimeout(() => void this.#repairLocalIfNeeded(claim), wait).unref();
      return;
    }
    this.#recreating = true;
    this.#log.warn(`${why}; putting it back`, { key: claim.key });
    const backoff = new Backoff(this.#retry);
    try {
      while (!this.#lifetime.signal.aborted && this.#local === claim) {
        try {
          const lease = await this.#putWithLease(claim.key, claim.value, condition);
          if (!lease) {
            if ("modRevision" in condition) return; // changed again meanwhile: the watch shows what it is now
            this.#log.error("This node's subnet is held by another lease; restart the agent to claim a subnet again", { key: claim.key });
            this.#problem = `this node's subnet ${claim.podCidrs.join(", ")} is held by another lease since this node's was lost: restart this agent to claim a subnet again`;
            return;
          }
          if (this.#lifetime.signal.aborted) return lease.release();
          const renewed: LocalLease = { ...claim, lease, leaseId: await lease.grant() };
          this.#local = renewed;
          claim.lease.release(); // holds no key any more (revoked, expired, deleted or replaced)
          lease.on("lost", (error) => void this.#repairLocal(renewed, `Lost this node's etcd lease (${describeError(error)})`));
          this.#repairs.lease = (this.#repairs.lease ?? 0) + 1;
          this.#lastRepair = { at: new Date().toISOString(), what: "lease", detail: why };
          this.#problem = undefined;
          if (this.#guard.record("lease")) {
            const pause = this.#guard.waitMs("lease");
            this.#problem = contestedProblem(`lease key ${claim.key}`, pause);
            this.#log.error("Another writer keeps changing this node's lease key; pausing repairs instead of fighting it", { key: claim.key, pauseMs: pause });
          }
          this.#log.info("Put this node's subnet lease back", { key: claim.key, why });
          return;
        } catch (error) {
          this.#problem = `cannot put this node's lease key ${claim.key} back: ${describeError(error)}`;
          this.#log.warn("Cannot put this node's subnet lease back; retrying", { error });
          await sleep(backoff.next(), this.#lifetime.signal).catch(() => undefined);
        }
      }
    } finally {
      this.#recreating = false;
    }
  }

  /** After a pause: reads the key and repairs it if it is still not ours. */
  async #repairLocalIfNeeded(claim: LocalLease): Promise<void> {
    if (this.#lifetime.signal.aborted || this.#local !== claim) return;
    try {
      const kv = (await this.#client.getAll().prefix(claim.key).exec()).kvs.find((k) => k.key.toString() === claim.key);
      if (!kv) return void this.#repairLocal(claim, "This node's subnet key is missing");
      this.#checkLocal(claim, kv);
    } catch (error) {
      this.#log.warn("Cannot read this node's subnet key", { key: claim.key, error });
    }
  }

  /** Creates the network config key when absent (if allowed); fails when it disagrees with ours. */
  async #ensureNetworkConfig(): Promise<void> {
    let text = await this.#client.get(this.#keys.config).string();
    if (text === null) {
      if (!this.#writeConfig) {
        throw new SourceError("ERR_NETWORK_CONFIG_MISMATCH", `etcd has no network config at ${this.#keys.config}`);
      }
      const ours = encodeNetworkConfig(this.#network);
      const result = await this.#client.if(this.#keys.config, "Version", "==", 0).then(this.#client.put(this.#keys.config).value(ours)).commit();
      if (result.succeeded) {
        this.#log.info("Wrote the network config to etcd", { key: this.#keys.config });
        return;
      }
      text = (await this.#client.get(this.#keys.config).string()) ?? ours;
    }
    let theirs: NetworkConfig;
    try {
      theirs = parseNetworkConfig(text);
    } catch (error) {
      if (!(error instanceof NetworkConfigError)) throw error;
      throw new SourceError("ERR_NETWORK_CONFIG_MISMATCH", `etcd's network config at ${this.#keys.config} is invalid: ${error.message}`, { cause: error });
    }
    const differences = networkConfigDifferences(this.#network, theirs);
    if (differences.length > 0) {
      throw new SourceError("ERR_NETWORK_CONFIG_MISMATCH", `etcd's network config at ${this.#keys.config} differs from this agent's: ${differences.join(", ")}`);
    }
  }

  #throwIfClosed(): void {
    if (this.#lifetime.signal.aborted) throw new SourceError("ERR_SOURCE_CLOSED", "Node source closed");
  }
}
