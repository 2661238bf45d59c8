// Errors of the rtnetlink layer. A refused request is a KernelError (so `code` is the errno name, EEXIST, ENODEV…)
// whose message names the request and its object and ends with the kernel's extended-ack text when it sent one:
//   "RTM_NEWLINK veth1234abcd: EEXIST"   "RTM_NEWROUTE 10.1.0.0/16: EINVAL: Nexthop has invalid gateway"
import { KernelError } from "../errors";

export class NetlinkError extends KernelError {
  /** The request and object, e.g. "RTM_NEWLINK veth1234abcd". */
  readonly operation: string;
  /** The kernel's extended-ack message, when it sent one. */
  readonly kernelMessage: string | undefined;
  constructor(operation: string, errno: number, kernelMessage?: string, options?: { cause?: unknown }) {
    super(operation, errno, options);
    this.name = "NetlinkError";
    this.operation = operation;
    this.kernelMessage = kernelMessage || undefined;
    if (this.kernelMessage) this.message += `: ${this.kernelMessage}`;
  }
}

/** An argument that cannot be encoded (a malformed IP, CIDR or MAC); nothing was sent to the kernel. */
export class NetlinkInputError extends Error {
  readonly code = "ERR_NETLINK_INPUT";
  readonly input: string;
  constructor(message: string, input: string) {
    super(message);
    this.name = "NetlinkInputError";
    this.input = input;
  }
}
