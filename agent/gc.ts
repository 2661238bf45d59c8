// Full garbage collections after large pieces of work, when the launcher exposes them (--expose-gc). A run over
// thousands of nodes, or a policy world of thousands of pods listed and parsed, leaves megabytes of garbage (the
// documents or API pages, the state they replace, kernel dumps); V8 lets its heap grow to about twice the live size
// before collecting, so RSS would climb by tens of MB between collections. Collecting after such work keeps it near
// the live size (docs/benchmarks.md: agent scale, NetworkPolicy memory) for ~10–30 ms of CPU, after the work is done.

/** A full collection once the current task is done. */
export function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) setImmediate(gc).unref();
}

let lastThrottled = -Infinity;

/**
 * The same, at most once per `intervalMs`: for work that repeats with every event of a large world (a NetworkPolicy
 * apply per pod change), where the first (the initial list) is what leaves the garbage.
 */
export function collectGarbageThrottled(intervalMs = 60_000): void {
  const now = performance.now();
  if (now - lastThrottled < intervalMs) return;
  lastThrottled = now;
  collectGarbage();
}
