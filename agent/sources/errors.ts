// Errors of the node sources, each with a stable code. Failures talking to the source while watching are not
// thrown: they are reported in the snapshot's `error` and retried. These are what `claimLocal` and the
// constructors throw.

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

export class SourceError extends Error {
  readonly code: SourceErrorCode;
  constructor(code: SourceErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "SourceError";
    this.code = code;
  }
}

/** A one-line description of any thrown value, for logs and the snapshot's `error`. */
export function describeError(error: unknown): string {
  if (error instanceof Error) {
    const first = error.message.split("\n", 1)[0] ?? "";
    return first.length > 300 ? `${first.slice(0, 297)}...` : first || error.name;
  }
  return String(error);
}
