// A synchronous NETLINK_ROUTE socket. Every call runs on the calling thread and blocks (at most the receive
// timeout) until the kernel has answered, so it composes with withNetns: a socket belongs to the namespace it
// was opened in, for its whole life, wherever it is used afterwards.
//
// One request buffer and one receive buffer per socket are reused for every message; decoders read replies in
// place and copy out only what they keep.
import { KernelError } from "../errors";
import {
  AF_NETLINK, close as closeFd, recv, send, setsockoptBuffer, setsockoptInt, SO_RCVBUF, SO_RCVTIMEO, SOCK_CLOEXEC,
  SOCK_RAW, socket, SOL_NETLINK, SOL_SOCKET, NETLINK_EXT_ACK, NETLINK_GET_STRICT_CHK,
} from "../libc";
import { withNetns } from "../netns";
import { align4, forEachAttribute, readString } from "./attributes";
import {
  messageTypeName, NETLINK_CAP_ACK, NETLINK_ROUTE, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP,
  NLM_F_DUMP_INTR, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN, NLMSGERR_ATTR_MSG,
} from "./constants";
import { NetlinkError } from "./errors";
import { MessageWriter, NLMSGHDR } from "./messages";

const MSG_TRUNC = 0x20;
const MSG_DONTWAIT = 0x40;
const EINTR = 4;
const EAGAIN = 11;
const EBADF = 9;
const EMSGSIZE = 90;
const ETIMEDOUT = 110;
/** Big enough for any dump part the kernel builds (it caps them at 32 KiB unless one message is larger). */
const RECEIVE_BUFFER_BYTES = 64 * 1024;
const SOCKET_RECEIVE_BUFFER_BYTES = 1024 * 1024;
const DEFAULT_RECEIVE_TIMEOUT_MS = 5_000;
/** A dump that the kernel flags as inconsistent (NLM_F_DUMP_INTR) is repeated up to this many times in all. */
const MAX_DUMP_ATTEMPTS = 3;
/**
 * Requests per datagram in a batch. Every failed request's error is queued on the socket before the first is
 * read: 128 of them (~1 KB each, capped acks) fit the receive buffer with room to spare.
 */
const BATCH_REQUESTS = 128;

/**
 * Decodes one reply. `offset` is where the payload starts (after the nlmsghdr), `end` where the message ends,
 * `type` its nlmsg_type. The buffer is reused for the next datagram: copy out what you keep. Returning
 * undefined skips the message.
 */
export type MessageDecoder<T> = (buffer: Buffer, offset: number, end: number, type: number) => T | undefined;

export interface NetlinkSocketOptions {
  /** How long one receive may block before the request fails with ETIMEDOUT. Default 5,000 ms. */
  receiveTimeoutMs?: number;
  /** Initial size of the receive buffer; it grows when a datagram does not fit. Default 64 KiB. */
  receiveBufferBytes?: number;
}

/** The requests queued by batch(), as one buffer of complete messages. */
interface Batch {
  buffer: Buffer;
  length: number;
  /**
   * The sequence number of the first queued request; the others follow it one by one (nothing else takes a
   * number between two queued requests: get() and dump() send the queue first).
   */
  firstSeq: number;
  /** The operation of each queued request, in order. */
  operations: string[];
  /** Where the last queued message starts (its flags get NLM_F_ACK when it is sent). */
  lastAt: number;
  /** Each request's outcome so far, over the whole batch (the queue is sent in parts). */
  outcomes: (NetlinkError | undefined)[];
}

const DumpOutcome = { Complete: 0, Interrupted: 1, Truncated: 2 } as const;
type DumpOutcome = (typeof DumpOutcome)[keyof typeof DumpOutcome];

export class NetlinkSocket {
  #fd: number;
  #seq: number;
  #receiveBuffer: Buffer;
  readonly #writer = new MessageWriter(512);
  #batch: Batch | undefined;

  private constructor(fd: number, receiveBufferBytes: number) {
    this.#fd = fd;
    this.#receiveBuffer = Buffer.allocUnsafe(Math.max(receiveBufferBytes, 256));
    this.#seq = (Date.now() & 0x7fffffff) >>> 0;
  }

  /** Opens an rtnetlink socket in the current thread's network namespace. */
  static open(options: NetlinkSocketOptions = {}): NetlinkSocket {
    const fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    try {
      const timeoutMs = options.receiveTimeoutMs ?? DEFAULT_RECEIVE_TIMEOUT_MS;
      const timeval = Buffer.alloc(16);
      timeval.writeBigInt64LE(BigInt(Math.floor(timeoutMs / 1000)), 0);
      timeval.writeBigInt64LE(BigInt((timeoutMs % 1000) * 1000), 8);
      setsockoptBuffer(fd, SOL_SOCKET, SO_RCVTIMEO, timeval);
      // Best effort: each of these only improves errors, filtering or ack size, and old kernels lack some.
      trySetsockopt(fd, SOL_SOCKET, SO_RCVBUF, SOCKET_RECEIVE_BUFFER_BYTES);
      trySetsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, 1);
      trySetsockopt(fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1);
      trySetsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, 1);
    } catch (error) {
      closeFd(fd);
      throw error;
    }
    return new NetlinkSocket(fd, options.receiveBufferBytes ?? RECEIVE_BUFFER_BYTES);
  }

  /** Opens a socket inside the namespace at `netns` (path or fd); it stays there however it is used later. */
  static openIn(netns: string | number, options: NetlinkSocketOptions = {}): NetlinkSocket {
    return withNetns(netns, () => NetlinkSocket.open(options));
  }

  get closed(): boolean {
    return this.#fd < 0;
  }

  /**
   * Starts a new request in the socket's reusable writer (which any previous message built with it is lost to):
   * add one family header and the attributes, then pass it to `request`, `get` or `dump`.
   */
  message(type: number, flags = 0): MessageWriter {
    return this.#writer.start(type, flags);
  }

  /**
   * Sends `message` with NLM_F_REQUEST|NLM_F_ACK and returns when the kernel acknowledges it; throws NetlinkError.
   * Inside batch(), queues it instead: its outcome is in what batch() returns.
   */
  request(message: MessageWriter, operation = messageTypeName(message.type)): void {
    if (this.#batch) this.#queue(this.#batch, message, operation);
    else this.#exchange(message, operation, undefined);
  }

  /**
   * Runs `fn`, queuing the requests it makes (through request(), so any of the operations in this module) and
   * sending them many to a datagram, with an acknowledgement asked only of each datagram's last. The kernel
   * handles the messages of a datagram one after the other, exactly as if they came one by one, and answers a
   * failed one with its error whether asked or not: thousands of requests cost a few system calls instead of two
   * each. get() and dump() inside `fn` send what is queued first. Returns each request's error (undefined: done),
   * in the order made; `queued` tells a caller which of them are its own.
   */
  batch(fn: () => void): (NetlinkError | undefined)[] {
    if (this.#batch) throw new Error("NetlinkSocket.batch: already batching");
    const batch: Batch = { buffer: Buffer.allocUnsafe(16 * 1024), length: 0, firstSeq: 0, operations: [], lastAt: 0, outcomes: [] };
    this.#batch = batch;
    try {
      fn();
      this.#flush(batch);
    } finally {
      this.#batch = undefined;
    }
    return batch.outcomes;
  }

  /** How many requests the current batch() has queued so far (0 outside one). */
  get queued(): number {
    return this.#batch ? this.#batch.outcomes.length + this.#batch.operations.length : 0;
  }

  /** Sends a non-dump request expecting one reply (e.g. RTM_GETLINK by name) and returns it decoded. */
  get<T>(message: MessageWriter, decode: MessageDecoder<T>, operation = messageTypeName(message.type)): T | undefined {
    return this.#exchange(message, operation, decode);
  }

  /**
   * Sends `message` with NLM_F_DUMP and returns every decoded reply of all parts, up to NLMSG_DONE. A dump the
   * kernel flags as interrupted by concurrent changes is repeated (then fails with EINTR).
   */
  dump<T>(message: MessageWriter, decode: MessageDecoder<T>, operation = messageTypeName(message.type)): T[] {
    for (let attempt = 1; ; attempt++) {
      const results: T[] = [];
      const outcome = this.#dumpOnce(message, decode, results, operation);
      if (outcome === DumpOutcome.Complete) return results;
      if (attempt === MAX_DUMP_ATTEMPTS) {
        throw outcome === DumpOutcome.Interrupted
          ? new NetlinkError(operation, EINTR, `dump interrupted by concurrent changes ${attempt} times`)
          : new NetlinkError(operation, EMSGSIZE, "dump message larger than the receive buffer");
      }
    }
  }

  /** Closes the socket. Safe to call twice. */
  close(): void {
    if (this.#fd < 0) return;
    closeFd(this.#fd);
    this.#fd = -1;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #nextSeq(): number {
    this.#seq = (this.#seq + 1) >>> 0;
    return this.#seq;
  }

  #queue(batch: Batch, message: MessageWriter, operation: string): void {
    const seq = this.#nextSeq();
    const data = message.seal(NLM_F_REQUEST, seq);
    if (batch.operations.length === 0) batch.firstSeq = seq;
    if (batch.length + data.length > batch.buffer.length) {
      const grown = Buffer.allocUnsafe(Math.max(batch.buffer.length * 2, batch.length + data.length));
      batch.buffer.copy(grown, 0, 0, batch.length);
      batch.buffer = grown;
    }
    batch.lastAt = batch.length;
    data.copy(batch.buffer, batch.length);
    batch.length += align4(data.length);
    batch.operations.push(operation);
    if (batch.operations.length >= BATCH_REQUESTS) this.#flush(batch);
  }

  /** Sends the queued requests as one datagram and collects their outcomes. */
  #flush(batch: Batch): void {
    const { buffer, length, firstSeq, operations, lastAt } = batch;
    const count = operations.length;
    if (count === 0) return;
    batch.length = 0;
    batch.operations = [];
    const base = batch.outcomes.length;
    for (let i = 0; i < count; i++) batch.outcomes.push(undefined);
    buffer.writeUInt16LE(buffer.readUInt16LE(lastAt + NLMSGHDR.flags) | NLM_F_ACK, lastAt + NLMSGHDR.flags);
    const operation = operations[count - 1]!;
    try {
      this.#send(buffer.subarray(0, length), operation);
      // The kernel has handled every message by now (rtnetlink runs them within the send): read the errors up to
      // the last one's acknowledgement (or error).
      this.#receiveUntil(operation, (at, size) => {
        const index = (this.#receiveBuffer.readUInt32LE(at + NLMSGHDR.seq) - firstSeq) >>> 0;
        if (index >= count || this.#receiveBuffer.readUInt16LE(at + NLMSGHDR.type) !== NLMSG_ERROR) return false;
        batch.outcomes[base + index] = this.#errorOf(at, size, operations[index]!);
        return index === count - 1;
      });
    } catch (error) {
      if (!(error instanceof NetlinkError)) throw error;
      // Unknown which of them the kernel applied: report every one not known to have failed as failed with this.
      for (let i = base; i < base + count; i++) batch.outcomes[i] ??= error;
    }
  }

  #exchange<T>(message: MessageWriter, operation: string, decode: MessageDecoder<T> | undefined): T | undefined {
    if (this.#batch) this.#flush(this.#batch);
    const seq = this.#nextSeq();
    this.#send(message.seal(NLM_F_REQUEST | NLM_F_ACK, seq), operation);
    let reply: T | undefined;
    this.#receiveUntil(operation, (at, length) => {
      const b = this.#receiveBuffer;
      if (b.readUInt32LE(at + NLMSGHDR.seq) !== seq) return false;
      const type = b.readUInt16LE(at + NLMSGHDR.type);
      if (type === NLMSG_ERROR) {
        const error = this.#errorOf(at, length, operation);
        if (error) throw error;
        return true;
      }
      if (decode && reply === undefined && type >= 16) reply = decode(b, at + NLMSG_HDRLEN, at + length, type);
      return false;
    });
    return reply;
  }

  /**
   * Receives datagrams and hands each of their messages (its offset in the receive buffer and its length) to
   * `visit`, until `visit` says it was the last one wanted.
   */
  #receiveUntil(operation: string, visit: (at: number, length: number) => boolean): void {
    for (;;) {
      const received = this.#receive(operation, 0);
      if (received > this.#receiveBuffer.length) {
        this.#growReceiveBuffer(received);
        throw new NetlinkError(operation, EMSGSIZE, "reply larger than the receive buffer");
      }
      const b = this.#receiveBuffer;
      let at = 0;
      while (at + NLMSG_HDRLEN <= received) {
        const length = b.readUInt32LE(at + NLMSGHDR.len);
        if (length < NLMSG_HDRLEN || at + length > received) break;
        if (visit(at, length)) return;
        at += align4(length);
      }
    }
  }

  #dumpOnce<T>(message: MessageWriter, decode: MessageDecoder<T>, results: T[], operation: string): DumpOutcome {
    if (this.#batch) this.#flush(this.#batch);
    const seq = this.#nextSeq();
    this.#send(message.seal(NLM_F_REQUEST | NLM_F_DUMP, seq), operation);
    let interrupted = false;
    let truncated = false;
    let decodeError: unknown;
    for (;;) {
      // After a truncated part, drain without blocking: the part lost may have held NLMSG_DONE.
      const received = this.#receive(operation, truncated ? MSG_DONTWAIT : 0);
      if (received < 0) return DumpOutcome.Truncated;
      if (received > this.#receiveBuffer.length) {
        this.#growReceiveBuffer(received);
        truncated = true;
        continue;
      }
      const b = this.#receiveBuffer;
      let at = 0;
      while (at + NLMSG_HDRLEN <= received) {
        const length = b.readUInt32LE(at + NLMSGHDR.len);
        if (length < NLMSG_HDRLEN || at + length > received) break;
        if (b.readUInt32LE(at + NLMSGHDR.seq) === seq) {
          const type = b.readUInt16LE(at + NLMSGHDR.type);
          if (b.readUInt16LE(at + NLMSGHDR.flags) & NLM_F_DUMP_INTR) interrupted = true;
          if (type === NLMSG_DONE || type === NLMSG_ERROR) {
            const error = length >= NLMSG_HDRLEN + 4 ? this.#errorOf(at, length, operation) : undefined;
            if (error) throw error;
            if (decodeError !== undefined) throw decodeError;
            if (truncated) return DumpOutcome.Truncated;
            return interrupted ? DumpOutcome.Interrupted : DumpOutcome.Complete;
          }
          if (!truncated && decodeError === undefined && type >= 16) {
            // A decoder that throws must not leave the dump half-read (the socket would answer EBUSY to the
            // next one): keep reading to NLMSG_DONE, then rethrow.
            try {
              const value = decode(b, at + NLMSG_HDRLEN, at + length, type);
              if (value !== undefined) results.push(value);
            } catch (error) {
              decodeError = error;
            }
          }
        }
        at += align4(length);
      }
    }
  }

  /** The NetlinkError in an NLMSG_ERROR (or NLMSG_DONE) message at `at`, or undefined for an ack. */
  #errorOf(at: number, length: number, operation: string): NetlinkError | undefined {
    const b = this.#receiveBuffer;
    const errno = -b.readInt32LE(at + NLMSG_HDRLEN);
    if (errno <= 0) return undefined;
    const flags = b.readUInt16LE(at + NLMSGHDR.flags);
    let kernelMessage: string | undefined;
    if (flags & NLM_F_ACK_TLVS) {
      let tlvs = at + NLMSG_HDRLEN + 4;
      if (b.readUInt16LE(at + NLMSGHDR.type) === NLMSG_ERROR) {
        // struct nlmsgerr embeds the request's header, and its payload too unless the reply is capped.
        tlvs += (flags & NLM_F_CAPPED) ? NLMSG_HDRLEN : align4(b.readUInt32LE(tlvs));
      }
      forEachAttribute(b, tlvs, at + length, (type, offset, size) => {
        if (type === NLMSGERR_ATTR_MSG) kernelMessage = readString(b, offset, size);
      });
    }
    return new NetlinkError(operation, errno, kernelMessage);
  }

  #send(data: Buffer, operation: string): void {
    if (this.#fd < 0) throw new NetlinkError(operation, EBADF, "socket is closed");
    for (;;) {
      try {
        send(this.#fd, data);
        return;
      } catch (error) {
        if (error instanceof KernelError && error.errno === EINTR) continue;
        throw asNetlinkError(error, operation);
      }
    }
  }

  /** The datagram's full size (larger than the buffer if it was truncated), or -1 for EAGAIN with MSG_DONTWAIT. */
  #receive(operation: string, flags: number): number {
    for (;;) {
      try {
        return recv(this.#fd, this.#receiveBuffer, flags | MSG_TRUNC);
      } catch (error) {
        if (error instanceof KernelError) {
          if (error.errno === EINTR) continue;
          if (error.errno === EAGAIN) {
            if (flags & MSG_DONTWAIT) return -1;
            throw new NetlinkError(operation, ETIMEDOUT, "no answer from the kernel", { cause: error });
          }
        }
        throw asNetlinkError(error, operation);
      }
    }
  }

  #growReceiveBuffer(size: number): void {
    this.#receiveBuffer = Buffer.allocUnsafe(align4(size) + 4096);
  }
}

function trySetsockopt(fd: number, level: number, name: number, value: number): void {
  try {
    setsockoptInt(fd, level, name, value);
  } catch (error) {
    if (!(error instanceof KernelError)) throw error;
  }
}

function asNetlinkError(error: unknown, operation: string): unknown {
  return error instanceof KernelError ? new NetlinkError(operation, error.errno, undefined, { cause: error }) : error;
}
