import type { PendingList, PendingResponse } from "../pending/pending-list.js";
import { monotonicMs } from "./clock.js";

/**
 * Seed 004's TimerDaemon: wakes every sweepIntervalMs and fails each request
 * whose deadline has passed. The interval must be shorter than the smallest
 * timeout any protocol allows, or timeouts fire late by up to one interval.
 */
export class TimerDaemon {
  private timer: NodeJS.Timeout | null = null;
  /** Other deadlines swept on the same tick (the owner's pool counts): still one timer per worker. */
  private readonly others: ((now: number) => void)[] = [];

  constructor(
    private readonly list: PendingList,
    private readonly intervalMs: number,
    private readonly onTimeout: (p: PendingResponse) => void,
  ) {}

  start(): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => this.sweep(monotonicMs()), this.intervalMs);
    // The daemon serves listeners; it must not keep an otherwise idle process alive.
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  also(sweep: (now: number) => void): void {
    this.others.push(sweep);
  }

  sweep(now: number): number {
    const n = this.list.expire(now, this.onTimeout);
    for (const f of this.others) f(now);
    return n;
  }
}
