// Real traffic between test namespaces: a TCP echo server and a client, both small Node programs started inside
// a namespace with `ip netns exec`. Servers are ended by PID in `stop()`.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";

const SERVER = `
const net = require("node:net");
const server = net.createServer((socket) => socket.pipe(socket));
server.listen(Number(process.argv[1]), "::", () => process.stdout.write("listening\\n"));
`;

const CLIENT = `
const net = require("node:net");
const [host, port] = [process.argv[1], Number(process.argv[2])];
const socket = net.connect({ host, port, timeout: 2000 });
const message = "weft-echo-" + process.pid;
let received = "";
socket.on("connect", () => socket.write(message));
socket.on("data", (data) => { received += data; if (received === message) { process.stdout.write(socket.localAddress); socket.end(); process.exit(0); } });
socket.on("timeout", () => { process.stderr.write("timeout"); process.exit(2); });
socket.on("error", (error) => { process.stderr.write(String(error)); process.exit(1); });
`;

export interface EchoServer {
  stop(): void;
}

export function startEchoServer(netnsName: string, port: number): Promise<EchoServer> {
  return startServer(netnsName, SERVER, port, "echo");
}

/** Runs a small Node server script inside the namespace; resolves once it listens. */
async function startServer(netnsName: string, script: string, port: number, what: string): Promise<EchoServer> {
  const child: ChildProcess = spawn("ip", ["netns", "exec", netnsName, process.execPath, "-e", script, String(port)], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} server in ${netnsName} did not start`)), 10_000);
    child.stdout?.on("data", (data: Buffer) => {
      if (data.toString().includes("listening")) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} server in ${netnsName} exited with ${code}`));
    });
  });
  child.removeAllListeners("exit");
  return {
    stop: () => {
      if (child.pid !== undefined && child.exitCode === null) child.kill("SIGTERM");
    },
  };
}

/** Connects from `netnsName` to host:port, sends a line, expects it back. Returns the client's source address. */
export function tcpEcho(netnsName: string, host: string, port: number): { ok: boolean; source: string; error: string } {
  const child = spawnSync("ip", ["netns", "exec", netnsName, process.execPath, "-e", CLIENT, host, String(port)], {
    encoding: "utf8",
    timeout: 10_000,
  });
  return { ok: child.status === 0, source: child.stdout.trim(), error: child.stderr.trim() };
}

/**
 * TCP echo between every ordered pair of `pods` (to each pod's IPv4 address, on `port`): the failures, empty when
 * all reach each other with their own address.
 */
export function unreachablePairs(pods: readonly { ns: { name: string }; ip: string }[], port: number): string[] {
  const failures: string[] = [];
  for (const from of pods) {
    for (const to of pods) {
      if (from === to) continue;
      const result = tcpEcho(from.ns.name, to.ip, port);
      if (!result.ok || result.source !== from.ip) failures.push(`${from.ip} → ${to.ip}: ${result.error || `source seen as ${result.source}`}`);
    }
  }
  return failures;
}

const WHOAMI_SERVER = `
const net = require("node:net");
const server = net.createServer((socket) => socket.end(socket.remoteAddress.replace(/^::ffff:/, "")));
server.listen(Number(process.argv[1]), "::", () => process.stdout.write("listening\\n"));
`;

const WHOAMI_CLIENT = `
const net = require("node:net");
const socket = net.connect({ host: process.argv[1], port: Number(process.argv[2]), timeout: 2000 });
let received = "";
socket.on("data", (data) => { received += data; });
socket.on("end", () => { process.stdout.write(received); process.exit(0); });
socket.on("timeout", () => { process.stderr.write("timeout"); process.exit(2); });
socket.on("error", (error) => { process.stderr.write(String(error)); process.exit(1); });
`;

/** A server that answers each connection with the client's address as it sees it (to check SNAT). */
export function startWhoamiServer(netnsName: string, port: number): Promise<EchoServer> {
  return startServer(netnsName, WHOAMI_SERVER, port, "whoami");
}

/** Connects from `netnsName` to a whoami server; returns the address the server saw. */
export function tcpWhoami(netnsName: string, host: string, port: number): { ok: boolean; seenAs: string; error: string } {
  const child = spawnSync("ip", ["netns", "exec", netnsName, process.execPath, "-e", WHOAMI_CLIENT, host, String(port)], {
    encoding: "utf8",
    timeout: 10_000,
  });
  return { ok: child.status === 0, seenAs: child.stdout.trim(), error: child.stderr.trim() };
}

// A long-lived TCP connection exchanging data continuously: the client sends a counter line every 10 ms to an
// echo server and checks that every reply comes back, in order. It runs until stopped (SIGTERM), then waits up
// to 3 s for the replies still in flight and prints its report as one JSON line.
const STREAM_CLIENT = `
const net = require("node:net");
const [host, port, everyMs] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
const report = { connected: false, sent: 0, received: 0, outOfOrder: 0, maxGapMs: 0, closed: false, error: "" };
let buffer = "";
let expected = 0;
let last = 0;
let stopping = false;
let timer;
let done = false;
const finish = (code) => {
  if (done) return;
  done = true;
  clearInterval(timer);
  if (report.connected && report.received < report.sent) report.maxGapMs = Math.max(report.maxGapMs, performance.now() - last);
  report.maxGapMs = Math.round(report.maxGapMs);
  process.stdout.write(JSON.stringify(report) + "\\n", () => process.exit(code));
};
const socket = net.connect({ host, port });
socket.setNoDelay(true);
socket.on("connect", () => {
  report.connected = true;
  last = performance.now();
  process.stdout.write("connected\\n");
  timer = setInterval(() => { socket.write(report.sent + "\\n"); report.sent++; }, everyMs);
});
socket.on("data", (data) => {
  const now = performance.now();
  report.maxGapMs = Math.max(report.maxGapMs, now - last);
  last = now;
  buffer += data;
  const lines = buffer.split("\\n");
  buffer = lines.pop();
  for (const line of lines) {
    if (Number(line) !== expected) report.outOfOrder++;
    expected = Number(line) + 1;
    report.received++;
  }
  if (stopping && report.received >= report.sent) finish(0);
});
socket.on("error", (error) => { report.error = String(error); finish(1); });
socket.on("close", () => { if (!stopping) report.closed = true; finish(1); });
process.on("SIGTERM", () => {
  stopping = true;
  clearInterval(timer);
  if (report.received >= report.sent) return finish(0);
  setTimeout(() => { report.error ||= "replies still missing 3 s after the stop"; finish(1); }, 3000);
});
`;

export interface StreamReport {
  connected: boolean;
  /** Lines sent and echoed back. */
  sent: number;
  received: number;
  /** Replies that were not the next number expected (reordering or a gap in the stream). */
  outOfOrder: number;
  /** The longest time without any reply while the client was sending. */
  maxGapMs: number;
  /** The connection was closed by the other side or the network. */
  closed: boolean;
  error: string;
}

export interface TcpStream {
  /** Stops sending, waits for the replies in flight and returns the report. */
  stop(): Promise<StreamReport>;
}

/** Opens a long-lived connection from `netnsName` to an echo server at host:port; resolves once connected. */
export async function startTcpStream(netnsName: string, host: string, port: number, options: { everyMs?: number } = {}): Promise<TcpStream> {
  const child = spawn("ip", ["netns", "exec", netnsName, process.execPath, "-e", STREAM_CLIENT, host, String(port), String(options.everyMs ?? 10)], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (data: Buffer) => (stdout += data.toString()));
  child.stderr!.on("data", (data: Buffer) => (stderr += data.toString()));
  // "close", not "exit": the report's last chunk of stdout may still be on its way when the process has exited.
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  const report = async (): Promise<StreamReport> => {
    await exited;
    const line = stdout.trim().split("\n").pop() ?? "";
    try {
      return JSON.parse(line) as StreamReport;
    } catch {
      throw new Error(`TCP stream client in ${netnsName} printed no report: ${stdout} ${stderr}`);
    }
  };
  const deadline = Date.now() + 10_000;
  while (!stdout.includes("connected\n")) {
    if (child.exitCode !== null || Date.now() > deadline) {
      if (child.exitCode === null) child.kill("SIGKILL");
      throw new Error(`TCP stream from ${netnsName} to ${host}:${port} did not connect: ${JSON.stringify(await report().catch((e: Error) => e.message))}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return {
    stop: async () => {
      if (child.exitCode === null) child.kill("SIGTERM");
      return report();
    },
  };
}

export interface PingSummary {
  transmitted: number;
  received: number;
  /** How many `ping -c` rounds ran. */
  rounds: number;
  /** The summary lines of the rounds that lost packets, for the failure message. */
  lossy: string[];
}

export interface PingRun {
  /** Lets the current round finish (every packet sent gets its reply or its -W wait) and sums them all. */
  stop(): Promise<PingSummary>;
}

/**
 * Pings `address` from `netnsName` continuously: `/bin/busybox ping -i <interval> -c <count> -W 1` rounds, one after
 * the other, until stop(). Rounds of a fixed count end cleanly (no packet in flight is counted as lost), so the
 * loss is exact whatever the test's own duration.
 */
export function startPing(netnsName: string, address: string, options: { count?: number; intervalS?: number } = {}): PingRun {
  const count = options.count ?? 200;
  const summary: PingSummary = { transmitted: 0, received: 0, rounds: 0, lossy: [] };
  let stopping = false;
  const round = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const child = spawn("ip", ["netns", "exec", netnsName, "/bin/busybox", "ping", "-i", String(options.intervalS ?? 0.05), "-c", String(count), "-W", "1", address], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      child.stdout.on("data", (data: Buffer) => (out += data.toString()));
      child.stderr.on("data", (data: Buffer) => (out += data.toString()));
      // "close", not "exit": the summary may still be in the pipe when ping has exited.
      child.on("close", () => {
        const match = /(\d+) packets transmitted, (\d+) packets received/.exec(out);
        if (!match) return reject(new Error(`ping from ${netnsName} to ${address} printed no summary: ${out.slice(-500)}`));
        const [transmitted, received] = [Number(match[1]), Number(match[2])];
        summary.transmitted += transmitted;
        summary.received += received;
        summary.rounds++;
        if (received < transmitted) summary.lossy.push(out.trim().split("\n").slice(-2).join(" / "));
        resolve();
      });
    });
  const loop = (async () => {
    do await round();
    while (!stopping);
  })();
  loop.catch(() => undefined);
  return {
    stop: async () => {
      stopping = true;
      await loop;
      return summary;
    },
  };
}
