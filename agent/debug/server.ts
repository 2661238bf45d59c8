// The debug endpoint: read-only HTTP on 127.0.0.1 by default.
//   /healthz       200 while the agent's loop is alive
//   /readyz        200 once the overlay, masq rules and CNI config are in place and this node's own record is as
//                  claimed, else 503 with what is missing (and, for the record, why)
//   /metrics       Prometheus text (counters and counts only: no state is built)
//   /debug/state   everything, as JSON (what `weft-agent status` prints)
import type * as Http from "node:http";
import type { AddressInfo } from "node:net";
import type { AgentMetrics } from "./metrics";
import type { AgentState } from "./state";
import { DebugAddressError } from "../errors";

// Not `import … from "node:http"`: the ESM facade of node:http reads every export, which loads undici (fetch,
// WebSocket) and costs ~50 ms of the agent's start-up. The CommonJS module object does not.
const http = process.getBuiltinModule("node:http") as typeof Http;

export interface DebugSource {
  /** The whole view: only /debug/state (and so `status`) builds it. */
  state(): AgentState;
  /** Readiness alone: what a kubelet probe pays for. */
  readiness(): AgentState["readiness"];
  /** False once the loop has stopped or wedged. */
  alive(): boolean;
  /** NetworkPolicy: the model's answer for one connection (query: from, to, port "80/TCP"); an error is the 400's text. */
  explainPolicy?(query: URLSearchParams): unknown;
}

/** "127.0.0.1:9476", "[::1]:9476", ":9476" (all addresses) → host and port. */
export function parseListenAddress(text: string): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text.trim());
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) throw new DebugAddressError(`Invalid --debug-addr "${text}": expected host:port, e.g. 127.0.0.1:9476`);
  return { host: match[1] ?? (match[2] === "" ? "0.0.0.0" : match[2]!), port };
}

export class DebugServer {
  readonly #server: Http.Server;
  readonly #source: DebugSource;
  readonly #metrics: AgentMetrics;

  constructor(source: DebugSource, metrics: AgentMetrics) {
    this.#source = source;
    this.#metrics = metrics;
    this.#server = http.createServer((request, response) => this.#handle(request, response));
    this.#server.keepAliveTimeout = 5_000;
  }

  async listen(address: string): Promise<AddressInfo> {
    const { host, port } = parseListenAddress(address);
    await new Promise<void>((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(port, host, () => {
        this.#server.off("error", reject);
        resolve();
      });
    });
    return this.#server.address() as AddressInfo;
  }

  async close(): Promise<void> {
    if (!this.#server.listening) return;
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }

  #handle(request: Http.IncomingMessage, response: Http.ServerResponse): void {
    const send = (status: number, type: string, body: string) => {
      response.writeHead(status, { "content-type": type, "cache-control": "no-store" });
      response.end(request.method === "HEAD" ? undefined : body);
    };
    if (request.method !== "GET" && request.method !== "HEAD") return send(405, "text/plain; charset=utf-8", "read-only: GET only\n");
    const url = new URL(request.url ?? "/", "http://weft");
    try {
      switch (url.pathname) {
        case "/healthz":
          return this.#source.alive() ? send(200, "text/plain; charset=utf-8", "ok\n") : send(503, "text/plain; charset=utf-8", "the reconcile loop is not running\n");
        case "/readyz": {
          const readiness = this.#source.readiness();
          if (readiness.ready) return send(200, "text/plain; charset=utf-8", "ok\n");
          const missing = Object.entries(readiness).filter(([key, ok]) => ok === false && key !== "ready").map(([key]) => key);
          const why = readiness.problem === undefined ? "" : ` (${readiness.problem})`;
          return send(503, "text/plain; charset=utf-8", `not ready: ${missing.join(", ")}${why}\n`);
        }
        case "/metrics":
          this.#metrics.render().then((text) => send(200, this.#metrics.contentType, text), (error: unknown) => send(500, "text/plain; charset=utf-8", `${error instanceof Error ? error.message : String(error)}\n`));
          return;
        case "/debug/state":
          return send(200, "application/json", `${JSON.stringify(this.#source.state(), null, 2)}\n`);
        case "/debug/policy/explain": {
          const answer = this.#source.explainPolicy?.(url.searchParams) ?? { error: "NetworkPolicy is off on this agent (--policy-source)" };
          if (typeof answer === "object" && answer !== null && "error" in answer) return send(400, "text/plain; charset=utf-8", `${String(answer.error)}\n`);
          return send(200, "application/json", `${JSON.stringify(answer, null, 2)}\n`);
        }
        case "/":
          return send(200, "text/plain; charset=utf-8", "weft-agent: /healthz /readyz /metrics /debug/state\n");
        default:
          return send(404, "text/plain; charset=utf-8", "not found: /healthz /readyz /metrics /debug/state\n");
      }
    } catch (error) {
      send(500, "text/plain; charset=utf-8", `${error instanceof Error ? error.message : String(error)}\n`);
    }
  }
}
