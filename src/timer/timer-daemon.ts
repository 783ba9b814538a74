import type { PendingList, PendingResponse } from "../pending/pending-list.js";
import { monotonicMs } from "./clock.js";

/**
 * Seed 004's TimerDaemon: wakes every sweepIntervalMs and fails each request
 * whose deadline has passed. The interval must be shorter than the smallest
 * timeout any protocol allows, or timeouts fire late by up to one interval.
 */
export class TimerDaemon {
  private timer: NodeJS.Timeout | null = null;

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

  sweep(now: number): number {
    return this.list.expire(now, this.onTimeout);
  }
}
