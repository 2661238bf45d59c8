// Errors of the CNI layer. A CniError carries one of the spec's well-known codes (or one of weft's own, 100+)
// from the place that knows what went wrong up to cni/main.ts, which alone turns it into the error JSON that
// libcni reads from stdout. Below that point errors only gain context (via `cause`).
import { KernelError } from "../../native/errors";

/** The spec's well-known error codes (0-99 reserved by the spec), weft's own (100+), and the catch-all. */
export const ErrorCode = {
  /** The config's cniVersion is not one weft supports, or the command does not exist in that version. */
  IncompatibleVersion: 1,
  /** A field weft does not support; the message must name the key and the value. */
  UnsupportedField: 2,
  /** The container is unknown or no longer exists. */
  UnknownContainer: 3,
  /** A CNI_* environment variable is missing or invalid; the message names it. */
  InvalidEnvironmentVariables: 4,
  /** Reading stdin or a file failed. */
  IoFailure: 5,
  /** The input could not be decoded (empty, not UTF-8, not JSON, not an object). */
  DecodeFailure: 6,
  /** The network config decodes but is invalid; the message names the field. */
  InvalidNetworkConfig: 7,
  /** A transient condition, e.g. the weft-agent has not written the subnet file yet: retry later. */
  TryAgainLater: 11,
  /** STATUS: the plugin cannot service ADD. */
  PluginNotAvailable: 50,
  /** STATUS: the plugin cannot service ADD and existing containers may have limited connectivity. */
  PluginNotAvailableLimitedConnectivity: 51,

  // weft's own codes. Stable: runtimes and operators may match on them.
  /** IPAM: every address of the configured ranges is allocated. */
  IpamExhausted: 100,
  /** ADD: an interface named CNI_IFNAME already exists in the container's namespace. */
  InterfaceExists: 101,
  /** A kernel request (rtnetlink, sysctl, setns) failed; the details carry the errno. */
  KernelFailure: 102,
  /** CHECK: the attachment differs from prevResult (interface, MAC, address, route, host side or reservation). */
  CheckFailed: 103,
  /**
   * IPAM: an address asked for (CNI_ARGS IP=, args.cni.ips, runtimeConfig.ips) cannot be given: outside every
   * range, the gateway, two for one range set, or held by another container.
   */
  AddressUnavailable: 104,

  /** Anything that is not a CniError: a bug or an unexpected condition. */
  Internal: 999,
} as const;

export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface CniErrorOptions {
  /** Longer, operator-facing text: what was tried, which path, which value. */
  details?: string;
  cause?: unknown;
}

/** An error that becomes the CNI error JSON. `msg` is one line; `details` is optional and may be longer. */
export class CniError extends Error {
  readonly code: number;
  readonly msg: string;
  readonly details: string | undefined;

  constructor(code: number, msg: string, options: CniErrorOptions = {}) {
    const line = oneLine(msg);
    super(line, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "CniError";
    this.code = code;
    this.msg = line;
    this.details = options.details;
  }
}

export function isCniError(error: unknown, code?: number): error is CniError {
  return error instanceof CniError && (code === undefined || error.code === code);
}

/** The JSON a plugin prints on stdout when it fails (spec: "Errors"). */
export interface ErrorJson {
  cniVersion: string;
  code: number;
  msg: string;
  details?: string;
}

const MAX_MSG_LENGTH = 1024;
/** The latest version weft speaks (version.ts imports this file, so it is not imported from there). */
const FALLBACK_VERSION = "1.1.0";
const MAX_DETAILS_LENGTH = 4096;

/**
 * Turns any thrown value into the spec's error JSON. A CniError keeps its code, a KernelError that no step
 * wrapped is 102, anything else is 999 with its message. The details carry the CniError's own details, then the
 * chain of causes, so that the reason a kernel call or a file read failed reaches the runtime's log. `cniVersion`
 * is the version the caller asked in; when it is unknown or not a version at all, the answer is in the latest
 * one. Called only by cni/main.ts.
 */
export function toErrorJson(error: unknown, cniVersion: string | undefined): ErrorJson {
  const code = error instanceof CniError ? error.code : error instanceof KernelError ? ErrorCode.KernelFailure : ErrorCode.Internal;
  const msg = truncate(error instanceof CniError ? error.msg : oneLine(describe(error)), MAX_MSG_LENGTH);
  const parts: string[] = [];
  if (error instanceof CniError && error.details) parts.push(error.details);
  let cause = error instanceof Error ? error.cause : undefined;
  for (let depth = 0; cause !== undefined && depth < 8; depth++) {
    const text = oneLine(describe(cause));
    // A message built from its cause ("stdin is not JSON: Unexpected token ...") need not repeat it.
    if (!msg.includes(text)) parts.push(`caused by: ${text}`);
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  const version = cniVersion !== undefined && /^\d{1,9}\.\d{1,9}\.\d{1,9}$/.test(cniVersion) ? cniVersion : FALLBACK_VERSION;
  const json: ErrorJson = { cniVersion: version, code, msg: msg || "Unknown error" };
  if (parts.length > 0) json.details = truncate(parts.join("; "), MAX_DETAILS_LENGTH);
  return json;
}

function describe(value: unknown): string {
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code;
    // Node's system errors (ENOENT, EACCES, ...) already name their code in the message; others may not.
    const prefix = typeof code === "string" && !value.message.includes(code) ? `${code}: ` : "";
    return `${prefix}${value.message || value.name}`;
  }
  if (typeof value === "string") return value;
  if (value === undefined || value === null) return `${value} was thrown`;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, " ").trim();
}

function truncate(text: string, limit: number): string {
  return text.length <= limit ? text : `${text.slice(0, limit - 1)}…`;
}
