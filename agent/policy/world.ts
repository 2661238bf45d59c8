// The latest NetworkPolicies, Namespaces and Pods, as the sources deliver them (the kube informers one event at a
// time, the file source a whole directory at once), parsed and keyed by namespace/name, and the PolicyWorld the
// compiler reads.
//
// An object that fails to parse is named in errors() and not applied. When an earlier version of it was valid,
// that version stays in force (and the error says so): dropping it could open a pod it isolated, and policy never
// fails open without saying so. The same holds for the objects of a file that could not be read at all
// (replaceAll's `unreadable`).
import { parseNamespace, parseNetworkPolicy, parsePod } from "./parse";
import type { PolicyObjectKind } from "./documents";
import type { NetworkPolicyModel, PolicyNamespace, PolicyPod, PolicyWorld } from "./types";

export interface PolicyObject {
  kind: PolicyObjectKind;
  object: unknown;
  /** Where it came from, for messages: "policies.yaml#2". The file source's origins start with the file name. */
  origin?: string;
}

export interface PolicyObjectError {
  /** "NetworkPolicy x/deny-all", "Pod y/b", or the origin when the object has no name. */
  object: string;
  error: string;
}

type Model = NetworkPolicyModel | PolicyNamespace | PolicyPod;

interface Stored {
  model: Model;
  origin?: string;
}

export class PolicyStore {
  readonly #valid: Record<PolicyObjectKind, Map<string, Stored>> = { NetworkPolicy: new Map(), Namespace: new Map(), Pod: new Map() };
  readonly #errors = new Map<string, PolicyObjectError>();
  /** Parses by object identity: the file source hands the same objects again for the files that did not change. */
  readonly #parses = new WeakMap<object, { model: Model } | { error: string }>();
  #world: PolicyWorld | undefined;
  #generation = 0;

  /** Increases on every change of what world() returns. */
  get generation(): number {
    return this.#generation;
  }

  /** Adds or replaces one object. Returns its error, if it has one (also kept in errors()). */
  upsert(kind: PolicyObjectKind, object: unknown, options: { origin?: string } = {}): string | undefined {
    const key = objectKey(kind, object);
    const label = errorLabel(kind, key, options.origin);
    this.#errors.delete(label);
    const parsed = parseObject(kind, object);
    if ("error" in parsed) {
      const kept = key !== undefined && this.#valid[kind].has(key);
      const error = withOrigin(parsed.error, options.origin) + (kept ? " (its last valid version stays in force)" : "");
      this.#errors.set(label, { object: label, error });
      return error;
    }
    this.#valid[kind].set(key!, { model: parsed.model, ...(options.origin !== undefined && { origin: options.origin }) });
    this.#changed();
    return undefined;
  }

  /** Removes an object by its key ("namespace/name"; a Namespace's name). Whether anything was there. */
  delete(kind: PolicyObjectKind, key: string): boolean {
    const hadError = this.#errors.delete(errorLabel(kind, key));
    const hadObject = this.#valid[kind].delete(key);
    if (hadObject) this.#changed();
    return hadObject || hadError;
  }

  /**
   * Replaces everything with `objects` (the file source's whole directory). `unreadable`: files (origin prefixes)
   * that could not be read this time; the objects last read from them are kept. `errors`: the source's own errors
   * (a document that is not YAML), shown with the objects'.
   */
  replaceAll(objects: readonly PolicyObject[], options: { unreadable?: readonly string[]; errors?: readonly PolicyObjectError[] } = {}): void {
    const previous = this.#valid;
    const next: Record<PolicyObjectKind, Map<string, Stored>> = { NetworkPolicy: new Map(), Namespace: new Map(), Pod: new Map() };
    const origins = new Map<string, string[]>();
    this.#errors.clear();
    for (const error of options.errors ?? []) this.#errors.set(`source ${this.#errors.size}`, error);
    for (const { kind, object, origin } of objects) {
      const key = objectKey(kind, object);
      const label = errorLabel(kind, key, origin);
      if (key !== undefined) {
        const from = origins.get(label);
        if (from) from.push(origin ?? "?");
        else origins.set(label, [origin ?? "?"]);
      }
      const parsed = this.#parse(kind, object);
      if ("error" in parsed) {
        const last = key !== undefined ? previous[kind].get(key) : undefined;
        if (last && !next[kind].has(key!)) next[kind].set(key!, last);
        this.#errors.set(label, { object: label, error: withOrigin(parsed.error, origin) + (last ? " (its last valid version stays in force)" : "") });
      } else {
        next[kind].set(key!, { model: parsed.model, ...(origin !== undefined && { origin }) });
      }
    }
    for (const [label, from] of origins) {
      if (from.length > 1 && !this.#errors.has(label)) {
        this.#errors.set(label, { object: label, error: `${label}: defined ${from.length} times (${from.join(", ")}); the last is used` });
      }
    }
    for (const kind of Object.keys(previous) as PolicyObjectKind[]) {
      for (const [key, stored] of previous[kind]) {
        const file = stored.origin;
        if (!next[kind].has(key) && file !== undefined && (options.unreadable ?? []).some((name) => file.startsWith(`${name}#`))) {
          next[kind].set(key, stored);
        }
      }
    }
    Object.assign(this.#valid, next);
    this.#changed();
  }

  /** The objects that are not applied as written, sorted by object. */
  errors(): PolicyObjectError[] {
    return [...this.#errors.values()].sort((a, b) => (a.object < b.object ? -1 : a.object > b.object ? 1 : 0));
  }

  /** What the compiler reads; the same object until something changes. */
  world(): PolicyWorld {
    this.#world ??= {
      policies: [...this.#valid.NetworkPolicy.values()].map((s) => s.model as NetworkPolicyModel),
      namespaces: [...this.#valid.Namespace.values()].map((s) => s.model as PolicyNamespace),
      pods: [...this.#valid.Pod.values()].map((s) => s.model as PolicyPod),
    };
    return this.#world;
  }

  #parse(kind: PolicyObjectKind, object: unknown): { model: Model } | { error: string } {
    if (typeof object !== "object" || object === null) return parseObject(kind, object);
    let parsed = this.#parses.get(object);
    if (parsed === undefined) {
      parsed = parseObject(kind, object);
      this.#parses.set(object, parsed);
    }
    return parsed;
  }

  #changed(): void {
    this.#world = undefined;
    this.#generation++;
  }
}

/** The key an object is stored under: "namespace/name" (namespace "default" when absent); a Namespace's name. */
export function objectKey(kind: PolicyObjectKind, object: unknown): string | undefined {
  const metadata = (object as { metadata?: { name?: unknown; namespace?: unknown } } | null)?.metadata;
  if (typeof metadata?.name !== "string" || metadata.name === "") return undefined;
  if (kind === "Namespace") return metadata.name;
  const namespace = typeof metadata.namespace === "string" && metadata.namespace !== "" ? metadata.namespace : "default";
  return `${namespace}/${metadata.name}`;
}

function errorLabel(kind: PolicyObjectKind, key: string | undefined, origin?: string): string {
  return key !== undefined ? `${kind} ${key}` : `${kind} without a name${origin !== undefined ? ` (${origin})` : ""}`;
}

function withOrigin(error: string, origin: string | undefined): string {
  return origin !== undefined ? `${error} (${origin})` : error;
}

function parseObject(kind: PolicyObjectKind, object: unknown): { model: Model } | { error: string } {
  const parsed = kind === "NetworkPolicy" ? parseNetworkPolicy(object) : kind === "Namespace" ? parseNamespace(object) : parsePod(object);
  if ("error" in parsed) return parsed;
  return { model: "policy" in parsed ? parsed.policy : "namespace" in parsed ? parsed.namespace : parsed.pod };
}
