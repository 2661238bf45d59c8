// A real etcd for tests (Debian's etcd-server, /usr/bin/etcd) on loopback, with free ports and a temp data dir
// named after the run prefix, so that scripts/cleanup-test-state.sh removes the dir of a crashed run. The test
// that starts it stops it by PID in afterAll (`stop()`); an exit hook kills it too if the worker dies first.
//
// Also a TCP proxy to put in front of it: `pause()` drops every connection and refuses new ones (etcd
// unreachable for the client behind it), `resume()` lets them through again, while the test keeps talking to
// etcd directly (writes, compaction).

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, openSync, closeSync, rmSync, readFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { RUN_PREFIX } from "./netns";

export const ETCD_BINARY = process.env.WEFT_ETCD ?? "/usr/bin/etcd";

export interface TestEtcd {
  /** "http://127.0.0.1:<port>" */
  endpoint: string;
  pid: number;
  dataDir: string;
  /** Ends the process (SIGTERM, then SIGKILL after 5 s) and removes the data dir. Safe twice. */
  stop(): Promise<void>;
}

/** A port that was free a moment ago (the kernel's choice for port 0). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => server.once("error", reject).listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export async function startEtcd(label = "etcd"): Promise<TestEtcd> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), `${RUN_PREFIX}${label}-`));
  const clientPort = await freePort();
  const peerPort = await freePort();
  const endpoint = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const logPath = path.join(dataDir, "etcd.log");
  const logFd = openSync(logPath, "a");
  const child: ChildProcess = spawn(
    ETCD_BINARY,
    [
      "--name", "weft-test",
      "--data-dir", path.join(dataDir, "data"),
      "--listen-client-urls", endpoint,
      "--advertise-client-urls", endpoint,
      "--listen-peer-urls", peer,
      "--initial-advertise-peer-urls", peer,
      "--initial-cluster", `weft-test=${peer}`,
      "--initial-cluster-state", "new",
      "--heartbeat-interval", "50",
      "--election-timeout", "500",
    ],
    { stdio: ["ignore", logFd, logFd] },
  );
  closeSync(logFd);
  const pid = child.pid!;
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once("exit", () => ((exited = true), resolve())));
  const killOnExit = (): void => {
    if (!exited) process.kill(pid, "SIGKILL");
  };
  process.once("exit", killOnExit);

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    process.off("exit", killOnExit);
    if (!exited) {
      process.kill(pid, "SIGTERM");
      const killed = await Promise.race([exit.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 5_000))]);
      if (!killed && !exited) {
        process.kill(pid, "SIGKILL");
        await exit;
      }
    }
    rmSync(dataDir, { recursive: true, force: true });
  };

  try {
    await waitHealthy(endpoint, () => exited, 20_000);
  } catch (error) {
    const log = readFileSync(logPath, "utf8").split("\n").slice(-20).join("\n");
    await stop();
    throw new Error(`${(error as Error).message}\n--- etcd log ---\n${log}`);
  }
  return { endpoint, pid, dataDir, stop };
}

async function waitHealthy(endpoint: string, exited: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (exited()) throw new Error("etcd exited during start-up");
    try {
      const response = await fetch(`${endpoint}/health`);
      const body = (await response.json()) as { health?: string };
      if (body.health === "true") return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`etcd at ${endpoint} not healthy after ${timeoutMs} ms`);
}

export interface TcpProxy {
  /** "http://127.0.0.1:<port>" */
  endpoint: string;
  /** Destroys every connection and refuses new ones until resume(). */
  pause(): Promise<void>;
  resume(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Pipes an accepted connection to `target` both ways; either side closing or failing ends both. `sockets` holds
 * the live ones, so that the proxy can drop them all.
 */
export function relay(client: net.Socket, target: { host: string; port: number }, sockets: Set<net.Socket>): void {
  const upstream = net.connect(target.port, target.host);
  sockets.add(client).add(upstream);
  const drop = (): void => {
    client.destroy();
    upstream.destroy();
    sockets.delete(client);
    sockets.delete(upstream);
  };
  client.on("error", drop).on("close", drop);
  upstream.on("error", drop).on("close", drop);
  client.pipe(upstream);
  upstream.pipe(client);
}

/** A loopback TCP proxy to `target` ("http://host:port"), listening on a free port that stays the same across pause/resume. */
export async function startTcpProxy(target: string): Promise<TcpProxy> {
  const { hostname, port: targetPort } = new URL(target);
  const port = await freePort();
  const sockets = new Set<net.Socket>();
  let server: net.Server | undefined;

  const listen = async (): Promise<void> => {
    const s = net.createServer((client) => relay(client, { host: hostname, port: Number(targetPort) }, sockets));
    await new Promise<void>((resolve, reject) => s.once("error", reject).listen(port, "127.0.0.1", resolve));
    server = s;
  };
  const stopListening = async (): Promise<void> => {
    const s = server;
    server = undefined;
    for (const socket of sockets) socket.destroy();
    sockets.clear();
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  };

  await listen();
  return {
    endpoint: `http://127.0.0.1:${port}`,
    pause: stopListening,
    resume: async () => {
      if (!server) await listen();
    },
    close: stopListening,
  };
}
