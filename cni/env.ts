// The CNI_* environment, validated once. Which variables a command needs follows the spec: ADD and CHECK need
// the container, netns and ifname; DEL may come without a netns (the pod's namespace can be gone already);
// GC, STATUS and VERSION need none of them.
import { ipFamily } from "../native/addresses";
import { isValidInterfaceName } from "./config";
import { CniError, ErrorCode } from "./spec/errors";

export type CniCommand = "ADD" | "DEL" | "CHECK" | "GC" | "STATUS" | "VERSION";
const COMMANDS: readonly CniCommand[] = ["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION"];

export interface CniEnv {
  command: CniCommand;
  containerId: string;
  netns: string;
  ifname: string;
  /** CNI_ARGS as key/value pairs (`IgnoreUnknown=1;K8S_POD_NAME=…`). */
  args: Map<string, string>;
  path: string[];
}

// The spec allows letters, digits, "_", "." and "-"; ".." is refused too, as the ID ends up in names and files.
const CONTAINER_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

function invalid(message: string): CniError {
  return new CniError(ErrorCode.InvalidEnvironmentVariables, message);
}

function validateInterfaceName(name: string, what: string): void {
  if (!isValidInterfaceName(name)) {
    throw invalid(`${what} "${name}" is not a valid interface name: 1-15 bytes, no '/', ':', whitespace or control characters`);
  }
}

function parseArgs(raw: string | undefined): Map<string, string> {
  const args = new Map<string, string>();
  for (const pair of (raw ?? "").split(";")) {
    if (!pair) continue;
    const eq = pair.indexOf("=");
    if (eq <= 0) throw invalid(`CNI_ARGS: "${pair}" is not KEY=VALUE`);
    args.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  return args;
}

export function parseCniEnv(env: NodeJS.ProcessEnv): CniEnv {
  const command = env.CNI_COMMAND ?? "";
  if (!command) throw invalid("CNI_COMMAND is required");
  if (!COMMANDS.includes(command as CniCommand)) {
    throw invalid(`CNI_COMMAND "${command}" is not one of ${COMMANDS.join(", ")}`);
  }
  const parsed: CniEnv = {
    command: command as CniCommand,
    containerId: env.CNI_CONTAINERID ?? "",
    netns: env.CNI_NETNS ?? "",
    ifname: env.CNI_IFNAME ?? "",
    args: new Map(),
    path: (env.CNI_PATH ?? "").split(":").filter(Boolean),
  };
  if (parsed.command === "VERSION" || parsed.command === "GC" || parsed.command === "STATUS") return parsed;

  if (!parsed.containerId) throw invalid("CNI_CONTAINERID is required");
  if (!CONTAINER_ID.test(parsed.containerId) || parsed.containerId.includes("..")) {
    throw invalid(`CNI_CONTAINERID "${parsed.containerId}" may hold only letters, digits, '_', '.' and '-' (and no "..")`);
  }
  if (!parsed.ifname) throw invalid("CNI_IFNAME is required");
  validateInterfaceName(parsed.ifname, "CNI_IFNAME");
  if (!parsed.netns && parsed.command !== "DEL") throw invalid("CNI_NETNS is required");
  if (parsed.netns && !parsed.netns.startsWith("/")) throw invalid(`CNI_NETNS "${parsed.netns}" is not an absolute path`);
  parsed.args = parseArgs(env.CNI_ARGS);
  return parsed;
}

/** The addresses of CNI_ARGS `IP=` (comma-separated, as host-local reads it); error 4 naming any that is not one. */
export function requestedIpsFromArgs(env: CniEnv): string[] {
  const ips = (env.args.get("IP") ?? "").split(",").map((item) => item.trim()).filter(Boolean);
  for (const ip of ips) {
    if (!ipFamily(ip)) throw invalid(`CNI_ARGS: IP "${ip}" is not an IP address`);
  }
  return ips;
}
