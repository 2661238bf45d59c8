// Runs a CNI plugin binary the way a runtime does: the CNI_* variables in the environment, the network config as
// JSON on stdin, the result (or the error JSON) on stdout. Only the variables that are given are set, so that tests
// can leave one out (the "bad environment" cases); everything else in the environment is PATH only, unless `env`
// adds more.
import { execFile, spawnSync } from "node:child_process";

export interface PluginRun {
  /** CNI_COMMAND: ADD, DEL, CHECK, GC, STATUS, VERSION. */
  command?: string;
  /** CNI_CONTAINERID */
  containerId?: string;
  /** CNI_NETNS: a path, e.g. `/run/netns/wft-…`. */
  netns?: string;
  /** CNI_IFNAME */
  ifname?: string;
  /** CNI_ARGS, e.g. `IgnoreUnknown=1;K8S_POD_NAME=a` */
  args?: string;
  /** CNI_PATH: where the plugin finds its delegated IPAM plugins. */
  path?: string;
  /** The network config: an object is serialised as JSON, a string is sent as is. */
  stdin: object | string;
  /** Default 30 s. The plugin is killed (SIGKILL) after it, and `code` is null. */
  timeoutMs?: number;
  /** Extra variables (added to PATH and the CNI_* above). */
  env?: Record<string, string>;
  /**
   * Runs the plugin inside this netns path (via nsenter), as if it were the node's own namespace: kernel tests
   * never let the plugin touch the machine's root namespace.
   */
  hostNetns?: string;
}

function commandLine(binaryPath: string, run: PluginRun): [string, string[]] {
  return run.hostNetns ? ["nsenter", [`--net=${run.hostNetns}`, binaryPath]] : [binaryPath, []];
}

export interface PluginResult {
  /** Exit code; null when killed (timeout). */
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON, or undefined when it is empty or not JSON. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read result fields directly
  json: any;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export function pluginEnv(run: Omit<PluginRun, "stdin">): Record<string, string> {
  const env: Record<string, string> = { PATH: DEFAULT_PATH };
  if (run.command !== undefined) env.CNI_COMMAND = run.command;
  if (run.containerId !== undefined) env.CNI_CONTAINERID = run.containerId;
  if (run.netns !== undefined) env.CNI_NETNS = run.netns;
  if (run.ifname !== undefined) env.CNI_IFNAME = run.ifname;
  if (run.args !== undefined) env.CNI_ARGS = run.args;
  if (run.path !== undefined) env.CNI_PATH = run.path;
  return { ...env, ...run.env };
}

function stdinText(stdin: object | string): string {
  return typeof stdin === "string" ? stdin : JSON.stringify(stdin);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function parseJson(stdout: string): any {
  if (stdout.trim() === "") return undefined;
  try {
    return JSON.parse(stdout);
  } catch {
    return undefined;
  }
}

/** Runs the plugin and waits for it (blocks the event loop). */
export function runPlugin(binaryPath: string, run: PluginRun): PluginResult {
  const [command, args] = commandLine(binaryPath, run);
  const child = spawnSync(command, args, {
    env: pluginEnv(run),
    input: stdinText(run.stdin),
    encoding: "utf8",
    timeout: run.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    killSignal: "SIGKILL",
    maxBuffer: 16 * 1024 * 1024,
  });
  if (child.error && (child.error as NodeJS.ErrnoException).code !== "ETIMEDOUT") throw child.error;
  return { code: child.status, stdout: child.stdout ?? "", stderr: child.stderr ?? "", json: parseJson(child.stdout ?? "") };
}

/** Runs the plugin without blocking, e.g. 64 concurrent ADDs with `Promise.all`. Never rejects for an exit code. */
export function runPluginAsync(binaryPath: string, run: PluginRun): Promise<PluginResult> {
  return new Promise((resolve, reject) => {
    const [command, args] = commandLine(binaryPath, run);
    const child = execFile(
      command,
      args,
      {
        env: pluginEnv(run),
        encoding: "utf8",
        timeout: run.timeoutMs ?? DEFAULT_TIMEOUT_MS,
        killSignal: "SIGKILL",
        maxBuffer: 16 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        // execFile reports a non-zero exit as an error with a numeric `code`, a signal (timeout) with code null,
        // and a failure to start (ENOENT, EACCES) with a string code: only the last is an error here.
        if (error !== null && typeof error.code === "string") {
          reject(error);
          return;
        }
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : null;
        resolve({ code, stdout, stderr, json: parseJson(stdout) });
      },
    );
    child.stdin?.on("error", () => {}); // the plugin may exit before reading stdin (EPIPE)
    child.stdin?.end(stdinText(run.stdin));
  });
}
