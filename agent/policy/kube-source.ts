// NetworkPolicy's kube source: NetworkPolicies, Namespaces and Pods of the whole cluster (selectors pick peers on
// every node), each listed then watched. Unlike client-node's ListWatch, which caches whole objects, each object
// is cut down on arrival to what policy reads (./parse.ts: labels, IPs, named ports, node): a Pod object is a few
// kB, its policy view about 200 bytes, and a cluster has tens of thousands of pods.
//
// Each resource: list (paged), then watch from the list's resourceVersion with bookmarks. A watch that ends is
// resumed from the last resourceVersion; one that fails (410 Gone included) is followed by a fresh list after a
// backoff. The last objects stay in force meanwhile; the snapshot says what failed and which call it was.
import {
  CoreV1Api, KubeConfig, NetworkingV1Api, Watch,
} from "@kubernetes/client-node";
import type { Logger } from "../log";
import { describeError } from "../errors";
import { Backoff, sleep } from "../sources/retry";
import type { PolicyObjectError, PolicySnapshot, PolicySource } from "./enforcer";
import { parseNamespace, parseNetworkPolicy, parsePod } from "./parse";
import type { NetworkPolicyModel, PolicyNamespace, PolicyPod } from "./types";

const PAGE = 500;

interface ListPage {
  items: unknown[];
  metadata?: { resourceVersion?: string; _continue?: string };
}

type Slim<T> = { value: T } | { error: string };

interface ResourceSpec<T> {
  /** "NetworkPolicy", "Namespace", "Pod": for errors and the log. */
  kind: string;
  /** The watch path (all namespaces). */
  path: string;
  list(continueToken: string | undefined): Promise<ListPage>;
  slim(object: unknown): Slim<T>;
}

/** One resource, listed then watched, kept as slim values by namespace/name. */
class SlimInformer<T> {
  readonly values = new Map<string, T>();
  readonly errors = new Map<string, string>();
  synced = false;
  error: string | undefined;
  readonly #spec: ResourceSpec<T>;
  readonly #watch: Watch;
  readonly #onChange: () => void;
  readonly #signal: AbortSignal;
  readonly #backoff = new Backoff({ initialMs: 1_000, maxMs: 30_000 });
  #resourceVersion = "";
  #watching: AbortController | undefined;
  /** A list is scheduled after a failure: further failures of the same watch add nothing. */
  #retrying = false;

  constructor(spec: ResourceSpec<T>, watch: Watch, onChange: () => void, signal: AbortSignal) {
    this.#spec = spec;
    this.#watch = watch;
    this.#onChange = onChange;
    this.#signal = signal;
    signal.addEventListener("abort", () => this.#watching?.abort(), { once: true });
  }

  /** Lists; resolves after the first attempt (synced, or its error recorded and a retry scheduled). */
  async start(): Promise<void> {
    await this.#relist();
  }

  async #relist(): Promise<void> {
    this.#retrying = false;
    if (this.#signal.aborted) return;
    try {
      const values = new Map<string, T>();
      const errors = new Map<string, string>();
      let token: string | undefined;
      let resourceVersion = "";
      do {
        const page = await this.#spec.list(token);
        for (const object of page.items) this.#take(object, values, errors);
        token = page.metadata?._continue || undefined;
        resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
      } while (token);
      this.values.clear();
      this.errors.clear();
      for (const [key, value] of values) this.values.set(key, value);
      for (const [key, error] of errors) this.errors.set(key, error);
      this.#resourceVersion = resourceVersion;
      this.synced = true;
      this.error = undefined;
      this.#backoff.reset();
      this.#onChange();
      void this.#watchFrom();
    } catch (error) {
      this.#failed(`list ${this.#spec.path}`, error);
    }
  }

  async #watchFrom(): Promise<void> {
    if (this.#signal.aborted) return;
    let ended = false;
    const done = (error: unknown): void => {
      if (ended) return;
      ended = true;
      if (this.#signal.aborted) return;
      if (error) this.#failed(`watch ${this.#spec.path}`, error);
      else void this.#watchFrom(); // the server closed it (timeout): resume
    };
    try {
      this.#watching = await this.#watch.watch(this.#spec.path, { allowWatchBookmarks: true, resourceVersion: this.#resourceVersion }, (phase, object) => {
        this.#event(phase, object);
      }, done);
    } catch (error) {
      done(error);
    }
  }

  #event(phase: string, object: unknown): void {
    const metadata = (object as { metadata?: { resourceVersion?: string; name?: string; namespace?: string } } | undefined)?.metadata;
    if (phase === "ERROR") {
      // 410 Gone (the resourceVersion is too old) and every other error: list again.
      this.#watching?.abort();
      this.#failed(`watch ${this.#spec.path}`, new Error((object as { message?: string } | undefined)?.message ?? "watch error"));
      return;
    }
    if (metadata?.resourceVersion) this.#resourceVersion = metadata.resourceVersion;
    if (phase === "BOOKMARK") return;
    const key = `${metadata?.namespace ?? ""}/${metadata?.name ?? ""}`;
    if (phase === "DELETED") {
      this.values.delete(key);
      this.errors.delete(key);
    } else {
      const last = new Map(this.values.has(key) ? [[key, this.values.get(key)!]] : []);
      this.values.delete(key);
      this.errors.delete(key);
      this.#take(object, this.values, this.errors, last);
    }
    this.#onChange();
  }

  /** Parses one object into `values`; an invalid one is named in `errors`, and its last valid version (in `last`) stays in force. */
  #take(object: unknown, values: Map<string, T>, errors: Map<string, string>, last: ReadonlyMap<string, T> = this.values): void {
    const metadata = (object as { metadata?: { name?: string; namespace?: string } }).metadata;
    const key = `${metadata?.namespace ?? ""}/${metadata?.name ?? ""}`;
    const slim = this.#spec.slim(object);
    if ("value" in slim) {
      values.set(key, slim.value);
      return;
    }
    const kept = last.get(key);
    if (kept !== undefined) values.set(key, kept);
    errors.set(key, kept === undefined ? slim.error : `${slim.error} (its last valid version stays in force)`);
  }

  #failed(call: string, error: unknown): void {
    if (this.#signal.aborted || this.#retrying) return;
    this.#retrying = true;
    this.error = `${call}: ${describeError(error)}`;
    this.#onChange();
    const delay = this.#backoff.next();
    void sleep(delay, this.#signal).then(() => this.#relist(), () => undefined);
  }
}

export class KubePolicySource implements PolicySource {
  readonly kind = "kube";
  readonly #config: KubeConfig;
  readonly #log: Logger;
  readonly #lifetime = new AbortController();
  #informers: { policies: SlimInformer<NetworkPolicyModel>; namespaces: SlimInformer<PolicyNamespace>; pods: SlimInformer<PolicyPod> } | undefined;
  #snapshot: PolicySnapshot | undefined;

  constructor(options: { kubeConfig?: KubeConfig; logger: Logger }) {
    this.#log = options.logger;
    if (options.kubeConfig) {
      this.#config = options.kubeConfig;
    } else {
      this.#config = new KubeConfig();
      this.#config.loadFromDefault();
    }
  }

  async start(onChange: () => void, signal: AbortSignal): Promise<void> {
    signal.addEventListener("abort", () => void this.close(), { once: true, signal: this.#lifetime.signal });
    const core = this.#config.makeApiClient(CoreV1Api);
    const networking = this.#config.makeApiClient(NetworkingV1Api);
    const watch = new Watch(this.#config);
    const changed = (): void => {
      this.#snapshot = undefined;
      onChange();
    };
    const lifetime = this.#lifetime.signal;
    const page = (token: string | undefined) => ({ limit: PAGE, ...(token ? { _continue: token } : {}) });
    this.#informers = {
      policies: new SlimInformer<NetworkPolicyModel>({
        kind: "NetworkPolicy", path: "/apis/networking.k8s.io/v1/networkpolicies",
        list: async (token) => (await networking.listNetworkPolicyForAllNamespaces(page(token))) as unknown as ListPage,
        slim: (object) => {
          const parsed = parseNetworkPolicy(object);
          return "policy" in parsed ? { value: parsed.policy } : { error: parsed.error };
        },
      }, watch, changed, lifetime),
      namespaces: new SlimInformer<PolicyNamespace>({
        kind: "Namespace", path: "/api/v1/namespaces",
        list: async (token) => (await core.listNamespace(page(token))) as unknown as ListPage,
        slim: (object) => {
          const parsed = parseNamespace(object);
          return "namespace" in parsed ? { value: parsed.namespace } : { error: parsed.error };
        },
      }, watch, changed, lifetime),
      pods: new SlimInformer<PolicyPod>({
        kind: "Pod", path: "/api/v1/pods",
        list: async (token) => (await core.listPodForAllNamespaces(page(token))) as unknown as ListPage,
        slim: (object) => {
          const parsed = parsePod(object);
          return "pod" in parsed ? { value: parsed.pod } : { error: parsed.error };
        },
      }, watch, changed, lifetime),
    };
    const informers = this.#informers!;
    await Promise.all([informers.policies.start(), informers.namespaces.start(), informers.pods.start()]);
    const failed = Object.values(informers).map((i) => i.error).filter((e) => e !== undefined);
    if (failed.length > 0) this.#log.warn("Cannot read NetworkPolicy objects yet; retrying", { errors: failed });
  }

  snapshot(): PolicySnapshot {
    if (this.#snapshot) return this.#snapshot;
    const informers = this.#informers;
    if (!informers) return { synced: false, world: { policies: [], namespaces: [], pods: [] }, errors: [] };
    const errors: PolicyObjectError[] = [];
    for (const [kind, informer] of [["NetworkPolicy", informers.policies], ["Namespace", informers.namespaces], ["Pod", informers.pods]] as const) {
      for (const [key, error] of informer.errors) errors.push({ object: `${kind} ${key.replace(/^\//, "")}`, error });
    }
    const sourceErrors = Object.values(informers).map((i) => i.error).filter((e) => e !== undefined);
    this.#snapshot = {
      synced: informers.policies.synced && informers.namespaces.synced && informers.pods.synced,
      world: { policies: [...informers.policies.values.values()], namespaces: [...informers.namespaces.values.values()], pods: [...informers.pods.values.values()] },
      errors,
      ...(sourceErrors.length > 0 ? { error: sourceErrors.join("; ") } : {}),
    };
    return this.#snapshot;
  }

  async close(): Promise<void> {
    this.#lifetime.abort();
    await Promise.resolve();
  }
}
