// A small, faithful Kubernetes API server for Nodes, for testing list/watch clients (no kube-apiserver can be
// installed here). What it implements, as kube-apiserver does:
//
//   GET   /api/v1/nodes                      NodeList with metadata.resourceVersion (a global counter)
//   GET   /api/v1/nodes?watch=true&resourceVersion=N[&allowWatchBookmarks=true]
//         a chunked stream of {"type","object"} lines: the events after N from the history, then live ADDED,
//         MODIFIED, DELETED; BOOKMARK events (kind Node, only metadata.resourceVersion) when bookmarks are
//         allowed; N older than the compacted history → 410 Gone, either as an ERROR event carrying a Status
//         with code 410 then the end of the stream (kube-apiserver's usual answer) or as an HTTP 410 Status
//         (`tooOldResponse: "http"`). resourceVersion "" or "0" starts with synthetic ADDED events for every node.
//   GET   /api/v1/nodes/{name}
//   PATCH /api/v1/nodes/{name}               merge-patch+json (RFC 7386) or strategic-merge-patch+json; status
//                                            is not changed through the main resource
//   PATCH /api/v1/nodes/{name}/status        the same; only metadata and status change; the strategic merge
//                                            merges status.conditions and status.addresses by their "type"
//
// Errors are Status objects. The test drives the cluster (upsertNode, deleteNode), the history (compact), the
// open watches (expireWatches, closeWatches, sendBookmarks), the resourceVersion (touchOtherResource) and the server itself (stop, restart: the same port,
// the state kept). Every request is recorded in `requests`, with the time it arrived.
//
// Fault injection, which is why this stand-in stays beside the real kube-apiserver (test/support/kube-apiserver.ts):
// failRequests(500) makes every request fail with that status, as a sick API server or an overloaded etcd behind
// it does; the real server cannot be made to.

import http from "node:http";
import type net from "node:net";
import { KubeConfig } from "@kubernetes/client-node";

export interface FakeNode {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; resourceVersion?: string; uid?: string; annotations?: Record<string, string>; labels?: Record<string, string>; [key: string]: unknown };
  spec?: { podCIDR?: string; podCIDRs?: string[]; [key: string]: unknown };
  status?: {
    addresses?: { type: string; address: string }[];
    conditions?: { type: string; status: string; reason?: string; message?: string; [key: string]: unknown }[];
    [key: string]: unknown;
  };
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  contentType: string | undefined;
  body: unknown;
  /** Date.now() when it arrived. */
  at: number;
}

export interface FakeKubeApiServerOptions {
  /** Send a BOOKMARK to watches that allow them this often; 0 = only on sendBookmarks(). Default 0. */
  bookmarkIntervalMs?: number;
  /** How a watch from a compacted resourceVersion is refused. Default "event". */
  tooOldResponse?: "event" | "http";
}

type EventType = "ADDED" | "MODIFIED" | "DELETED";

interface OpenWatch {
  response: http.ServerResponse;
  bookmarks: boolean;
}

const MERGE_KEYS: Record<string, string> = { "status.conditions": "type", "status.addresses": "type" };

export class FakeKubeApiServer {
  readonly requests: RecordedRequest[] = [];
  readonly #options: Required<FakeKubeApiServerOptions>;
  readonly #nodes = new Map<string, FakeNode>();
  readonly #history: { resourceVersion: number; type: EventType; object: FakeNode }[] = [];
  readonly #watches = new Set<OpenWatch>();
  readonly #sockets = new Set<net.Socket>();
  #resourceVersion = 1;
  /** Watches from a resourceVersion below this are too old. */
  #compactedAt = 0;
  #uid = 0;
  #server: http.Server | undefined;
  #port = 0;
  #bookmarkTimer: NodeJS.Timeout | undefined;
  #failing: number | undefined;

  private constructor(options: FakeKubeApiServerOptions) {
    this.#options = { bookmarkIntervalMs: options.bookmarkIntervalMs ?? 0, tooOldResponse: options.tooOldResponse ?? "event" };
  }

  static async start(options: FakeKubeApiServerOptions = {}): Promise<FakeKubeApiServer> {
    const server = new FakeKubeApiServer(options);
    await server.#listen(0);
    return server;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  get resourceVersion(): string {
    return String(this.#resourceVersion);
  }

  /** How many watch streams are open now. */
  get openWatches(): number {
    return this.#watches.size;
  }

  /** A KubeConfig that points at this server (no TLS, no credentials). */
  kubeConfig(): KubeConfig {
    const config = new KubeConfig();
    config.loadFromOptions({
      clusters: [{ name: "fake", server: this.url, skipTLSVerify: true }],
      users: [{ name: "fake" }],
      contexts: [{ name: "fake", cluster: "fake", user: "fake" }],
      currentContext: "fake",
    });
    return config;
  }

  // ---- the cluster ----

  /** Creates (ADDED) or replaces (MODIFIED) a node; returns it as stored. */
  upsertNode(node: FakeNode): FakeNode {
    const existing = this.#nodes.get(node.metadata.name);
    const stored: FakeNode = structuredClone({ apiVersion: "v1", kind: "Node", ...node });
    stored.metadata.uid = existing?.metadata.uid ?? `uid-${++this.#uid}`;
    this.#store(stored, existing ? "MODIFIED" : "ADDED");
    return this.getNode(node.metadata.name)!;
  }

  deleteNode(name: string): void {
    const existing = this.#nodes.get(name);
    if (!existing) return;
    this.#nodes.delete(name);
    const gone = structuredClone(existing);
    gone.metadata.resourceVersion = String(++this.#resourceVersion);
    this.#emit("DELETED", gone);
  }

  getNode(name: string): FakeNode | undefined {
    const node = this.#nodes.get(name);
    return node && structuredClone(node);
  }

  /** A write to some other resource: the global resourceVersion moves on, no Node event. */
  touchOtherResource(): void {
    this.#resourceVersion++;
  }

  /** Forgets the history: a watch from any resourceVersion before now gets 410 Gone. */
  compact(): void {
    this.#history.length = 0;
    this.#compactedAt = this.#resourceVersion;
  }

  /** Compacts, then ends every open watch with an ERROR event carrying a 410 Status (the client must relist). */
  expireWatches(): void {
    this.compact();
    for (const watch of [...this.#watches]) {
      this.#write(watch, { type: "ERROR", object: tooOld(this.#compactedAt) });
      this.#end(watch);
    }
  }

  /** Ends every open watch normally, as kube-apiserver does when a watch's timeout expires. */
  closeWatches(): void {
    for (const watch of [...this.#watches]) this.#end(watch);
  }

  /** Sends a BOOKMARK at the current resourceVersion to every watch that allows them. */
  sendBookmarks(): void {
    for (const watch of this.#watches) {
      if (watch.bookmarks) {
        this.#write(watch, { type: "BOOKMARK", object: { kind: "Node", apiVersion: "v1", metadata: { resourceVersion: this.resourceVersion } } });
      }
    }
  }

  // ---- the server ----

  /** From now on every request is answered with this HTTP status (a Status object); undefined answers again. */
  failRequests(code: number | undefined): void {
    this.#failing = code;
  }

  /** The API goes away: the port is closed and every connection dropped. The cluster state is kept. */
  async stop(): Promise<void> {
    clearInterval(this.#bookmarkTimer);
    const server = this.#server;
    this.#server = undefined;
    this.#watches.clear();
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Listens again on the same port. */
  async restart(): Promise<void> {
    if (!this.#server) await this.#listen(this.#port);
  }

  close(): Promise<void> {
    return this.stop();
  }

  async #listen(port: number): Promise<void> {
    const server = http.createServer((request, response) => void this.#handle(request, response));
    server.on("connection", (socket) => {
      this.#sockets.add(socket);
      socket.once("close", () => this.#sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => server.once("error", reject).listen(port, "127.0.0.1", resolve));
    this.#server = server;
    this.#port = (server.address() as net.AddressInfo).port;
    if (this.#options.bookmarkIntervalMs > 0) {
      this.#bookmarkTimer = setInterval(() => this.sendBookmarks(), this.#options.bookmarkIntervalMs);
      this.#bookmarkTimer.unref();
    }
  }

  async #handle(request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
    const url = new URL(request.url ?? "/", "http://fake");
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString();
    let body: unknown = text;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      // recorded as text; PATCH answers 400 below
    }
    const contentType = request.headers["content-type"]?.split(";")[0]?.trim();
    this.requests.push({ method: request.method ?? "", path: url.pathname, query: Object.fromEntries(url.searchParams), contentType, body, at: Date.now() });
    if (this.#failing !== undefined) return sendStatus(response, this.#failing, "InternalError", `injected failure (${this.#failing})`);

    const match = /^\/api\/v1\/nodes(?:\/([^/]+)(\/status)?)?$/.exec(url.pathname);
    if (!match) return sendStatus(response, 404, "NotFound", `the server could not find the requested resource (${url.pathname})`);
    const [, name, status] = match;
    if (request.method === "GET" && name === undefined) {
      const watch = url.searchParams.get("watch");
      if (watch === "true" || watch === "1") return this.#watch(url, response);
      return sendJson(response, 200, {
        kind: "NodeList",
        apiVersion: "v1",
        metadata: { resourceVersion: this.resourceVersion },
        items: [...this.#nodes.values()].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name)),
      });
    }
    if (request.method === "GET" && name !== undefined && !status) {
      const node = this.#nodes.get(decodeURIComponent(name));
      return node ? sendJson(response, 200, node) : sendStatus(response, 404, "NotFound", `nodes "${name}" not found`);
    }
    if (request.method === "PATCH" && name !== undefined) {
      return this.#patch(decodeURIComponent(name), Boolean(status), contentType, text, body, response);
    }
    return sendStatus(response, 405, "MethodNotAllowed", `the server does not allow this method on the requested resource`);
  }

  #watch(url: URL, response: http.ServerResponse): void {
    const from = url.searchParams.get("resourceVersion") ?? "";
    const watch: OpenWatch = { response, bookmarks: url.searchParams.get("allowWatchBookmarks") === "true" };
    const since = from === "" || from === "0" ? undefined : Number(from);
    if (since !== undefined && (!Number.isInteger(since) || since < 0)) {
      return sendStatus(response, 400, "BadRequest", `invalid resource version "${from}"`);
    }
    if (since !== undefined && since < this.#compactedAt) {
      if (this.#options.tooOldResponse === "http") return sendJson(response, 410, tooOld(this.#compactedAt, since));
      response.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
      this.#write(watch, { type: "ERROR", object: tooOld(this.#compactedAt, since) });
      return void response.end();
    }
    response.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
    response.flushHeaders();
    if (since === undefined) {
      for (const node of this.#nodes.values()) this.#write(watch, { type: "ADDED", object: node });
    } else {
      for (const event of this.#history) if (event.resourceVersion > since) this.#write(watch, { type: event.type, object: event.object });
    }
    this.#watches.add(watch);
    response.once("close", () => this.#watches.delete(watch));
  }

  #patch(name: string, status: boolean, contentType: string | undefined, text: string, body: unknown, response: http.ServerResponse): void {
    const strategic = contentType === "application/strategic-merge-patch+json";
    if (!strategic && contentType !== "application/merge-patch+json") {
      return sendStatus(response, 415, "UnsupportedMediaType", `the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json (got ${contentType})`);
    }
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      return sendStatus(response, 400, "BadRequest", `error decoding patch: ${JSON.stringify(text.slice(0, 100))}`);
    }
    const existing = this.#nodes.get(name);
    if (!existing) return sendStatus(response, 404, "NotFound", `nodes "${name}" not found`);
    const patched = (strategic ? strategicMerge(existing, body, "") : mergePatch(existing, body)) as FakeNode;
    // The main resource does not change status; the status subresource changes only status and metadata.
    if (status) patched.spec = structuredClone(existing.spec);
    else patched.status = structuredClone(existing.status);
    patched.metadata.name = existing.metadata.name;
    patched.metadata.uid = existing.metadata.uid;
    patched.metadata.resourceVersion = existing.metadata.resourceVersion;
    if (JSON.stringify(patched) !== JSON.stringify(existing)) this.#store(patched, "MODIFIED");
    sendJson(response, 200, this.#nodes.get(name));
  }

  #store(node: FakeNode, type: EventType): void {
    node.metadata.resourceVersion = String(++this.#resourceVersion);
    this.#nodes.set(node.metadata.name, node);
    this.#emit(type, node);
  }

  #emit(type: EventType, object: FakeNode): void {
    const event = { resourceVersion: this.#resourceVersion, type, object: structuredClone(object) };
    this.#history.push(event);
    for (const watch of this.#watches) this.#write(watch, { type, object: event.object });
  }

  #write(watch: OpenWatch, event: { type: string; object: unknown }): void {
    if (!watch.response.writableEnded) watch.response.write(`${JSON.stringify(event)}\n`);
  }

  #end(watch: OpenWatch): void {
    this.#watches.delete(watch);
    watch.response.end();
  }
}

function tooOld(compactedAt: number, since?: number): Record<string, unknown> {
  return status(410, "Expired", `too old resource version: ${since ?? compactedAt - 1} (${compactedAt})`);
}

function status(code: number, reason: string, message: string): Record<string, unknown> {
  return { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message, reason, code };
}

function sendStatus(response: http.ServerResponse, code: number, reason: string, message: string): void {
  sendJson(response, code, status(code, reason, message));
}

function sendJson(response: http.ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(code, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  response.end(text);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** RFC 7386: objects merge recursively, null deletes, anything else replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return structuredClone(patch);
  const result: Record<string, unknown> = isObject(target) ? structuredClone(target) : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

/**
 * Strategic merge patch for the lists a Node patch touches: lists with a merge key (status.conditions,
 * status.addresses: "type") merge element by element, other lists are replaced, maps merge as in RFC 7386.
 * Directives ("$setElementOrder/…", "$retainKeys", …) are ignored.
 */
export function strategicMerge(target: unknown, patch: unknown, path: string): unknown {
  const mergeKey = MERGE_KEYS[path];
  if (mergeKey && Array.isArray(patch)) {
    const result = Array.isArray(target) ? structuredClone(target) as Record<string, unknown>[] : [];
    for (const item of patch) {
      if (!isObject(item)) continue;
      const index = result.findIndex((existing) => isObject(existing) && existing[mergeKey] === item[mergeKey]);
      if (item.$patch === "delete") {
        if (index >= 0) result.splice(index, 1);
      } else if (index >= 0) {
        result[index] = strategicMerge(result[index], item, `${path}[]`) as Record<string, unknown>;
      } else {
        result.push(strategicMerge(undefined, item, `${path}[]`) as Record<string, unknown>);
      }
    }
    return result;
  }
  if (!isObject(patch)) return structuredClone(patch);
  const result: Record<string, unknown> = isObject(target) ? structuredClone(target) : {};
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith("$")) continue;
    if (value === null) delete result[key];
    else result[key] = strategicMerge(result[key], value, path ? `${path}.${key}` : key);
  }
  return result;
}
