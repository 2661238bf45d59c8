// Errors of the agent, in one place (STYLE.md: one errors module per layer). Each class has a stable `code`
// callers and operators can match on, and wraps its `cause`. Failures of the node source while watching are not
// thrown: they are reported in the snapshot's `error`; SourceError is what claimLocal and the constructors throw.
import { describeOp, type Op } from "./reconcile/state";

export type AgentErrorCode =
  /** A flag or environment variable is unusable (agent/flags.ts). */
  | "ERR_FLAGS"
  /** The command line as a whole makes no sense (a missing required flag, …): exit status 2. */
  | "ERR_USAGE"
  /** The network config (net-conf.json) is invalid: `field` names what. */
  | "ERR_NETWORK_CONFIG"
  /** --public-ip / --iface name no usable address. */
  | "ERR_PUBLIC_IP"
  /** No interface holds the public IP. */
  | "ERR_UNDERLAY"
  /** A kernel operation of a reconcile run failed: `op` says which. */
  | "ERR_RECONCILE_APPLY"
  /** nft failed or its table differs. */
  | "ERR_MASQ"
  /** The file source's node file is unusable. */
  | "ERR_NODE_FILE"
  /** --debug-addr is not host:port. */
  | "ERR_DEBUG_ADDR"
  /** `weft-agent status` cannot read the agent's state. */
  | "ERR_STATUS"
  /** `weft-agent install-cni` cannot install the plugin. */
  | "ERR_INSTALL_CNI"
  /** The datapath mode cannot be had: --datapath ebpf on a node that lacks something, or its load failed. */
  | "ERR_DATAPATH"
  /** A pin of weft's name under --bpf-dir holds another program's object: refused, never replaced. */
  | "ERR_BPF_PIN_CONFLICT"
  | SourceErrorCode;

export type SourceErrorCode =
  /** The options or the announcement are unusable (bad name, address, MAC, file path). */
  | "ERR_SOURCE_OPTIONS"
  /** close() was called. */
  | "ERR_SOURCE_CLOSED"
  /** This node's own record is unusable: its pod CIDR is outside the network, garbage, … */
  | "ERR_LOCAL_NODE"
  /** etcd's network config key disagrees with this agent's network config. */
  | "ERR_NETWORK_CONFIG_MISMATCH"
  /** etcd: no free subnet left in the network. */
  | "ERR_SUBNETS_EXHAUSTED"
  /** etcd: too many lost races for a subnet. */
  | "ERR_SUBNET_RACE";

export class AgentError<C extends AgentErrorCode = AgentErrorCode> extends Error {
  readonly code: C;
  constructor(code: C, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

export class FlagError extends AgentError<"ERR_FLAGS"> {
  constructor(message: string) {
    super("ERR_FLAGS", message);
  }
}

export class UsageError extends AgentError<"ERR_USAGE"> {
  constructor(message: string, options?: { cause?: unknown }) {
    super("ERR_USAGE", message, options);
  }
}

export class NetworkConfigError extends AgentError<"ERR_NETWORK_CONFIG"> {
  /** The offending field, as flannel spells it ("SubnetLen", "Backend.VNI"); "" for the document itself. */
  readonly field: string;
  constructor(field: string, message: string, options?: { cause?: unknown }) {
    super("ERR_NETWORK_CONFIG", message, options);
    this.field = field;
  }
}

export class PublicIpError extends AgentError<"ERR_PUBLIC_IP"> {
  constructor(message: string) {
    super("ERR_PUBLIC_IP", message);
  }
}

export class UnderlayError extends AgentError<"ERR_UNDERLAY"> {
  constructor(message: string) {
    super("ERR_UNDERLAY", message);
  }
}

export class ApplyError extends AgentError<"ERR_RECONCILE_APPLY"> {
  readonly op: Op;
  constructor(op: Op, cause: unknown) {
    super("ERR_RECONCILE_APPLY", `Cannot ${describeOp(op)}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.op = op;
  }
}

export class MasqError extends AgentError<"ERR_MASQ"> {
  constructor(message: string, options?: { cause?: unknown }) {
    super("ERR_MASQ", message, options);
  }
}

export class NodeFileError extends AgentError<"ERR_NODE_FILE"> {
  constructor(message: string, options?: { cause?: unknown }) {
    super("ERR_NODE_FILE", message, options);
  }
}

export class DebugAddressError extends AgentError<"ERR_DEBUG_ADDR"> {
  constructor(message: string) {
    super("ERR_DEBUG_ADDR", message);
  }
}

export class StatusError extends AgentError<"ERR_STATUS"> {
  constructor(message: string, options?: { cause?: unknown }) {
    super("ERR_STATUS", message, options);
  }
}

export class InstallError extends AgentError<"ERR_INSTALL_CNI"> {
  constructor(message: string, options?: { cause?: unknown }) {
    super("ERR_INSTALL_CNI", message, options);
  }
}

export class DatapathError extends AgentError<"ERR_DATAPATH"> {
  constructor(message: string, options?: { cause?: unknown }) {
    super("ERR_DATAPATH", message, options);
  }
}

export class BpfPinConflictError extends AgentError<"ERR_BPF_PIN_CONFLICT"> {
  constructor(message: string) {
    super("ERR_BPF_PIN_CONFLICT", message);
  }
}

export class SourceError extends AgentError<SourceErrorCode> {}

/** A one-line description of any thrown value, for logs and the snapshot's `error`. */
export function describeError(error: unknown): string {
  if (error instanceof Error) {
    const first = error.message.split("\n", 1)[0] ?? "";
    return first.length > 300 ? `${first.slice(0, 297)}...` : first || error.name;
  }
  return String(error);
}
