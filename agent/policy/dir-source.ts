// NetworkPolicy's file source, for bare metal and the demo: a directory of NetworkPolicy, Namespace and Pod
// documents (YAML or JSON, as kubectl writes them; ./documents.ts). Read whole at start and whenever a file in it
// changes (inotify through fs.watch, and a poll of names, sizes and times as a backstop: a directory replaced
// under the watch, a network filesystem). A file that cannot be read or parsed is an error naming it, and the
// objects last read from it stay in force, as do the last valid versions of invalid objects (./world.ts). Write files to a temporary name and rename them, or a half-written file is
// read as invalid until the write ends.
import { readdirSync, readFileSync, statSync, watch, type FSWatcher } from "node:fs";
import path from "node:path";
import type { Logger } from "../log";
import { parsePolicyDocuments } from "./documents";
import type { PolicyObjectError, PolicySnapshot, PolicySource } from "./enforcer";
import { PolicyStore, type PolicyObject } from "./world";

const DOCUMENT_FILE = /\.(ya?ml|json)$/;

export interface PolicyDirSourceOptions {
  dir: string;
  /** The backstop poll. Default 2,000 ms. */
  pollIntervalMs?: number;
  logger: Logger;
}

export class PolicyDirSource implements PolicySource {
  readonly kind = "dir";
  readonly #o: PolicyDirSourceOptions;
  #snapshot: PolicySnapshot = { synced: false, world: { policies: [], namespaces: [], pods: [] }, errors: [] };
  readonly #store = new PolicyStore();
  /** name → "size/mtime" of the files last read: a poll that finds the same skips the read. */
  #seen = "";
  /** Each file's parse as of its "size/mtime": a change to one file re-reads that file, not the directory. */
  readonly #parsed = new Map<string, { stamp: string; objects: PolicyObject[]; errors: string[] }>();
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #onChange: () => void = () => undefined;
  #closed = false;

  constructor(options: PolicyDirSourceOptions) {
    this.#o = options;
  }

  async start(onChange: () => void, signal: AbortSignal): Promise<void> {
    this.#onChange = onChange;
    signal.addEventListener("abort", () => void this.close(), { once: true });
    this.#read();
    try {
      this.#watcher = watch(this.#o.dir, () => this.#read());
      this.#watcher.on("error", () => undefined); // the poll goes on
    } catch {
      // No directory yet, or no inotify: the poll reads it when it appears.
    }
    this.#timer = setInterval(() => this.#read(), this.#o.pollIntervalMs ?? 2_000);
    this.#timer.unref();
    await Promise.resolve();
  }

  snapshot(): PolicySnapshot {
    return this.#snapshot;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#watcher?.close();
    clearInterval(this.#timer);
    await Promise.resolve();
  }

  /** Reads the document files that changed since the last read (names, sizes, times), and publishes the whole. */
  #read(): void {
    if (this.#closed) return;
    let files: string[];
    try {
      files = readdirSync(this.#o.dir).filter((name) => DOCUMENT_FILE.test(name)).sort();
    } catch (error) {
      // Keep the last objects: a directory briefly gone (replaced by a deploy tool) must not open every pod.
      this.#publish({ ...this.#snapshot, error: `Cannot read --policy-dir ${this.#o.dir}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}` });
      return;
    }
    const stamps = files.map((name) => {
      try {
        const stat = statSync(path.join(this.#o.dir, name));
        return `${stat.size}/${stat.mtimeMs}`;
      } catch {
        return "gone";
      }
    });
    const seen = files.map((name, i) => `${name}/${stamps[i]}`).join("\n");
    if (seen === this.#seen && this.#snapshot.synced && this.#snapshot.error === undefined) return;
    this.#seen = seen;

    const objects: PolicyObject[] = [];
    const unreadable: string[] = [];
    const errors: PolicyObjectError[] = [];
    for (const [name] of this.#parsed) if (!files.includes(name)) this.#parsed.delete(name);
    files.forEach((name, i) => {
      const stamp = stamps[i] ?? "gone";
      let parsed = this.#parsed.get(name);
      if (parsed === undefined || parsed.stamp !== stamp) {
        let text: string;
        try {
          text = readFileSync(path.join(this.#o.dir, name), "utf8");
        } catch (error) {
          // Its objects as last read stay in force (PolicyStore): a file briefly unreadable must not open pods.
          this.#parsed.delete(name);
          unreadable.push(name);
          errors.push({ object: `file ${name}`, error: `cannot read it: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}` });
          return;
        }
        parsed = { stamp, ...parsePolicyDocuments(text, name) };
        this.#parsed.set(name, parsed);
      }
      for (const error of parsed.errors) errors.push({ object: `file ${name}`, error });
      // A file with a document that is not YAML: its other objects stand as they are; the broken one, unknown,
      // is neither added nor removed.
      if (parsed.errors.length > 0) unreadable.push(name);
      for (const object of parsed.objects) objects.push(object);
    });
    this.#store.replaceAll(objects, { unreadable, errors });
    this.#publish({ synced: true, world: this.#store.world(), errors: this.#store.errors() });
  }

  #publish(snapshot: PolicySnapshot): void {
    this.#snapshot = snapshot;
    this.#onChange();
  }
}
