// Errors of the IPAM layer. Each carries a stable `code` that the CNI commands map to the spec's error codes
// (INVALID_RANGE and INVALID_CONFIG → 7 bad config, RANGE_EXHAUSTED → STATUS 51 / ADD failure, IO → 5), and wraps its `cause`.

export type IpamErrorCode =
  /** `ipam.ranges` (or the old single-range fields) is malformed: missing, unparsable, inconsistent, overlapping. */
  | "INVALID_RANGE"
  /** Another part of the IPAM config is malformed: routes, dataDir, the network name. */
  | "INVALID_CONFIG"
  /** Every allocatable address of a range set is reserved. */
  | "RANGE_EXHAUSTED"
  /** A requested address cannot be given: outside every range, the gateway, or reserved by someone else. */
  | "ADDRESS_UNAVAILABLE"
  /** The data directory could not be read or written. */
  | "IO";

export class IpamError extends Error {
  readonly code: IpamErrorCode;
  constructor(code: IpamErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "IpamError";
    this.code = code;
  }
}

export function isIpamError(error: unknown, ...codes: IpamErrorCode[]): error is IpamError {
  return error instanceof IpamError && (codes.length === 0 || codes.includes(error.code));
}
