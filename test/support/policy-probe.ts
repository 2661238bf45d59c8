// A fast prober for NetworkPolicy truth tables (test/e2e/policy-matrix.test.ts): ONE long-running small Node
// program per network namespace (a pod's, a node's, the external host's), started with `nsenter --net=<path>` and
// ended by its PID. It
//   - serves TCP and UDP on the given ports, answering every connection and datagram with its own name (TCP: the
//     name and a newline, then it echoes whatever the client sends, for long-lived streams);
//   - takes requests as JSON lines on stdin and answers each with one JSON line on stdout: a batch of probes run
//     all at once, each ending at the batch's timeout ("probe"); a GET on the namespace's loopback (the agent's
//     /debug/state: "get"); a long-lived TCP stream sending a line every few ms and counting the echoes
//     ("stream-start", "stream-status", "stream-stop").
// A probe is "ok" when the answer is the expected name; a denied one (weft drops, it never resets) runs into the
// timeout. A whole 9×9×4 matrix is then one round trip per prober, all probers at once: tens of ms when all is
// allowed, about the timeout when anything is denied.
//
// SCTP: Node has no SCTP socket without a native module, so the matrix covers TCP and UDP only; the policy
// model's unit tests cover SCTP.
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";

export type Protocol = "TCP" | "UDP";

export interface PortProto {
  port: number;
  protocol: Protocol;
}

export interface Probe {
  ip: string;
  port: number;
  protocol: Protocol;
  /** The source port; default an ephemeral one. */
  localPort?: number;
}

export interface ProbeResult {
  /** The answer arrived. */
  ok: boolean;
  /** What answered (a prober's name), when something did. */
  answer?: string;
  /** timeout, refused, or the socket error's code. */
  error?: string;
  ms: number;
}

export interface StreamStatus {
  connected: boolean;
  sent: number;
  received: number;
  /** ms since the last echo came back (since the start when none did yet). */
  sinceLastReplyMs: number;
  /** The longest wait between two echoes so far. */
  maxGapMs: number;
  closed: boolean;
  error: string;
}

const PROGRAM = String.raw`
const net = require("node:net");
const dgram = require("node:dgram");
const readline = require("node:readline");
const http = require("node:http");
const [name, portList] = [process.argv[1], process.argv[2]];
const ports = portList ? portList.split(",").filter(Boolean).map((p) => { const [n, proto] = p.split("/"); return { port: Number(n), proto }; }) : [];
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const sockets = new Set();

async function serve() {
  await Promise.all(ports.map(({ port, proto }) => new Promise((resolve, reject) => {
    if (proto === "TCP") {
      const server = net.createServer((socket) => {
        sockets.add(socket);
        socket.on("close", () => sockets.delete(socket));
        socket.on("error", () => undefined);
        socket.write(name + "\n");
        socket.on("data", (data) => socket.write(data));
        socket.on("end", () => socket.end());
      });
      server.on("error", reject);
      server.listen(port, "0.0.0.0", resolve);
    } else {
      const socket = dgram.createSocket("udp4");
      socket.on("error", reject);
      socket.on("message", (_msg, rinfo) => socket.send(name + "\n", rinfo.port, rinfo.address));
      socket.bind(port, "0.0.0.0", resolve);
    }
  })));
}

function probeTcp(ip, port, timeoutMs, localPort) {
  return new Promise((resolve) => {
    const started = performance.now();
    let received = "";
    let done = false;
    const socket = net.connect({ host: ip, port, ...(localPort ? { localPort } : {}) });
    const finish = (result) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ ...result, ms: Math.round(performance.now() - started) });
    };
    const timer = setTimeout(() => finish({ ok: false, error: received ? "no full answer" : "timeout" }), timeoutMs);
    socket.on("data", (data) => {
      received += data;
      const line = received.indexOf("\n");
      if (line >= 0) finish({ ok: true, answer: received.slice(0, line) });
    });
    socket.on("error", (error) => finish({ ok: false, error: error.code === "ECONNREFUSED" ? "refused" : String(error.code || error.message) }));
    socket.on("close", () => finish({ ok: false, error: "closed without an answer" }));
  });
}

function probeUdp(ip, port, timeoutMs, localPort) {
  return new Promise((resolve) => {
    const started = performance.now();
    let done = false;
    const socket = dgram.createSocket("udp4");
    const finish = (result) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.close();
      resolve({ ...result, ms: Math.round(performance.now() - started) });
    };
    const timer = setTimeout(() => finish({ ok: false, error: "timeout" }), timeoutMs);
    socket.on("message", (msg) => finish({ ok: true, answer: String(msg).trim() }));
    socket.on("error", (error) => finish({ ok: false, error: error.code === "ECONNREFUSED" ? "refused" : String(error.code || error.message) }));
    if (localPort) socket.bind(localPort, () => socket.send("probe\n", port, ip));
    else socket.send("probe\n", port, ip);
  });
}

function get(url, timeoutMs) {
  return new Promise((resolve) => {
    const request = http.get(url, { timeout: timeoutMs }, (response) => {
      let body = "";
      response.setEncoding("utf8");
      response.on("data", (chunk) => { body += chunk; });
      response.on("end", () => resolve({ status: response.statusCode, body }));
    });
    request.on("timeout", () => request.destroy(new Error("timeout")));
    request.on("error", (error) => resolve({ status: 0, body: "", error: String(error.message) }));
  });
}

const streams = new Map();
function startStream(id, ip, port, everyMs) {
  const started = performance.now();
  const s = { connected: false, sent: 0, received: 0, last: started, maxGapMs: 0, closed: false, error: "", buffer: "", greeted: false };
  const socket = net.connect({ host: ip, port });
  s.socket = socket;
  socket.setNoDelay(true);
  socket.on("connect", () => {
    s.connected = true;
    s.timer = setInterval(() => { socket.write(s.sent + "\n"); s.sent++; }, everyMs);
  });
  socket.on("data", (data) => {
    s.buffer += data;
    let line;
    while ((line = s.buffer.indexOf("\n")) >= 0) {
      s.buffer = s.buffer.slice(line + 1);
      if (!s.greeted) { s.greeted = true; continue; }
      const now = performance.now();
      s.maxGapMs = Math.max(s.maxGapMs, now - s.last);
      s.last = now;
      s.received++;
    }
  });
  socket.on("error", (error) => { s.error = String(error.code || error.message); });
  socket.on("close", () => { s.closed = true; clearInterval(s.timer); });
  streams.set(id, s);
}
function streamStatus(s) {
  return { connected: s.connected, sent: s.sent, received: s.received, sinceLastReplyMs: Math.round(performance.now() - s.last), maxGapMs: Math.round(s.maxGapMs), closed: s.closed, error: s.error };
}

async function handle(request) {
  switch (request.op) {
    case "probe": {
      const results = await Promise.all(request.probes.map((p) => (p.protocol === "TCP" ? probeTcp : probeUdp)(p.ip, p.port, request.timeoutMs, p.localPort)));
      return { results };
    }
    case "get":
      return get(request.url, request.timeoutMs || 2000);
    case "stream-start":
      startStream(request.stream, request.ip, request.port, request.everyMs || 20);
      return {};
    case "stream-status": {
      const s = streams.get(request.stream);
      return s ? { status: streamStatus(s) } : { error: "no such stream" };
    }
    case "stream-stop": {
      const s = streams.get(request.stream);
      if (!s) return { error: "no such stream" };
      clearInterval(s.timer);
      s.socket.destroy();
      streams.delete(request.stream);
      return { status: streamStatus(s) };
    }
    default:
      return { error: "unknown op " + request.op };
  }
}

serve().then(() => {
  out({ ready: true });
  readline.createInterface({ input: process.stdin }).on("line", (line) => {
    let request;
    try { request = JSON.parse(line); } catch { return; }
    handle(request).then((answer) => out({ id: request.id, ...answer }), (error) => out({ id: request.id, error: String(error) }));
  });
  process.stdin.on("end", () => process.exit(0));
}, (error) => { process.stderr.write("cannot serve: " + error.message + "\n"); process.exit(1); });
`;

export interface ProberOptions {
  /** How it answers and what it is called in the tables. */
  name: string;
  /** A network namespace's path (/run/netns/…). */
  netnsPath: string;
  /** What it serves. Default none. */
  serve?: readonly PortProto[];
}

/** One prober process in one namespace; see the file's comment. close() ends it by PID. */
export class Prober {
  readonly name: string;
  readonly #child: ChildProcess;
  readonly #pending = new Map<number, (answer: Record<string, unknown>) => void>();
  #next = 0;
  #stderr = "";
  readonly #exited: Promise<void>;

  private constructor(options: ProberOptions) {
    this.name = options.name;
    const ports = (options.serve ?? []).map((p) => `${p.port}/${p.protocol}`).join(",");
    this.#child = spawn("nsenter", [`--net=${options.netnsPath}`, process.execPath, "-e", PROGRAM, options.name, ports], { stdio: ["pipe", "pipe", "pipe"] });
    this.#child.stderr!.on("data", (data: Buffer) => {
      this.#stderr += data.toString();
    });
    this.#exited = new Promise((resolve) => this.#child.on("exit", () => resolve()));
  }

  /** Starts the prober and waits until it serves its ports. */
  static async start(options: ProberOptions): Promise<Prober> {
    const prober = new Prober(options);
    const lines = createInterface({ input: prober.#child.stdout! });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`prober ${options.name} did not start: ${prober.#stderr}`)), 15_000);
      void prober.#exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`prober ${options.name} exited: ${prober.#stderr}`));
      });
      lines.on("line", (line) => {
        const message = JSON.parse(line) as Record<string, unknown>;
        if (message.ready) {
          clearTimeout(timer);
          resolve();
          return;
        }
        const resolveAnswer = prober.#pending.get(message.id as number);
        prober.#pending.delete(message.id as number);
        resolveAnswer?.(message);
      });
    }).catch((error: unknown) => {
      prober.close();
      throw error;
    });
    return prober;
  }

  get pid(): number {
    return this.#child.pid!;
  }

  #request(request: Record<string, unknown>): Promise<Record<string, unknown>> {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      if (this.#child.exitCode !== null || this.#child.signalCode !== null) {
        reject(new Error(`prober ${this.name} has exited: ${this.#stderr}`));
        return;
      }
      this.#pending.set(id, (answer) => (typeof answer.error === "string" ? reject(new Error(`prober ${this.name}: ${answer.error}`)) : resolve(answer)));
      this.#child.stdin!.write(`${JSON.stringify({ ...request, id })}\n`);
    });
  }

  /** Runs every probe at once; each ends at `timeoutMs`. Results in the order of `probes`. */
  async probe(probes: readonly Probe[], timeoutMs: number): Promise<ProbeResult[]> {
    const answer = await this.#request({ op: "probe", probes, timeoutMs });
    return answer.results as ProbeResult[];
  }

  /** GET http://127.0.0.1… from inside the namespace (an agent's debug endpoint). */
  async get(url: string, timeoutMs = 2_000): Promise<{ status: number; body: string }> {
    const answer = await this.#request({ op: "get", url, timeoutMs });
    return { status: answer.status as number, body: answer.body as string };
  }

  /** Opens a TCP connection that sends a line every `everyMs` ms and counts the echoes. */
  async startStream(stream: string, target: { ip: string; port: number }, everyMs = 20): Promise<void> {
    await this.#request({ op: "stream-start", stream, ip: target.ip, port: target.port, everyMs });
  }

  async streamStatus(stream: string): Promise<StreamStatus> {
    return (await this.#request({ op: "stream-status", stream })).status as StreamStatus;
  }

  async stopStream(stream: string): Promise<StreamStatus> {
    return (await this.#request({ op: "stream-stop", stream })).status as StreamStatus;
  }

  /** Ends the process by its PID (nsenter execs node: same PID). Safe to call twice. */
  close(): void {
    if (this.#child.exitCode === null && this.#child.signalCode === null && this.#child.pid !== undefined) process.kill(this.#child.pid, "SIGKILL");
  }

  /** close(), then waits for the exit. */
  async destroy(): Promise<void> {
    this.close();
    await this.#exited;
  }
}

// ---- Matrices ----------------------------------------------------------------------------------------------

/** One probe of a matrix: from a row, to a column. */
export interface MatrixCell {
  from: string;
  to: string;
  port: PortProto;
}

/** Rows (sources) × columns (targets × ports): true = allowed. */
export interface Matrix {
  rows: readonly string[];
  columns: readonly string[];
  ports: readonly PortProto[];
  /** [row][column][port] */
  allowed: boolean[][][];
}

export function portLabel(port: PortProto): string {
  return `${port.port}/${port.protocol}`;
}

export function buildMatrix(rows: readonly string[], columns: readonly string[], ports: readonly PortProto[], allowed: (cell: MatrixCell) => boolean): Matrix {
  return { rows, columns, ports, allowed: rows.map((from) => columns.map((to) => ports.map((port) => allowed({ from, to, port })))) };
}

/** The cells where `actual` differs from `expected`, with the expected verdict. */
export function matrixDifferences(expected: Matrix, actual: Matrix): (MatrixCell & { expected: boolean })[] {
  const differences: (MatrixCell & { expected: boolean })[] = [];
  expected.rows.forEach((from, r) => expected.columns.forEach((to, c) => expected.ports.forEach((port, p) => {
    const want = expected.allowed[r]![c]![p]!;
    if (want !== actual.allowed[r]![c]![p]!) differences.push({ from, to, port, expected: want });
  })));
  return differences;
}

/**
 * The matrix as a compact table: a row per source, a group of characters per target (one per port, in the order
 * of the legend), "." allowed, "X" denied.
 */
export function formatMatrix(matrix: Matrix, title: string): string {
  const rowWidth = Math.max(...matrix.rows.map((r) => r.length)) + 2;
  const groupWidth = Math.max(matrix.ports.length, ...matrix.columns.map((c) => c.length)) + 1;
  const lines = [`${title} (each column group: ${matrix.ports.map(portLabel).join(" ")}; "." allowed, "X" denied)`];
  lines.push(" ".repeat(rowWidth) + matrix.columns.map((c) => c.padEnd(groupWidth)).join(""));
  matrix.rows.forEach((from, r) => {
    lines.push(from.padEnd(rowWidth) + matrix.columns.map((_, c) => matrix.allowed[r]![c]!.map((a) => (a ? "." : "X")).join("").padEnd(groupWidth)).join(""));
  });
  return lines.join("\n");
}

/** Both matrices and the differing cells ("x/a → y/b 80/TCP: expected allowed, got denied"): what a failed case prints. */
export function describeMismatch(expected: Matrix, actual: Matrix, details: (cell: MatrixCell) => string = () => ""): string {
  const differences = matrixDifferences(expected, actual).map((cell) => {
    const extra = details(cell);
    const verdict = (allowed: boolean) => (allowed ? "allowed" : "denied");
    return `  ${cell.from} → ${cell.to} ${portLabel(cell.port)}: expected ${verdict(cell.expected)}, got ${verdict(!cell.expected)}${extra ? ` (${extra})` : ""}`;
  });
  return [formatMatrix(expected, "expected"), formatMatrix(actual, "actual"), `${differences.length} differing cells:`, ...differences].join("\n");
}

/** A matrix as probed: what each cell's probe gave, beside the verdicts. */
export interface ProbedMatrix extends Matrix {
  /** [row][column][port] */
  results: ProbeResult[][][];
  /** Cells answered by someone other than their target: misrouting, never a policy verdict. */
  wrongAnswers: string[];
  ms: number;
}

/**
 * Probes every target on every port from every row's prober, all rows at once. A column's `answers` is the name its
 * server answers with; `ip`/`port` may differ from the target's own (a hostPort on its node), `via` maps a port of
 * the table to the port actually probed.
 */
export async function probeMatrix(
  rows: readonly { name: string; prober: Prober }[],
  columns: readonly { name: string; ip: string; answers: string; via?: (port: PortProto) => PortProto }[],
  ports: readonly PortProto[],
  options: { timeoutMs: number },
): Promise<ProbedMatrix> {
  const started = performance.now();
  const results = await Promise.all(rows.map(async ({ prober }) => {
    const probes = columns.flatMap((column) => ports.map((port) => {
      const target = column.via ? column.via(port) : port;
      return { ip: column.ip, port: target.port, protocol: target.protocol };
    }));
    const flat = await prober.probe(probes, options.timeoutMs);
    return columns.map((_, c) => ports.map((_, p) => flat[c * ports.length + p]!));
  }));
  const wrongAnswers: string[] = [];
  results.forEach((row, r) => row.forEach((column, c) => column.forEach((result, p) => {
    if (result.ok && result.answer !== columns[c]!.answers) wrongAnswers.push(`${rows[r]!.name} → ${columns[c]!.name} ${portLabel(ports[p]!)}: answered by ${result.answer}`);
  })));
  return {
    rows: rows.map((r) => r.name),
    columns: columns.map((c) => c.name),
    ports,
    allowed: results.map((row) => row.map((column) => column.map((result) => result.ok))),
    results,
    wrongAnswers,
    ms: Math.round(performance.now() - started),
  };
}
