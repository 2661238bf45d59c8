// Bounds how often a source repairs this node's own record (kube: its Node's annotations and condition; etcd: its
// lease key). A repair that something else undoes at once means another writer disagrees: patching back on every
// change would be a loop between the two. After `limit` repairs of one kind within `windowMs`, that kind is
// contested: no repair for `pauseMs`, then one more try; each further contest doubles the pause (up to
// `maxPauseMs`). A kind that goes a whole window without a repair starts afresh.

export interface RepairGuardOptions {
  /** Repairs of one kind allowed within `windowMs` before it is contested. Default 5. */
  limit?: number;
  /** Default 60,000 ms. */
  windowMs?: number;
  /** The first pause once contested. Default 60,000 ms; doubles per contest up to `maxPauseMs`. */
  pauseMs?: number;
  /** Default 1,800,000 ms (30 min). */
  maxPauseMs?: number;
}

interface KindState {
  /** When the recent repairs were made (within the window). */
  times: number[];
  /** While contested: no repair before this time. */
  pausedUntil: number;
  /** The pause the next contest will take. */
  nextPauseMs: number;
}

/** The status line of a contested record: what another writer keeps changing, and how long repairs pause. */
export function contestedProblem(what: string, waitMs: number): string {
  return `another writer keeps changing this node's ${what}: not repairing it for ${Math.ceil(waitMs / 1000)} s`;
}

export class RepairGuard {
  readonly #limit: number;
  readonly #windowMs: number;
  readonly #pauseMs: number;
  readonly #maxPauseMs: number;
  readonly #kinds = new Map<string, KindState>();

  constructor(options: RepairGuardOptions = {}) {
    this.#limit = options.limit ?? 5;
    this.#windowMs = options.windowMs ?? 60_000;
    this.#pauseMs = options.pauseMs ?? 60_000;
    this.#maxPauseMs = options.maxPauseMs ?? 1_800_000;
  }

  /** 0 when `kind` may be repaired now, else how long to wait (it is contested). */
  waitMs(kind: string, now = Date.now()): number {
    const state = this.#state(kind, now);
    return Math.max(0, state.pausedUntil - now);
  }

  /** Records a repair; returns true when this one makes `kind` contested (its pause starts now). */
  record(kind: string, now = Date.now()): boolean {
    const state = this.#state(kind, now);
    state.times.push(now);
    if (state.times.length < this.#limit) return false;
    state.pausedUntil = now + state.nextPauseMs;
    state.nextPauseMs = Math.min(state.nextPauseMs * 2, this.#maxPauseMs);
    state.times = [];
    return true;
  }

  /** Whether `kind` is paused now. */
  contested(kind: string, now = Date.now()): boolean {
    return this.waitMs(kind, now) > 0;
  }

  /** Forgets everything (a new object: its history is not a fight). */
  reset(): void {
    this.#kinds.clear();
  }

  #state(kind: string, now: number): KindState {
    let state = this.#kinds.get(kind);
    if (!state) {
      state = { times: [], pausedUntil: 0, nextPauseMs: this.#pauseMs };
      this.#kinds.set(kind, state);
    }
    state.times = state.times.filter((t) => now - t < this.#windowMs);
    // A full window since the last repair and the pause: the fight, if any, is over.
    const last = Math.max(state.pausedUntil, state.times.at(-1) ?? 0);
    if (state.times.length === 0 && now - last >= this.#windowMs) state.nextPauseMs = this.#pauseMs;
    return state;
  }
}
