import { performance } from "node:perf_hooks";

/** Whole milliseconds on a monotonic clock: deadlines must not jump with the wall clock. */
export function monotonicMs(): number {
  return Math.floor(performance.now());
}

/** A read is being handled (beginInput); then `inputAt`, once a use has read the clock in it (-1 before). */
let inInput = false;
let inputAt = -1;

/**
 * monotonicMs() as of the first use within the read being handled, or the clock outside one: one clock read per
 * read instead of one per use (the peer watch's traffic stamp, XEP-0198's held answers, timed <r/> and its ride
 * window, each per stanza or per batch). A clock read costs ~55 ns on this kvm-clock VM (docs/benchmarks.md,
 * session 25). Earlier than now by what the read's handling has taken since: a deadline taken from it comes that
 * much sooner, never later; times taken from it never go backwards (a read handled within another keeps the
 * outer's). A read that uses none reads no clock.
 */
export function inputMs(): number {
  if (inputAt >= 0) return inputAt;
  const now = monotonicMs();
  if (inInput) inputAt = now;
  return now;
}

/**
 * A read is handled from now until endInput(). Within another read's handling (input released by a callback of
 * it) the outer one goes on: false, and the caller does not call endInput().
 */
export function beginInput(): boolean {
  if (inInput) return false;
  inInput = true;
  return true;
}

/** The read whose beginInput() returned true is handled (in a `finally`: an error ends it too). */
export function endInput(): void {
  inInput = false;
  inputAt = -1;
}
