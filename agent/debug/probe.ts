// Overlay probes: every `intervalMs`, one ICMP echo to each remote node's VTEP address, through the overlay
// (the route via weft.<VNI>), so that a reply proves ARP, FDB, route, the tunnel and the remote VTEP. Results
// per node: the last RTT, and loss over the last `window` rounds; shown in /debug/state and /metrics.
import { IcmpSocket } from "../../native/icmp";
import { withNetns } from "../../native/netns";
import { ipFamily } from "../../native/addresses";
import type { Logger } from "../log";

export interface ProbeTarget {
  node: string;
  address: string;
}

export interface ProbeResult {
  node: string;
  address: string;
  sent: number;
  received: number;
  /** Lost share of the last `window` probes, 0–1. */
  loss: number;
  /** The last reply's round trip; absent until one arrived. */
  rttMs?: number;
  lastReplyAt?: string;
}

export interface OverlayProberOptions {
  intervalMs: number;
  timeoutMs: number;
  /** Rounds the loss ratio is computed over. Default 20. */
  window?: number;
  logger: Logger;
  /** Open the sockets in this network namespace instead of the current one (tests). */
  netns?: string;
}

/** Probes to a new target that may go unanswered before it counts as loss (both ends program each other). */
const WARM_UP_PROBES = 3;

interface TargetState extends ProbeResult {
  history: boolean[];
}

export class OverlayProber {
  readonly #options: Required<Omit<OverlayProberOptions, "netns">> & Pick<OverlayProberOptions, "netns">;
  readonly #targets = new Map<string, TargetState>();
  readonly #id = process.pid & 0xffff;
  #seq = 0;
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<void> | undefined;
  #sockets: Partial<Record<4 | 6, IcmpSocket>> = {};
  #closed = false;
  #warned = false;

  constructor(options: OverlayProberOptions) {
    this.#options = { window: 20, ...options };
  }

  /** The nodes to probe from now on; results of nodes that stay are kept. */
  setTargets(targets: readonly ProbeTarget[]): void {
    const keys = new Set(targets.map((t) => `${t.node}|${t.address}`));
    for (const key of this.#targets.keys()) if (!keys.has(key)) this.#targets.delete(key);
    for (const t of targets) {
      const key = `${t.node}|${t.address}`;
      if (!this.#targets.has(key)) this.#targets.set(key, { node: t.node, address: t.address, sent: 0, received: 0, loss: 0, history: [] });
    }
  }

  start(): void {
    if (this.#closed || this.#timer || this.#options.intervalMs <= 0) return;
    const tick = (): void => {
      if (this.#closed) return;
      this.#round = this.#probeOnce().catch((error: unknown) => {
        if (!this.#warned) this.#options.logger.warn("Overlay probe failed", { error });
        this.#warned = true;
      });
      void this.#round.finally(() => {
        if (!this.#closed) this.#timer = setTimeout(tick, this.#options.intervalMs);
      });
    };
    this.#timer = setTimeout(tick, 0);
  }

  results(): ProbeResult[] {
    return [...this.#targets.values()].map(({ history: _history, ...result }) => ({ ...result }));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#round?.catch(() => undefined);
    for (const sock of Object.values(this.#sockets)) await sock?.close();
    this.#sockets = {};
  }

  /** One round: an echo to every target (each its own sequence number), then replies until all came back or the timeout passed. */
  async #probeOnce(): Promise<void> {
    const targets = [...this.#targets.values()];
    if (targets.length === 0) return;
    const sentAt = performance.now();
    const waiting = new Map<number, TargetState>();
    const sendTimes = new Map<TargetState, number>();
    const families = new Set<4 | 6>();
    for (const target of targets) {
      const family = ipFamily(target.address);
      if (family === 0) continue;
      const seq = (this.#seq = (this.#seq + 1) & 0xffff);
      try {
        this.#socket(family).sendEcho(target.address, this.#id, seq);
        families.add(family);
      } catch (error) {
        // No route (yet), or the device is down: a lost probe.
        this.#options.logger.debug("Cannot send overlay probe", { node: target.node, address: target.address, error });
      }
      target.sent++;
      sendTimes.set(target, performance.now());
      waiting.set(seq, target);
    }
    const deadline = sentAt + this.#options.timeoutMs;
    const answered = new Set<TargetState>();
    const receive = async (family: 4 | 6): Promise<void> => {
      const sock = this.#sockets[family];
      if (!sock) return;
      while (answered.size < waiting.size && performance.now() < deadline && !this.#closed) {
        const reply = await sock.receive();
        if (!reply || reply.id !== this.#id) continue;
        const now = performance.now();
        const target = waiting.get(reply.seq);
        if (!target || answered.has(target) || (family === 4 && reply.from !== target.address)) continue;
        answered.add(target);
        target.received++;
        target.rttMs = Math.round((now - (sendTimes.get(target) ?? sentAt)) * 1000) / 1000;
        target.lastReplyAt = new Date().toISOString();
      }
    };
    await Promise.all([...families].map((family) => receive(family)));
    for (const target of waiting.values()) {
      // A peer just programmed may not have programmed this node yet: its first unanswered probes are not losses.
      if (!answered.has(target) && target.received === 0 && target.sent <= WARM_UP_PROBES) continue;
      target.history.push(answered.has(target));
      if (target.history.length > this.#options.window) target.history.shift();
      target.loss = target.history.filter((ok) => !ok).length / target.history.length;
    }
  }

  #socket(family: 4 | 6): IcmpSocket {
    const open = () => IcmpSocket.open(family, { timeoutMs: Math.min(100, this.#options.timeoutMs) });
    this.#sockets[family] ??= this.#options.netns === undefined ? open() : withNetns(this.#options.netns, open);
    return this.#sockets[family];
  }
}
