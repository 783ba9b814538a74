import { monotonicMs } from "../timer/clock.js";

/**
 * Notices a silent connection with one timer per connection that is re-armed
 * only when it fires, so traffic costs a timestamp and nothing more.
 * First silence of `ms`: onIdle(false) (send a ping); a second: onIdle(true) (close).
 */
export class IdleWatch {
  private lastSeen = monotonicMs();
  private warned = false;
  private warnedAt = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly ms: number,
    private readonly onIdle: (final: boolean) => void,
  ) {
    if (ms > 0) this.arm(ms);
  }

  seen(): void {
    this.lastSeen = monotonicMs();
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private arm(delay: number): void {
    this.timer = setTimeout(() => this.fire(), delay);
    this.timer.unref();
  }

  private fire(): void {
    const now = monotonicMs();
    const quiet = now - this.lastSeen;
    // Traffic at or after the warning answers it, even within the same millisecond.
    if (quiet < this.ms || (this.warned && this.lastSeen >= this.warnedAt)) {
      this.warned = false;
      return this.arm(Math.max(1, this.ms - quiet));
    }
    if (!this.warned) {
      this.warned = true;
      this.warnedAt = now;
      this.onIdle(false);
      return this.arm(this.ms);
    }
    this.timer = null;
    this.onIdle(true);
  }
}
