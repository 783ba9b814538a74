import { performance } from "node:perf_hooks";

/** Whole milliseconds on a monotonic clock: deadlines must not jump with the wall clock. */
export function monotonicMs(): number {
  return Math.floor(performance.now());
}
