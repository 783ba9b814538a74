import { monotonicMs } from "../timer/clock.js";

/**
 * Notices a silent connection with one timer per connection that is re-armed
 * only when it fires, so traffic costs a timestamp and nothing more.
 * First silence of `ms`: onIdle(false) (send a ping); a second: onIdle(true) (close).
 */
export class IdleWatch {
  private lastSeen = monotonicMs();
  private warned = false;
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
    const quiet = monotonicMs() - this.lastSeen;
    if (quiet < this.ms) {
      this.warned = false;
      return this.arm(this.ms - quiet);
    }
    if (!this.warned) {
      this.warned = true;
      this.onIdle(false);
      return this.arm(this.ms);
    }
    this.timer = null;
    this.onIdle(true);
  }
}
