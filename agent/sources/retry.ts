// Waiting between attempts: an abortable sleep and a capped exponential backoff with jitter.

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

export interface BackoffOptions {
  /** The first delay, in ms. */
  initialMs: number;
  /** The longest delay, in ms. */
  maxMs: number;
}

/** Delays of initial, 2×, 4×, … up to max, each ±20% so that many agents do not retry in step. */
export class Backoff {
  readonly #options: BackoffOptions;
  #next: number;

  constructor(options: BackoffOptions) {
    this.#options = options;
    this.#next = options.initialMs;
  }

  /** The delay to wait now; the following one will be longer. */
  next(): number {
    const delay = this.#next;
    this.#next = Math.min(this.#next * 2, this.#options.maxMs);
    return Math.round(delay * (0.8 + Math.random() * 0.4));
  }

  reset(): void {
    this.#next = this.#options.initialMs;
  }
}

/** Combines the source's own lifetime signal with a caller's. */
export function eitherSignal(a: AbortSignal, b: AbortSignal | undefined): AbortSignal {
  return b ? AbortSignal.any([a, b]) : a;
}
