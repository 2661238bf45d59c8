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
